"""Authentication against the real server (protocol sections 2 and 3).

Covers the success body (by event and by handshake), refused handshakes,
re-authentication, the identifier rule, the two auth modes (trust and jwt with
HS256 and RS256 keys) and the authentication timeout.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import socketio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from reference_server.app import ReferenceServer
from tests.conftest import SioClient

TIMESTAMP_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
HS_SECRET = "test-secret-for-hs256-that-is-long-enough-0123456789abcdef"


def assert_success_body(
    body: dict[str, Any], user_id: str, org_id: str, socket_id: str, server: ReferenceServer
) -> None:
    """The success body of section 3, field by field."""
    assert body["success"] is True
    assert body["user_id"] == user_id
    assert body["organization_id"] == org_id
    assert body["socket_id"] == socket_id
    assert TIMESTAMP_MS_Z.match(body["server_time"]), body["server_time"]
    info = body["server"]
    assert isinstance(info["name"], str)
    assert info["name"]
    assert isinstance(info["version"], str)
    assert info["version"]
    assert info["protocol"] == 1
    assert isinstance(info["capabilities"], list)
    assert all(isinstance(c, str) for c in info["capabilities"])
    assert "acks" in info["capabilities"]
    assert "batch" in info["capabilities"]
    assert info["limits"] == {
        "max_message_size_bytes": server.settings.max_message_size_bytes,
        "rate_limit_messages_per_second": server.settings.rate_limit_messages_per_second,
        "batch_window_ms": server.settings.batch_window_ms,
        "batch_max_messages": server.settings.batch_max_messages,
    }


def assert_error(ack: Any, code: str, *, retryable: bool = False) -> dict[str, Any]:
    """A failure ack ``{"success": false, "error": ERROR}``; returns ERROR."""
    assert ack["success"] is False, ack
    error = ack["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["retryable"] is retryable
    return error


async def refused(client: SioClient, auth: dict[str, Any]) -> dict[str, Any]:
    """Connect with a handshake ``auth`` that must be refused; the ERROR it carried."""
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(auth=auth)
    assert not client.sio.connected
    # python-socketio hands the whole CONNECT_ERROR payload to connect_error:
    # {"message": ..., "data": ERROR}; a JavaScript client sees ERROR as err.data.
    assert isinstance(client.connect_error, dict), client.connect_error
    error = client.connect_error["data"]
    assert client.connect_error["message"] == error["message"]
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


@pytest.fixture
async def api_for():
    """HTTP clients for servers other than the default one."""
    clients: list[httpx.AsyncClient] = []

    def make(server: ReferenceServer) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=server.url, timeout=5)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def ping_ok(client: SioClient) -> None:
    ack = await client.call("client:ping", {"timestamp": 1})
    assert ack["success"] is True


# -- success bodies --------------------------------------------------------------------


async def test_authenticate_event_ack_carries_the_success_body(make_server, make_client) -> None:
    server = await make_server(max_message_size_bytes=4096, rate_limit_messages_per_second=50)
    client = make_client(server)
    await client.connect()
    ack = await client.authenticate("user_123", "org_123")
    assert_success_body(ack, "user_123", "org_123", client.sio.get_sid(), server)
    assert set(ack) == {
        "success",
        "user_id",
        "organization_id",
        "socket_id",
        "server_time",
        "server",
    }
    # Sent with an ack, so no extra ``authenticated`` event follows.
    await client.call("client:ping", {})
    await client.wait_for("client:pong")
    assert client.received("authenticated") == []


async def test_authenticate_event_without_ack_gets_authenticated_event(server, make_client):
    client = make_client(server)
    await client.connect()
    await client.emit("authenticate", {"user_id": "user_1", "organization_id": "org_a"})
    [body] = await client.wait_for("authenticated")
    assert_success_body(body, "user_1", "org_a", client.sio.get_sid(), server)


async def test_handshake_auth_authenticates_on_connect(server, make_client, api) -> None:
    client = make_client(server)
    await client.connect(auth={"user_id": "user_hs", "organization_id": "org_hs"})
    [body] = await client.wait_for("authenticated")
    sid = client.sio.get_sid()
    assert_success_body(body, "user_hs", "org_hs", sid, server)
    info = (await api.get(f"/api/ws/connections/{sid}")).json()["connection"]
    assert (info["status"], info["user_id"], info["organization_id"]) == (
        "authenticated",
        "user_hs",
        "org_hs",
    )
    # Authenticated without the event: subscribing works straight away.
    ack = await client.call("subscribe", {"channels": ["kpi"]})
    assert ack == {"success": True, "subscriptions": ["kpi:org:org_hs"]}


INVALID_HANDSHAKES = [
    {"user_id": "user:1", "organization_id": "org_a"},
    {"user_id": "user_1"},
    {"user_id": "user_1", "organization_id": "org_a", "role": "admin"},
    {"user_id": "user_1", "organization_id": "org_a", "token": 123},
    {"user_id": "u" * 129, "organization_id": "org_a"},
]


async def test_invalid_handshake_auth_is_refused(server, make_client, api) -> None:
    for auth in INVALID_HANDSHAKES:
        error = await refused(make_client(server), auth)
        assert (error["code"], error["retryable"]) == ("INVALID_MESSAGE", False), (auth, error)
    # A refused socket leaves nothing behind on the server.
    listed = (await api.get("/api/ws/connections")).json()
    assert listed["total_count"] == 0


async def test_refused_handshake_does_not_hold_a_slot(make_server, make_client) -> None:
    server = await make_server(max_connections_total=1)
    await refused(make_client(server), {"user_id": "bad:id", "organization_id": "org_a"})
    client = make_client(server)
    await client.connect(auth={"user_id": "user_1", "organization_id": "org_a"})
    await client.wait_for("authenticated")


# -- re-authentication -------------------------------------------------------------------


async def test_reauthentication_with_same_ids_is_idempotent(authed, api) -> None:
    client = await authed("user_1", "org_a")
    first_sid = client.sio.get_sid()
    again = await client.authenticate("user_1", "org_a")
    assert again["success"] is True
    assert (again["user_id"], again["organization_id"], again["socket_id"]) == (
        "user_1",
        "org_a",
        first_sid,
    )
    stats = (await api.get("/api/ws/stats")).json()
    assert stats["connections_by_org"] == {"org_a": 1}


@pytest.mark.parametrize(
    ("user_id", "org_id"),
    [("user_2", "org_a"), ("user_1", "org_b"), ("user_2", "org_b")],
)
async def test_reauthentication_with_other_ids_is_unauthorized(authed, api, user_id, org_id):
    client = await authed("user_1", "org_a")
    assert_error(await client.authenticate(user_id, org_id), "UNAUTHORIZED")
    # The socket keeps its first identity.
    info = (await api.get(f"/api/ws/connections/{client.sio.get_sid()}")).json()["connection"]
    assert (info["user_id"], info["organization_id"]) == ("user_1", "org_a")
    ack = await client.call("subscribe", {"channels": ["kpi"]})
    assert ack["subscriptions"] == ["kpi:org:org_a"]


# -- identifier rule ---------------------------------------------------------------------

BAD_IDENTIFIERS = ["a:b", "x" * 129, "", "has space", "caf\u00e9", "new\nline", "org_a\n", 123]


@pytest.mark.parametrize("field", ["user_id", "organization_id"])
async def test_identifier_rule_refuses_bad_ids(server, make_client, api, field) -> None:
    client = make_client(server)
    await client.connect()
    for bad in BAD_IDENTIFIERS:
        request = {"user_id": "user_1", "organization_id": "org_a", field: bad}
        ack = await client.call("authenticate", request)
        assert ack["success"] is False, (bad, ack)
        assert ack["error"]["code"] == "INVALID_MESSAGE", (bad, ack)
        assert ack["error"]["retryable"] is False
    info = (await api.get(f"/api/ws/connections/{client.sio.get_sid()}")).json()["connection"]
    assert info["status"] == "connected"
    assert info["user_id"] is None


async def test_identifier_of_128_characters_and_full_alphabet_is_accepted(server, make_client):
    user_id = "u" * 128
    org_id = ("Org-0.9_@" * 15)[:128]
    assert len(org_id) == 128
    client = make_client(server)
    await client.connect()
    ack = await client.authenticate(user_id, org_id)
    assert ack["success"] is True
    assert (ack["user_id"], ack["organization_id"]) == (user_id, org_id)


# -- trust mode --------------------------------------------------------------------------


async def test_trust_mode_says_so_in_health(api, authed) -> None:
    health = (await api.get("/api/ws/health")).json()
    assert health["auth_mode"] == "trust"
    assert isinstance(health["warning"], str)
    assert "trust" in health["warning"].lower()
    # And ids are accepted as stated, without a token.
    client = await authed("anyone", "any_org")
    assert client.sio.connected


# -- jwt mode ----------------------------------------------------------------------------


@dataclass
class JwtSetup:
    """A jwt-mode server and a way to sign tokens it does or does not accept."""

    server: ReferenceServer
    sign: Callable[..., str]
    forge: Callable[..., str]
    """Signs with a key the server does not know (same algorithm)."""
    other_algorithm: Callable[..., str]
    """Signs with a key of an algorithm the server was not configured for."""


def _claims(sub: str, org: str, exp_in: float) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "org": org, "iat": now, "exp": now + int(exp_in)}


def _rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    """(server's private key, a stranger's private key, server's public key PEM file)."""
    key, stranger = _rsa_private_key(), _rsa_private_key()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path_factory.mktemp("jwt") / "public.pem"
    path.write_bytes(pem)
    return key, stranger, path


@pytest.fixture(params=["HS256", "RS256"])
async def jwt_setup(request, make_server, rsa_keys) -> JwtSetup:
    if request.param == "HS256":
        server = await make_server(auth_mode="jwt", jwt_secret=HS_SECRET)

        def sign(sub: str, org: str, exp_in: float = 300) -> str:
            return jwt.encode(_claims(sub, org, exp_in), HS_SECRET, algorithm="HS256")

        def forge(sub: str, org: str, exp_in: float = 300) -> str:
            other = HS_SECRET[::-1]
            return jwt.encode(_claims(sub, org, exp_in), other, algorithm="HS256")

        def other_algorithm(sub: str, org: str, exp_in: float = 300) -> str:
            return jwt.encode(_claims(sub, org, exp_in), rsa_keys[0], algorithm="RS256")

    else:
        key, stranger, public_file = rsa_keys
        server = await make_server(auth_mode="jwt", jwt_public_key_file=public_file)

        def sign(sub: str, org: str, exp_in: float = 300) -> str:
            return jwt.encode(_claims(sub, org, exp_in), key, algorithm="RS256")

        def forge(sub: str, org: str, exp_in: float = 300) -> str:
            return jwt.encode(_claims(sub, org, exp_in), stranger, algorithm="RS256")

        def other_algorithm(sub: str, org: str, exp_in: float = 300) -> str:
            return jwt.encode(_claims(sub, org, exp_in), HS_SECRET, algorithm="HS256")

    return JwtSetup(server, sign, forge, other_algorithm)


async def test_jwt_mode_health_has_no_trust_warning(jwt_setup: JwtSetup) -> None:
    async with httpx.AsyncClient(base_url=jwt_setup.server.url) as http:
        health = (await http.get("/api/ws/health")).json()
    assert health["auth_mode"] == "jwt"
    assert health.get("warning") is None


async def test_jwt_valid_token_by_event(jwt_setup: JwtSetup, make_client) -> None:
    client = make_client(jwt_setup.server)
    await client.connect()
    token = jwt_setup.sign("user_1", "org_a")
    ack = await client.call(
        "authenticate", {"user_id": "user_1", "organization_id": "org_a", "token": token}
    )
    assert_success_body(ack, "user_1", "org_a", client.sio.get_sid(), jwt_setup.server)


async def test_jwt_valid_token_by_handshake(jwt_setup: JwtSetup, make_client) -> None:
    client = make_client(jwt_setup.server)
    token = jwt_setup.sign("user_1", "org_a")
    await client.connect(auth={"user_id": "user_1", "organization_id": "org_a", "token": token})
    [body] = await client.wait_for("authenticated")
    assert_success_body(body, "user_1", "org_a", client.sio.get_sid(), jwt_setup.server)


def _bad_requests(setup: JwtSetup) -> dict[str, dict[str, Any]]:
    ids = {"user_id": "user_1", "organization_id": "org_a"}
    unsigned = jwt.encode(_claims("user_1", "org_a", 300), None, algorithm="none")
    return {
        "missing": ids,
        "garbage": {**ids, "token": "not-a-jwt"},
        "wrong-signature": {**ids, "token": setup.forge("user_1", "org_a")},
        "alg-none": {**ids, "token": unsigned},
        "other-algorithm": {**ids, "token": setup.other_algorithm("user_1", "org_a")},
        "other-user": {**ids, "token": setup.sign("user_2", "org_a")},
        "other-org": {**ids, "token": setup.sign("user_1", "org_b")},
    }


async def test_jwt_bad_tokens_by_event_are_auth_failed(jwt_setup, make_client, api_for):
    http = api_for(jwt_setup.server)
    client = make_client(jwt_setup.server)
    await client.connect()
    for case, request in _bad_requests(jwt_setup).items():
        ack = await client.call("authenticate", request)
        assert ack["success"] is False, case
        error = ack["error"]
        assert (error["code"], error["retryable"]) == ("AUTH_FAILED", False), (case, error)
        assert error.get("details", {}).get("reason") != "token_expired", case
    info = await http.get(f"/api/ws/connections/{client.sio.get_sid()}")
    assert info.json()["connection"]["status"] == "connected"
    # Still unauthenticated: subscribing is refused.
    assert_error(await client.call("subscribe", {"channels": ["kpi"]}), "UNAUTHORIZED")


async def test_jwt_bad_tokens_by_handshake_are_refused(jwt_setup, make_client, api_for) -> None:
    for case, request in _bad_requests(jwt_setup).items():
        error = await refused(make_client(jwt_setup.server), request)
        assert (error["code"], error["retryable"]) == ("AUTH_FAILED", False), (case, error)
        assert error.get("details", {}).get("reason") != "token_expired", case
    listed = (await api_for(jwt_setup.server).get("/api/ws/connections")).json()
    assert listed["total_count"] == 0


async def test_jwt_expired_token_by_event(jwt_setup: JwtSetup, make_client) -> None:
    client = make_client(jwt_setup.server)
    await client.connect()
    token = jwt_setup.sign("user_1", "org_a", exp_in=-60)
    request = {"user_id": "user_1", "organization_id": "org_a", "token": token}
    error = assert_error(await client.call("authenticate", request), "AUTH_FAILED")
    assert error["details"]["reason"] == "token_expired"
    # A fresh token on the same socket then works, as a client's one retry would.
    fresh = {**request, "token": jwt_setup.sign("user_1", "org_a")}
    assert (await client.call("authenticate", fresh))["success"] is True


async def test_jwt_expired_token_by_handshake(jwt_setup: JwtSetup, make_client) -> None:
    token = jwt_setup.sign("user_1", "org_a", exp_in=-60)
    request = {"user_id": "user_1", "organization_id": "org_a", "token": token}
    error = await refused(make_client(jwt_setup.server), request)
    assert error["code"] == "AUTH_FAILED"
    assert error["retryable"] is False
    assert error["details"]["reason"] == "token_expired"


# -- authentication timeout ---------------------------------------------------------------


async def test_unauthenticated_socket_times_out(make_server, make_client, api_for) -> None:
    server = await make_server(auth_timeout_ms=300)
    client = make_client(server)
    await client.connect()
    [error] = await client.wait_for("error", timeout=5)
    assert error["code"] == "AUTH_FAILED"
    assert error["message"] == "authentication timeout"
    assert error["retryable"] is False
    await asyncio.wait_for(client.disconnected.wait(), 5)
    assert not client.sio.connected
    listed = (await api_for(server).get("/api/ws/connections")).json()
    assert listed["total_count"] == 0


async def test_authenticated_sockets_survive_the_timeout(make_server, make_client) -> None:
    server = await make_server(auth_timeout_ms=300)
    by_event = make_client(server)
    await by_event.connect()
    assert (await by_event.authenticate("user_1", "org_a"))["success"] is True
    by_handshake = make_client(server)
    await by_handshake.connect(auth={"user_id": "user_2", "organization_id": "org_a"})
    # Connected last, so its timer fires last: once it is gone, theirs have fired too.
    sibling = make_client(server)
    await sibling.connect()
    await sibling.wait_for("error", timeout=5)
    await asyncio.wait_for(sibling.disconnected.wait(), 5)
    for client in (by_event, by_handshake):
        await ping_ok(client)
        assert client.received("error") == []
        assert not client.disconnected.is_set()


@pytest.mark.parametrize(
    ("sub", "org", "claim", "field"),
    [("user_2", "org_a", "sub", "user_id"), ("user_1", "org_b", "org", "organization_id")],
)
async def test_jwt_claim_mismatch_names_the_claim(
    jwt_setup: JwtSetup, make_client, sub: str, org: str, claim: str, field: str
) -> None:
    client = make_client(jwt_setup.server)
    await client.connect()
    token = jwt_setup.sign(sub, org)
    ack = await client.call(
        "authenticate", {"user_id": "user_1", "organization_id": "org_a", "token": token}
    )
    error = assert_error(ack, "AUTH_FAILED")
    assert f"'{claim}' claim" in error["message"]
    assert field in error["message"]
    assert error["details"] == {"reason": "claims_mismatch", "claim": claim}


async def test_jwt_missing_claim_is_named(make_server, make_client) -> None:
    server = await make_server(auth_mode="jwt", jwt_secret=HS_SECRET)
    client = make_client(server)
    await client.connect()
    claims = _claims("user_1", "org_a", 300)
    del claims["org"]
    token = jwt.encode(claims, HS_SECRET, algorithm="HS256")
    ack = await client.call(
        "authenticate", {"user_id": "user_1", "organization_id": "org_a", "token": token}
    )
    error = assert_error(ack, "AUTH_FAILED")
    assert "'org' claim is missing" in error["message"]
    assert error["details"]["claim"] == "org"
