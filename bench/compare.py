"""Our server against a Node.js socket.io 4.8 server of the same fan-out (issue 11).

Question answered: on this machine, what does a ``kpi`` fan-out cost on our server
(``intraday-live-server serve``) against the same fan-out in socket.io 4.8, measured with the
official Node.js ``socket.io-client`` -- deliveries per second, server CPU per delivery, client
latency, and memory per connection?

Servers (one fresh process per run, 127.0.0.1, a free port):

* ``node``           -- ``bench/node/server.mjs``: socket.io 4.8 with its defaults but the path
  (engine.io 6 leaves permessage-deflate off by default), handshake auth, ``subscribe``,
  ``POST /api/ws/broadcast/kpi`` building the envelope of protocol section 5
* ``ours``           -- ``intraday-live-server serve`` with its defaults (permessage-deflate on,
  messages under 1 KiB sent uncompressed); only connection and subscription logging is off,
  as the Node server logs nothing
* ``ours-nodeflate`` -- the same with ``--no-compression-enabled``
* ``ours-batch``     -- ``ours`` with clients announcing capability ``batch``; every envelope of
  a ``batch`` event counts as one delivery with its own latency. "not supported by this
  server" when the authenticate ack's ``server.capabilities`` lacks ``batch``
* ``ours-batch-nodeflate`` -- (not run unless asked) ``ours-batch`` with
  ``--no-compression-enabled``: what batching costs apart from compression
* ``node-deflate``   -- (not run unless asked with ``--variants``) ``node`` with
  ``perMessageDeflate: {threshold: 1024}``

One run: the server starts; its RSS is read (idle, after one warm-up broadcast); ``--clients``
Node.js sockets (``bench/node/clients.mjs``, in ``--client-procs`` processes) authenticate in
the handshake and subscribe to ``kpi`` of organization ``bench``; the RSS is read again (RSS
per connection = the difference / clients). Then ``--messages`` ``POST
/api/ws/broadcast/kpi`` (about 400-byte envelopes) are sent, ``--inflight`` at a time, each
payload carrying ``bench_sent_ms``, the wall clock at its send. Clients record receive time
minus that (one machine, one clock) per delivery.

Figures per run: deliveries/s = deliveries / (last receipt - first send); server CPU per
delivery = utime+stime of the server process (``/proc/PID/stat``) over the burst / deliveries;
p50/p99/max latency over every delivery of the run; RSS per connection. Variants are
interleaved (node, ours, ours-nodeflate, ours-batch, node, ours, ...) so slow drift on a shared
machine cancels out; a ratio is the median over rounds of (variant / node of the same round).

Then, separately (``--idle``, 0 skips it): RSS per connection with ``--idle`` idle,
authenticated connections (opened from ``--idle-procs`` client processes) for each of
``--idle-variants`` (node, ours, ours-nodeflate).

The table gives medians over rounds with min-max, the ratios to ``node`` and the issue's
targets next to them: server CPU per delivery <= 1.5x Node's; p99 no worse than Node's; with
batch, deliveries/s >= 1.5x Node's; RSS per connection at 5,000 idle <= Node's.

Run from the repository root with the project's virtualenv (``make bench`` installs the npm
packages of ``bench/node`` first)::

    .venv/bin/python bench/compare.py                      # the full comparison
    .venv/bin/python bench/compare.py --clients 20 --messages 10 --rounds 1 --idle 0  # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import re
import resource
import shutil
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

HOST = "127.0.0.1"
ORG = "bench"
BENCH_DIR = Path(__file__).resolve().parent
NODE_DIR = BENCH_DIR / "node"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# A RESULT line carries every latency of a client process: far beyond asyncio's 64 KiB default.
LINE_LIMIT = 1 << 28
BASELINE = "node"
DEFAULT_VARIANTS = ("node", "ours", "ours-nodeflate", "ours-batch")
ALL_VARIANTS = (*DEFAULT_VARIANTS, "ours-batch-nodeflate", "node-deflate")
NOT_SUPPORTED = "not supported by this server"
LISTENING = re.compile(r"listening on http://[^:]+:(\d+)")


@dataclass(frozen=True)
class Variant:
    """How one row of the table runs: which server, with which flags, and batch or not."""

    name: str
    node: bool
    server_flags: tuple[str, ...] = ()
    batch: bool = False


VARIANTS: dict[str, Variant] = {
    "node": Variant("node", node=True),
    "node-deflate": Variant("node-deflate", node=True, server_flags=("--deflate",)),
    "ours": Variant("ours", node=False),
    "ours-nodeflate": Variant(
        "ours-nodeflate", node=False, server_flags=("--no-compression-enabled",)
    ),
    "ours-batch": Variant("ours-batch", node=False, batch=True),
    "ours-batch-nodeflate": Variant(
        "ours-batch-nodeflate", node=False, server_flags=("--no-compression-enabled",), batch=True
    ),
}


@dataclass
class RunResult:
    """The figures of one run of one variant."""

    variant: str
    round: int
    clients: int = 0
    expected: int = 0
    received: int = 0
    disconnects: int = 0
    rate: float = float("nan")
    server_cpu_s: float = float("nan")
    client_cpu_s: float = float("nan")
    cpu_us_per_delivery: float = float("nan")
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    rss_idle_mib: float = float("nan")
    rss_loaded_mib: float = float("nan")
    rss_per_conn_kib: float = float("nan")
    envelope_bytes: int = 0
    unsupported: bool = False
    error: str = ""


@dataclass
class IdleResult:
    """RSS per connection with many idle, authenticated connections."""

    variant: str
    round: int
    connections: int = 0
    rss_idle_mib: float = float("nan")
    rss_loaded_mib: float = float("nan")
    rss_per_conn_kib: float = float("nan")
    connect_s: float = float("nan")
    error: str = ""


@dataclass
class Child:
    """A child process and the tagged lines it printed (``TAG json``)."""

    proc: asyncio.subprocess.Process
    lines: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    log: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- processes


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the driver dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


async def _pump(
    stream: asyncio.StreamReader, lines: asyncio.Queue[str | None] | None, log: list[str]
) -> None:
    """Read a child's output to the end (a full pipe would stall it), the last lines kept."""
    while raw := await stream.readline():
        text = raw.decode(errors="replace").rstrip("\n")
        if lines is not None:
            await lines.put(text)
        log.append(text[:500])
        del log[:-20]
    if lines is not None:
        await lines.put(None)


_PUMPS: set[asyncio.Task[None]] = set()


async def spawn(cmd: Sequence[str], *, tagged_stream: str = "stdout") -> Child:
    """Start ``cmd`` with a pipe on stdin (EOF stops our Node scripts) and its output pumped.

    Lines of ``tagged_stream`` go to ``Child.lines`` for :func:`expect`; the last lines of
    both are kept for error messages.
    """
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=pipe,
        stdout=pipe,
        stderr=pipe,
        limit=LINE_LIMIT,
        preexec_fn=_die_with_parent,
    )
    child = Child(proc)
    assert proc.stdout is not None
    assert proc.stderr is not None
    tagged, other = (proc.stdout, proc.stderr)
    if tagged_stream == "stderr":
        tagged, other = other, tagged
    tasks = {
        asyncio.create_task(_pump(tagged, child.lines, child.log)),
        asyncio.create_task(_pump(other, None, child.log)),
    }
    _PUMPS.update(tasks)
    for task in tasks:
        task.add_done_callback(_PUMPS.discard)
    return child


async def expect(child: Child, pattern: re.Pattern[str] | str, timeout: float) -> str:
    """The first line matching ``pattern`` (a regex, or ``TAG`` for a ``TAG payload`` line)."""

    async def wait() -> str:
        while True:
            line = await child.lines.get()
            if line is None:
                tail = " | ".join(child.log[-3:])
                raise RuntimeError(f"{child.proc.pid} exited before {pattern!r}: {tail}")
            if isinstance(pattern, str):
                if line.startswith(pattern + " "):
                    return line[len(pattern) + 1 :]
            elif match := pattern.search(line):
                return match.group(1)

    return await asyncio.wait_for(wait(), timeout)


async def send(child: Child, command: str) -> None:
    """One command line to a child's stdin; a child already gone is ignored."""
    stdin = child.proc.stdin
    if stdin is None or child.proc.returncode is not None:
        return
    with contextlib.suppress(ConnectionError, RuntimeError):
        stdin.write(command.encode() + b"\n")
        await stdin.drain()


async def stop(child: Child, timeout: float = 10.0) -> None:
    """Close stdin, SIGTERM, and SIGKILL if it is still there after ``timeout``."""
    proc = child.proc
    if proc.returncode is None and proc.stdin is not None:
        with contextlib.suppress(Exception):
            proc.stdin.close()
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads) in seconds, from /proc/PID/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def rss_mib(pid: int) -> float:
    """VmRSS (resident set size now) of a process in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def raise_nofile(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE (inherited by every child) so that ``needed`` sockets fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 512
    if soft != resource.RLIM_INFINITY and soft < want:
        new_soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))


# --------------------------------------------------------------------------- servers


def our_server_command(variant: Variant, capacity: int) -> list[str]:
    """``intraday-live-server serve`` of this virtualenv, with room for ``capacity`` sockets."""
    script = Path(sys.executable).with_name("intraday-live-server")
    if not script.exists():
        raise SystemExit(f"{script} not found: run from the project's virtualenv (make bench)")
    limit = str(capacity)
    return [
        str(script),
        "serve",
        "--host",
        HOST,
        "--port",
        "0",
        "--max-connections-total",
        limit,
        "--max-connections-per-org",
        limit,
        "--room-max-size",
        limit,
        "--no-log-connection-events",
        "--no-log-subscription-events",
        *variant.server_flags,
    ]


@contextlib.asynccontextmanager
async def server(variant: Variant, capacity: int) -> AsyncIterator[tuple[Child, str]]:
    """A fresh server process of ``variant`` and its base URL; stopped on the way out."""
    if variant.node:
        cmd = ["node", str(NODE_DIR / "server.mjs"), "--host", HOST, *variant.server_flags]
        child = await spawn(cmd)
        ready: re.Pattern[str] | str = "READY"
    else:
        child = await spawn(our_server_command(variant, capacity), tagged_stream="stderr")
        ready = LISTENING
    try:
        port = int(await expect(child, ready, 60))
        yield child, f"http://{HOST}:{port}"
    finally:
        await stop(child)


# --------------------------------------------------------------------------- load


def kpi_payload(seq: int) -> dict[str, Any]:
    """A valid ``KpiPayload`` of organization ``bench`` whose envelope is about 400 bytes.

    ``bench_sent_ms`` (an extra field, kept by the schema) is the wall clock of the send.
    """
    return {
        "organization_id": ORG,
        "queue_name": "support",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "utilization": {"current_utilization": 70.0 + seq % 25},
        "health_score": 87.5,
        "bench_seq": seq,
        "bench_sent_ms": time.time() * 1000,
    }


async def broadcast(
    base_url: str, messages: int, inflight: int, rate: float = 0.0
) -> tuple[float, list[str]]:
    """POST ``messages`` KPI broadcasts, ``inflight`` at a time; (first send time, errors).

    ``rate`` > 0 paces the sends at that many per second (still at most ``inflight`` at once);
    0 sends as fast as the server answers.
    """
    url = f"{base_url}/api/ws/broadcast/kpi"
    errors: list[str] = []
    counter = iter(range(messages))
    first_sent = float("nan")
    start = time.monotonic()
    connector = aiohttp.TCPConnector(limit=inflight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal first_sent
            for seq in counter:
                if rate > 0:
                    await asyncio.sleep(max(0.0, start + seq / rate - time.monotonic()))
                payload = kpi_payload(seq)
                if first_sent != first_sent:  # NaN: the first send of the run
                    first_sent = payload["bench_sent_ms"]
                async with session.post(url, json=payload) as response:
                    if response.status != 200 and len(errors) < 5:
                        errors.append(f"HTTP {response.status}: {(await response.text())[:200]}")
                    else:
                        await response.read()

        await asyncio.gather(*(worker() for _ in range(max(1, inflight))))
    return first_sent, errors


async def warm_up(base_url: str) -> None:
    """One broadcast to nobody: the HTTP path is loaded before the idle RSS is read."""
    await broadcast(base_url, 1, 1)


def client_command(url: str, clients: int, args: argparse.Namespace, **flags: Any) -> list[str]:
    """``node bench/node/clients.mjs`` with the given options."""
    cmd = ["node", str(NODE_DIR / "clients.mjs"), "--url", url, "--clients", str(clients)]
    cmd += ["--org", ORG, "--concurrency", str(args.connect_concurrency)]
    for name, value in flags.items():
        option = "--" + name.replace("_", "-")
        if value is True:
            cmd.append(option)
        elif value is not False and value is not None:
            cmd += [option, str(value)]
    return cmd


def split(total: int, parts: int) -> list[int]:
    """``total`` spread over ``parts`` (at least one each, none empty)."""
    parts = max(1, min(parts, total))
    counts = [total // parts] * parts
    for k in range(total - sum(counts)):
        counts[k] += 1
    return counts


async def open_clients(
    children: list[Child],
    url: str,
    total: int,
    procs: int,
    args: argparse.Namespace,
    timeout: float,
    **flags: Any,
) -> list[dict[str, Any]]:
    """Client processes holding ``total`` sockets; their CONNECTED reports.

    Each process is appended to ``children`` as it starts, so that the caller stops it even
    when this is cancelled half-way.
    """
    for index, count in enumerate(split(total, procs)):
        cmd = client_command(url, count, args, user_prefix=f"p{index}u", **flags)
        children.append(await spawn(cmd))
    return [json.loads(await expect(c, "CONNECTED", timeout)) for c in children]


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def run_once(variant: Variant, rnd: int, args: argparse.Namespace) -> RunResult:
    """One fan-out run of ``variant`` on a fresh server."""
    res = RunResult(variant.name, rnd, clients=args.clients, expected=args.clients * args.messages)
    children: list[Child] = []
    try:
        async with server(variant, args.clients + 100) as (srv, url):
            pid = srv.proc.pid
            await warm_up(url)
            res.rss_idle_mib = rss_mib(pid)
            connect_timeout = 60 + args.clients / 20
            reports = await open_clients(
                children,
                url,
                args.clients,
                args.client_procs,
                args,
                connect_timeout,
                subscribe=True,
                batch=variant.batch,
                messages=args.messages,
                timeout_ms=int(connect_timeout * 1000),
            )
            connected = sum(r["connected"] for r in reports)
            if connected != args.clients:
                errors = sorted({e for r in reports for e in r["errors"]})
                raise RuntimeError(f"{connected}/{args.clients} connected: {errors}")
            if variant.batch and not all(r["batch"] for r in reports):
                res.unsupported = True
                return res
            res.rss_loaded_mib = rss_mib(pid)
            res.rss_per_conn_kib = (res.rss_loaded_mib - res.rss_idle_mib) * 1024 / args.clients
            pids = [pid] + [c.proc.pid for c in children]
            cpu0 = [cpu_seconds(p) for p in pids]
            first_sent, errors = await broadcast(url, args.messages, args.inflight, args.rate)
            if errors:
                res.error = "; ".join(errors)
            results = await collect(children, args.timeout)
            cpu1 = [cpu_seconds(p) for p in pids]
            res.server_cpu_s = cpu1[0] - cpu0[0]
            res.client_cpu_s = sum(b - a for a, b in zip(cpu0[1:], cpu1[1:], strict=True))
            res.received = sum(r["received"] for r in results)
            res.disconnects = sum(r["disconnects"] for r in results)
            res.envelope_bytes = max(int(r.get("envelope_bytes", 0)) for r in results)
            latencies = sorted(x for r in results for x in r["latencies"])
            res.p50_ms = percentile(latencies, 0.50)
            res.p99_ms = percentile(latencies, 0.99)
            res.max_ms = latencies[-1] if latencies else float("nan")
            if res.received:
                last = max(r["last"] for r in results)
                res.rate = res.received / ((last - first_sent) / 1000)
                res.cpu_us_per_delivery = 1e6 * res.server_cpu_s / res.received
    except Exception as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    finally:
        for child in children:
            await send(child, "quit")
        await asyncio.gather(*(stop(c) for c in children))
    return res


async def collect(children: list[Child], timeout: float) -> list[dict[str, Any]]:
    """Every client's RESULT: once it has all its messages, or what it has after ``timeout``."""
    results: list[dict[str, Any] | None] = [None] * len(children)

    async def one(index: int) -> None:
        results[index] = json.loads(await expect(children[index], "RESULT", timeout))

    tasks = [asyncio.create_task(one(i)) for i in range(len(children))]
    await asyncio.wait(tasks)
    for index, task in enumerate(tasks):
        if task.exception() is not None:
            await send(children[index], "report")
            results[index] = json.loads(await expect(children[index], "RESULT", 30))
    return [r for r in results if r is not None]


async def run_idle(variant: Variant, rnd: int, args: argparse.Namespace) -> IdleResult:
    """RSS per connection with ``--idle`` authenticated, unsubscribed connections."""
    res = IdleResult(variant.name, rnd, connections=args.idle)
    children: list[Child] = []
    try:
        async with server(variant, args.idle + 100) as (srv, url):
            pid = srv.proc.pid
            await warm_up(url)
            res.rss_idle_mib = rss_mib(pid)
            timeout = 120 + args.idle / 20
            t0 = time.monotonic()
            reports = await open_clients(
                children,
                url,
                args.idle,
                args.idle_procs,
                args,
                timeout,
                timeout_ms=int(timeout * 1000),
            )
            res.connect_s = time.monotonic() - t0
            connected = sum(r["connected"] for r in reports)
            if connected != args.idle:
                errors = sorted({e for r in reports for e in r["errors"]})
                raise RuntimeError(f"{connected}/{args.idle} connected: {errors}")
            res.rss_loaded_mib = rss_mib(pid)
            res.rss_per_conn_kib = (res.rss_loaded_mib - res.rss_idle_mib) * 1024 / args.idle
    except Exception as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    finally:
        for child in children:
            await send(child, "quit")
        await asyncio.gather(*(stop(c) for c in children))
    return res


# --------------------------------------------------------------------------- report


def _ok(x: float) -> bool:
    return x == x  # not NaN


def median(xs: Sequence[float]) -> float:
    """Median of the numbers that are not NaN."""
    xs = [x for x in xs if _ok(x)]
    return statistics.median(xs) if xs else float("nan")


def spread(xs: Sequence[float], spec: str) -> str:
    """``median (min-max)`` of the numbers that are not NaN; ``n/a`` when none is."""
    xs = [x for x in xs if _ok(x)]
    if not xs:
        return "n/a"
    mid = format(statistics.median(xs), spec)
    if len(xs) == 1:
        return mid
    return f"{mid} ({format(min(xs), spec)}-{format(max(xs), spec)})"


def ratios(
    runs: Sequence[RunResult | IdleResult], base: Sequence[RunResult | IdleResult], key: str
) -> float:
    """Median over rounds of run[key] / base[key] of the same round."""
    by_round = {b.round: float(getattr(b, key)) for b in base}
    values = []
    for r in runs:
        b = by_round.get(r.round, float("nan"))
        if _ok(b) and b:
            values.append(float(getattr(r, key)) / b)
    return median(values)


def verdict(ratio: float, limit: float, higher_is_better: bool) -> str:
    """The ratio against an issue target, with whether it is met."""
    if not _ok(ratio):
        return "n/a"
    met = ratio >= limit if higher_is_better else ratio <= limit
    sign = ">=" if higher_is_better else "<="
    return f"{ratio:.2f}x (target {sign}{limit:g}x: {'met' if met else 'NOT met'})"


def plain(ratio: float) -> str:
    """A ratio with no target."""
    return f"{ratio:.2f}x" if _ok(ratio) else "n/a"


def render_fanout(args: argparse.Namespace, runs: dict[str, list[RunResult]]) -> list[str]:
    """The fan-out table's lines."""
    out: list[str] = []
    base = runs.get(BASELINE, [])
    out.append(
        f"Fan-out: {args.clients} clients subscribed to kpi, {args.messages} broadcasts "
        f"({args.inflight} in flight, {f'{args.rate:g}/s' if args.rate else 'unpaced'}), "
        f"{args.rounds} round(s); median (min-max) over rounds; "
        f"ratios are ours/Node (median of per-round ratios)."
    )
    out.append("")
    out.append(
        "| server | deliveries/s | vs Node | server CPU us/delivery | vs Node | p50 ms | p99 ms "
        "| p99 vs Node | max ms | RSS/conn KiB (fan-out) | lost |"
    )
    out.append("| --- | ---: | --- | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: |")
    for name, rs in runs.items():
        if rs and all(r.unsupported for r in rs):
            out.append(f"| {name} | {NOT_SUPPORTED} | | | | | | | | | |")
            continue
        done = [r for r in rs if not r.unsupported]
        is_base = name == BASELINE
        rate_ratio = ratios(done, base, "rate")
        cpu_ratio = ratios(done, base, "cpu_us_per_delivery")
        p99_ratio = ratios(done, base, "p99_ms")
        # The targets are about our server; another Node row gets the bare ratio.
        ours = name.startswith("ours")
        rate_cell = verdict(rate_ratio, 1.5, True) if name == "ours-batch" else plain(rate_ratio)
        cpu_cell = verdict(cpu_ratio, 1.5, False) if ours else plain(cpu_ratio)
        p99_cell = verdict(p99_ratio, 1.0, False) if ours else plain(p99_ratio)
        if is_base:
            rate_cell = cpu_cell = p99_cell = "1"
        lost = sum(r.expected - r.received for r in done if r.received)
        out.append(
            f"| {name} | {spread([r.rate for r in done], ',.0f')} | {rate_cell} "
            f"| {spread([r.cpu_us_per_delivery for r in done], '.1f')} | {cpu_cell} "
            f"| {spread([r.p50_ms for r in done], '.1f')} "
            f"| {spread([r.p99_ms for r in done], '.1f')} | {p99_cell} "
            f"| {spread([r.max_ms for r in done], '.1f')} "
            f"| {spread([r.rss_per_conn_kib for r in done], '.1f')} | {lost} |"
        )
    return out


def render(
    args: argparse.Namespace, runs: dict[str, list[RunResult]], idle: dict[str, list[IdleResult]]
) -> str:
    """The markdown tables: medians over rounds (min-max), ratios to Node, the targets."""
    out: list[str] = []
    if args.rounds:
        out += render_fanout(args, runs)
    if idle:
        if out:
            out.append("")
        out.append(f"Idle: {args.idle} authenticated connections, no subscription.")
        out.append("")
        out.append(
            "| server | RSS idle MiB | RSS loaded MiB | RSS/conn KiB | vs Node | connect s |"
        )
        out.append("| --- | ---: | ---: | ---: | --- | ---: |")
        idle_base = idle.get(BASELINE, [])
        for name, ir in idle.items():
            ratio = ratios(ir, idle_base, "rss_per_conn_kib")
            if name == BASELINE:
                cell = "1"
            else:
                cell = verdict(ratio, 1.0, False) if name.startswith("ours") else plain(ratio)
            out.append(
                f"| {name} | {spread([r.rss_idle_mib for r in ir], '.1f')} "
                f"| {spread([r.rss_loaded_mib for r in ir], '.1f')} "
                f"| {spread([r.rss_per_conn_kib for r in ir], '.1f')} | {cell} "
                f"| {spread([r.connect_s for r in ir], '.1f')} |"
            )
    return "\n".join(out)


def describe(r: RunResult) -> str:
    """One progress line of a fan-out run."""
    if r.unsupported:
        return f"{r.variant:<15} {NOT_SUPPORTED}"
    wall_cpu = f"srv_cpu={r.server_cpu_s:.2f}s cli_cpu={r.client_cpu_s:.2f}s"
    text = (
        f"{r.variant:<15} {r.rate:>9,.0f} deliv/s  recv={r.received}/{r.expected} "
        f"cpu={r.cpu_us_per_delivery:.1f}us/deliv {wall_cpu} p50={r.p50_ms:.1f} "
        f"p99={r.p99_ms:.1f} max={r.max_ms:.1f}ms rss/conn={r.rss_per_conn_kib:.1f}KiB "
        f"envelope={r.envelope_bytes}B disc={r.disconnects}"
    )
    return text + (f" ERROR {r.error}" if r.error else "")


async def orchestrate(args: argparse.Namespace) -> int:
    """Every round of every variant, then the idle runs; prints the table."""
    node_version = (await _output(["node", "--version"])).strip()
    print(
        f"# compare: {args.clients} clients x {args.messages} msgs, {args.rounds} round(s), "
        f"inflight={args.inflight}, idle={args.idle}, cpus={os.cpu_count()}, "
        f"python {sys.version.split()[0]}, node {node_version}, "
        f"load average {os.getloadavg()[0]:.2f} (the machine is shared)",
        flush=True,
    )
    runs: dict[str, list[RunResult]] = {name: [] for name in args.variants}
    idle: dict[str, list[IdleResult]] = {}
    for rnd in range(1, args.rounds + 1):
        for name in args.variants:
            r = await run_once(VARIANTS[name], rnd, args)
            runs[name].append(r)
            print(f"round {rnd} {describe(r)}", flush=True)
    if args.idle > 0:
        idle = {name: [] for name in args.idle_variants}
        for rnd in range(1, args.idle_rounds + 1):
            for name in idle:
                ir = await run_idle(VARIANTS[name], rnd, args)
                idle[name].append(ir)
                print(
                    f"idle {rnd} {name:<15} {ir.connections} conns: rss {ir.rss_idle_mib:.1f} -> "
                    f"{ir.rss_loaded_mib:.1f} MiB = {ir.rss_per_conn_kib:.1f} KiB/conn, "
                    f"connect {ir.connect_s:.1f}s" + (f" ERROR {ir.error}" if ir.error else ""),
                    flush=True,
                )
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")
    print()
    print(render(args, runs, idle))
    if args.json:
        report = {
            "config": {k: v for k, v in vars(args).items() if k != "json"},
            "runs": {k: [asdict(r) for r in v] for k, v in runs.items()},
            "idle": {k: [asdict(r) for r in v] for k, v in idle.items()},
        }
        text = json.dumps(report, indent=2, default=str) + "\n"
        await asyncio.to_thread(Path(args.json).write_text, text)
    failed = any(r.error for rs in runs.values() for r in rs) or any(
        r.error for rs in idle.values() for r in rs
    )
    return 1 if failed else 0


async def _output(cmd: Sequence[str]) -> str:
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return out.decode()


class Terminated(Exception):
    """SIGTERM arrived: the run was cancelled and its processes stopped."""


async def main_async(args: argparse.Namespace) -> int:
    """``orchestrate``, cancelled cleanly (children stopped) on SIGTERM as on Ctrl-C."""
    task = asyncio.current_task()
    assert task is not None
    terminated = False

    def on_sigterm() -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        return await orchestrate(args)
    except asyncio.CancelledError:
        if terminated:
            raise Terminated from None
        raise


# --------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--clients", type=int, default=500, help="subscribed sockets (500)")
    p.add_argument("--messages", type=int, default=200, help="broadcasts per run (200)")
    p.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; 0: the idle runs only (3)"
    )
    p.add_argument("--inflight", type=int, default=4, help="broadcast POSTs in flight (4)")
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="broadcasts per second; 0: as fast as the server answers (0)",
    )
    p.add_argument("--client-procs", type=int, default=1, help="client processes, fan-out (1)")
    p.add_argument("--idle", type=int, default=5000, help="idle connections; 0 skips (5000)")
    p.add_argument("--idle-procs", type=int, default=4, help="client processes, idle (4)")
    p.add_argument("--idle-rounds", type=int, default=1, help="idle runs per server (1)")
    p.add_argument(
        "--connect-concurrency", type=int, default=100, help="handshakes at once per process (100)"
    )
    p.add_argument("--timeout", type=float, default=120.0, help="delivery timeout per run, s")
    p.add_argument(
        "--variants",
        type=lambda s: [v for v in s.split(",") if v],
        default=list(DEFAULT_VARIANTS),
        help=f"comma-separated, of {','.join(ALL_VARIANTS)} ({','.join(DEFAULT_VARIANTS)})",
    )
    p.add_argument(
        "--idle-variants",
        type=lambda s: [v for v in s.split(",") if v],
        default=["node", "ours", "ours-nodeflate"],
        help="comma-separated servers of the idle runs (node,ours,ours-nodeflate)",
    )
    p.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    args = p.parse_args(argv)
    bad = [v for v in args.variants + args.idle_variants if v not in VARIANTS]
    if bad:
        p.error(f"unknown variant(s): {bad}")
    if min(args.clients, args.messages, args.inflight) < 1 or min(args.rounds, args.idle) < 0:
        p.error("--clients, --messages and --inflight must be at least 1, --rounds and --idle 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point; the exit status is 1 when a run failed."""
    args = parse_args(argv)
    if shutil.which("node") is None:
        raise SystemExit("node not found on PATH")
    if not (NODE_DIR / "node_modules" / "socket.io").is_dir():
        raise SystemExit(f"run `npm ci` in {NODE_DIR} first (make bench does)")
    raise_nofile(max(args.clients, args.idle) + 512)
    try:
        return asyncio.run(main_async(args))
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except Terminated:
        return 128 + signal.SIGTERM


if __name__ == "__main__":
    sys.exit(main())
