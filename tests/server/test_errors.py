"""Every protocol error code, provoked for real against the reference server (protocol §8).

Each refusal is checked twice on the same connection: once with an ack
(``call``), where the error must arrive as ``{"success": false, "error": ERROR}``
and *not* also as an ``error`` event, and once without one (``emit``), where it
must arrive as the ``error`` event. After each error a ``client:ping`` round
trip proves the connection is still usable, except where a rule says the
server disconnects.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest
import socketio

from tests.conftest import SioClient

JWT_SECRET = "test-secret-of-at-least-thirty-two-bytes!"


async def assert_usable(client: SioClient) -> None:
    """A ``client:ping`` round trip: the connection still answers requests."""
    ack = await client.call("client:ping", {"timestamp": 7})
    assert ack["success"] is True, ack
    assert client.sio.connected


def check_error(error: Any, code: str, retryable: bool) -> None:
    assert isinstance(error, dict), error
    assert error["code"] == code, error
    assert error["retryable"] is retryable, error
    assert isinstance(error["message"], str), error
    assert error["message"], error
    assert "Traceback" not in str(error)


async def assert_refused(
    client: SioClient, event: str, data: Any, code: str, *, retryable: bool
) -> dict[str, Any]:
    """Refused in the ack with ``call``, as an ``error`` event with ``emit``; still usable."""
    errors_before = len(client.received("error"))
    ack = await client.call(event, data)
    assert ack["success"] is False, ack
    check_error(ack["error"], code, retryable)
    # The ping answer comes after any error event the call could have caused.
    await assert_usable(client)
    assert len(client.received("error")) == errors_before, "error sent both in ack and as event"

    await client.emit(event, data)
    errors = await client.wait_for("error", count=errors_before + 1)
    check_error(errors[errors_before], code, retryable)
    await assert_usable(client)
    error: dict[str, Any] = ack["error"]
    return error


def token(user_id: str = "user_1", org: str = "org_a", *, expires_in: float = 60.0) -> str:
    claims = {"sub": user_id, "org": org, "exp": int(time.time() + expires_in)}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


# -- AUTH_FAILED --------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_token", "reason"),
    [
        ("not-a-jwt", "token_invalid"),
        (jwt.encode({"sub": "user_1", "org": "org_a", "exp": 9_999_999_999}, "x" * 40), None),
        (None, "token_missing"),
    ],
    ids=["malformed", "wrong-key", "missing"],
)
async def test_auth_failed_for_a_bad_token_in_jwt_mode(
    make_server, make_client, bad_token: str | None, reason: str | None
) -> None:
    server = await make_server(auth_mode="jwt", jwt_secret=JWT_SECRET)
    client: SioClient = make_client(server)
    await client.connect()
    request: dict[str, Any] = {"user_id": "user_1", "organization_id": "org_a"}
    if bad_token is not None:
        request["token"] = bad_token
    error = await assert_refused(client, "authenticate", request, "AUTH_FAILED", retryable=False)
    if reason is not None:
        assert error["details"]["reason"] == reason
    # A valid token on the same socket still succeeds: the failures were not sticky.
    ack = await client.call("authenticate", {**request, "token": token()})
    assert ack["success"] is True, ack


async def test_auth_failed_for_an_expired_token_says_token_expired(make_server, make_client):
    server = await make_server(auth_mode="jwt", jwt_secret=JWT_SECRET)
    client: SioClient = make_client(server)
    await client.connect()
    request = {"user_id": "user_1", "organization_id": "org_a", "token": token(expires_in=-60)}
    error = await assert_refused(client, "authenticate", request, "AUTH_FAILED", retryable=False)
    assert error["details"]["reason"] == "token_expired"


async def test_auth_failed_at_the_handshake_refuses_the_connection(make_server, make_client):
    server = await make_server(auth_mode="jwt", jwt_secret=JWT_SECRET)
    client: SioClient = make_client(server)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            auth={"user_id": "user_1", "organization_id": "org_a", "token": "not-a-jwt"}
        )
    check_error(client.connect_error["data"], "AUTH_FAILED", retryable=False)
    assert len(server.hub.registry) == 0


async def test_auth_timeout_sends_auth_failed_then_disconnects(make_server, make_client):
    server = await make_server(auth_timeout_ms=300)
    client: SioClient = make_client(server)
    await client.connect()
    [error] = await client.wait_for("error")
    check_error(error, "AUTH_FAILED", retryable=False)
    assert error["message"] == "authentication timeout"
    await asyncio.wait_for(client.disconnected.wait(), 5)


# -- UNAUTHORIZED -------------------------------------------------------------


async def test_unauthorized_subscribe_before_authenticating(server, make_client):
    client: SioClient = make_client(server)
    await client.connect()
    await assert_refused(
        client, "subscribe", {"channels": ["kpi"]}, "UNAUTHORIZED", retryable=False
    )
    assert server.hub.registry.rooms() == {}


@pytest.mark.parametrize(
    ("event", "data"),
    [
        ("subscribe", {"channels": ["kpi"], "organization_id": "org_b"}),
        ("authenticate", {"user_id": "user_2", "organization_id": "org_a"}),
        ("authenticate", {"user_id": "user_1", "organization_id": "org_b"}),
        ("unsubscribe", {"rooms": ["org:org_a"]}),
        ("unsubscribe", {"rooms": ["kpi:org:org_b"]}),
    ],
    ids=["other-org-subscribe", "reauth-other-user", "reauth-other-org", "org-room", "other-room"],
)
async def test_unauthorized_for_another_identity_or_organization(authed, event, data) -> None:
    client: SioClient = await authed("user_1", "org_a")
    await assert_refused(client, event, data, "UNAUTHORIZED", retryable=False)
    # The socket is still user_1 of org_a.
    ack = await client.authenticate("user_1", "org_a")
    assert ack["success"] is True, ack
    assert ack["organization_id"] == "org_a", ack


# -- INVALID_MESSAGE ----------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "data"),
    [
        ("client:bogus", {}),
        ("kpi:update", {"organization_id": "org_a"}),
        ("client:ping", "a string"),
        ("client:ping", [1, 2]),
        ("client:ping", 42),
        ("subscribe", {"channels": ["nope"]}),
        ("subscribe", {"channels": []}),
        ("subscribe", {"channels": ["kpi"], "queue": "support"}),
        ("subscribe", {"channels": ["kpi"], "queue_name": "bad:queue"}),
        ("subscribe", {"channels": "kpi"}),
        ("client:ping", ({"timestamp": 1}, {"timestamp": 2})),
    ],
    ids=[
        "unknown-event",
        "server-event-from-client",
        "string-data",
        "list-data",
        "number-data",
        "unknown-channel",
        "no-channels",
        "unknown-field",
        "colon-in-identifier",
        "channels-not-a-list",
        "two-arguments",
    ],
)
async def test_invalid_message(authed, server, event: str, data: Any) -> None:
    client: SioClient = await authed()
    await assert_refused(client, event, data, "INVALID_MESSAGE", retryable=False)
    # Nothing was joined by a refused subscribe: only the organization room exists.
    assert server.hub.registry.rooms() == {"org:org_a": 1}


# -- MESSAGE_TOO_LARGE --------------------------------------------------------


async def test_message_too_large(make_server, make_client):
    server = await make_server(max_message_size_bytes=1024)
    client: SioClient = make_client(server)
    await client.connect(auth={"user_id": "user_1", "organization_id": "org_a"})
    error = await assert_refused(
        client,
        "client:ping",
        {"timestamp": 1, "pad": "x" * 2000},
        "MESSAGE_TOO_LARGE",
        retryable=False,
    )
    assert error["details"]["limit"] == 1024
    assert error["details"]["size"] > 2000


# -- RATE_LIMIT_EXCEEDED ------------------------------------------------------


async def test_rate_limit_exceeded(make_server, make_client):
    server = await make_server(rate_limit_messages_per_second=10, rate_limit_strikes=3)
    client: SioClient = make_client(server)
    await client.connect(auth={"user_id": "user_1", "organization_id": "org_a"})
    first_answered = None
    for _ in range(10):
        ack = await client.call("client:ping", {"timestamp": 1})
        assert ack["success"] is True, ack
        first_answered = first_answered or time.monotonic()
    assert first_answered is not None
    ack = await client.call("client:ping", {"timestamp": 1})
    assert ack["success"] is False, ack
    check_error(ack["error"], "RATE_LIMIT_EXCEEDED", retryable=True)
    await client.emit("client:ping", {"timestamp": 1})
    [error] = await client.wait_for("error")
    check_error(error, "RATE_LIMIT_EXCEEDED", retryable=True)
    # The server runs in this process and set its window start before its first
    # answer, so a second after that answer the next window has surely begun.
    await asyncio.sleep(max(0.0, first_answered + 1.05 - time.monotonic()))
    await assert_usable(client)
    assert len(client.received("error")) == 1


# -- SUBSCRIPTION_FAILED ------------------------------------------------------


async def test_subscription_failed_beyond_the_per_socket_cap(make_server, make_client):
    server = await make_server(max_subscriptions_per_socket=2)
    client: SioClient = make_client(server)
    await client.connect()
    assert (await client.authenticate())["success"] is True
    ack = await client.call("subscribe", {"channels": ["kpi"]})
    assert ack["success"] is True, ack
    # Two new rooms would make three: refused, and neither is joined.
    # (The subscription cap is documented as not retryable: retrying cannot help.)
    error = await assert_refused(
        client,
        "subscribe",
        {"channels": ["backlog", "alerts"]},
        "SUBSCRIPTION_FAILED",
        retryable=False,
    )
    assert error["details"]["max_subscriptions_per_socket"] == 2
    # Exactly at the cap succeeds.
    ack = await client.call("subscribe", {"channels": ["backlog"]})
    assert ack == {"success": True, "subscriptions": ["backlog:org:org_a", "kpi:org:org_a"]}
    # At the cap, re-subscribing a room already held adds nothing and succeeds.
    ack = await client.call("subscribe", {"channels": ["kpi"]})
    assert ack["success"] is True, ack
    await assert_refused(
        client, "subscribe", {"channels": ["alerts"]}, "SUBSCRIPTION_FAILED", retryable=False
    )
    await assert_refused(
        client, "subscribe", {"channels": ["all"]}, "SUBSCRIPTION_FAILED", retryable=False
    )
    assert sorted(server.hub.registry.rooms()) == [
        "backlog:org:org_a",
        "kpi:org:org_a",
        "org:org_a",
    ]


# -- ROOM_NOT_FOUND -----------------------------------------------------------


@pytest.mark.parametrize(
    "room", ["not-a-room", "kpi:org", "weather:org:org_a", "kpi:org:org_a:floor:3"]
)
async def test_room_not_found_for_a_malformed_room_name(authed, room: str) -> None:
    client: SioClient = await authed()
    ack = await client.call("subscribe", {"channels": ["kpi"]})
    assert ack["success"] is True
    await assert_refused(
        client, "unsubscribe", {"rooms": [room]}, "ROOM_NOT_FOUND", retryable=False
    )
    # A malformed name in the list leaves every subscription in place.
    await assert_refused(
        client,
        "unsubscribe",
        {"rooms": ["kpi:org:org_a", room]},
        "ROOM_NOT_FOUND",
        retryable=False,
    )
    ack = await client.call("unsubscribe", {"rooms": []})
    assert ack == {"success": True, "subscriptions": ["kpi:org:org_a"]}


# -- ROOM_FULL ----------------------------------------------------------------


async def test_room_full(make_server, make_client):
    server = await make_server(room_max_size=1)
    first: SioClient = make_client(server)
    await first.connect(auth={"user_id": "user_1", "organization_id": "org_a"})
    assert (await first.call("subscribe", {"channels": ["kpi"]}))["success"] is True
    second: SioClient = make_client(server)
    await second.connect(auth={"user_id": "user_2", "organization_id": "org_a"})
    error = await assert_refused(
        second, "subscribe", {"channels": ["kpi"]}, "ROOM_FULL", retryable=True
    )
    assert error["details"]["rooms"] == ["kpi:org:org_a"]
    assert server.hub.registry.member_count("kpi:org:org_a") == 1


# -- CONNECTION_LIMIT ---------------------------------------------------------


async def test_connection_limit_per_org_at_authentication(make_server, make_client):
    server = await make_server(max_connections_per_org=1)
    first: SioClient = make_client(server)
    await first.connect(auth={"user_id": "user_1", "organization_id": "org_a"})
    second: SioClient = make_client(server)
    await second.connect()
    await assert_refused(
        second,
        "authenticate",
        {"user_id": "user_2", "organization_id": "org_a"},
        "CONNECTION_LIMIT",
        retryable=True,
    )
    assert server.hub.registry.connections_by_org() == {"org_a": 1}


async def test_connection_limit_total_at_the_handshake(make_server, make_client):
    server = await make_server(max_connections_total=1)
    first: SioClient = make_client(server)
    await first.connect()
    second: SioClient = make_client(server)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await second.connect()
    check_error(second.connect_error["data"], "CONNECTION_LIMIT", retryable=True)
    await first.authenticate()
    await assert_usable(first)


# -- INTERNAL_ERROR -----------------------------------------------------------


async def test_internal_error_never_leaks_and_keeps_the_connection(authed, server) -> None:
    client: SioClient = await authed()
    original = server.hub.handlers.table["client:ping"]

    async def broken(connection: Any, data: Any) -> Any:
        raise RuntimeError("secret-internal-detail in /srv/app/handlers.py")

    server.hub.handlers.table["client:ping"] = broken
    ack = await client.call("client:ping", {"timestamp": 1})
    assert ack["success"] is False, ack
    check_error(ack["error"], "INTERNAL_ERROR", retryable=True)
    assert "secret-internal-detail" not in str(ack)
    assert "RuntimeError" not in str(ack)
    # Other requests still work while the handler is broken; no error event leaked.
    sub = await client.call("subscribe", {"channels": ["kpi"]})
    assert sub["success"] is True, sub
    assert client.received("error") == []

    await client.emit("client:ping", {"timestamp": 1})
    [error] = await client.wait_for("error")
    check_error(error, "INTERNAL_ERROR", retryable=True)
    assert "secret-internal-detail" not in str(error)
    assert "RuntimeError" not in str(error)

    server.hub.handlers.table["client:ping"] = original
    await assert_usable(client)
    assert not client.disconnected.is_set()
