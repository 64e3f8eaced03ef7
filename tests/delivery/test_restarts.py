"""Nothing lost across a server's death or a bot's absence (section 6), with real processes.

- The server subprocess is SIGKILLed and started again on its port twenty
  times while a numbered sequence is published: with the Redis store, the
  client's handlers see every number once, each stream in order, and no gap;
  with the memory store every restart is a gap the client reports.
- A bot process stopped for a minute while 500 alerts are published, then
  started again with its ``resume_store``: it handles all 500, in order, once.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from client_sdk import ConnectionState, IntradayClient
from client_sdk.admin import AdminClient
from client_sdk.gaps import GapReason
from client_sdk.testing import running_server
from tests.delivery.sequence import Handled, publish
from tests.processes import ROOT, RedisProcess, ServerProcess, free_port
from tests.sdk.conftest import fast_config

OFFLINE_SECONDS = float(os.environ.get("INTRADAY_TEST_OFFLINE_SECONDS", "60"))
"""How long the bot stays stopped (the issue's minute; shorter for a quick local run)."""


async def _run_restarts(
    server: ServerProcess, restarts: int, per_round: int, *, wait_reconnect: bool = False
) -> tuple[Handled, int]:
    """Publish ``per_round`` numbers, kill and restart the server; ``restarts`` times.

    With ``wait_reconnect`` each new server is given the client before it dies;
    without, the client may find a server already gone (the harder case).
    """
    await server.start()
    config = fast_config(server.url, reconnection_attempts=None)
    async with IntradayClient(config) as client:
        handled = Handled(client)
        await client.subscribe(["kpi", "alerts"])
        n = 0
        for round_ in range(restarts):
            async with AdminClient(server.url) as admin:
                for _ in range(per_round):
                    n += 1
                    await publish(admin, n)
            await server.kill()  # some of those may still be on their way
            await server.start()
            if wait_reconnect:
                await handled.until_reconnects(round_ + 1)
        async with AdminClient(server.url) as admin:
            for _ in range(per_round):
                n += 1
                await publish(admin, n)
        await client.wait_for_state(ConnectionState.AUTHENTICATED, timeout=20)
        if not handled.gaps:
            await handled.until(n, timeout=30)
        return handled, n


@pytest.mark.timeout(240)
async def test_twenty_server_kills_with_the_redis_store_lose_nothing(tmp_path: Path) -> None:
    async with RedisProcess(tmp_path) as redis:
        server = ServerProcess(free_port(), args=["--store", redis.url], log=tmp_path / "s.log")
        try:
            handled, total = await _run_restarts(server, restarts=20, per_round=6)
        finally:
            await server.kill()
    handled.assert_exactly(range(1, total + 1))
    assert handled.gaps == []


@pytest.mark.timeout(120)
async def test_server_kills_with_the_memory_store_are_gaps_not_silence(tmp_path: Path) -> None:
    server = ServerProcess(free_port(), log=tmp_path / "s.log")
    try:
        handled, _ = await _run_restarts(server, restarts=5, per_round=6, wait_reconnect=True)
        await handled.until_gaps(10)  # two streams, five restarts
    finally:
        await server.kill()
    assert {gap.reason for gap in handled.gaps} == {GapReason.EPOCH_CHANGED}
    assert sorted({gap.stream for gap in handled.gaps}) == ["alerts:org_a", "kpi:org_a"]
    # What did arrive is still each stream in order, and nothing twice.
    assert len(set(handled.numbers)) == len(handled.numbers)
    for parity in (0, 1):
        stream = [n for n in handled.numbers if n % 2 == parity]
        assert stream == sorted(stream)


class Bot:
    """The bot subprocess, and the lines it printed: ``(n, replayed)`` of each alert handled."""

    def __init__(self, url: str, resume: Path) -> None:
        self._url = url
        self._resume = resume
        self.handled: list[tuple[int, bool]] = []
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.delivery.bot", self._url, str(self._resume),
            cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        # A resumed bot may handle its replay before its subscribe call returns.
        while (line := await self._line(20)) != "subscribed":
            self._record(line)

    def _record(self, line: str) -> None:
        n, replayed = line.split()
        self.handled.append((int(n), replayed == "1"))

    async def _line(self, timeout: float) -> str:
        assert self._process is not None
        assert self._process.stdout is not None
        raw = await asyncio.wait_for(self._process.stdout.readline(), timeout)
        assert raw, "the bot stopped"
        return raw.decode().strip()

    async def until(self, count: int, timeout: float = 60) -> None:
        """Read what it prints until it has handled ``count`` alerts in all."""
        async with asyncio.timeout(timeout):
            while len(self.handled) < count:
                self._record(await self._line(timeout))

    async def stop(self) -> int:
        """SIGTERM, and its exit status."""
        process, self._process = self._process, None
        assert process is not None
        if process.returncode is None:
            process.terminate()
        return await asyncio.wait_for(process.wait(), 20)


@pytest.mark.timeout(OFFLINE_SECONDS + 120)
async def test_a_bot_stopped_while_500_alerts_were_published_handles_each_once(
    tmp_path: Path,
) -> None:
    async with running_server() as server, server.admin() as admin:
        bot = Bot(server.url, tmp_path / "bot.resume")
        await bot.start()
        for n in range(1, 21, 2):
            await publish(admin, n)  # alerts 1, 3, ..., 19
        await bot.until(10)
        assert await bot.stop() == 0
        # Away for a while; 500 alerts in the meantime, spread over the time.
        pause = OFFLINE_SECONDS / 500
        for n in range(21, 21 + 1000, 2):
            await publish(admin, n)
            await asyncio.sleep(pause)
        await bot.start()
        try:
            await bot.until(510)
        finally:
            assert await bot.stop() == 0
    numbers = [n for n, _ in bot.handled]
    assert numbers == list(range(1, 21 + 1000, 2)), "lost, doubled or out of order"
    assert all(replayed for n, replayed in bot.handled if n > 20)  # the 500 came as a replay
