"""Clusters of real node subprocesses over a Redis of the test's own, and a tiny balancer.

:func:`cluster` starts a ``redis-server`` on a free port (never the machine's
6379; without ``redis-server`` the tests skip, or fail under
``REQUIRE_REDIS=1``) and N ``serve --cluster`` nodes on it, started at once.
:class:`Balancer` is a TCP forwarder on a fixed port whose backend a test
switches, standing for a load balancer in front of the nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.processes import RedisProcess, ServerProcess, free_port

__all__ = ["Balancer", "Cluster", "cluster", "eventually"]

FAST_BEATS = ("--node-heartbeat-seconds", "0.5", "--node-timeout-seconds", "3")
"""A node declared dead 3 s after its last heartbeat (the default is 15 s)."""


class Cluster:
    """A running Redis and its nodes: subprocesses, and maybe some in this process first."""

    def __init__(
        self, redis: RedisProcess, nodes: list[ServerProcess], local: Sequence[str] = ()
    ) -> None:
        self.redis = redis
        self.nodes = nodes
        self.local = list(local)
        """The URLs of the nodes running in this process."""

    @property
    def urls(self) -> list[str]:
        """Every node's URL, the in-process ones first."""
        return self.local + [node.url for node in self.nodes]

    async def health(self, index: int) -> dict[str, Any]:
        """``GET /health`` of node ``index`` (of :attr:`urls`)."""
        async with httpx.AsyncClient(base_url=self.urls[index], timeout=5) as http:
            body: dict[str, Any] = (await http.get("/api/ws/health")).json()
            return body

    async def live_nodes(self, index: int) -> set[str]:
        """The node ids node ``index`` sees in the cluster."""
        cluster = (await self.health(index))["cluster"]
        return {n["node_id"] for n in cluster["nodes"]}


@contextlib.asynccontextmanager
async def cluster(
    directory: Path,
    count: int,
    *,
    args: Sequence[str] = (),
    appendonly: bool = False,
    local: Callable[[str], Awaitable[str]] | None = None,
) -> AsyncIterator[Cluster]:
    """Redis and ``count`` nodes ``n0``, ``n1``... (``args``: more ``serve`` flags for each).

    ``local``: starts one more node in this process, given the Redis URL, and
    returns its URL (it comes first in :attr:`Cluster.urls`; the caller stops it).
    """
    async with RedisProcess(directory, appendonly=appendonly) as redis:
        first = 1 if local is not None else 0
        nodes = [
            ServerProcess(
                free_port(),
                args=["--cluster", redis.url, "--node-id", f"n{i}", *args],
                log=directory / f"n{i}.log",
            )
            for i in range(first, first + count)
        ]
        try:
            urls = [await local(redis.url)] if local is not None else []
            await asyncio.gather(*(node.start(timeout=30) for node in nodes))
            running = Cluster(redis, nodes, urls)
            # Every node sees every other one before the test starts.
            total = count + first
            await eventually(lambda: _all_seen(running, total), "every node registered")
            yield running
        finally:
            await asyncio.gather(*(node.kill() for node in nodes))


async def _all_seen(running: Cluster, count: int) -> bool:
    for i in range(count):
        if len(await running.live_nodes(i)) != count:
            return False
    return True


async def eventually(
    condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 15.0
) -> float:
    """Wait until ``condition()`` holds (checked every 50 ms); the seconds it took."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


class Balancer:
    """A TCP forwarder on a fixed port to one node at a time (what a load balancer does).

    When the backend dies its connections end, as they would behind a real
    balancer; the clients' next connection goes to the backend set by :meth:`route`.
    """

    def __init__(self, backend_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.backend_port = backend_port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def route(self, backend_port: int) -> None:
        """Send new connections to ``backend_port``."""
        self.backend_port = backend_port

    async def __aenter__(self) -> Balancer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        except OSError:
            writer.close()
            return
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pipe(source, sink, (writer, up_writer)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


async def _pipe(
    source: asyncio.StreamReader,
    sink: asyncio.StreamWriter,
    both: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
) -> None:
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    except (OSError, ConnectionError):
        pass
    finally:
        for writer in both:  # one side gone: the other one goes too
            writer.close()
