"""Replay benchmark: how fast a client is resumed, how fast a replay flows, what the store costs.

Questions answered (run on demand, ``make bench-replay``; not part of the test suite):

(a) **Resume latency**: from the moment the server's port accepts connections again to the
    moment the last of ``--missed`` (1,000) replayed messages reached the client's handler,
    on loopback. Target: < 100 ms. Measured two ways, each ``--rounds`` times:

    * ``restart/redis`` -- the server process is stopped and started again on the same port;
      its log lives in a ``redis-server`` this benchmark starts on a free port (``--save ''
      --appendonly no``), so the restarted server still has the messages (``complete: true``).
      The clock starts when a 1 ms TCP connect poll on the port first succeeds.
    * ``proxy/memory`` -- the server keeps running with its memory store; the client talks to
      it through a TCP proxy in this process, which cuts every connection and stops
      listening, then listens again. The clock starts when the proxy listens again.

    Backoff is excluded by construction: the client connects the moment the port accepts.
    The client is a raw python-socketio ``AsyncClient`` that sends ``subscribe`` with
    ``since: {"kpi:bench": {"seq", "epoch"}}`` itself (the SDK's own resume, in
    ``client_sdk/_supervisor.py``, is not on main yet), so this measures the server's resume
    path plus one Socket.IO connect, not the SDK's reconnect logic.

(b) **Replay throughput**: replayed messages per second, for ``--missed`` and for
    ``--throughput-messages`` (5,000) missed messages: over the replay itself (first to last
    replayed message) and end to end (``subscribe`` sent to last replayed message).

(c) **Cost of the store on the fan-out path**: deliveries per second of
    ``bench/fanout_transport.py``'s ``reference`` variant (its ``run_once``, reused as is:
    a server process, client processes, publisher bursts) with ``store="none"``, the memory
    store and the Redis store, interleaved round by round; the ratios to ``none`` are medians
    of per-round ratios (target: memory costs < 10%). Server CPU-microseconds per delivery,
    the noise-robust figure, is shown with its ratio too.

Servers are ``fanout_transport.py --serve reference`` processes (our ``ReferenceServer``, on
uvloop, compression on, limits raised); messages are its ~400-byte ``kpi:update`` payloads
published in-process by the server's publisher. On a shared machine only the ratios within
one run mean much.

Run (from the repo root, with the project venv)::

    python bench/replay.py                       # full: 5 rounds, 1,000 and 5,000 missed
    python bench/replay.py --rounds 1 --fanout-clients 20 --fanout-messages 50   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

# bench/ is on sys.path when this file is run as a script: reuse the fan-out benchmark's parts.
import fanout_transport as fanout
import socketio
from fanout_transport import HOST, REF_ORG, OrjsonShim, fmt, median, read_tagged, stop_process

STREAM = f"kpi:{REF_ORG}"
EVENT = "kpi:update"
PATH = "ws"


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


async def wait_accepting(port: int, timeout: float, interval: float = 0.001) -> float:
    """Poll ``port`` with TCP connects; the monotonic time of the first one that succeeds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(interval)
            continue
        accepted = time.monotonic()
        writer.transport.abort()
        return accepted
    raise TimeoutError(f"nothing accepts on port {port} after {timeout:g} s")


# --------------------------------------------------------------------------- processes


async def start_redis() -> tuple[asyncio.subprocess.Process, str]:
    """A throw-away redis-server on a free port; the process and its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (make system-deps installs it)")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *(binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"),
        stdout=asyncio.subprocess.DEVNULL,
    )
    await wait_accepting(port, 10, interval=0.01)
    return proc, f"redis://{HOST}:{port}/0"


async def spawn_server(port: int, store: str) -> asyncio.subprocess.Process:
    """A ``fanout_transport.py --serve reference`` process (not waited for)."""
    pipe = asyncio.subprocess.PIPE
    return await asyncio.create_subprocess_exec(
        *(sys.executable, fanout.SCRIPT, "--serve", "reference", "--port", str(port)),
        *("--store", store),
        stdin=pipe,
        stdout=pipe,
    )


async def start_server(port: int, store: str) -> tuple[asyncio.subprocess.Process, int]:
    """A server process once it listens; it and its port."""
    proc = await spawn_server(port, store)
    return proc, int(await read_tagged(proc, "READY", 60))


async def publish(server: asyncio.subprocess.Process, count: int) -> None:
    """Have the server publish ``count`` kpi:update messages (in-process) and wait until done."""
    assert server.stdin is not None
    server.stdin.write(f"start {count} 50\n".encode())
    await server.stdin.drain()
    await read_tagged(server, "STARTED", 30)
    await read_tagged(server, "DONE", 120)


# --------------------------------------------------------------------------- the proxy


class CuttableProxy:
    """A TCP proxy to ``target`` that can cut every connection and stop listening, then reopen."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()

    async def open(self) -> None:
        """Listen on ``port`` (a fresh one the first time, the same one after a cut)."""
        self._server = await asyncio.start_server(self._pipe, HOST, self.port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def cut(self) -> None:
        """Stop listening and abort every connection, as a network failure would."""
        assert self._server is not None
        self._server.close()
        for transport in list(self._transports):
            transport.abort()
        await self._server.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer.transport, up_writer.transport)
        self._transports.update(pair)

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, RuntimeError):
                while data := await src.read(65_536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        try:
            await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        finally:
            self._transports.difference_update(pair)


# --------------------------------------------------------------------------- the client


def new_client() -> socketio.AsyncClient:
    return socketio.AsyncClient(reconnection=False, handle_sigint=False, json=OrjsonShim)


async def connect(client: socketio.AsyncClient, url: str) -> None:
    auth = {"user_id": "bench-resumer", "organization_id": REF_ORG}
    await client.connect(
        url, socketio_path=PATH, transports=["websocket"], auth=auth, wait_timeout=30
    )


async def position(url: str, server: asyncio.subprocess.Process) -> tuple[int, str]:
    """Connect, subscribe, see one live message: the ``(seq, epoch)`` a client would keep."""
    client = new_client()
    seen: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    client.on(EVENT, seen.put_nowait)
    await connect(client, url)
    await client.call("subscribe", {"channels": ["kpi"]}, timeout=30)
    await publish(server, 1)
    envelope = await asyncio.wait_for(seen.get(), 30)
    await client.disconnect()
    return int(envelope["seq"]), str(envelope["epoch"])


@dataclass
class Resume:
    """One resume: times in seconds from the port accepting (``t0``)."""

    method: str
    missed: int
    latency: float = float("nan")  # t0 -> last replayed message at the handler
    connected: float = float("nan")  # t0 -> Socket.IO connect done
    replay_span: float = float("nan")  # first -> last replayed message
    subscribe_to_last: float = float("nan")  # subscribe sent -> last replayed message
    server_cpu: float = float("nan")  # server process CPU seconds from t0 to the last message
    complete: bool = False
    replayed: int = 0
    error: str = ""


async def resume(
    url: str,
    since: tuple[int, str],
    missed: int,
    accepted: Awaitable[float],
    method: str,
    server: Callable[[], int | None],
) -> Resume:
    """Connect as soon as ``accepted`` resolves, subscribe with ``since``, await the replay.

    ``server()`` is the server's pid (once it runs), to tell its CPU time from the client's.
    """
    result = Resume(method, missed)
    seq, epoch = since
    times: list[float] = []
    done = asyncio.Event()
    client = new_client()

    def on_update(envelope: dict[str, Any]) -> None:
        if envelope.get("seq", 0) > seq:
            times.append(time.monotonic())
            if len(times) == missed:
                done.set()

    client.on(EVENT, on_update)
    try:
        t0 = await accepted
        pid = server()
        cpu = fanout.proc_cpu_seconds(pid) if pid is not None else float("nan")
        await connect(client, url)
        result.connected = time.monotonic() - t0
        sent = time.monotonic()
        request = {"channels": ["kpi"], "since": {STREAM: {"seq": seq, "epoch": epoch}}}
        ack = await client.call("subscribe", request, timeout=60)
        await asyncio.wait_for(done.wait(), 120)
        if pid is not None:
            result.server_cpu = fanout.proc_cpu_seconds(pid) - cpu
        report = ack["replay"][STREAM]
        result.complete, result.replayed = bool(report["complete"]), int(report["replayed"])
        result.latency = times[missed - 1] - t0
        result.replay_span = times[missed - 1] - times[0]
        result.subscribe_to_last = times[missed - 1] - sent
        if not result.complete or result.replayed != missed:
            result.error = f"replay report {report}, expected {missed} complete"
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 10)
    return result


async def resume_after_restart(redis_url: str, missed: int) -> Resume:
    """Stop the server, publish nothing more, start it again on the same port, resume."""
    port = free_port()
    server, _ = await start_server(port, redis_url)
    restarted: asyncio.subprocess.Process | None = None
    try:
        since = await position(f"http://{HOST}:{port}", server)
        await publish(server, missed)  # the client is away: these are the missed messages
        await stop_process(server, 15)
        # Polling starts before the process does, so the first accept is seen within 1 ms.
        accepted = asyncio.create_task(wait_accepting(port, 60))
        spawned: list[asyncio.subprocess.Process] = []
        waiting = asyncio.create_task(
            resume(
                f"http://{HOST}:{port}",
                since,
                missed,
                accepted,
                "restart/redis",
                lambda: spawned[0].pid if spawned else None,
            )
        )
        restarted = await spawn_server(port, redis_url)
        spawned.append(restarted)
        await read_tagged(restarted, "READY", 60)
        return await waiting
    finally:
        await stop_process(server, 10)
        if restarted is not None:
            await stop_process(restarted, 10)


async def resume_through_proxy(missed: int) -> Resume:
    """Cut the client's connection at a proxy, publish, reopen the proxy, resume."""
    server, port = await start_server(0, "memory")
    proxy = CuttableProxy(port)
    try:
        await proxy.open()
        url = f"http://{HOST}:{proxy.port}"
        since = await position(url, server)
        await proxy.cut()
        await publish(server, missed)
        accepted: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        waiting = asyncio.create_task(
            resume(url, since, missed, accepted, "proxy/memory", lambda: server.pid)
        )
        await proxy.open()
        accepted.set_result(time.monotonic())  # listening again: the port accepts
        return await waiting
    finally:
        with contextlib.suppress(Exception):
            await proxy.cut()
        await stop_process(server, 10)


# --------------------------------------------------------------------------- (c) fan-out


async def fanout_costs(redis_url: str, args: argparse.Namespace) -> dict[str, list[Any]]:
    """``fanout_transport.run_once`` for each store, interleaved over the rounds."""
    stores = {"none": "none", "memory": "memory", "redis": redis_url}
    runs: dict[str, list[Any]] = {name: [] for name in stores}
    for rnd in range(1, args.fanout_rounds + 1):
        for name, store in stores.items():
            options = fanout.parse_args(
                [
                    *("--clients", str(args.fanout_clients)),
                    *("--messages", str(args.fanout_messages)),
                    *("--variants", "reference", "--store", store),
                ]
            )
            r = await fanout.run_once("reference", options)
            runs[name].append(r)
            print(
                f"fanout round {rnd} store={name:<6} {fmt(r.rate, ',.0f'):>9} deliv/s "
                f"recv={r.received} loss={r.losses} srv_cpu={fmt(r.server_cpu_s, '.2f')}s "
                f"emit_loop={fmt(r.emit_loop_s, '.3f')}s"
                + (f" ERROR {r.error}" if r.error else ""),
                flush=True,
            )
    return runs


# --------------------------------------------------------------------------- report


def ms(x: float) -> str:
    return fmt(1000 * x, ".1f")


async def orchestrate(args: argparse.Namespace) -> int:
    print(
        f"# replay: {args.rounds} round(s), missed={args.missed} and {args.throughput_messages}, "
        f"fan-out {args.fanout_clients} clients x {args.fanout_messages} msgs x "
        f"{args.fanout_rounds} round(s), cpus={os.cpu_count()}, loop=uvloop"
    )
    redis, redis_url = await start_redis()
    failed = False
    try:
        resumes: list[Resume] = []
        for rnd in range(1, args.rounds + 1):
            for missed in (args.missed, args.throughput_messages):
                for r in (
                    await resume_after_restart(redis_url, missed),
                    await resume_through_proxy(missed),
                ):
                    resumes.append(r)
                    print(
                        f"resume round {rnd} {r.method:<13} missed={missed:<6} "
                        f"latency={ms(r.latency)}ms connect={ms(r.connected)}ms "
                        f"replay={ms(r.replay_span)}ms subscribe->last={ms(r.subscribe_to_last)}ms "
                        f"server_cpu={ms(r.server_cpu)}ms "
                        f"complete={r.complete}" + (f" ERROR {r.error}" if r.error else ""),
                        flush=True,
                    )
        runs = await fanout_costs(redis_url, args) if args.fanout_rounds else {}
    finally:
        redis.terminate()
        await redis.wait()

    if resumes:
        report_resumes(resumes, args)
        failed |= any(r.error for r in resumes)
    if runs:
        failed |= report_fanout(runs)
    return 1 if failed else 0


def report_resumes(resumes: list[Resume], args: argparse.Namespace) -> None:
    print("\n(a) resume latency: port accepts -> last replayed message at the handler (median)")
    print(
        f"{'method':<14} {'missed':>7} {'latency ms':>11} {'connect ms':>11} "
        f"{'server CPU ms':>14}  target"
    )
    for method in ("restart/redis", "proxy/memory"):
        for missed in (args.missed, args.throughput_messages):
            rs = [r for r in resumes if r.method == method and r.missed == missed]
            latency = median([r.latency for r in rs])
            target = (
                ("< 100 ms: " + ("met" if latency < 0.1 else "MISSED"))
                if missed == args.missed
                else ""
            )
            print(
                f"{method:<14} {missed:>7} {ms(latency):>11} "
                f"{ms(median([r.connected for r in rs])):>11} "
                f"{ms(median([r.server_cpu for r in rs])):>14}  {target}"
            )
    print("\n(b) replay throughput, messages per second (median)")
    print(f"{'method':<14} {'missed':>7} {'over the replay':>16} {'subscribe->last':>16}")
    for method in ("restart/redis", "proxy/memory"):
        for missed in (args.missed, args.throughput_messages):
            rs = [r for r in resumes if r.method == method and r.missed == missed]
            span = median([(r.missed - 1) / r.replay_span for r in rs if r.replay_span > 0])
            whole = median([r.missed / r.subscribe_to_last for r in rs if r.subscribe_to_last > 0])
            print(f"{method:<14} {missed:>7} {fmt(span, ',.0f'):>16} {fmt(whole, ',.0f'):>16}")


def report_fanout(runs: dict[str, list[Any]]) -> bool:
    """Print part (c); whether any run failed."""
    failed = False
    if runs:
        print("\n(c) the store on the fan-out path (ratios: median of per-round ratios to none)")
        print(
            f"{'store':<8} {'deliv/s':>10} {'ratio':>6} {'cost':>7} "
            f"{'srv us/deliv':>13} {'ratio':>6}"
        )
        base = runs["none"]
        for name, rs in runs.items():
            failed |= any(r.error or r.losses for r in rs)
            ratio = median([r.rate / b.rate for r, b in zip(rs, base, strict=True)])
            cpu = median([1e6 * r.server_cpu_s / r.received for r in rs if r.received])
            cpu_ratio = median(
                [
                    (r.server_cpu_s / r.received) / (b.server_cpu_s / b.received)
                    for r, b in zip(rs, base, strict=True)
                    if r.received and b.received
                ]
            )
            cost = fmt(100 * (1 - ratio), ".1f") + "%"
            print(
                f"{name:<8} {fmt(median([r.rate for r in rs]), ',.0f'):>10} "
                f"{fmt(ratio, '.2f'):>6} {cost:>7} {fmt(cpu, '.1f'):>13} {fmt(cpu_ratio, '.2f'):>6}"
            )
        print("cost = 1 - deliveries-per-second ratio (target for memory: < 10%)")
    return failed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="resumes per method and size (0: none)")
    p.add_argument("--missed", type=int, default=1000, help="missed messages to replay (a)")
    p.add_argument("--throughput-messages", type=int, default=5000, help="a bigger replay (b)")
    p.add_argument("--fanout-clients", type=int, default=200)
    p.add_argument("--fanout-messages", type=int, default=500)
    p.add_argument("--fanout-rounds", type=int, default=3, help="0 skips part (c)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fanout.raise_nofile(64)
    return int(fanout.run_loop(orchestrate(args)))


if __name__ == "__main__":
    sys.exit(main())
