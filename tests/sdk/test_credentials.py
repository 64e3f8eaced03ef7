"""IntradayClient against refused credentials.

Credentials are checked by the real reference server in ``jwt`` mode, behind
a :class:`TcpProxy` that counts connections: a refused login must end in
``failed`` after one attempt, with one token refresh at most.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from client_sdk import IntradayClient
from client_sdk.admin import AdminClient
from client_sdk.exceptions import AuthenticationError
from client_sdk.protocol import ConnectionState
from client_sdk.verify.proxy import TcpProxy
from tests.conftest import eventually
from tests.sdk.conftest import ClientFactory

SECRET = "test-secret-of-at-least-thirty-two-bytes"


@pytest.fixture
def server_settings() -> dict[str, Any]:
    """``srv`` checks JSON Web Tokens signed with ``SECRET``."""
    return {"auth_mode": "jwt", "jwt_secret": SECRET}


def token(expires_in: float, secret: str = SECRET) -> str:
    claims = {"sub": "user_1", "org": "org_a", "exp": int(time.time() + expires_in)}
    return jwt.encode(claims, secret, algorithm="HS256")


class TokenSource:
    """A ``token_provider`` handing out the given tokens in turn (the last one for ever)."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = tokens
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        return self.tokens[min(self.calls, len(self.tokens)) - 1]


async def test_rejected_token_fails_at_once_without_retrying(
    admin: AdminClient, proxy: TcpProxy, make_client: ClientFactory
) -> None:
    source = TokenSource(token(600, secret="another-secret-of-at-least-32-bytes"))
    client = make_client(proxy.url, token_provider=source)
    with pytest.raises(AuthenticationError) as raised:
        await client.connect()
    assert raised.value.retryable is False
    assert raised.value.reason == "token_invalid"
    assert client.state is ConnectionState.FAILED
    assert client.failure is raised.value
    # One connection, one authenticate, no refresh (the token did not expire).
    assert proxy.accepted == 1
    assert source.calls == 1
    assert (await admin.stats()).error_count == 1


async def test_expired_token_is_refreshed_once(
    admin: AdminClient, proxy: TcpProxy, make_client: ClientFactory
) -> None:
    source = TokenSource(token(-60), token(600))
    client = make_client(proxy.url, token_provider=source)
    await client.connect()
    assert client.state is ConnectionState.AUTHENTICATED
    assert client.identity is not None
    assert client.identity.user_id == "user_1"
    assert source.calls == 2
    assert proxy.accepted == 1  # the refresh used the same connection
    assert (await admin.stats()).error_count == 1
    await client.subscribe(["kpi"])

    # A reconnection asks the provider again (and the fresh token is accepted).
    await proxy.cut()
    await eventually(lambda: _reauthenticated(client, proxy, 2))
    assert source.calls == 3
    assert (await admin.stats()).error_count == 1


async def _reauthenticated(client: IntradayClient, proxy: TcpProxy, connections: int) -> bool:
    return proxy.accepted == connections and client.state is ConnectionState.AUTHENTICATED


async def test_provider_of_expired_tokens_fails_after_one_refresh(
    admin: AdminClient, proxy: TcpProxy, make_client: ClientFactory
) -> None:
    source = TokenSource(token(-60))
    client = make_client(proxy.url, token_provider=source)
    with pytest.raises(AuthenticationError) as raised:
        await client.connect()
    assert raised.value.reason == "token_expired"
    assert client.state is ConnectionState.FAILED
    assert isinstance(client.failure, AuthenticationError)
    assert source.calls == 2
    assert proxy.accepted == 1
    assert (await admin.stats()).error_count == 2
