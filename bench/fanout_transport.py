"""Fan-out throughput benchmark: python-socketio AsyncServer on uvicorn vs aiohttp.

Question answered: for a ``socketio.AsyncServer`` broadcasting to one room, which web server
delivers more messages per second end to end -- uvicorn (``socketio.ASGIApp``) or aiohttp
(``AsyncServer(async_mode="aiohttp")`` attached to a ``web.Application``) -- and what does
WebSocket permessage-deflate cost on each?

Variants (each server runs in its own subprocess, on uvloop, bound to 127.0.0.1):

* ``uvicorn``            -- uvicorn defaults (websockets-sansio impl, ws_per_message_deflate=True)
* ``uvicorn-nodeflate``  -- same with ``ws_per_message_deflate=False``
* ``aiohttp``            -- aiohttp defaults (``WebSocketResponse(compress=True)``)
* ``aiohttp-nodeflate``  -- engine.io's aiohttp driver has no knob, so ``WebSocketResponse`` is
  patched to ``compress=False`` inside that server process only
* ``reference``          -- OUR server (``reference_server.app.ReferenceServer``, also uvicorn
  with per-message deflate): clients authenticate in the handshake, subscribe to channel
  ``kpi`` and receive ``kpi:update`` envelopes built by ``server.publisher.publish``. Our server
  rejects unknown client events, so the burst is triggered by a ``start`` line on the server's
  stdin instead of a controller client; same pacing as the bare variants.
* ``reference-nodeflate`` -- same with ``compression_enabled=False``
* ``reference-batch``    -- ``reference`` with clients that announce ``batch`` (protocol section
  5): they receive ``batch`` events and count the messages inside (the server's defaults:
  ``batch_window_ms`` 50, ``batch_max_messages`` 100)
* ``reference-nometrics`` -- ``reference`` with ``metrics_enabled=False``: what recording the
  Prometheus figures costs (compare with ``--variants reference,reference-nometrics
  --baseline reference-nometrics``; the target is a ratio above 0.95)

Comparing ``reference`` with ``uvicorn`` shows what our broadcast path (validation, envelope,
registry, rooms) costs against bare python-socketio on the same web server.

Per run: a fresh server process, then client process(es) holding ``--clients`` python-socketio
``AsyncClient`` instances (websocket transport only). Every client joins room ``kpi`` on
connect. A controller client (in the parent) emits ``start``; the server then emits
``kpi:update`` ``--messages`` times to the room (~400-byte JSON envelope each, ``await
asyncio.sleep(0)`` after every ``--burst`` emits). Clients count receipts. Throughput is
``deliveries / (last receipt anywhere - first receipt anywhere)`` using CLOCK_MONOTONIC, which
is shared by all processes. Also reported: losses (expected - received), server and client CPU
time during the run (from /proc/PID/stat; CPU-microseconds per delivery is the noise-robust
efficiency number), and peak server RSS (VmHWM).

By default the clients *offer* permessage-deflate like browsers do (aiohttp's ``ws_connect``,
used by python-socketio's client, does not offer it unless ``compress=15`` is passed); use
``--no-client-deflate`` to mimic plain python-socketio clients. The ``pmd`` column shows
whether deflate was actually negotiated.

Variants are interleaved (A B C D, A B C D, ...) and the ratio column is the median of
per-round ratios to the ``uvicorn`` run of the same round, so slow drift on a shared machine
cancels out. Only relative numbers are meaningful.

Run (from the repo root, with the project venv active)::

    python bench/fanout_transport.py --clients 500 --messages 200 --rounds 3   # full
    python bench/fanout_transport.py --clients 50 --messages 20 --rounds 1     # smoke

Internal modes (spawned by the top-level run): ``--serve VARIANT --port P`` and
``--client URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import resource
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import socketio

VARIANTS: tuple[str, ...] = (
    "uvicorn",
    "uvicorn-nodeflate",
    "aiohttp",
    "aiohttp-nodeflate",
    "reference",
    "reference-nodeflate",
    "reference-nometrics",
    "reference-batch",
)
BASELINE = "uvicorn"
ROOM = "kpi"
EVENT = "kpi:update"
SOCKETIO_PATH = "ws"
HOST = "127.0.0.1"
REF_ORG = "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SCRIPT = os.path.abspath(__file__)


# --------------------------------------------------------------------------- common helpers


def raise_nofile(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE so that ``needed`` sockets fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        new_soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))


def run_loop(coro: Any) -> Any:
    """Run ``coro`` on uvloop when available (same loop for every variant and the clients)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(coro)
    return asyncio.run(coro, loop_factory=uvloop.new_event_loop)


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads) in seconds, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return float("nan")
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def proc_peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set size) of a process in MiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def make_payloads(count: int, seed: int = 42) -> list[dict[str, Any]]:
    """Realistic ~400-byte KPI update envelopes with a nested data dict."""
    rng = random.Random(seed)
    desks = ("power-de", "power-fr", "power-nl", "gas-ttf")
    out: list[dict[str, Any]] = []
    for seq in range(count):
        value = round(rng.uniform(-250.0, 250.0), 3)
        prev = round(value - rng.uniform(-5.0, 5.0), 3)
        minute = (seq * 15) % 1440
        out.append(
            {
                "type": EVENT,
                "v": 1,
                "seq": seq,
                "ts": f"2025-11-26T{minute // 60:02d}:{minute % 60:02d}:"
                f"{rng.randint(0, 59):02d}.{rng.randint(0, 999999):06d}Z",
                "source": "intraday-engine/eu-west-1",
                "stream": f"desk.{desks[seq % len(desks)]}.intraday",
                "data": {
                    "kpi": "net_position_mw",
                    "desk": desks[seq % len(desks)],
                    "book": "ID-CONT-15M",
                    "delivery_start": f"2025-11-26T{minute // 60:02d}:{minute % 60:02d}:00Z",
                    "product": "15min",
                    "value": value,
                    "prev": prev,
                    "delta": round(value - prev, 3),
                    "unit": "MW",
                    "pnl_eur": round(rng.uniform(-1e6, 1e6), 2),
                    "vwap_eur_mwh": round(rng.uniform(20.0, 180.0), 2),
                    "trades": rng.randint(0, 5000),
                    "status": "provisional",
                    "flags": ["live", "intraday"],
                },
            }
        )
    return out


def make_reference_payloads(count: int, seed: int = 42) -> list[dict[str, Any]]:
    """Valid ``KpiPayload`` dicts for org ``bench``, ~400 bytes with extra (allowed) fields."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for seq, bare in enumerate(make_payloads(count, seed)):
        extra = bare["data"]
        out.append(
            {
                "organization_id": REF_ORG,
                "timestamp": bare["ts"],
                "utilization": {
                    "current_utilization": round(rng.uniform(50.0, 99.0), 2),
                    "target_utilization": 85.0,
                    "occupancy": round(rng.uniform(50.0, 99.0), 2),
                },
                "service_level": {
                    "current": round(rng.uniform(60.0, 99.0), 2),
                    "target": 80.0,
                    "threshold_seconds": 20.0,
                },
                "contacts_offered": rng.randint(0, 5000),
                "health_score": round(rng.uniform(0.0, 100.0), 1),
                "seq": seq,
                "stream": bare["stream"],
                "desk": extra["desk"],
                "book": extra["book"],
                "value": extra["value"],
                "pnl_eur": extra["pnl_eur"],
                "vwap_eur_mwh": extra["vwap_eur_mwh"],
                "status": extra["status"],
            }
        )
    return out


# --------------------------------------------------------------------------- server process


def build_sio(async_mode: str) -> socketio.AsyncServer:
    sio = socketio.AsyncServer(async_mode=async_mode, logger=False, engineio_logger=False)
    tasks: set[asyncio.Task[None]] = set()
    stats: dict[str, float] = {}

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if isinstance(auth, dict) and auth.get("role") == "controller":
            return
        await sio.enter_room(sid, ROOM)

    async def broadcast(payloads: list[dict[str, Any]], burst: int) -> None:
        t0 = time.monotonic()
        for i, payload in enumerate(payloads, 1):
            await sio.emit(EVENT, payload, room=ROOM)
            if i % burst == 0:
                await asyncio.sleep(0)
        stats["emit_loop_s"] = time.monotonic() - t0

    @sio.on("start")
    async def start(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        payloads = make_payloads(int(data["messages"]))
        room_size = sum(1 for _ in sio.manager.get_participants("/", ROOM))
        task = asyncio.create_task(broadcast(payloads, max(1, int(data.get("burst", 1)))))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        size = len(json.dumps(payloads[0], separators=(",", ":")))
        return {"room_size": room_size, "payload_bytes": size}

    @sio.on("stats")
    async def get_stats(sid: str, data: Any = None) -> dict[str, float]:
        return dict(stats)

    return sio


def watch_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` when the parent closes our stdin (or dies)."""

    def wait() -> None:
        with contextlib.suppress(Exception):
            sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait, daemon=True).start()


def listening_socket(port: int) -> Any:
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def serve_uvicorn(variant: str, port: int) -> None:
    import uvicorn

    sio = build_sio("asgi")
    app = socketio.ASGIApp(sio, socketio_path=SOCKETIO_PATH)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws_per_message_deflate=variant != "uvicorn-nodeflate",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    sock = listening_socket(port)
    stop = asyncio.Event()
    watch_stdin_eof(asyncio.get_running_loop(), stop)
    serve_task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serve_task.done():
            serve_task.result()
            raise RuntimeError("uvicorn exited before starting")
        await asyncio.sleep(0.01)
    print(f"READY {sock.getsockname()[1]}", flush=True)
    await stop.wait()
    server.should_exit = True
    await asyncio.wait_for(serve_task, 10)


async def serve_aiohttp(variant: str, port: int) -> None:
    from aiohttp import web

    if variant == "aiohttp-nodeflate":
        # engine.io's aiohttp driver builds WebSocketResponse(max_msg_size=...) with aiohttp's
        # default compress=True and exposes no option; patch the name it looks up at call time.
        import engineio.async_drivers.aiohttp as eio_aiohttp

        eio_aiohttp.WebSocketResponse = functools.partial(  # type: ignore[misc]
            web.WebSocketResponse, compress=False
        )
    sio = build_sio("aiohttp")
    app = web.Application()
    sio.attach(app, socketio_path=SOCKETIO_PATH)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2)
    await runner.setup()
    sock = listening_socket(port)
    site = web.SockSite(runner, sock)
    await site.start()
    stop = asyncio.Event()
    watch_stdin_eof(asyncio.get_running_loop(), stop)
    print(f"READY {sock.getsockname()[1]}", flush=True)
    await stop.wait()
    await asyncio.wait_for(runner.cleanup(), 10)


async def serve_reference(variant: str, port: int, store: str = "memory") -> None:
    """Run OUR server; stdin lines ``start MESSAGES BURST`` trigger a burst, EOF stops it.

    ``store`` is its message store (``memory``, ``none`` or a Redis URL, see bench/replay.py).
    """
    from client_sdk.protocol import BroadcastRequest, ServerEvent
    from reference_server.app import ReferenceServer
    from reference_server.config import load_settings

    big = 1_000_000
    settings = load_settings(
        port=port,
        max_connections_total=big,
        max_connections_per_org=big,
        room_max_size=big,
        compression_enabled=variant != "reference-nodeflate",
        metrics_enabled=variant != "reference-nometrics",
        enable_logging=False,
        log_connection_events=False,
        log_subscription_events=False,
        auth_timeout_ms=3_600_000,
        shutdown_drain_ms=0,
        rate_limit_messages_per_second=big,
        store=store,
    )
    server = ReferenceServer(settings, install_signal_handlers=False)
    await server.start()
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read_lines() -> None:
        with contextlib.suppress(Exception):
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line.strip())
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read_lines, daemon=True).start()
    tasks: set[asyncio.Task[None]] = set()

    async def broadcast(requests: list[BroadcastRequest], burst: int) -> None:
        publish = server.publisher.publish
        t0 = time.monotonic()
        for i, request in enumerate(requests, 1):
            await publish(request)
            if i % burst == 0:
                await asyncio.sleep(0)
        print(f"DONE {json.dumps({'emit_loop_s': time.monotonic() - t0})}", flush=True)

    print(f"READY {server.port}", flush=True)
    while (line := await lines.get()) is not None:
        parts = line.split()
        if not parts or parts[0] != "start":
            continue
        payloads = make_reference_payloads(int(parts[1]))
        requests = [BroadcastRequest(event=ServerEvent.KPI_UPDATE, data=p) for p in payloads]
        size = len(json.dumps(payloads[0], separators=(",", ":")))
        info = {"room_size": server.hub.registry.authenticated_in(REF_ORG), "payload_bytes": size}
        task = asyncio.create_task(broadcast(requests, max(1, int(parts[2]))))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        print(f"STARTED {json.dumps(info)}", flush=True)
    await asyncio.wait_for(server.stop(), 10)


def serve_main(variant: str, port: int, store: str = "memory") -> None:
    raise_nofile(20_000)
    if variant.startswith("reference"):
        run_loop(serve_reference(variant, port, store))
    elif variant.startswith("uvicorn"):
        run_loop(serve_uvicorn(variant, port))
    else:
        run_loop(serve_aiohttp(variant, port))


# --------------------------------------------------------------------------- client process


class OrjsonShim:
    """Cheap JSON for the load generator, so the client process is less of a bottleneck."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        import orjson

        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(data: str | bytes, **_: Any) -> Any:
        import orjson

        return orjson.loads(data)


async def client_run(args: argparse.Namespace) -> None:
    n: int = args.clients
    expected: int = args.messages
    counts = [0] * n
    times = {"first": 0.0, "last": 0.0}
    state = {"complete": 0, "disconnects": 0}
    all_done = asyncio.Event()
    clients: list[socketio.AsyncClient] = []
    extra = {"compress": 15} if args.client_deflate else {}

    def make_handlers(i: int, client: socketio.AsyncClient) -> None:
        def on_update(data: dict[str, Any], many: int = 1) -> None:
            now = time.monotonic()
            if times["first"] == 0.0:
                times["first"] = now
            times["last"] = now  # last receipt anywhere (= last delivery of the last message)
            c = counts[i] + many
            counts[i] = c
            if c == expected:
                state["complete"] += 1
                if state["complete"] == n:
                    all_done.set()

        def on_batch(data: dict[str, Any]) -> None:
            on_update(data, sum(1 for m in data["messages"] if m.get("event") == EVENT))

        if args.batch:
            client.on("batch", on_batch)

        def on_disconnect(*_: Any) -> None:
            state["disconnects"] += 1

        client.on(EVENT, on_update)
        client.on("disconnect", on_disconnect)

    sem = asyncio.Semaphore(50)

    async def connect_one(i: int) -> None:
        client = socketio.AsyncClient(
            reconnection=False,
            handle_sigint=False,
            json=OrjsonShim,
            websocket_extra_options=dict(extra),
        )
        make_handlers(i, client)
        clients.append(client)
        auth: dict[str, Any] | None = None
        if args.reference:
            auth = {"user_id": f"u{i}", "organization_id": REF_ORG}
            if args.batch:
                auth["capabilities"] = ["batch"]
        async with sem:
            await client.connect(
                args.client,
                socketio_path=SOCKETIO_PATH,
                transports=["websocket"],
                wait_timeout=30,
                auth=auth,
            )
            if args.reference:
                await client.call("subscribe", {"channels": [ROOM]}, timeout=30)

    results = await asyncio.gather(*(connect_one(i) for i in range(n)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    connected = sum(1 for c in clients if c.connected)
    deflate = False
    with contextlib.suppress(Exception):
        deflate = bool(next(c for c in clients if c.connected).eio.ws.compress)
    print(
        f"CONNECTED {json.dumps({'connected': connected, 'errors': len(errors), 'pmd': deflate})}",
        flush=True,
    )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_done.wait(), args.timeout)
    received = sum(counts)
    result = {
        "clients": n,
        "connected": connected,
        "first": times["first"],
        "last": times["last"],
        "received": received,
        "losses": sum(max(0, expected - c) for c in counts),
        "complete": state["complete"],
        "disconnects": state["disconnects"],
        "pmd": deflate,
    }
    print(f"RESULT {json.dumps(result)}", flush=True)
    # wait for the parent's go-ahead (so it can sample our CPU time first), then disconnect
    await asyncio.to_thread(sys.stdin.readline)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(
            asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True), 15
        )


def client_main(args: argparse.Namespace) -> None:
    raise_nofile(args.clients * 2 + 100)
    run_loop(client_run(args))


# --------------------------------------------------------------------------- orchestrator


@dataclass
class RunResult:
    variant: str
    rate: float = float("nan")
    received: int = 0
    losses: int = 0
    disconnects: int = 0
    server_cpu_s: float = float("nan")
    client_cpu_s: float = float("nan")
    wall_s: float = float("nan")
    emit_loop_s: float = float("nan")
    server_rss_mb: float = float("nan")
    pmd: bool = False
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


async def read_tagged(proc: asyncio.subprocess.Process, tag: str, limit_s: float) -> str:
    """Return the payload of the next stdout line starting with ``tag`` (within ``limit_s``)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + limit_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {tag} line within {limit_s:.0f}s")
        line = await asyncio.wait_for(proc.stdout.readline(), remaining)
        if not line:
            raise RuntimeError(f"process exited (rc={proc.returncode}) before {tag}")
        text = line.decode().strip()
        if text.startswith(tag):
            return text[len(tag) :].strip()


async def stop_process(proc: asyncio.subprocess.Process, grace: float) -> None:
    """Close stdin (the polite stop signal), then SIGTERM, then SIGKILL; bounded in time."""
    if proc.returncode is not None:
        return
    if proc.stdin is not None:
        with contextlib.suppress(Exception):
            proc.stdin.close()
    for action in (None, proc.terminate, proc.kill):
        if action is not None:
            with contextlib.suppress(ProcessLookupError):
                action()
        try:
            await asyncio.wait_for(proc.wait(), grace)
            return
        except TimeoutError:
            continue


async def run_once(variant: str, args: argparse.Namespace) -> RunResult:
    res = RunResult(variant)
    script = SCRIPT
    py = sys.executable
    server: asyncio.subprocess.Process | None = None
    client_procs: list[asyncio.subprocess.Process] = []
    controller: socketio.AsyncClient | None = None
    pipe = asyncio.subprocess.PIPE
    reference = variant.startswith("reference")
    try:
        server = await asyncio.create_subprocess_exec(
            py,
            script,
            "--serve",
            variant,
            "--port",
            "0",
            "--store",
            args.store,
            stdin=pipe,
            stdout=pipe,
        )
        port = int(await read_tagged(server, "READY", 30))
        url = f"http://{HOST}:{port}"
        split = [args.clients // args.client_procs] * args.client_procs
        split[0] += args.clients - sum(split)
        for k in split:
            cmd = [py, script, "--client", url, "--clients", str(k)]
            cmd += ["--messages", str(args.messages), "--timeout", str(args.timeout)]
            if not args.client_deflate:
                cmd.append("--no-client-deflate")
            if reference:
                cmd.append("--reference")
            if variant == "reference-batch":
                cmd.append("--batch")
            client_procs.append(await asyncio.create_subprocess_exec(*cmd, stdin=pipe, stdout=pipe))
        connect_timeout = 30 + args.clients / 10
        infos = [
            json.loads(await read_tagged(p, "CONNECTED", connect_timeout)) for p in client_procs
        ]
        res.pmd = all(i["pmd"] for i in infos)
        if sum(i["connected"] for i in infos) != args.clients:
            res.error = f"only {sum(i['connected'] for i in infos)}/{args.clients} connected"
        if not reference:
            controller = socketio.AsyncClient(reconnection=False, handle_sigint=False)
            await controller.connect(
                url,
                socketio_path=SOCKETIO_PATH,
                transports=["websocket"],
                auth={"role": "controller"},
            )
        pids = [server.pid] + [p.pid for p in client_procs]
        cpu0 = [proc_cpu_seconds(pid) for pid in pids]
        t0 = time.monotonic()
        if controller is not None:
            ack = await controller.call(
                "start", {"messages": args.messages, "burst": args.burst}, timeout=30
            )
        else:
            assert server.stdin is not None
            server.stdin.write(f"start {args.messages} {args.burst}\n".encode())
            await server.stdin.drain()
            ack = json.loads(await read_tagged(server, "STARTED", 30))
        res.extra.update(ack)
        results = [
            json.loads(await read_tagged(p, "RESULT", args.timeout + 30)) for p in client_procs
        ]
        res.wall_s = time.monotonic() - t0
        cpu1 = [proc_cpu_seconds(pid) for pid in pids]
        res.server_rss_mb = proc_peak_rss_mb(server.pid)
        res.server_cpu_s = cpu1[0] - cpu0[0]
        res.client_cpu_s = sum(b - a for a, b in zip(cpu0[1:], cpu1[1:], strict=True))
        with contextlib.suppress(Exception):
            if controller is not None:
                stats = await controller.call("stats", timeout=10)
            else:
                stats = json.loads(await read_tagged(server, "DONE", 10))
            res.emit_loop_s = float(stats.get("emit_loop_s", float("nan")))
        res.received = sum(r["received"] for r in results)
        res.losses = sum(r["losses"] for r in results)
        res.disconnects = sum(r["disconnects"] for r in results)
        firsts = [r["first"] for r in results if r["first"] > 0]
        if firsts and res.received:
            span = max(r["last"] for r in results) - min(firsts)
            res.rate = res.received / span if span > 0 else float("nan")
    except Exception as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    finally:
        if controller is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(controller.disconnect(), 5)
        for p in client_procs:
            if p.stdin is not None and p.returncode is None:
                with contextlib.suppress(Exception):
                    p.stdin.write(b"quit\n")
                    await p.stdin.drain()
        await asyncio.gather(*(stop_process(p, 20) for p in client_procs))
        if server is not None:
            await stop_process(server, 10)
    return res


def fmt(x: float, spec: str) -> str:
    return "n/a" if x != x else format(x, spec)  # NaN check


def median(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


async def orchestrate(args: argparse.Namespace) -> int:
    variants: list[str] = args.variants
    print(
        f"# fanout_transport: {args.clients} clients x {args.messages} msgs, "
        f"{args.rounds} round(s), {args.client_procs} client proc(s), burst={args.burst}, "
        f"client offers deflate={args.client_deflate}, cpus={os.cpu_count()}"
    )
    print(
        f"# python {sys.version.split()[0]}, python-socketio {version('python-socketio')}, "
        f"python-engineio {version('python-engineio')}, uvicorn {version('uvicorn')}, "
        f"websockets {version('websockets')}, aiohttp {version('aiohttp')}, loop=uvloop"
    )
    runs: dict[str, list[RunResult]] = {v: [] for v in variants}
    for rnd in range(1, args.rounds + 1):
        for variant in variants:
            r = await run_once(variant, args)
            runs[variant].append(r)
            srv_pct = 100 * r.server_cpu_s / r.wall_s if r.wall_s == r.wall_s else float("nan")
            cli_pct = 100 * r.client_cpu_s / r.wall_s if r.wall_s == r.wall_s else float("nan")
            print(
                f"round {rnd} {variant:<18} {fmt(r.rate, ',.0f'):>9} deliv/s  "
                f"recv={r.received} loss={r.losses} disc={r.disconnects} pmd={r.pmd} "
                f"wall={fmt(r.wall_s, '.2f')}s emit_loop={fmt(r.emit_loop_s, '.2f')}s "
                f"srv_cpu={fmt(r.server_cpu_s, '.2f')}s({fmt(srv_pct, '.0f')}%) "
                f"cli_cpu={fmt(r.client_cpu_s, '.2f')}s({fmt(cli_pct, '.0f')}%) "
                f"rss={fmt(r.server_rss_mb, '.0f')}MiB payload={r.extra.get('payload_bytes')}B"
                + (f" ERROR {r.error}" if r.error else ""),
                flush=True,
            )
    base = runs.get(args.baseline)
    print()
    header = (
        f"{'variant':<18} {'median deliv/s':>14} {'ratio':>6} {'losses':>7} "
        f"{'srv us/deliv':>12} {'ratio':>6} {'cli us/deliv':>12} {'peak srv RSS':>12} {'pmd':>4}"
    )
    print(header)
    print("-" * len(header))
    for variant in variants:
        rs = runs[variant]
        rate = median([r.rate for r in rs])
        srv_us = median([1e6 * r.server_cpu_s / r.received for r in rs if r.received])
        cli_us = median([1e6 * r.client_cpu_s / r.received for r in rs if r.received])
        ratio = srv_ratio = float("nan")
        if base is not None:
            ratio = median([r.rate / b.rate for r, b in zip(rs, base, strict=True)])
            srv_ratio = median(
                [
                    r.server_cpu_s / r.received / (b.server_cpu_s / b.received)
                    for r, b in zip(rs, base, strict=True)
                    if r.received and b.received
                ]
            )
        print(
            f"{variant:<18} {fmt(rate, ',.0f'):>14} {fmt(ratio, '.2f'):>6} "
            f"{sum(r.losses for r in rs):>7} {fmt(srv_us, '.1f'):>12} {fmt(srv_ratio, '.2f'):>6} "
            f"{fmt(cli_us, '.1f'):>12} {fmt(max(r.server_rss_mb for r in rs), '.0f') + ' MiB':>12} "
            f"{'yes' if all(r.pmd for r in rs) else 'no':>4}"
        )
    print(
        f"\nratio = median over rounds of (variant / {args.baseline} in the same round); "
        "deliv/s ratio: "
        "higher is better, srv us/deliv ratio: lower is better."
    )
    failed = any(r.error or r.losses for rs in runs.values() for r in rs)
    return 1 if failed else 0


# --------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=500)
    p.add_argument("--messages", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--burst", type=int, default=1, help="emits between asyncio.sleep(0) calls")
    p.add_argument("--client-procs", type=int, default=1, help="client processes to spread over")
    p.add_argument("--timeout", type=float, default=120.0, help="per-run delivery timeout (s)")
    p.add_argument(
        "--no-client-deflate",
        dest="client_deflate",
        action="store_false",
        help="clients do not offer permessage-deflate (python-socketio client default)",
    )
    p.add_argument(
        "--variants",
        type=lambda s: [v for v in s.split(",") if v],
        default=list(VARIANTS),
        help=f"comma-separated subset of {','.join(VARIANTS)}",
    )
    p.add_argument("--baseline", default=BASELINE, help="the variant ratios are taken against")
    p.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument(
        "--store", default="memory", help="message store of the reference variants (memory)"
    )
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    p.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--batch", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    bad = [v for v in args.variants if v not in VARIANTS]
    if bad:
        p.error(f"unknown variant(s): {bad}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve_main(args.serve, args.port, args.store)
        return 0
    if args.client:
        client_main(args)
        return 0
    raise_nofile(64)
    return int(run_loop(orchestrate(args)))


if __name__ == "__main__":
    sys.exit(main())
