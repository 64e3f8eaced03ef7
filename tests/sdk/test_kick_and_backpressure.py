"""A server's kick is terminal for the SDK, and the handler path is bounded (issue 14).

Against the real reference server: after ``DELETE /connections/{id}`` or the
rate-limit disconnect the client stays out (state ``disconnected``, no new
socket on the server) unless the application set ``reconnect_after_kick``;
``client.on(...)`` handlers slower than the feed make the oldest waiting
events drop, counted, instead of an unbounded backlog.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from client_sdk import ClientConfig, ConnectionState, IntradayClient, Message
from client_sdk.hooks import BUFFER
from client_sdk.protocol import KpiPayload
from reference_server.app import ReferenceServer
from tests.conftest import ServerFactory, eventually, kpi

WAIT = 5.0


def config_for(server: ReferenceServer, **changes: Any) -> ClientConfig:
    return ClientConfig(
        url=server.url,
        user_id="user_1",
        organization_id="org_a",
        reconnection_delay=0.01,
        reconnection_delay_max=0.05,
    ).replace(**changes)


async def test_an_admin_kick_is_terminal(server: ReferenceServer, api: httpx.AsyncClient) -> None:
    reasons: list[str] = []
    async with IntradayClient(config_for(server)) as client:
        client.on(on_disconnect=reasons.append)
        response = await api.delete(f"/api/ws/connections/{client.socket_id}")
        assert response.status_code == 200
        state = await client.wait_for_state(ConnectionState.DISCONNECTED, timeout=WAIT)
        assert state is ConnectionState.DISCONNECTED
        assert reasons == ["server disconnect"]
        # A barrier: a second client's whole connect round trip. The kicked
        # client's supervisor has ended, so the server sees only the second one.
        async with IntradayClient(config_for(server, user_id="user_2")) as other:
            listed = (await api.get("/api/ws/connections")).json()["connections"]
            assert [c["socket_id"] for c in listed] == [other.socket_id]
        assert client.state is ConnectionState.DISCONNECTED
        assert client.statistics().reconnects == 0


async def test_a_rate_limit_disconnect_is_terminal(make_server: ServerFactory) -> None:
    server = await make_server(rate_limit_messages_per_second=5, rate_limit_strikes=1)
    async with IntradayClient(config_for(server)) as client:
        results = await asyncio.gather(*(client.ping() for _ in range(20)), return_exceptions=True)
        assert any(isinstance(r, Exception) for r in results)
        state = await client.wait_for_state(ConnectionState.DISCONNECTED, timeout=WAIT)
        assert state is ConnectionState.DISCONNECTED
        assert len(server.hub.registry) == 0


async def test_the_application_may_ask_for_kicks_to_be_retried(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    async with IntradayClient(config_for(server, reconnect_after_kick=True)) as client:
        old = client.socket_id
        await api.delete(f"/api/ws/connections/{old}")
        await client.wait_for_state(ConnectionState.RECONNECTING, timeout=WAIT)
        await client.wait_for_state(ConnectionState.AUTHENTICATED, timeout=WAIT)
        assert client.socket_id not in (None, old)


async def test_slow_handlers_get_a_bounded_queue_with_counted_drops_and_lose_nothing(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    release = asyncio.Event()
    seen: list[int] = []

    async def first_held() -> bool:
        return seen == [0]

    async def slow(message: Message[KpiPayload]) -> None:
        seen.append(int(message.payload.model_extra["n"]))  # type: ignore[index]
        await release.wait()  # the first message blocks the handler path

    async with IntradayClient(config_for(server, handler_backpressure=BUFFER(10))) as client:
        client.on(on_kpi_update=slow)
        await client.subscribe(["kpi"], queue_name="support")
        for n in range(50):
            response = await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", n=n))
            assert response.status_code == 200
            if n == 0:
                # The handler holds the first before the rest arrive (posts on a kept-alive
                # connection take a millisecond: the rest could otherwise share its batch).
                await eventually(first_held)

        async def all_arrived() -> bool:
            return client.statistics().messages_dropped == 39

        await eventually(all_arrived)
        stats = client.statistics()
        assert stats.dispatch_queue_depth == 10
        release.set()

        async def drained() -> bool:
            return len(seen) == 50

        await eventually(drained)
        # The first (being handled), the ten that waited, then the 39 dropped,
        # asked for again once the queue drained: nothing lost, in order.
        assert seen == list(range(50))
        assert client.statistics().gaps == 0
