"""A Redis primary, its replica and three sentinels, as real processes, to kill and restart.

:class:`SentinelGroup` starts ``redis-server`` twice (a primary and a replica
of it) and ``redis-server CONF --sentinel`` three times, all on free ports of
127.0.0.1 (never the machine's 6379), with Sentinel's
``down-after-milliseconds`` at 1000. :meth:`SentinelGroup.kill_primary`
SIGKILLs whichever server is the primary now; :meth:`SentinelGroup.restart`
brings a killed one back as a replica of the new primary, so that a second
failover has somewhere to go. Without ``redis-server`` the tests skip (fail
under ``REQUIRE_REDIS=1``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tests.cluster.conftest import eventually
from tests.processes import free_port, redis_server_path

__all__ = ["SERVICE", "SentinelGroup", "ask", "sentinel_group"]

SERVICE = "intraday"
"""The Sentinel service name of the primary."""

DOWN_AFTER_MS = 1000


async def ask(port: int, *command: Any) -> Any:
    """Send one command to the Redis server or sentinel on ``port``; its answer."""
    client: Any = aioredis.Redis(
        host="127.0.0.1", port=port, decode_responses=True, socket_timeout=1
    )
    try:
        return await client.execute_command(*command)
    finally:
        await client.aclose()


class SentinelGroup:
    """Two Redis servers (one primary, one replica) under three sentinels."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._binary = redis_server_path()
        self.server_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port(), free_port(), free_port()]
        self._servers: dict[int, asyncio.subprocess.Process] = {}
        self._sentinels: list[asyncio.subprocess.Process] = []

    @property
    def url(self) -> str:
        """``redis+sentinel://...`` naming the three sentinels and the service."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/0/{SERVICE}"

    async def _spawn(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            self._binary, *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

    async def _start_server(self, port: int, primary: int | None) -> None:
        directory = self._directory / f"redis-{port}"
        directory.mkdir(exist_ok=True)
        args = [
            "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(directory), "--repl-diskless-sync-delay", "0",
            "--logfile", str(directory / "redis.log"),
        ]  # fmt: skip
        if primary is not None:
            args += ["--replicaof", "127.0.0.1", str(primary)]
        self._servers[port] = await self._spawn(*args)

        async def answers() -> bool:
            try:
                return bool(await ask(port, "PING"))
            except (RedisError, OSError):
                return False

        await eventually(answers, f"redis-server on {port}", 10)
        if primary is not None:
            await self._until_replicating(port)

    async def _until_replicating(self, port: int) -> None:
        async def linked() -> bool:
            info = await ask(port, "INFO", "replication")  # redis-py parses it into a dict
            return bool(info.get("master_link_status") == "up")

        await eventually(linked, f"replica on {port} synchronised", 15)

    async def start_servers(self) -> None:
        """Start the primary and its replica (no sentinel); wait until the replica is in sync."""
        primary, replica = self.server_ports
        await self._start_server(primary, None)
        await self._start_server(replica, primary)

    async def start(self) -> None:
        """Start the primary, its replica and the sentinels; wait until they know each other."""
        primary, replica = self.server_ports
        await self.start_servers()
        for port in self.sentinel_ports:
            conf = self._directory / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self._directory}\n"
                f"logfile {self._directory / f'sentinel-{port}.log'}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} 3000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            self._sentinels.append(await self._spawn(str(conf), "--sentinel"))
        await self.until_ready(primary, replica)

    async def until_ready(self, primary: int, replica: int) -> None:
        """Wait until every sentinel names ``primary`` and sees ``replica`` and its peers."""

        async def ready() -> bool:
            for port in self.sentinel_ports:
                try:
                    master = await ask(port, "SENTINEL", "MASTER", SERVICE)
                    replicas = await ask(port, "SENTINEL", "REPLICAS", SERVICE)
                except (RedisError, OSError):
                    return False
                fields = _pairs(master)
                if fields.get("port") != str(primary) or "down" in fields.get("flags", ""):
                    return False
                if fields.get("num-other-sentinels") != "2":
                    return False
                seen = [_pairs(r) for r in replicas]
                if not any(
                    r.get("port") == str(replica)
                    and "down" not in r.get("flags", "")
                    and r.get("master-link-status") == "ok"
                    for r in seen
                ):
                    return False
            return True

        await eventually(ready, "sentinels agree on the primary and see the replica", 40)

    async def primary(self, other_than: int | None = None) -> int:
        """The port of the primary every sentinel names now (and not ``other_than``).

        Waits until they agree: a sentinel may still name the old primary for a
        moment after the others switched.
        """
        named: list[int] = []

        async def agreed() -> bool:
            ports = set()
            for port in self.sentinel_ports:
                try:
                    host_port = await ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                except (RedisError, OSError):
                    return False
                ports.add(int(host_port[1]) if host_port else None)
            named[:] = [p for p in ports if p is not None]
            return len(ports) == 1 and named != [other_than]

        await eventually(agreed, "every sentinel names one new primary", 30)
        return named[0]

    async def kill_primary(self) -> tuple[int, float]:
        """SIGKILL the primary; its port and the moment of the kill (``time.monotonic()``)."""
        port = await self.primary()
        process = self._servers.pop(port)
        process.kill()
        killed_at = time.monotonic()
        await asyncio.wait_for(process.wait(), 10)
        return port, killed_at

    async def restart(self, port: int) -> None:
        """Start the killed server on ``port`` again, as a replica of the new primary."""
        primary = await self.primary(other_than=port)
        await self._start_server(port, primary)
        await self.until_ready(primary, port)

    async def stop(self) -> None:
        """Kill every process it started."""
        for process in [*self._sentinels, *self._servers.values()]:
            if process.returncode is None:
                process.kill()
                await asyncio.wait_for(process.wait(), 10)
        self._sentinels.clear()
        self._servers.clear()


def _pairs(flat: Any) -> dict[str, str]:
    """A Sentinel reply (a flat list of names and values, or a dict) as a dict of strings."""
    if isinstance(flat, dict):
        return {str(k): str(v) for k, v in flat.items()}
    items = list(flat)
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}


@contextlib.asynccontextmanager
async def sentinel_group(directory: Path) -> AsyncIterator[SentinelGroup]:
    """A started :class:`SentinelGroup`, every process killed at the end."""
    group = SentinelGroup(directory)
    try:
        await group.start()
        yield group
    finally:
        await group.stop()
