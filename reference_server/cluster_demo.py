"""``intraday-live-server cluster-demo``: a cluster of nodes on one machine, and proof it is one.

It starts a ``redis-server`` of its own on a free port (nothing is kept on
disk), ``nodes`` reference servers on free ports joined into one cluster
through it, the simulated feed on the first node only, and the live
dashboard connected to the second node: every event the dashboard shows
was published on another node and crossed Redis to reach it. When it stops
(after ``duration``, on Ctrl-C or on SIGTERM) it stops everything it
started, and it exits 1 when no live event crossed, so a scripted run
(``make cluster-demo DURATION=20``) checks what it shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

__all__ = ["ClusterDemoError", "run_cluster_demo"]

FEED_NODE: Final = 0
"""The node that runs the simulated feed (the dashboard watches another)."""

START_TIMEOUT: Final = 20.0
"""Seconds Redis and each node get to answer after they are started."""

STOP_GRACE: Final = 5.0
"""Seconds a child gets after SIGTERM before it is killed."""

INSTALL_REDIS: Final = (
    "redis-server is not installed: sudo apt-get install -y redis-server "
    "(Debian/Ubuntu; make system-deps does it), brew install redis (macOS)"
)


class ClusterDemoError(Exception):
    """The demo could not start: a missing ``redis-server``, a child that did not come up."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class _Child:
    """One process the demo started, and where its output goes."""

    name: str
    process: asyncio.subprocess.Process
    log: Path

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class _Cluster:
    """What the demo started: Redis, then the nodes (``urls[i]`` is node ``i + 1``)."""

    workdir: Path
    children: list[_Child] = field(default_factory=list)
    redis_url: str = ""
    urls: list[str] = field(default_factory=list)

    async def spawn(self, name: str, argv: Sequence[str]) -> _Child:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=sink, stderr=sink
            )
        child = _Child(name, process, log)
        self.children.append(child)
        return child

    async def stop(self) -> None:
        """SIGTERM every child, nodes before Redis, then SIGKILL what is still there."""
        for child in reversed(self.children):
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.terminate()
            try:
                await asyncio.wait_for(child.process.wait(), STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
                await child.process.wait()


async def _until_up(child: _Child, probe: Any, what: str) -> None:
    """Poll ``probe()`` until it is true; fail with the child's last lines if it dies or stalls."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if child.process.returncode is not None:
            raise ClusterDemoError(
                f"{child.name} exited with status {child.process.returncode}:\n{child.tail()}"
            )
        with contextlib.suppress(OSError, httpx.HTTPError):
            if await probe():
                return
        if time.monotonic() > deadline:
            raise ClusterDemoError(f"{what} not within {START_TIMEOUT:.0f} s:\n{child.tail()}")
        await asyncio.sleep(0.1)


async def _start_redis(cluster: _Cluster) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        raise ClusterDemoError(INSTALL_REDIS)
    port = _free_port()
    nothing_on_disk = ["--save", "", "--appendonly", "no", "--dir", str(cluster.workdir)]
    child = await cluster.spawn(
        "redis", [binary, "--port", str(port), "--bind", "127.0.0.1", *nothing_on_disk]
    )

    async def answers() -> bool:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        return True

    await _until_up(child, answers, f"redis-server on port {port}")
    cluster.redis_url = f"redis://127.0.0.1:{port}/0"


async def _start_nodes(cluster: _Cluster, nodes: int, http: httpx.AsyncClient) -> None:
    started: list[tuple[_Child, str]] = []
    for index in range(nodes):
        port = _free_port()
        argv = [sys.executable, "-m", "reference_server.cli", "serve"]
        argv += ["--cluster", cluster.redis_url, "--node-id", f"node-{index + 1}"]
        argv += ["--port", str(port), "--log-level", "warning", "--no-log-broadcast-events"]
        if index == FEED_NODE:
            argv.append("--simulate")
        started.append((await cluster.spawn(f"node-{index + 1}", argv), f"http://127.0.0.1:{port}"))
    for child, url in started:

        async def sees_everyone(url: str = url) -> bool:
            health = (await http.get(f"{url}/api/ws/health")).json()
            return len((health.get("cluster") or {}).get("nodes", [])) >= nodes

        await _until_up(child, sees_everyone, f"{child.name} seeing all {nodes} nodes")
        cluster.urls.append(url)


async def _watch(url: str, org: str, duration: float | None) -> int:
    """The dashboard of ``org`` on ``url``; the number of live events it received."""
    from client_sdk import IntradayClient
    from client_sdk.dashboard import run_dashboard
    from client_sdk.hooks import events

    crossed = 0

    def count(message: Any) -> None:
        nonlocal crossed
        if not message.replayed and not message.envelope.snapshot:
            crossed += 1

    client = IntradayClient(
        url=url, user_id="cluster-demo", organization_id=org, reconnection_attempts=None
    )
    counting = events(client, "*", organization_id=org).subscribe(count)
    try:
        await run_dashboard(client, organization_id=org, duration=duration)
    finally:
        counting.dispose()
        await client.close()
    return crossed


async def run_cluster_demo(nodes: int = 3, *, org: str = "acme", duration: float | None) -> int:
    """Run the demo until ``duration`` seconds pass (or SIGINT/SIGTERM); the exit status.

    Raises:
        ClusterDemoError: Redis or a node did not start (the message says why).
    """
    if nodes < 2:
        raise ClusterDemoError("a cluster demo needs at least 2 nodes")
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    with contextlib.suppress(NotImplementedError):  # not on Windows
        loop.add_signal_handler(signal.SIGTERM, main.cancel)
    with tempfile.TemporaryDirectory(prefix="intraday-cluster-") as workdir:
        cluster = _Cluster(Path(workdir))
        try:
            crossed = await _run(cluster, nodes, org, duration)
        except asyncio.CancelledError:  # Ctrl-C or SIGTERM: a normal way to stop
            return 0
        finally:
            await asyncio.shield(cluster.stop())
    print(
        f"{crossed} live events published on node-{FEED_NODE + 1} reached the dashboard "
        f"on node-{FEED_NODE + 2} through Redis",
        file=sys.stderr,
    )
    return 0 if crossed else 1


async def _run(cluster: _Cluster, nodes: int, org: str, duration: float | None) -> int:
    """Start Redis and the nodes, show the dashboard; the number of live events that crossed."""
    async with httpx.AsyncClient(timeout=2.0) as http:
        await _start_redis(cluster)
        await _start_nodes(cluster, nodes, http)
    feed, watched = cluster.urls[FEED_NODE], cluster.urls[FEED_NODE + 1]
    print(f"cluster of {nodes} nodes over {cluster.redis_url}:", file=sys.stderr)
    for index, url in enumerate(cluster.urls):
        role = {feed: "the simulated feed", watched: "the dashboard below"}.get(url, "")
        print(f"  node-{index + 1}  {url}  {role}", file=sys.stderr)
    print("Ctrl-C stops everything", file=sys.stderr, flush=True)
    return await _watch(watched, org, duration)


def main(nodes: int, org: str, duration: float | None) -> int:
    """Run the demo from the command line: its exit status, a one-line reason on failure."""
    try:
        return asyncio.run(run_cluster_demo(nodes, org=org, duration=duration))
    except ClusterDemoError as error:
        print(f"intraday-live-server cluster-demo: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
