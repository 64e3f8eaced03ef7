"""IntradayClient against the real reference server: the everyday path."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import httpx
import pytest

import client_sdk
from client_sdk import (
    AuthenticationError,
    ClientClosedError,
    ClientConfig,
    ConnectionLostError,
    ConnectionState,
    IntradayClient,
    Message,
    UnauthorizedError,
)
from client_sdk.protocol import KpiPayload
from reference_server.app import ReferenceServer
from tests.conftest import eventually, kpi
from tests.sdk.conftest import fast_config


async def test_connects_authenticates_and_receives_typed_messages(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    received: asyncio.Queue[Message[KpiPayload]] = asyncio.Queue()
    async with IntradayClient(fast_config(server.url)) as client:
        assert client.state is ConnectionState.AUTHENTICATED
        assert client.identity is not None
        assert client.identity.organization_id == "org_a"
        client.on(on_kpi_update=received.put_nowait)
        subscription = await client.subscribe(["kpi"], queue_name="support")
        assert subscription.rooms == ("kpi:org:org_a:queue:support",)
        response = await api.post("/api/ws/broadcast/kpi", json=kpi("org_a"))
        message = await asyncio.wait_for(received.get(), 5)
        assert isinstance(message.payload, KpiPayload)
        assert message.payload.health_score == 90
        assert message.id == response.json()["message_id"]
        assert client.statistics().messages_received == 1


async def test_closing_a_subscription_leaves_its_room_on_the_server(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    async with IntradayClient(fast_config(server.url)) as client:
        first = await client.subscribe(["kpi", "alerts"], queue_name="support")
        second = await client.subscribe(["kpi"], queue_name="support")
        url = f"/api/ws/connections/{client.socket_id}"
        assert (await api.get(url)).json()["connection"]["subscriptions"] == [
            "alerts:org:org_a:queue:support",
            "kpi:org:org_a:queue:support",
        ]
        await first.close()
        # The kpi room is still needed by the second handle.
        assert (await api.get(url)).json()["connection"]["subscriptions"] == [
            "kpi:org:org_a:queue:support"
        ]
        async with second:
            pass
        assert (await api.get(url)).json()["connection"]["subscriptions"] == []
        assert client.statistics().subscriptions == 0


async def test_server_refusals_raise_the_matching_exception(server: ReferenceServer) -> None:
    async with IntradayClient(fast_config(server.url)) as client:
        with pytest.raises(UnauthorizedError) as refused:
            await client.subscribe(["kpi"], organization_id="org_b")
        assert refused.value.retryable is False
        with pytest.raises(ValueError, match="user_id"):  # refused before it is sent
            await client.authenticate("user:1", "org_a")
        with pytest.raises(UnauthorizedError):
            await client.authenticate("someone_else", "org_a")
        assert client.statistics().subscriptions == 0
        assert await client.ping() < 5


async def test_jwt_rejection_fails_without_retrying(make_server: Any) -> None:
    server = await make_server(auth_mode="jwt", jwt_secret="s3cret")
    client = IntradayClient(fast_config(server.url, token="not-a-jwt", reconnection_attempts=5))
    with pytest.raises(AuthenticationError) as refused:
        await client.connect()
    assert refused.value.reason == "token_invalid"
    assert client.state is ConnectionState.FAILED
    assert isinstance(client.failure, AuthenticationError)
    await client.close()


async def test_handler_names_are_checked_and_handlers_can_be_removed(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    calls: list[str] = []
    async with IntradayClient(fast_config(server.url)) as client:
        with pytest.raises(TypeError, match="on_kpi_updates"):
            client.on(on_kpi_updates=print)  # type: ignore[call-arg]
        remove = client.on(on_kpi_update=lambda m: calls.append("sync"))

        async def async_handler(message: Message[KpiPayload]) -> None:
            calls.append("async")

        client.on(on_kpi_update=async_handler)
        await client.subscribe(["kpi"])
        await api.post("/api/ws/broadcast/kpi", json=kpi("org_a"))
        await _until(lambda: len(calls) == 2)
        remove()
        await api.post("/api/ws/broadcast/kpi", json=kpi("org_a"))
        await _until(lambda: len(calls) == 3)
        assert sorted(calls) == ["async", "async", "sync"]


async def _until(condition: Any) -> None:
    async def check() -> bool:
        return bool(condition())

    await eventually(check)


async def test_a_closed_client_refuses_use(server: ReferenceServer) -> None:
    client = IntradayClient(fast_config(server.url))
    await client.connect()
    await client.close()
    await client.close()  # idempotent
    assert client.state is ConnectionState.DISCONNECTED
    with pytest.raises(ClientClosedError):
        await client.connect()
    with pytest.raises(ClientClosedError):
        await client.subscribe(["kpi"])


async def test_requests_before_connecting_raise_connection_lost() -> None:
    client = IntradayClient(ClientConfig(url="http://127.0.0.1:9"))
    with pytest.raises(ConnectionLostError):
        await client.ping()


def test_config_is_validated_and_replaced() -> None:
    config = ClientConfig()
    assert (config.path, config.reconnection_attempts, config.reconnection_delay) == ("/ws", 5, 1.0)
    assert config.timeout == 20.0
    assert config.replace(reconnection_attempts=None).reconnection_attempts is None
    with pytest.raises(ValueError, match="user_id"):
        ClientConfig(user_id="u")
    with pytest.raises(ValueError, match="organization_id"):
        ClientConfig(user_id="u", organization_id="a:b")
    with pytest.raises(ValueError, match="url"):
        ClientConfig(url="localhost:5000")
    with pytest.raises(ValueError, match="jitter"):
        ClientConfig(jitter=2)


def test_public_names_are_pinned() -> None:
    assert sorted(client_sdk.__all__) == sorted(set(client_sdk.__all__))
    for name in client_sdk.__all__:
        assert hasattr(client_sdk, name), name
        obj = getattr(client_sdk, name)
        if isinstance(obj, type) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name} has no docstring"
