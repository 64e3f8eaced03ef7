"""Real processes for the tests that kill and restart them: the reference server and Redis.

:class:`ServerProcess` runs ``python -m reference_server.cli serve`` on a
fixed port, so clients keep the same URL across a SIGKILL and a restart.
:class:`RedisProcess` runs a ``redis-server`` of its own on a free port
(never the machine's 127.0.0.1:6379). Without ``redis-server`` the tests
that need it skip, unless ``REQUIRE_REDIS=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["ROOT", "RedisProcess", "ServerProcess", "free_port", "redis_server_path"]


_HANDED_OUT: set[int] = set()
"""Ports :func:`free_port` has returned in this process."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now, never one given before.

    The kernel may offer a port again as soon as the probe socket is closed: two
    calls in a row (a Redis primary's port, then its replica's) returned one port,
    and the second server could not listen.
    """
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


async def _until(condition: object, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert callable(condition)
        if await condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


class ServerProcess:
    """The reference server as a subprocess on ``port``, to kill and start again.

    Args:
        port: the port it listens on, every time it starts.
        args: more ``serve`` flags (``--admin-token``, ``--store`` ...).
        env: more environment (``INTRADAY_*`` settings).
        log: a file that collects its stderr (``None``: discarded).
    """

    def __init__(
        self,
        port: int,
        *,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        log: Path | None = None,
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._args = list(args)
        self._env = env or {}
        self._log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 20.0) -> None:
        """Start the server and wait until its health route answers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTRADAY_")}
        env.update(self._env)
        stderr = self._log.open("ab") if self._log is not None else None
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "reference_server.cli", "serve",
                "--port", str(self.port), "--log-level", "warning", *self._args,
                cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr if stderr is not None else asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            if stderr is not None:
                stderr.close()
        process = self.process

        async def healthy() -> bool:
            if process.returncode is not None:
                shown = self._log.read_text(errors="replace")[-2000:] if self._log else ""
                raise AssertionError(f"server exited {process.returncode}: {shown}")
            try:
                async with httpx.AsyncClient(timeout=1.0) as http:
                    response = await http.get(f"{self.url}/api/ws/health")
            except httpx.TransportError:
                return False
            return response.status_code == 200

        await _until(healthy, f"server on port {self.port} healthy", timeout)

    async def kill(self) -> None:
        """SIGKILL: an outage, not a shutdown (no maintenance notice, sockets just drop)."""
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.kill()
            await asyncio.wait_for(process.wait(), 10)

    async def __aenter__(self) -> ServerProcess:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.kill()


def redis_server_path() -> str:
    """Where ``redis-server`` is; skips the test (fails it under ``REQUIRE_REDIS=1``) if nowhere."""
    path = shutil.which("redis-server")
    if path is None:
        reason = "redis-server is not installed (make system-deps, or apt-get install redis-server)"
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail(f"REQUIRE_REDIS=1 but {reason}")
        pytest.skip(reason)
    return path


class RedisProcess:
    """A ``redis-server`` of the test's own on a free port, to kill and start again.

    Args:
        directory: where it keeps its append-only file (with ``appendonly``).
        appendonly: keep every write on disk, so a SIGKILL and a restart lose nothing.
    """

    def __init__(self, directory: Path, *, appendonly: bool = False) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._directory = directory
        self._appendonly = appendonly
        self._binary = redis_server_path()
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start it and wait until it answers PING."""
        self.process = await asyncio.create_subprocess_exec(
            self._binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "yes" if self._appendonly else "no",
            "--appendfsync", "always", "--dir", str(self._directory),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

        async def answers() -> bool:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.write(b"PING\r\n")
            await writer.drain()
            line = await reader.readline()
            writer.close()
            return line.startswith(b"+PONG")

        await _until(answers, f"redis-server on port {self.port}", 10)

    async def kill(self) -> None:
        """SIGKILL it."""
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.kill()
            await asyncio.wait_for(process.wait(), 10)

    async def __aenter__(self) -> RedisProcess:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.kill()
