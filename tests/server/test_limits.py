"""Limits exactly at and one past each boundary (protocol §8 and docs/protocol.md §8).

What the size limit counts: the Socket.IO packet text as the server receives
it after Engine.IO framing, i.e. exactly ``socketio.packet.Packet(EVENT,
data=[event, body], id=N).encode()`` — ``2`` + ack id + compact JSON, the way
python-socketio encodes an emit (the Engine.IO ``4`` message prefix is not
counted). The server echoes the size it counted in ``details.size``, which
the tests check against their own measurement.

Rate-limit windows are one second long and start at the server's first
event; the server runs in this process and shares ``time.monotonic``, so a
test that needs the next window waits until one second after the *answer* to
the window's first event (the window began before that answer was sent).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import socketio
from socketio import packet as sio_packet

from tests.conftest import SioClient, eventually

ORG_A = {"user_id": "user_1", "organization_id": "org_a"}


async def stats(server: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        response = await http.get("/api/ws/stats")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def ping(client: SioClient) -> dict[str, Any]:
    ack: dict[str, Any] = await client.call("client:ping", {"timestamp": 1})
    return ack


async def wait_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


# -- max_message_size_bytes ---------------------------------------------------

LIMIT = 4096


def auth_body_of_size(size: int, ack_id: int | None) -> dict[str, Any]:
    """An ``authenticate`` body whose encoded packet is exactly ``size`` characters.

    In trust mode the token is not checked and re-authenticating with the same
    ids is idempotent, so the padding lives in ``token``.
    """
    body = {**ORG_A, "token": ""}
    base = len(encoded("authenticate", body, ack_id))
    body["token"] = "t" * (size - base)
    assert len(encoded("authenticate", body, ack_id)) == size
    return body


def encoded(event: str, body: Any, ack_id: int | None) -> str:
    text = sio_packet.Packet(sio_packet.EVENT, data=[event, body], id=ack_id).encode()
    assert isinstance(text, str)
    assert text.isascii()
    return text


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_message_size_exactly_at_the_limit_passes_one_byte_more_is_refused(
    make_server, make_client, transport: str
) -> None:
    server = await make_server(max_message_size_bytes=LIMIT)
    client: SioClient = make_client(server)
    # Handshake auth: no ack id is used before the calls below, so they get ids 1, 2, 3.
    await client.connect(auth=ORG_A, transports=[transport])
    await client.wait_for("authenticated")
    assert client.sio.transport() == transport

    ack = await client.call("authenticate", auth_body_of_size(LIMIT, ack_id=1))
    assert ack["success"] is True, ack

    ack = await client.call("authenticate", auth_body_of_size(LIMIT + 1, ack_id=2))
    assert ack["success"] is False, ack
    error = ack["error"]
    assert error["code"] == "MESSAGE_TOO_LARGE", error
    assert error["retryable"] is False, error
    assert error["details"] == {"size": LIMIT + 1, "limit": LIMIT}

    # The same boundary without an ack id: the answers arrive as events.
    await client.emit("authenticate", auth_body_of_size(LIMIT, ack_id=None))
    await client.wait_for("authenticated", count=2)
    await client.emit("authenticate", auth_body_of_size(LIMIT + 1, ack_id=None))
    [error] = await client.wait_for("error")
    assert error["code"] == "MESSAGE_TOO_LARGE", error
    assert error["details"] == {"size": LIMIT + 1, "limit": LIMIT}

    # The connection stays up and keeps answering (ack id 3).
    assert (await ping(client))["success"] is True
    assert client.sio.connected
    assert not client.disconnected.is_set()
    assert len(client.received("authenticated")) == 2


async def test_message_far_over_the_limit_still_leaves_the_connection_up(
    make_server, make_client
) -> None:
    server = await make_server(max_message_size_bytes=LIMIT)
    client: SioClient = make_client(server)
    await client.connect(auth=ORG_A)
    # Three times the protocol limit: still under the transport's own frame limit,
    # so the server must answer it rather than drop the connection.
    ack = await client.call("client:ping", {"timestamp": 1, "pad": "x" * (3 * LIMIT)})
    assert ack["success"] is False, ack
    assert ack["error"]["code"] == "MESSAGE_TOO_LARGE", ack
    assert (await ping(client))["success"] is True
    assert len(server.hub.registry) == 1


# -- rate_limit_messages_per_second -------------------------------------------

RATE = 10


async def burst(client: SioClient, count: int) -> tuple[list[dict[str, Any]], float]:
    """``count`` pings as fast as acks allow; the answers and when the first came back."""
    acks = [await ping(client)]
    first_answered = time.monotonic()
    for _ in range(count - 1):
        acks.append(await ping(client))
    return acks, first_answered


async def test_rate_limit_allows_exactly_the_limit_per_second(make_server, make_client):
    server = await make_server(rate_limit_messages_per_second=RATE, rate_limit_strikes=2)
    client: SioClient = make_client(server)
    await client.connect(auth=ORG_A)
    started = time.monotonic()
    acks, _ = await burst(client, RATE + 1)
    assert time.monotonic() - started < 1.0, "the burst must fit in one window"
    assert all(ack["success"] is True for ack in acks[:RATE]), acks
    assert acks[RATE]["success"] is False
    error = acks[RATE]["error"]
    assert error["code"] == "RATE_LIMIT_EXCEEDED", error
    assert error["retryable"] is True, error
    assert error["details"]["limit"] == RATE
    # Without an ack the refusal is an ``error`` event.
    await client.emit("client:ping", {"timestamp": 1})
    [event_error] = await client.wait_for("error")
    assert event_error["code"] == "RATE_LIMIT_EXCEEDED"
    assert client.sio.connected


async def test_rate_limit_disconnects_a_client_that_keeps_exceeding(make_server, make_client):
    server = await make_server(rate_limit_messages_per_second=RATE, rate_limit_strikes=2)
    client: SioClient = make_client(server)
    await client.connect(auth=ORG_A)
    acks, first_answered = await burst(client, RATE + 1)
    assert acks[RATE]["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert client.sio.connected, "one strike must not disconnect"

    await wait_until(first_answered + 1.05)
    acks, _ = await burst(client, RATE)
    assert all(ack["success"] is True for ack in acks), "a new window must have begun"
    # Event RATE + 1 of the second consecutive window: refused, then disconnected.
    await client.emit("client:ping", {"timestamp": 1})
    [error] = await client.wait_for("error")
    assert error["code"] == "RATE_LIMIT_EXCEEDED", error
    await asyncio.wait_for(client.disconnected.wait(), 5)
    await eventually(lambda: _active_is(server, 0))


async def test_rate_limit_forgives_a_client_that_exceeds_once_then_behaves(
    make_server, make_client
) -> None:
    server = await make_server(rate_limit_messages_per_second=RATE, rate_limit_strikes=2)
    client: SioClient = make_client(server)
    await client.connect(auth=ORG_A)
    acks, first_answered = await burst(client, RATE + 1)
    assert acks[RATE]["error"]["code"] == "RATE_LIMIT_EXCEEDED"

    # Next window: within the limit.
    await wait_until(first_answered + 1.05)
    acks, second_answered = await burst(client, RATE // 2)
    assert all(ack["success"] is True for ack in acks), acks

    # The window after that: exceeding once more is a first strike again, not the second.
    await wait_until(second_answered + 1.05)
    acks, _ = await burst(client, RATE + 1)
    assert acks[RATE]["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    await client.emit("client:ping", {"timestamp": 1})
    await client.wait_for("error")
    assert client.sio.connected
    assert not client.disconnected.is_set()
    assert len(server.hub.registry) == 1


async def _active_is(server: Any, count: int) -> bool:
    return bool((await stats(server))["active_connections"] == count)


# -- max_connections_per_org --------------------------------------------------


async def test_connection_limit_per_org(make_server, make_client):
    server = await make_server(max_connections_per_org=2)
    first: SioClient = make_client(server)
    await first.connect()
    assert (await first.authenticate("user_1", "org_a"))["success"] is True
    second: SioClient = make_client(server)
    await second.connect(auth={"user_id": "user_2", "organization_id": "org_a"})
    await second.wait_for("authenticated")

    # Third by event: refused in the ack, retryable; the socket stays connected.
    third: SioClient = make_client(server)
    await third.connect()
    ack = await third.authenticate("user_3", "org_a")
    assert ack["success"] is False, ack
    assert ack["error"]["code"] == "CONNECTION_LIMIT"
    assert ack["error"]["retryable"] is True
    assert (await ping(third))["success"] is True

    # Third by handshake auth: the handshake is refused with the ERROR as data.
    fourth: SioClient = make_client(server)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await fourth.connect(auth={"user_id": "user_4", "organization_id": "org_a"})
    data = fourth.connect_error["data"]
    assert data["code"] == "CONNECTION_LIMIT", data
    assert data["retryable"] is True, data

    # Another organization is unaffected.
    other: SioClient = make_client(server)
    await other.connect(auth={"user_id": "user_9", "organization_id": "org_b"})
    await other.wait_for("authenticated")
    assert (await stats(server))["connections_by_org"] == {"org_a": 2, "org_b": 1}

    # Once one of org_a's sockets is gone (as the server sees it), a new one is admitted.
    await first.close()
    await eventually(
        lambda: _org_count_is(server, "org_a", 1),
    )
    ack = await third.authenticate("user_3", "org_a")
    assert ack["success"] is True, ack
    assert (await stats(server))["connections_by_org"] == {"org_a": 2, "org_b": 1}


async def _org_count_is(server: Any, org: str, count: int) -> bool:
    return bool((await stats(server))["connections_by_org"].get(org, 0) == count)


# -- max_connections_total ----------------------------------------------------


async def test_connection_limit_total_refuses_the_fourth_handshake(make_server, make_client):
    server = await make_server(max_connections_total=3)
    clients: list[SioClient] = []
    for _ in range(3):
        client: SioClient = make_client(server)
        await client.connect()
        clients.append(client)
    fourth: SioClient = make_client(server)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await fourth.connect(auth={"user_id": "user_4", "organization_id": "org_a"})
    data = fourth.connect_error["data"]
    assert data["code"] == "CONNECTION_LIMIT", data
    assert data["retryable"] is True, data
    assert isinstance(data["message"], str)
    assert data["message"]
    assert (await stats(server))["active_connections"] == 3

    await clients[0].close()
    await eventually(lambda: _active_is(server, 2))
    again: SioClient = make_client(server)
    await again.connect(auth={"user_id": "user_4", "organization_id": "org_a"})
    await again.wait_for("authenticated")


# -- room_max_size ------------------------------------------------------------


async def test_room_full_joins_nothing_of_a_multi_channel_subscribe(make_server, make_client):
    server = await make_server(room_max_size=2)
    members: list[SioClient] = []
    for n in (1, 2):
        client: SioClient = make_client(server)
        await client.connect(auth={"user_id": f"user_{n}", "organization_id": "org_a"})
        ack = await client.call("subscribe", {"channels": ["kpi"]})
        assert ack["success"] is True, ack
        members.append(client)

    third: SioClient = make_client(server)
    await third.connect(auth={"user_id": "user_3", "organization_id": "org_a"})
    ack = await third.call("subscribe", {"channels": ["backlog", "kpi"]})
    assert ack["success"] is False, ack
    assert ack["error"]["code"] == "ROOM_FULL"
    assert ack["error"]["retryable"] is True
    assert ack["error"]["details"]["rooms"] == ["kpi:org:org_a"]
    # Nothing joined: not even the backlog room, which had space.
    assert "backlog:org:org_a" not in server.hub.registry.rooms()
    ack = await third.call("unsubscribe", {"rooms": []})
    assert ack == {"success": True, "subscriptions": []}
    # Under the limit on its own, the backlog room is joined.
    ack = await third.call("subscribe", {"channels": ["backlog"]})
    assert ack == {"success": True, "subscriptions": ["backlog:org:org_a"]}

    # A member leaves: the room has space again.
    await members[0].call("unsubscribe", {"channels": ["kpi"]})
    ack = await third.call("subscribe", {"channels": ["kpi"]})
    assert ack["success"] is True, ack
    assert server.hub.registry.member_count("kpi:org:org_a") == 2


# -- room clean-up ------------------------------------------------------------


async def test_empty_rooms_are_cleaned_up(make_server, make_client):
    server = await make_server()
    registry = server.hub.registry
    client: SioClient = make_client(server)
    await client.connect(auth=ORG_A)
    other: SioClient = make_client(server)
    await other.connect(auth={"user_id": "user_2", "organization_id": "org_a"})
    for member in (client, other):
        ack = await member.call("subscribe", {"channels": ["kpi"], "queue_name": "support"})
        assert ack["success"] is True, ack
    assert registry.known_room_count() == 2  # org:org_a and the queue room

    await client.call("unsubscribe", {"channels": ["kpi"], "queue_name": "support"})
    await other.call("unsubscribe", {"channels": ["kpi"], "queue_name": "support"})
    assert "kpi:org:org_a:queue:support" not in registry.rooms()

    async def cleaned() -> bool:
        return registry.known_room_count() == 1

    await eventually(cleaned, timeout=5)

    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        rooms = (await http.get("/api/ws/rooms")).json()["rooms"]
    assert [room["name"] for room in rooms] == ["org:org_a"]

    # Everyone disconnects: the organization room goes too.
    await client.close()
    await other.close()

    async def all_gone() -> bool:
        return registry.known_room_count() == 0

    await eventually(all_gone, timeout=5)
