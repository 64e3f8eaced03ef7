"""The Redis store (``--store redis://``): its figures, and what an outage of Redis does.

While Redis is away a broadcast is refused with 503 ``INTERNAL_ERROR``
(retryable) and reaches nobody: nothing is delivered that was not logged.
Connected clients stay connected, and once Redis is back the next broadcast
is logged and delivered as if nothing happened.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from client_sdk import ConnectionState, IntradayClient
from client_sdk.exceptions import IntradayError
from client_sdk.testing import running_server
from tests.delivery.sequence import ORG, TIMESTAMP, Handled, publish
from tests.processes import RedisProcess
from tests.sdk.conftest import fast_config


@pytest.mark.timeout(90)
async def test_a_redis_outage_refuses_broadcasts_and_loses_nothing_logged(tmp_path: Path) -> None:
    async with (
        RedisProcess(tmp_path, appendonly=True) as redis,
        running_server(store=redis.url) as server,
        server.admin() as admin,
    ):
        health = await admin.health()
        assert health.store is not None
        assert (health.store.kind, health.store.reachable) == ("redis", True)
        async with IntradayClient(fast_config(server.url)) as client:
            handled = Handled(client)
            await client.subscribe(["kpi", "alerts"])
            await publish(admin, 2)
            await handled.until(1)

            await redis.kill()
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                body = {"organization_id": ORG, "timestamp": TIMESTAMP, "n": 4}
                refused = await http.post("/api/ws/broadcast/kpi", json=body)
            assert refused.status_code == 503, refused.text
            error = refused.json()["error"]
            assert (error["code"], error["retryable"]) == ("INTERNAL_ERROR", True)
            stats = await admin.stats()
            assert stats.store is not None
            assert stats.store.reachable is False
            assert client.state is ConnectionState.AUTHENTICATED  # nobody was dropped

            await redis.start()  # the same port and append-only file
            await publish(admin, 6)
            await handled.until(2)
            assert handled.numbers == [2, 6]  # 4 was refused, so nobody got it
            figures = (await admin.stats()).store
            assert figures is not None
            assert (figures.reachable, figures.streams, figures.messages) == (True, 1, 2)


@pytest.mark.timeout(90)
async def test_a_subscribe_refused_during_an_outage_joins_nothing_and_names_no_host(
    tmp_path: Path,
) -> None:
    """Refused: the socket is in none of its rooms, and the message says nothing of Redis."""
    from tests.conftest import SioClient, kpi

    async with (
        RedisProcess(tmp_path, appendonly=True) as redis,
        running_server(store=redis.url) as server,
        server.admin() as admin,
    ):
        await admin.publish_kpi(kpi(ORG))
        client = SioClient(server.url)
        try:
            await client.connect()
            assert (await client.authenticate("bot", ORG))["success"] is True
            await redis.kill()
            since = {"channels": ["kpi"], "since": {f"kpi:{ORG}": 1}}
            refused = await client.call("subscribe", since)
            assert refused["success"] is False
            error = refused["error"]
            assert (error["code"], error["retryable"]) == ("INTERNAL_ERROR", True)
            assert str(redis.port) not in error["message"], error  # was "Error 111 connecting to"
            assert "127.0.0.1" not in error["message"], error

            await redis.start()
            await admin.publish_kpi(kpi(ORG, queue="after"))
            pong = await client.call("client:ping", {"timestamp": 1})
            assert pong["success"] is True
            # Acks follow what was sent before them: the refused subscription received nothing
            # (it had joined its room: the live message reached it and became its position).
            assert client.received("kpi:update") == []
            resumed = await client.call("subscribe", since)
            assert resumed["success"] is True, resumed
            replayed = await client.wait_for("kpi:update")
            assert [e["data"]["queue_name"] for e in replayed] == ["after"]
        finally:
            await client.close()


@pytest.mark.timeout(90)
async def test_a_bot_started_during_an_outage_handles_what_it_missed_once_redis_is_back(
    tmp_path: Path,
) -> None:
    """Issue 22 item 3 end to end: the refused subscribe took neither the next live message
    as the bot's position nor the stored one away, so messages 6-10 were never handled."""
    path = tmp_path / "bot.resume"
    async with (
        RedisProcess(tmp_path, appendonly=True) as redis,
        running_server(store=redis.url) as server,
        server.admin() as admin,
    ):
        config = fast_config(server.url, path=server.path, resume_store=path)
        async with IntradayClient(config) as client:
            first = Handled(client)
            await client.subscribe(["kpi", "alerts"])
            for n in range(1, 6):
                await publish(admin, n)
            await first.until(5)
        for n in range(6, 11):  # while the bot is away: Redis keeps them
            await publish(admin, n)
        await redis.kill()
        async with IntradayClient(config) as client:  # the bot restarts during the outage
            handled = Handled(client)
            with pytest.raises(IntradayError) as refused:
                await client.subscribe(["kpi", "alerts"])
            assert str(redis.port) not in str(refused.value)  # a generic message
            await redis.start()  # the same port and append-only file
            await publish(admin, 11)  # live, before the bot subscribes again
            await client.subscribe(["kpi", "alerts"])
            await handled.until(6)
            handled.assert_exactly(range(6, 12))  # 6-10 were never handled
            assert handled.gaps == []
    first.assert_exactly(range(1, 6))
