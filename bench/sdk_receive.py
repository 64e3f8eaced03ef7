"""Receive-rate benchmark: the SDK's ``IntradayClient`` against a bare python-socketio client.

Question answered: how many ``kpi:update`` messages per second can one ``IntradayClient``
receive, and how much client CPU does each cost, compared with a bare
``socketio.AsyncClient`` on the same stream from the same server?

Setup: the reference server runs in its own subprocess (``python -m reference_server.cli
serve``), so its CPU is never counted against the client process. A third process (spawned
with ``multiprocessing``) publishes ``--messages`` realistic KPI payloads for organization
``bench`` through ``POST /api/ws/broadcast`` on ``--concurrency`` keep-alive connections, as
fast as the server accepts them (pre-encoded bodies over raw HTTP/1.1: httpx cost ~2 ms CPU per
request and starved the other processes on a 2-core box). This process holds the clients, both
on the websocket transport only:

* ``sdk``  -- ``IntradayClient`` subscribed to ``kpi`` with a counting ``on_kpi_update``
  handler: the SDK's full receive path (envelope and payload validation into pydantic models,
  dedupe, ordered dispatch).
* ``sdk1`` -- the same with ``batch=False``: it does not announce ``batch``, so the server
  sends it single events (``sdk`` announces it by default and gets ``batch`` events).
* ``bare`` -- ``socketio.AsyncClient`` that calls ``authenticate`` and ``subscribe`` and counts
  ``kpi:update`` events with a trivial handler.

Phases:

1. ``both``: the two clients connected at once on one stream. Per client: receive rate, i.e.
   N / (last receipt - first receipt). CPU cannot be split between the clients here.
2. ``alone``: one client at a time, interleaved (sdk, bare, sdk, bare, ...) for ``--rounds``.
   Per phase: receive rate and the client process's CPU time (``time.process_time()`` from the
   start of publishing to the last receipt) in microseconds per message. This is the fair
   comparison; the ``ratio`` column is SDK / bare (median over rounds).

Every phase checks that all N messages arrived (a timeout reports losses instead of hanging).
``--profile`` additionally runs one SDK-alone phase under cProfile and prints the top
functions by cumulative time (``--profile-client sdk1`` profiles the unbatched SDK instead,
``bare`` the baseline).

Run (from the repo root, with the project venv active)::

    python bench/sdk_receive.py                             # N=20000, 2 rounds
    python bench/sdk_receive.py --messages 2000 --rounds 1  # smoke
    python bench/sdk_receive.py --profile                   # plus a cProfile of the SDK path

Only relative numbers are meaningful; the machine's load shifts absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import multiprocessing
import pstats
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import socketio

from client_sdk import ClientConfig, IntradayClient

ORG = "bench"
WS_PATH = "/ws"
API = "/api/ws"


# --- publisher (third process) ------------------------------------------------------------


def _kpi_payload(i: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    return kpi_payload(i, now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z")


def kpi_payload(i: int, stamp: str) -> dict[str, Any]:
    """The ``i``-th KPI payload of the stream (also ``bench/sdk_receive_inproc.py``'s)."""
    utilization = 70.0 + (i % 25)
    service = 75.0 + (i % 20)
    required = 40 + (i % 7)
    scheduled = 38 + (i % 5)
    return {
        "organization_id": ORG,
        "queue_name": f"queue-{i % 4}",
        "timestamp": stamp,
        "utilization": {"current_utilization": utilization, "occupancy": utilization - 4.5},
        "service_level": {"current": service, "target": 80.0},
        "health_score": 60.0 + (i % 40),
        "contacts_offered": 1000 + i,
        "headcount_gap": {
            "required": required,
            "scheduled": scheduled,
            "gap": scheduled - required,
        },
        "sla_risk": {"level": "medium" if service < 80 else "low", "score": 100.0 - service},
        "changes": {"utilization": 0.5, "service_level": -1.2, "health_score": 0.3},
    }


async def _post_loop(host: str, port: int, bodies: list[bytes], next_index: list[int]) -> None:
    """Keep-alive HTTP/1.1 POSTs on one connection (httpx costs ~2 ms CPU a request here)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while next_index[0] < len(bodies):
            body = bodies[next_index[0]]
            next_index[0] += 1
            head = (
                f"POST {API}/broadcast HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            answer = await reader.readexactly(length)
            if b" 200 " not in status_line:
                raise RuntimeError(f"broadcast failed: {status_line!r} {answer[:200]!r}")
    finally:
        writer.close()


async def _publish(url: str, count: int, concurrency: int) -> None:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    bodies = [
        json.dumps({"event": "kpi:update", "data": _kpi_payload(i)}).encode() for i in range(count)
    ]
    next_index = [0]
    await asyncio.gather(
        *(_post_loop(host, int(port), bodies, next_index) for _ in range(concurrency))
    )


def _publisher_main(url: str, count: int, concurrency: int) -> None:
    asyncio.run(_publish(url, count, concurrency))


# --- clients --------------------------------------------------------------------------------


@dataclass
class Counter:
    """Counts receipts; ``done`` is set at ``expected``."""

    expected: int
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def hit(self, *_: Any) -> None:
        now = time.perf_counter()
        if self.count == 0:
            self.first = now
        self.count += 1
        self.last = now
        if self.count >= self.expected:
            self.done.set()

    @property
    def rate(self) -> float:
        span = self.last - self.first
        return self.count / span if span > 0 else float("nan")


Closer = Callable[[], Awaitable[None]]


async def _connect_sdk(url: str, counter: Counter, *, batch: bool = True) -> Closer:
    config = ClientConfig(
        url=url,
        path=WS_PATH,
        user_id="sdk",
        organization_id=ORG,
        transports=("websocket",),
        reconnection=False,
        batch=batch,
    )
    client = IntradayClient(config)
    await client.connect()
    client.on(on_kpi_update=counter.hit)
    await client.subscribe(["kpi"])
    return client.close


async def _connect_bare(url: str, counter: Counter) -> Closer:
    sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
    sio.on("kpi:update", counter.hit)
    await sio.connect(url, socketio_path=WS_PATH, transports=["websocket"])
    for event, data in (
        ("authenticate", {"user_id": "bare", "organization_id": ORG}),
        ("subscribe", {"channels": ["kpi"]}),
    ):
        reply = await sio.call(event, data, timeout=10)
        if not (isinstance(reply, dict) and reply.get("success", True)):
            raise RuntimeError(f"bare client: {event} failed: {reply!r}")
    return sio.disconnect  # type: ignore[no-any-return]


async def _connect_sdk_single(url: str, counter: Counter) -> Closer:
    return await _connect_sdk(url, counter, batch=False)


CONNECT: dict[str, Callable[[str, Counter], Awaitable[Closer]]] = {
    "sdk": _connect_sdk,
    "sdk1": _connect_sdk_single,
    "bare": _connect_bare,
}


@dataclass
class PhaseResult:
    """One publishing run and what each connected client saw."""

    label: str
    counters: dict[str, Counter]
    cpu_seconds: float
    wall_seconds: float


async def _phase(
    label: str,
    url: str,
    kinds: list[str],
    args: argparse.Namespace,
    profiler: cProfile.Profile | None = None,
) -> PhaseResult:
    n: int = args.messages
    counters = {kind: Counter(n) for kind in kinds}
    closers = [await CONNECT[kind](url, counters[kind]) for kind in kinds]
    await asyncio.sleep(0.3)  # let subscriptions settle
    publisher = multiprocessing.get_context("spawn").Process(
        target=_publisher_main, args=(url, n, args.concurrency), daemon=True
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    publisher.start()
    try:
        async with asyncio.timeout(args.timeout):
            await asyncio.gather(*(c.done.wait() for c in counters.values()))
    except TimeoutError:
        pass
    finally:
        if profiler is not None:
            profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await asyncio.to_thread(publisher.join, 30)
    if publisher.exitcode != 0:
        print(f"  [{label}] publisher exit code {publisher.exitcode}", file=sys.stderr)
    for close in closers:
        with contextlib.suppress(Exception):
            await close()
    for kind, c in counters.items():
        if c.count != n:
            print(f"  [{label}] {kind}: LOSS received {c.count}/{n}", file=sys.stderr)
    return PhaseResult(label, counters, cpu, wall)


# --- server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_server(port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "reference_server.cli", "serve", "--port", str(port)]
    command += ["--log-level", "warning"]
    server = subprocess.Popen(command)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}{API}/health", timeout=1).is_success:
                return server
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("server not ready within 30 s")


# --- main -----------------------------------------------------------------------------------


def _us_per_msg(result: PhaseResult, n: int) -> float:
    return result.cpu_seconds / n * 1e6


async def _run(url: str, args: argparse.Namespace) -> int:
    n: int = args.messages
    ok = True
    print(f"N={n} concurrency={args.concurrency} rounds={args.rounds}")

    both = await _phase("both", url, ["sdk", "bare"], args)
    print("\nphase both (one stream, both clients connected):")
    for kind, c in both.counters.items():
        ok &= c.count == n
        print(f"  {kind:<5} {c.rate:>9.0f} msg/s  received {c.count}/{n}")
    ratio = both.counters["sdk"].rate / both.counters["bare"].rate
    print(f"  sdk/bare rate {ratio:.2f}; process CPU {_us_per_msg(both, n):.1f} us/msg (both)")

    alone: dict[str, list[PhaseResult]] = {"sdk": [], "sdk1": [], "bare": []}
    order = ["sdk", "bare", "sdk1"] * args.rounds + ["sdk"]
    for i, kind in enumerate(order):
        alone[kind].append(await _phase(f"alone-{kind}-{i}", url, [kind], args))

    print("\nphase alone (one client at a time, interleaved):")
    print(f"  {'client':<6} {'rate msg/s':>11} {'CPU us/msg':>11}   per run")
    medians: dict[str, tuple[float, float]] = {}
    for kind, results in alone.items():
        rates = [r.counters[kind].rate for r in results]
        cpus = [_us_per_msg(r, n) for r in results]
        ok &= all(r.counters[kind].count == n for r in results)
        medians[kind] = (statistics.median(rates), statistics.median(cpus))
        runs = ", ".join(f"{r:.0f}/{c:.1f}" for r, c in zip(rates, cpus, strict=True))
        print(f"  {kind:<6} {medians[kind][0]:>11.0f} {medians[kind][1]:>11.1f}   {runs}")
    for kind in ("sdk", "sdk1"):
        rate_ratio = medians[kind][0] / medians["bare"][0]
        cpu_ratio = medians[kind][1] / medians["bare"][1]
        print(f"  ratio {kind}/bare: rate {rate_ratio:.2f}  CPU per message {cpu_ratio:.2f}")

    if args.profile:
        profiler = cProfile.Profile()
        kind = args.profile_client
        result = await _phase(f"profile-{kind}", url, [kind], args, profiler)
        ok &= result.counters[kind].count == n
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats(args.profile_sort)
        stats.print_stats(args.profile_top)
        print(f"\ncProfile of one {kind}-alone phase ({args.profile_sort}):")
        print(out.getvalue())
    print("no losses" if ok else "LOSSES (see stderr)")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000, help="N per phase")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved alone rounds")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent POSTs")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per phase")
    parser.add_argument("--profile", action="store_true", help="cProfile an SDK-alone phase")
    parser.add_argument(
        "--profile-client", choices=sorted(CONNECT), default="sdk", help="the client profiled"
    )
    parser.add_argument("--profile-top", type=int, default=25, help="rows of the profile")
    parser.add_argument("--profile-sort", default="cumulative", help="pstats sort key")
    args = parser.parse_args(argv)

    port = _free_port()
    server = _start_server(port)
    try:
        return asyncio.run(_run(f"http://127.0.0.1:{port}", args))
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    raise SystemExit(main())
