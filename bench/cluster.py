"""What a cluster over Redis costs and gives (issue 10), measured with Node.js socket.io clients.

Question answered: on this machine, how many deliveries per second, at what p99 latency and
CPU, does the fan-out of ``--clients`` sockets x ``--messages`` KPI broadcasts get from

* ``single``    -- one node without a cluster (the embedded default: memory store, no Redis);
* ``cluster-1`` -- one node with ``--cluster redis://...`` (Redis store and Redis pub/sub);
* ``cluster-2`` -- two nodes of one cluster, the clients split between them, the broadcasts
  sent through the first node's API (half the deliveries cross Redis to the other node)?

``cluster-1`` against ``single`` is the cost of the Redis hop per message (server CPU and
latency); ``cluster-2`` against ``cluster-1`` is what a second node adds on a machine whose
two cores the nodes, Redis and the clients share. Then RSS per connection of one cluster
node holding ``--idle`` idle authenticated connections, against ``single``.

The load clients, the broadcast loop and the figures are those of ``bench/compare.py`` (the
Node baseline benchmark): the same ``bench/node/clients.mjs`` sockets, the same envelope,
the same /proc readings. Rounds are interleaved (single, cluster-1, cluster-2, single, ...);
each run gets a fresh Redis on a free port and fresh nodes.

Redis's CPU (``/proc`` schedstat of its process) is read three times: alone, for
``--redis-alone`` seconds after it starts and before any node connects (its own timers,
``hz`` times a second: 1.4-2 ms/s on a 2-core VM, whatever the load); over the burst; and
for ``--quiet`` seconds after it, every client still connected (its timers plus the nodes'
heartbeats and checks). Redis CPU per broadcast is shown gross and net of Redis alone:
the gross grows with the burst's length (4,000 sockets per room take the nodes far longer
to serve than 40), the net is what the broadcasts and the nodes cost it. The per-command
table (``INFO commandstats`` deltas, and the socket reads and writes of ``INFO stats``)
says where the net goes, during the burst and while quiet.

    .venv/bin/python bench/cluster.py                       # 500 x 200, 3 rounds, 5,000 idle
    .venv/bin/python bench/cluster.py --clients 50 --messages 20 --rounds 1 --idle 0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import compare
import redis.asyncio as aioredis
from compare import Child, Variant

from reference_server.cluster.registry import PREFIX as REGISTRY_PREFIX

VARIANTS = ("single", "cluster-1", "cluster-2")


@dataclass
class ClusterRun:
    """The figures of one run of one variant."""

    variant: str
    round: int
    nodes: int = 1
    expected: int = 0
    received: int = 0
    rate: float = float("nan")
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    node_cpu_s: float = float("nan")
    redis_cpu_s: float = float("nan")
    node_cpu_us_per_delivery: float = float("nan")
    cpu_us_per_message: float = float("nan")
    burst_s: float = float("nan")
    redis_quiet_cpu_per_s: float = float("nan")
    """Redis CPU seconds per second after the burst, every client connected and silent."""
    redis_alone_cpu_per_s: float = float("nan")
    """Redis CPU seconds per second before any node connected: its own timers (``hz``)."""
    redis_commands: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per Redis command during the burst: (calls, usec), from ``INFO commandstats`` deltas."""
    redis_quiet_commands: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per Redis command while nothing is broadcast (the ``--quiet`` seconds after the burst)."""
    node_events: list[str] = field(default_factory=list)
    """What the nodes logged of the cluster's membership during the run (a node reaped by
    another for missing its heartbeats, re-registered): each costs Redis work for every
    connection of the node."""
    error: str = ""


_MEMBERSHIP = ("missed its heartbeats", "was missing from Redis", "nodes answered for")
"""Log lines of a node about the cluster's membership (see ``ClusterRun.node_events``)."""


@dataclass
class IdleRun:
    """RSS per connection of one node holding many idle connections."""

    variant: str
    round: int
    connections: int = 0
    rss_per_conn_kib: float = float("nan")
    error: str = ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_ns_seconds(pid: int) -> float:
    """CPU seconds of every thread of ``pid``, to the nanosecond (``/proc/PID/task/*/schedstat``).

    ``/proc/PID/stat`` counts in clock ticks (10 ms): too coarse for Redis's few
    milliseconds per second while nothing is broadcast.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


async def command_stats(url: str) -> dict[str, tuple[int, int]]:
    """Redis's ``INFO commandstats``: per command, (calls, usec) since the server started.

    Commands a Lua script runs are counted under their own names as well as inside the
    script's ``evalsha`` time: the rows overlap, the process CPU is the total. The socket
    reads and writes Redis processed (``INFO stats``) are two more rows, without usec.
    """
    client = aioredis.from_url(url)
    try:
        info = await client.info("commandstats")
        io = await client.info("stats")
    finally:
        await client.aclose()
    rows = {
        str(name).removeprefix("cmdstat_"): (int(row["calls"]), int(row["usec"]))
        for name, row in info.items()
    }
    # Its network events, as rows of their own: each is a system call or more (the
    # reads of requests, the writes of replies and of pub/sub messages), what a
    # command's own usec does not count.
    rows["(socket reads)"] = (int(io.get("total_reads_processed", 0)), 0)
    rows["(socket writes)"] = (int(io.get("total_writes_processed", 0)), 0)
    return rows


async def registry_settled(url: str, clients: int, timeout: float) -> None:
    """Wait until the cluster's registry in Redis holds every client's rooms, unchanged for 1 s.

    The nodes write joins to Redis behind the clients' subscriptions: a burst that
    began before they were all written would count their registration as broadcasts'
    work (thousands of ``JOIN`` scripts at 4,000 clients).
    """
    client = aioredis.from_url(url, decode_responses=True)
    try:
        deadline = time.monotonic() + timeout
        history: list[int] = []
        while time.monotonic() < deadline:
            total = 0
            for key in await client.keys(f"{REGISTRY_PREFIX}node:*:rooms"):
                total += sum(int(v) for v in (await client.hgetall(key)).values())
            history = [*history[-3:], total]
            if len(history) == 4 and len(set(history)) == 1 and total >= clients:
                return
            await asyncio.sleep(0.25)
        raise RuntimeError(f"the registry did not settle: {history[-1:]} memberships")
    finally:
        await client.aclose()


def _delta(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    rows = {}
    for name, (calls, usec) in after.items():
        calls0, usec0 = before.get(name, (0, 0))
        if calls > calls0:
            rows[name] = (calls - calls0, usec - usec0)
    return rows


@contextlib.asynccontextmanager
async def redis_server(core: int | None = None) -> AsyncIterator[tuple[Child, str]]:
    """A redis-server of this run's own (nothing on disk), and its URL; on ``core`` if given."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: make system-deps (apt-get install redis-server)")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as directory:
        cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        child = await compare.spawn([*cmd, "--appendonly", "no", "--dir", directory])
        if core is not None:
            os.sched_setaffinity(child.proc.pid, {core})
        try:
            await compare.expect(child, re.compile(r"(Ready to accept connections)"), 20)
            yield child, f"redis://127.0.0.1:{port}/0"
        finally:
            await compare.stop(child)


async def idle_cpu_per_s(pid: int, seconds: float) -> float:
    """CPU seconds per second that ``pid`` spends over the next ``seconds`` (nan if 0)."""
    if seconds <= 0:
        return float("nan")
    before = cpu_ns_seconds(pid)
    await asyncio.sleep(seconds)
    return (cpu_ns_seconds(pid) - before) / seconds


@contextlib.asynccontextmanager
async def nodes(
    variant: str, capacity: int, alone: float = 0.0, redis_core: int | None = None
) -> AsyncIterator[tuple[list[tuple[Child, str]], tuple[Child, str] | None, float]]:
    """The nodes of ``variant`` (each a child and its URL), the Redis they share, if any
    (its child and URL), and that Redis's CPU per second alone (measured for ``alone``
    seconds before the nodes start); Redis on CPU ``redis_core`` if given."""
    async with contextlib.AsyncExitStack() as stack:
        redis: tuple[Child, str] | None = None
        alone_cpu = float("nan")
        if variant == "single":
            flags: list[tuple[str, ...]] = [()]
        else:
            redis = await stack.enter_async_context(redis_server(redis_core))
            url = redis[1]
            # What Redis costs with nobody connected (its cron, ``hz`` times a second):
            # paid per second whatever the nodes do, so not a cost of any broadcast.
            alone_cpu = await idle_cpu_per_s(redis[0].proc.pid, alone)
            count = int(variant.removeprefix("cluster-"))
            flags = [("--cluster", url, "--node-id", f"node-{i + 1}") for i in range(count)]
        started = [
            await stack.enter_async_context(
                compare.server(Variant(variant, node=False, server_flags=f), capacity)
            )
            for f in flags
        ]
        yield started, redis, alone_cpu


async def run_once(variant: str, rnd: int, args: argparse.Namespace) -> ClusterRun:
    """One fan-out burst on fresh processes of ``variant``."""
    res = ClusterRun(variant, rnd, expected=args.clients * args.messages)
    children_of_nodes: list[list[Child]] = []
    try:
        async with nodes(variant, args.clients + 100, args.redis_alone, args.redis_core) as (
            started,
            redis,
            alone,
        ):
            res.nodes = len(started)
            res.redis_alone_cpu_per_s = alone
            urls = [url for _, url in started]
            await compare.warm_up(urls[0])
            timeout = 60 + args.clients / 20
            for url, count in zip(urls, compare.split(args.clients, len(urls)), strict=True):
                # open_clients waits for every process of the list it is given: one list per node.
                mine: list[Child] = []
                children_of_nodes.append(mine)
                reports = await compare.open_clients(
                    mine,
                    url,
                    count,
                    max(1, args.client_procs // len(urls)),
                    args,
                    timeout,
                    subscribe=True,
                    messages=args.messages,
                    timeout_ms=int(timeout * 1000),
                )
                connected = sum(r["connected"] for r in reports)
                if connected != count:
                    raise RuntimeError(f"{connected}/{count} connected to {url}: {reports}")
            if redis is not None:
                await registry_settled(redis[1], args.clients, timeout)
            node_pids = [child.proc.pid for child, _ in started]
            redis_pid = redis[0].proc.pid if redis is not None else None
            stats0 = await command_stats(redis[1]) if redis is not None else {}
            node0 = [compare.cpu_seconds(p) for p in node_pids]
            redis0 = cpu_ns_seconds(redis_pid) if redis_pid else 0.0
            burst0 = time.monotonic()
            first_sent, errors = await compare.broadcast(urls[0], args.messages, args.inflight)
            if errors:
                res.error = "; ".join(errors)
            children = [child for mine in children_of_nodes for child in mine]
            results = await compare.collect(children, args.timeout)
            node1 = [compare.cpu_seconds(p) for p in node_pids]
            res.burst_s = time.monotonic() - burst0
            res.node_cpu_s = sum(b - a for a, b in zip(node0, node1, strict=True))
            res.redis_cpu_s = (cpu_ns_seconds(redis_pid) - redis0) if redis_pid else 0.0
            if redis is not None:
                res.redis_commands = _delta(stats0, await command_stats(redis[1]))
            if redis_pid and args.quiet > 0:
                # Redis's work that goes with time, not broadcasts (heartbeats, its own cron),
                # every client still connected: measured after the burst, once the
                # connections' registration is long settled.
                assert redis is not None
                quiet_stats = await command_stats(redis[1])
                quiet0 = cpu_ns_seconds(redis_pid)
                await asyncio.sleep(args.quiet)
                res.redis_quiet_cpu_per_s = (cpu_ns_seconds(redis_pid) - quiet0) / args.quiet
                res.redis_quiet_commands = _delta(quiet_stats, await command_stats(redis[1]))
            res.node_events = [
                line
                for node, _ in started
                for line in node.log
                if any(m in line for m in _MEMBERSHIP)
            ]
            res.received = sum(r["received"] for r in results)
            latencies = sorted(x for r in results for x in r["latencies"])
            res.p50_ms = compare.percentile(latencies, 0.50)
            res.p99_ms = compare.percentile(latencies, 0.99)
            res.max_ms = latencies[-1] if latencies else float("nan")
            if res.received:
                last = max(r["last"] for r in results)
                res.rate = res.received / ((last - first_sent) / 1000)
                res.node_cpu_us_per_delivery = 1e6 * res.node_cpu_s / res.received
                cpu = res.node_cpu_s + res.redis_cpu_s
                res.cpu_us_per_message = 1e6 * cpu / args.messages
    except Exception as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    finally:
        children = [child for mine in children_of_nodes for child in mine]
        for child in children:
            await compare.send(child, "quit")
        await asyncio.gather(*(compare.stop(c) for c in children))
    return res


async def run_idle(variant: str, rnd: int, args: argparse.Namespace) -> IdleRun:
    """RSS per connection of one node of ``variant`` with ``--idle`` idle connections."""
    res = IdleRun(variant, rnd, connections=args.idle)
    children: list[Child] = []
    try:
        async with nodes(variant, args.idle + 100, redis_core=args.redis_core) as (started, _, _):
            node, url = started[0]
            await compare.warm_up(url)
            before = compare.rss_mib(node.proc.pid)
            timeout = 120 + args.idle / 20
            reports = await compare.open_clients(
                children, url, args.idle, args.idle_procs, args, timeout,
                timeout_ms=int(timeout * 1000),
            )  # fmt: skip
            connected = sum(r["connected"] for r in reports)
            if connected != args.idle:
                raise RuntimeError(f"{connected}/{args.idle} connected")
            after = compare.rss_mib(node.proc.pid)
            res.rss_per_conn_kib = (after - before) * 1024 / args.idle
    except Exception as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    finally:
        for child in children:
            await compare.send(child, "quit")
        await asyncio.gather(*(compare.stop(c) for c in children))
    return res


def _median(values: Sequence[float]) -> float:
    good = [v for v in values if v == v]
    return statistics.median(good) if good else float("nan")


def render(runs: list[ClusterRun], idle: list[IdleRun], args: argparse.Namespace) -> str:
    """The markdown tables: medians over rounds, min-max, and the ratios the issue asks for."""
    lines = [
        f"## Cluster fan-out: {args.clients} clients x {args.messages} broadcasts, "
        f"{args.rounds} rounds (median, min-max)",
        "",
        "| variant | nodes | deliveries/s | p50 / p99 / max ms | node CPU us/delivery "
        "| node+Redis CPU us/message | Redis CPU us/broadcast (net of Redis alone) | complete |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    medians: dict[str, dict[str, float]] = {}
    for variant in args.variants:
        mine = [r for r in runs if r.variant == variant]
        if not mine:
            continue
        fig = {
            key: _median([getattr(r, key) for r in mine])
            for key in ("rate", "p50_ms", "p99_ms", "max_ms", "node_cpu_us_per_delivery")
        }
        fig["per_message"] = _median([r.cpu_us_per_message for r in mine])
        fig["redis"] = _median([1e6 * r.redis_cpu_s / args.messages for r in mine])
        fig["redis_own"] = _median(
            [
                1e6 * (r.redis_cpu_s - r.redis_alone_cpu_per_s * r.burst_s) / args.messages
                for r in mine
            ]
        )
        medians[variant] = fig
        rates = [r.rate for r in mine if r.rate == r.rate]
        spread = f" ({min(rates):,.0f}-{max(rates):,.0f})" if len(rates) > 1 else ""
        complete = sum(r.received == r.expected for r in mine)
        lines.append(
            f"| {variant} | {mine[0].nodes} | {fig['rate']:,.0f}{spread} "
            f"| {fig['p50_ms']:.0f} / {fig['p99_ms']:.0f} / {fig['max_ms']:.0f} "
            f"| {fig['node_cpu_us_per_delivery']:.1f} | {fig['per_message']:,.0f} "
            f"| {fig['redis']:,.0f} ({fig['redis_own']:,.0f}) | {complete}/{len(mine)} |"
        )
    errors = [f"- {r.variant} round {r.round}: {r.error}" for r in runs if r.error]
    errors += [
        f"- {r.variant} round {r.round}, a node logged: {line}"
        for r in runs
        for line in r.node_events
    ]
    if "single" in medians and "cluster-1" in medians:
        hop = medians["cluster-1"]["per_message"] - medians["single"]["per_message"]
        lat = medians["cluster-1"]["p50_ms"] - medians["single"]["p50_ms"]
        lines += ["", f"Redis hop: {hop:,.0f} us of CPU per message (nodes + Redis), "]
        lines[-1] += f"{lat:+.0f} ms of p50 latency (cluster-1 against single)."
    if "cluster-1" in medians and "cluster-2" in medians:
        ratio = medians["cluster-2"]["rate"] / medians["cluster-1"]["rate"]
        lines.append(f"Two nodes against one: {ratio:.2f}x the deliveries/s on this machine.")
    if idle:
        lines += ["", f"## RSS per connection, {args.idle:,} idle authenticated connections", ""]
        for variant in ("single", "cluster-1"):
            mine = [r for r in idle if r.variant == variant]
            if mine:
                value = _median([r.rss_per_conn_kib for r in mine])
                lines.append(f"- {variant}: {value:.1f} KiB per connection")
        errors += [f"- idle {r.variant} round {r.round}: {r.error}" for r in idle if r.error]
    lines += _command_table(runs, args)
    if errors:
        lines += ["", "Errors:", *errors]
    return "\n".join(lines)


def _command_table(runs: list[ClusterRun], args: argparse.Namespace) -> list[str]:
    """Redis's work per broadcast by command (medians over rounds): where its CPU goes."""
    variants = [v for v in args.variants if any(r.variant == v and r.redis_commands for r in runs)]
    if not variants:
        return []
    names = sorted({name for r in runs for name in r.redis_commands})
    lines = [
        "",
        f"## Redis per broadcast by command ({args.clients} clients; INFO commandstats deltas)",
        "",
        "Calls and usec per broadcast (usec: Redis's own timing of each command, wall clock,",
        "so a busy machine inflates it). A script's commands count under their own names and",
        "inside its `evalsha` too; the process CPU (last row, /proc schedstat) is the whole.",
        "",
        "| command | " + " | ".join(f"{v} calls | {v} usec" for v in variants) + " |",
        "| --- | " + " | ".join("--- | ---" for _ in variants) + " |",
    ]
    total: dict[str, float] = {}
    for name in names:
        cells = []
        for variant in variants:
            mine = [r for r in runs if r.variant == variant and r.redis_commands]
            calls = _median([r.redis_commands.get(name, (0, 0))[0] / args.messages for r in mine])
            usec = _median([r.redis_commands.get(name, (0, 0))[1] / args.messages for r in mine])
            cells.append(f"{calls:.2f} | {usec:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for variant in variants:
        mine = [r for r in runs if r.variant == variant]
        total[variant] = _median([1e6 * r.redis_cpu_s / args.messages for r in mine])
    lines.append("| process CPU | " + " | ".join(f" | {total[v]:.1f}" for v in variants) + " |")
    for variant in variants:
        mine = [r for r in runs if r.variant == variant]
        quiet = _median([r.redis_quiet_cpu_per_s for r in mine])
        net = _median(
            [
                1e6 * (r.redis_cpu_s - r.redis_quiet_cpu_per_s * r.burst_s) / args.messages
                for r in mine
            ]
        )
        burst = _median([r.burst_s for r in mine])
        alone = _median([r.redis_alone_cpu_per_s for r in mine])
        own = _median(
            [
                1e6 * (r.redis_cpu_s - r.redis_alone_cpu_per_s * r.burst_s) / args.messages
                for r in mine
            ]
        )
        lines.append(
            f"\n{variant}: Redis CPU alone (no node connected: its own timers) {1e3 * alone:.2f} "
            f"ms/s; while nothing is broadcast, every client connected {1e3 * quiet:.2f} ms/s; "
            f"burst {burst:.1f} s. Process CPU per broadcast net of Redis alone {own:.1f} us, "
            f"net of the quiet rate {net:.1f} us."
        )
        quiet_rows = _quiet_commands(mine, args.quiet)
        if quiet_rows:
            lines.append(f"{variant}, while nothing is broadcast (calls/s, usec/s): {quiet_rows}")
    return lines


def _quiet_commands(runs: list[ClusterRun], seconds: float) -> str:
    """What Redis ran while nothing was broadcast, per second (medians over rounds)."""
    if seconds <= 0:
        return ""
    names = sorted({name for r in runs for name in r.redis_quiet_commands})
    cells = []
    for name in names:
        calls = _median([r.redis_quiet_commands.get(name, (0, 0))[0] / seconds for r in runs])
        usec = _median([r.redis_quiet_commands.get(name, (0, 0))[1] / seconds for r in runs])
        cells.append(f"{name} {calls:.1f}/{usec:.0f}")
    return ", ".join(cells)


async def orchestrate(args: argparse.Namespace) -> int:
    compare.raise_nofile(max(args.clients, args.idle) * 2)
    runs: list[ClusterRun] = []
    for rnd in range(1, args.rounds + 1):
        for variant in args.variants:
            started = time.monotonic()
            run = await run_once(variant, rnd, args)
            runs.append(run)
            took = time.monotonic() - started
            print(
                f"round {rnd} {variant}: {run.received}/{run.expected} in {took:.0f} s, "
                f"{run.rate:,.0f}/s, p99 {run.p99_ms:.0f} ms {run.error}",
                file=sys.stderr,
                flush=True,
            )
    idle: list[IdleRun] = []
    if args.idle:
        for variant in ("single", "cluster-1"):
            idle.append(await run_idle(variant, 1, args))
    print(render(runs, idle, args))
    if args.json:
        body = {"runs": [asdict(r) for r in runs], "idle": [asdict(r) for r in idle]}
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(body, indent=2))
    return 0 if all(not r.error and r.received == r.expected for r in runs) else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", type=lambda s: s.split(","), default=list(VARIANTS))
    parser.add_argument("--idle", type=int, default=5000, help="idle connections (0: skip)")
    parser.add_argument("--inflight", type=int, default=8, help="broadcasts in flight")
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--idle-procs", type=int, default=4)
    parser.add_argument("--connect-concurrency", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a burst")
    parser.add_argument(
        "--quiet",
        type=float,
        default=10.0,
        help="seconds of Redis CPU measured after each burst, nothing broadcast (0: skip)",
    )
    parser.add_argument(
        "--redis-alone",
        type=float,
        default=5.0,
        help="seconds of Redis CPU measured before the nodes start (0: skip)",
    )
    parser.add_argument(
        "--redis-core",
        type=int,
        help="run Redis alone on this CPU and everything else on the others, as Redis on a "
        "machine of its own: its CPU per broadcast then does not count the wait for a core "
        "that the nodes and clients keep busy",
    )
    parser.add_argument("--json", help="also write every run's figures to this file")
    args = parser.parse_args(argv)
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when every burst was delivered in full."""
    args = parse_args(argv)
    if args.redis_core is not None:
        others = os.sched_getaffinity(0) - {args.redis_core}
        if not others:
            raise SystemExit("--redis-core needs a second CPU for everything else")
        os.sched_setaffinity(0, others)  # the nodes and clients started from here inherit it
    return asyncio.run(orchestrate(args))


if __name__ == "__main__":
    raise SystemExit(main())
