"""A server-side disconnect closes the transport, and sessions without a socket are bounded.

Issue 14, "Disconnect means disconnect", from outside with raw Engine.IO
frames: after the auth timeout, the rate-limit disconnect and an admin kick,
the same client cannot send ``40`` again and get a new socket; an Engine.IO
session that never sends CONNECT is timed out and counts against
``max_connections_total``; CONNECT packets are rate-limited; refused
CONNECTs carry the protocol's ERROR.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import ServerFactory
from tests.server.raw_eio import RawEngineIO, connect_error

ORG_A = {"user_id": "user_1", "organization_id": "org_a"}


async def stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        body: dict[str, Any] = (await http.get("/api/ws/stats")).json()
    return body


async def assert_cannot_reconnect(raw: RawEngineIO) -> list[str]:
    """The session is closed: a new CONNECT gets no socket (the WebSocket ends)."""
    frames = await raw.wait_closed()
    with pytest.raises(ConnectionClosed):
        await raw.connect()
    return frames


async def test_auth_timeout_closes_the_session(make_server: ServerFactory) -> None:
    server = await make_server(auth_timeout_ms=300)
    raw = await RawEngineIO.open(server.url)
    assert (await raw.connect()).startswith("40{")
    frames = await assert_cannot_reconnect(raw)
    error = json.loads(frames[0][2:])
    assert error == ["error", {**error[1], "code": "AUTH_FAILED"}]
    assert error[1]["message"] == "authentication timeout"
    assert frames[-1] == "41"
    assert len(server.hub.registry) == 0
    assert (await stats(server.url))["disconnects_by_reason"]["auth_timeout"] == 1


async def test_rate_limit_disconnect_closes_the_session(make_server: ServerFactory) -> None:
    server = await make_server(rate_limit_messages_per_second=5, rate_limit_strikes=1)
    raw = await RawEngineIO.open(server.url)
    await raw.connect()
    assert (await raw.call(1, "authenticate", ORG_A))["success"] is True
    for n in range(10):
        with contextlib.suppress(ConnectionClosed):
            await raw.send(f"42{n + 2}" + json.dumps(["client:ping", {}]))
    frames = await assert_cannot_reconnect(raw)
    assert "41" in frames
    assert len(server.hub.registry) == 0


async def test_admin_kick_closes_the_session(make_server: ServerFactory) -> None:
    server = await make_server()
    raw = await RawEngineIO.open(server.url)
    sid = json.loads((await raw.connect())[2:])["sid"]
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        response = await http.delete(f"/api/ws/connections/{sid}")
    assert response.status_code == 200
    frames = await assert_cannot_reconnect(raw)
    assert frames == ["41"]
    assert len(server.hub.registry) == 0


async def test_sessions_without_connect_count_and_expire(make_server: ServerFactory) -> None:
    # The auth timeout outlasts the 40 opens even on a loaded machine: a session that
    # expired meanwhile would free a place and let one more in (CI's 3.11 run: 22).
    server = await make_server(max_connections_total=5, auth_timeout_ms=4000)
    admitted: list[RawEngineIO] = []
    refused = 0
    for _ in range(40):
        try:
            admitted.append(await RawEngineIO.open(server.url))
        except InvalidStatus:
            refused += 1
    # The cap plus the few a full server admits to refuse their CONNECT properly.
    assert len(admitted) <= 5 + 16
    assert refused >= 40 - 21
    late = await RawEngineIO.open(server.url) if len(admitted) < 21 else None
    assert late is None
    # A legitimate client meanwhile is refused with the protocol's error, not hung.
    extra = admitted[-1]
    error = connect_error(await extra.connect(ORG_A))
    assert error["code"] == "CONNECTION_LIMIT"
    # None of them ever sent CONNECT: each is closed by the auth timeout.
    await asyncio.gather(*(raw.wait_closed(timeout=10) for raw in admitted[:-1]))
    assert server.hub.reserved == 0
    fresh = await RawEngineIO.open(server.url)
    assert (await fresh.connect()).startswith("40{")
    await fresh.close()


async def test_connect_packets_are_rate_limited(make_server: ServerFactory) -> None:
    server = await make_server(handshake_rate_limit_per_second=5)
    raw = await RawEngineIO.open(server.url)
    accepted = 0
    refusal: dict[str, Any] | None = None
    with contextlib.suppress(ConnectionClosed):
        for _ in range(50):
            answer = await raw.connect()
            if answer.startswith("44"):
                refusal = connect_error(answer)
                break
            accepted += 1
            await raw.send("41")
    assert accepted == 5
    assert refusal is not None
    assert refusal["code"] == "RATE_LIMIT_EXCEEDED"
    await raw.wait_closed()
    assert len(server.hub.registry) == 0


async def test_second_connect_and_unknown_namespace_carry_the_protocol_error(
    make_server: ServerFactory,
) -> None:
    server = await make_server()
    raw = await RawEngineIO.open(server.url)
    assert (await raw.connect()).startswith("40{")
    again = connect_error(await raw.connect())
    assert again["code"] == "INVALID_MESSAGE"
    assert "already connected" in again["message"]
    await raw.send("40/admin,")
    other = connect_error(await raw.recv())
    assert other["code"] == "INVALID_MESSAGE"
    assert "namespace" in other["message"]
    # The first socket is still there and works.
    assert (await raw.call(1, "authenticate", ORG_A))["success"] is True
    await raw.close()


async def test_a_polling_client_hears_the_kick_before_its_session_ends(
    make_server: ServerFactory,
) -> None:
    """A polling client may have no GET pending: it still gets the DISCONNECT, then the end."""
    from tests.conftest import SioClient

    server = await make_server()
    client = SioClient(server.url)
    await client.connect(transports=["polling"])
    sid = client.sio.get_sid()
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        assert (await http.delete(f"/api/ws/connections/{sid}")).status_code == 200
    await asyncio.wait_for(client.disconnected.wait(), 5)
    assert client.disconnect_reason == "server disconnect"
    assert len(server.hub.registry) == 0
