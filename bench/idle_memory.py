"""Where an idle connection's memory goes: tracemalloc over an in-process server.

bench/compare.py measures RSS per idle connection from outside (``--idle``); this
script says what that memory is. It starts the reference server in this process
(the settings of compare.py's ``ours``), with :mod:`tracemalloc` on, opens
``--connections`` authenticated, unsubscribed sockets from Node.js
``socket.io-client`` processes (bench/node/clients.mjs, as compare.py does), and
compares a snapshot taken after them with one taken before. Each allocation
still alive is charged to the innermost frame of its traceback that lies in a
package of interest (this server, python-socketio/engineio, uvicorn, websockets,
starlette, asyncio), so a row says which line of whose code holds the bytes.

Prints two tables, per connection: by package and by charged line.
tracemalloc's own overhead inflates RSS here: take RSS figures from compare.py.

    .venv/bin/python bench/idle_memory.py --connections 2000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tracemalloc
from collections import defaultdict
from pathlib import Path

from compare import (
    Child,
    client_command,
    expect,
    raise_nofile,
    send,
    spawn,
    split,
    stop,
    warm_up,
)

from reference_server.app import ReferenceServer
from reference_server.config import ServerSettings

FRAMES = 30
"""Traceback depth kept by tracemalloc: deep enough to reach the code that asked."""

PACKAGES = (
    ("reference_server", "/reference_server/"),
    ("client_sdk", "/client_sdk/"),
    ("engineio", "/engineio/"),
    ("socketio", "/socketio/"),
    ("uvicorn", "/uvicorn/"),
    ("websockets", "/websockets/"),
    ("starlette", "/starlette/"),
    ("asyncio", "/asyncio/"),
)


def package_of(filename: str) -> str | None:
    """The package a source file belongs to, among :data:`PACKAGES`."""
    for name, marker in PACKAGES:
        if marker in filename:
            return name
    return None


def chain(trace: tracemalloc.Traceback, depth: int) -> str:
    """The ``depth`` innermost frames of interest, innermost first: who asked for the bytes."""
    frames = [f for f in reversed(trace) if package_of(f.filename) is not None][:depth]
    return " < ".join(f"{Path(f.filename).name}:{f.lineno}" for f in frames)


def charged_frame(trace: tracemalloc.Traceback) -> tuple[str, str]:
    """(package, ``file:line``) of the innermost frame in a package of interest."""
    for frame in reversed(trace):  # tracemalloc lists the outermost frame first
        package = package_of(frame.filename)
        if package is not None:
            short = "/".join(Path(frame.filename).parts[-2:])
            return package, f"{short}:{frame.lineno}"
    frame = trace[-1]
    return "other", f"{Path(frame.filename).name}:{frame.lineno}"


async def open_idle(url: str, count: int, procs: int, timeout: float) -> list[Child]:
    """Node.js processes holding ``count`` authenticated sockets (compare.py's idle clients)."""
    args = argparse.Namespace(connect_concurrency=100)
    children: list[Child] = []
    for index, part in enumerate(split(count, procs)):
        cmd = client_command(
            url, part, args, user_prefix=f"p{index}u", timeout_ms=int(timeout * 1000)
        )
        children.append(await spawn(cmd))
    reports = [json.loads(await expect(c, "CONNECTED", timeout)) for c in children]
    connected = sum(r["connected"] for r in reports)
    if connected != count:
        raise RuntimeError(f"{connected}/{count} connected: {reports}")
    return children


async def main(args: argparse.Namespace) -> None:
    raise_nofile(args.connections + 512)
    capacity = args.connections + 100
    settings = ServerSettings(
        host="127.0.0.1",
        port=0,
        max_connections_total=capacity,
        max_connections_per_org=capacity,
        room_max_size=capacity,
        log_connection_events=False,
        log_subscription_events=False,
    )
    server = ReferenceServer(settings, install_signal_handlers=False)
    await server.start()
    children: list[Child] = []
    try:
        await warm_up(server.url)  # the HTTP path loaded, as compare.py does
        tracemalloc.start(FRAMES)
        gc.collect()
        before = tracemalloc.take_snapshot()
        children = await open_idle(server.url, args.connections, args.procs, 120)
        await asyncio.sleep(args.settle)  # pings, the authentication answer: all sent
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        report(before, after, args.connections, args.rows, args.callers)
    finally:
        for child in children:
            await send(child, "quit")
        await asyncio.gather(*(stop(c) for c in children))
        await server.stop()


def report(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int, rows: int, callers: int
) -> None:
    """The two tables (markdown), bytes per connection."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    diffs = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "traceback")
    by_package: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_line: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    by_chain: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for diff in diffs:
        package, line = charged_frame(diff.traceback)
        for table, key in ((by_package, package), (by_line, (package, line))):
            table[key][0] += diff.size_diff
            table[key][1] += diff.count_diff
        if callers:
            by_chain[(package, line)][chain(diff.traceback, callers)] += diff.size_diff
    total = sum(size for size, _ in by_package.values())
    print(f"{n} idle connections: {total / n / 1024:.2f} KiB per connection traced\n")
    print("| package | bytes/conn | blocks/conn |")
    print("| --- | ---: | ---: |")
    for package, (size, count) in sorted(by_package.items(), key=lambda kv: -kv[1][0]):
        print(f"| {package} | {size / n:,.0f} | {count / n:.1f} |")
    print("\n| package | allocated at | bytes/conn | blocks/conn |")
    print("| --- | --- | ---: | ---: |")
    ranked = sorted(by_line.items(), key=lambda kv: -kv[1][0])
    for (package, line), (size, count) in ranked[:rows]:
        print(f"| {package} | {line} | {size / n:,.0f} | {count / n:.1f} |")
        for path, bytes_ in sorted(by_chain[(package, line)].items(), key=lambda kv: -kv[1])[:3]:
            if callers and bytes_ / n >= 16:
                print(f"|  | {path} | {bytes_ / n:,.0f} | |")
    sys.stdout.flush()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=2000, help="idle sockets (2000)")
    p.add_argument("--procs", type=int, default=2, help="Node.js client processes (2)")
    p.add_argument("--settle", type=float, default=2.0, help="seconds before the snapshot (2)")
    p.add_argument("--rows", type=int, default=30, help="rows of the per-line table (30)")
    p.add_argument(
        "--callers", type=int, default=0, help="under each row, its callers this deep (0: none)"
    )
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
