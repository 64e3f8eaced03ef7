"""``async for message in subscription``: against the real server."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from client_sdk import ClientConfig, IntradayClient, ReconnectFailedError
from client_sdk.hooks import KEEP_LATEST
from client_sdk.protocol import KpiPayload
from reference_server.app import ReferenceServer
from tests.conftest import ServerFactory, kpi

WAIT = 5.0


def config_for(server: ReferenceServer, **changes: Any) -> ClientConfig:
    return ClientConfig(
        url=server.url, user_id="user_1", organization_id="org_a", reconnection_delay=0.05
    ).replace(**changes)


async def test_async_for_yields_only_what_the_subscription_covers_in_order(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    async with IntradayClient(config_for(server)) as client:
        support = await client.subscribe(["kpi"], queue_name="support")
        others = await client.subscribe(["kpi"], queue_name="billing")  # same client, other room
        received: list[float | None] = []

        stream = aiter(support)  # what `async for` does first: from here nothing is missed

        async def read() -> None:
            async for message in stream:
                assert isinstance(message.payload, KpiPayload)
                assert message.target.queue_name == "support"
                received.append(message.payload.health_score)
                if len(received) == 3:
                    return

        reader = asyncio.create_task(read())
        for score in (10, 20, 30):
            await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", "billing", health_score=1))
            await api.post(
                "/api/ws/broadcast/kpi", json=kpi("org_a", "support", health_score=score)
            )
        await asyncio.wait_for(reader, WAIT)
        assert received == [10, 20, 30]
        await others.close()


async def test_closing_the_subscription_ends_the_loop(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    async with IntradayClient(config_for(server)) as client:
        subscription = await client.subscribe(["kpi"], queue_name="support")
        stream = subscription.messages()
        await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", "support"))
        first = await asyncio.wait_for(anext(stream), WAIT)
        assert first.target.queue_name == "support"
        await subscription.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(stream), WAIT)
        assert [m async for m in subscription] == []  # a closed subscription yields nothing


async def test_a_failed_client_raises_its_failure_in_the_loop(make_server: ServerFactory) -> None:
    server = await make_server()
    client = IntradayClient(config_for(server, reconnection_attempts=1))
    await client.connect()
    subscription = await client.subscribe(["kpi"])
    stream = subscription.messages()
    await server.stop()  # the server goes away; one attempt to reconnect fails
    with pytest.raises(ReconnectFailedError):
        await asyncio.wait_for(anext(stream), 30)
    await client.close()


async def test_a_loop_that_falls_behind_says_what_it_dropped(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    async with IntradayClient(config_for(server)) as client:
        subscription = await client.subscribe(["kpi"], queue_name="support")
        latest = subscription.messages(KEEP_LATEST)  # read only after the burst
        arrived = asyncio.Event()
        client.on(on_kpi_update=lambda m: arrived.set() if m.payload.health_score == 3 else None)
        for score in (1, 2, 3):
            await api.post(
                "/api/ws/broadcast/kpi", json=kpi("org_a", "support", health_score=score)
            )
        await asyncio.wait_for(arrived.wait(), WAIT)
        message = await asyncio.wait_for(anext(latest), WAIT)
        assert message.payload.health_score == 3
        assert latest.dropped == 2
        assert client.statistics().messages_dropped == 2
