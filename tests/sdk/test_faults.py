"""IntradayClient against faults: refused credentials, a misbehaving server, bad handlers, acks.

Credentials are checked by the real reference server in ``jwt`` mode, behind
a :class:`TcpProxy` that counts connections: a refused login must end in
``failed`` after one attempt, with one token refresh at most. Off-protocol
messages come from a scripted python-socketio server (the only fault here the
real server cannot produce). Handler failures and ``requires_ack`` timing use
the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import jwt
import pytest
import socketio
import uvicorn

from client_sdk.admin import AdminClient
from client_sdk.client import IntradayClient
from client_sdk.exceptions import (
    AuthenticationError,
    IntradayError,
    MalformedMessageError,
    RateLimitedError,
    ServerError,
)
from client_sdk.messages import Message
from client_sdk.protocol import ConnectionState, ErrorCode, KpiPayload, Payload, SystemPayload
from client_sdk.testing import RunningServer, running_server
from tests.conftest import eventually, kpi
from tests.sdk.tcp_proxy import TcpProxy

WAIT = 5.0
SECRET = "test-secret-of-at-least-thirty-two-bytes"


class Recorder:
    """Collects what a client reports; ``until`` waits for a condition."""

    def __init__(self, client: IntradayClient) -> None:
        self.errors: list[IntradayError] = []
        self.on_errors: list[IntradayError] = []
        self.disconnects: list[str] = []
        self.kpis: list[Message[KpiPayload]] = []
        self.notifications: list[Message[SystemPayload]] = []
        self._changed = asyncio.Event()
        client.errors.subscribe(self._record(self.errors))
        client.on(
            on_error=self._record(self.on_errors),
            on_disconnect=self._record(self.disconnects),
            on_kpi_update=self._record(self.kpis),
            on_system_notification=self._record(self.notifications),
        )

    def _record(self, into: list[Any]) -> Callable[[Any], None]:
        def record(item: Any) -> None:
            into.append(item)
            self._changed.set()

        return record

    async def until(self, condition: Callable[[], bool], timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                if condition():
                    return
                await self._changed.wait()


def fast(url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "url": url,
        "user_id": "user_1",
        "organization_id": "org_a",
        "reconnection_delay": 0.05,
        "reconnection_delay_max": 0.2,
        "timeout": 2.0,
        "ack_timeout": 2.0,
        **overrides,
    }


@contextlib.asynccontextmanager
async def closing(client: IntradayClient) -> AsyncIterator[IntradayClient]:
    try:
        yield client
    finally:
        await client.close()


# -- refused credentials -------------------------------------------------------------


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


@pytest.fixture
async def jwt_server() -> AsyncIterator[RunningServer]:
    async with running_server(auth_mode="jwt", jwt_secret=SECRET) as server:
        yield server


@pytest.fixture
async def jwt_admin(jwt_server: RunningServer) -> AsyncIterator[AdminClient]:
    async with jwt_server.admin() as admin:
        yield admin


@pytest.fixture
async def jwt_proxy(jwt_server: RunningServer) -> AsyncIterator[TcpProxy]:
    async with TcpProxy("127.0.0.1", jwt_server.port) as proxy:
        yield proxy


async def test_rejected_token_fails_at_once_without_retrying(
    jwt_admin: AdminClient, jwt_proxy: TcpProxy
) -> None:
    source = TokenSource(token(600, secret="another-secret-of-at-least-32-bytes"))
    client = IntradayClient(**fast(jwt_proxy.url, token_provider=source))
    async with closing(client):
        with pytest.raises(AuthenticationError) as raised:
            await client.connect()
        assert raised.value.retryable is False
        assert raised.value.reason == "token_invalid"
        assert client.state is ConnectionState.FAILED
        assert client.failure is raised.value
        # One connection, one authenticate, no refresh (the token did not expire).
        assert jwt_proxy.accepted == 1
        assert source.calls == 1
        assert (await jwt_admin.stats()).error_count == 1


async def test_expired_token_is_refreshed_once(jwt_admin: AdminClient, jwt_proxy: TcpProxy) -> None:
    source = TokenSource(token(-60), token(600))
    client = IntradayClient(**fast(jwt_proxy.url, token_provider=source))
    async with closing(client):
        await client.connect()
        assert client.state is ConnectionState.AUTHENTICATED
        assert client.identity is not None
        assert client.identity.user_id == "user_1"
        assert source.calls == 2
        assert jwt_proxy.accepted == 1  # the refresh used the same connection
        assert (await jwt_admin.stats()).error_count == 1
        await client.subscribe(["kpi"])

        # A reconnection asks the provider again (and the fresh token is accepted).
        await jwt_proxy.cut()
        await eventually(lambda: _reauthenticated(client, jwt_proxy, 2))
        assert source.calls == 3
        assert (await jwt_admin.stats()).error_count == 1


async def _reauthenticated(client: IntradayClient, proxy: TcpProxy, connections: int) -> bool:
    return proxy.accepted == connections and client.state is ConnectionState.AUTHENTICATED


async def test_provider_of_expired_tokens_fails_after_one_refresh(
    jwt_admin: AdminClient, jwt_proxy: TcpProxy
) -> None:
    source = TokenSource(token(-60))
    client = IntradayClient(**fast(jwt_proxy.url, token_provider=source))
    async with closing(client):
        with pytest.raises(AuthenticationError) as raised:
            await client.connect()
        assert raised.value.reason == "token_expired"
        assert client.state is ConnectionState.FAILED
        assert isinstance(client.failure, AuthenticationError)
        assert source.calls == 2
        assert jwt_proxy.accepted == 1
        assert (await jwt_admin.stats()).error_count == 2


# -- a misbehaving server ------------------------------------------------------------------


class _Uvicorn(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # leave the test runner's signal handlers alone


def envelope(
    message_id: str, event: str = "kpi:update", data: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": message_id,
        "event": event,
        "channel": event.split(":")[0] if event.startswith("kpi") else "notifications",
        "timestamp": "2026-11-25T10:30:00.123Z",
        "priority": "medium",
        "requires_ack": False,
        "target": {"organization_id": "org_a", "department_id": None, "queue_name": "support"},
        "data": kpi() if data is None else data,
    }


class ScriptedServer:
    """A python-socketio server on /ws that authenticates properly, then misbehaves.

    After a ``subscribe`` it sends: a broken envelope, an off-schema payload,
    a valid message, a duplicate of it, an ``error`` event, and a valid
    ``system:notification`` that marks the end of the script.
    """

    def __init__(self) -> None:
        self.sio = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)
        self.sio.on("authenticate", self._authenticate)
        self.sio.on("subscribe", self._subscribe)
        app = socketio.ASGIApp(self.sio, socketio_path="ws")
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="off", log_config=None, access_log=False
        )
        self._server = _Uvicorn(config)
        self._task: asyncio.Task[None] | None = None
        self._scripts: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> ScriptedServer:
        self._task = asyncio.create_task(self._server.serve())
        listening = asyncio.create_task(self._server.listening.wait())
        await asyncio.wait({self._task, listening}, return_when=asyncio.FIRST_COMPLETED)
        assert self._server.listening.is_set(), "the scripted server did not start"
        return self

    async def __aexit__(self, *_: object) -> None:
        for script in self._scripts:
            script.cancel()
        await asyncio.gather(*self._scripts, return_exceptions=True)
        self._server.should_exit = True
        if self._task is not None:
            await self._task

    async def _authenticate(self, sid: str, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "success": True,
            "user_id": data["user_id"],
            "organization_id": data["organization_id"],
            "socket_id": sid,
            "server_time": "2026-11-25T10:30:00.000Z",
            "server": {
                "name": "scripted",
                "version": "0",
                "protocol": 1,
                "capabilities": ["acks"],
                "limits": {
                    "max_message_size_bytes": 1_048_576,
                    "rate_limit_messages_per_second": 100,
                },
            },
        }

    async def _subscribe(self, sid: str, data: dict[str, Any]) -> dict[str, Any]:
        self._scripts.append(asyncio.create_task(self._misbehave(sid)))
        return {"success": True, "subscriptions": ["kpi:org:org_a:queue:support"]}

    async def _misbehave(self, sid: str) -> None:
        emit = self.sio.emit
        await emit("kpi:update", {"id": "broken", "event": "kpi:update"}, to=sid)
        await emit("kpi:update", envelope("off-schema", data=kpi(health_score="x")), to=sid)
        await emit("kpi:update", envelope("valid"), to=sid)
        await emit("kpi:update", envelope("valid"), to=sid)
        error = {"code": "RATE_LIMIT_EXCEEDED", "message": "slow down", "retryable": True}
        await emit("error", error, to=sid)
        done = envelope("done", "system:notification", {"message": "end of script"})
        await emit("system:notification", done, to=sid)


async def test_malformed_messages_are_reported_and_skipped() -> None:
    async with ScriptedServer() as scripted:
        client = IntradayClient(**fast(scripted.url))
        recorder = Recorder(client)
        async with closing(client):
            await client.connect()
            await client.subscribe(["kpi"], queue_name="support")
            await recorder.until(lambda: bool(recorder.notifications))  # script done

            malformed = [e for e in recorder.errors if isinstance(e, MalformedMessageError)]
            assert len(malformed) == 2
            assert {e.event for e in malformed} == {"kpi:update"}
            assert [m.id for m in recorder.kpis] == ["valid"]
            stats = client.statistics()
            assert stats.duplicates_dropped == 1
            assert stats.malformed_dropped == 2
            server_errors = [e for e in recorder.on_errors if isinstance(e, ServerError)]
            assert len(server_errors) == 1
            assert isinstance(server_errors[0], RateLimitedError)
            assert server_errors[0].code is ErrorCode.RATE_LIMIT_EXCEEDED
            assert server_errors[0].retryable is True
            assert server_errors[0] in recorder.errors
            assert client.state is ConnectionState.AUTHENTICATED
            assert recorder.disconnects == []


# -- handlers and acks against the real server -------------------------------------------


@pytest.fixture
async def srv() -> AsyncIterator[RunningServer]:
    async with running_server() as server:
        yield server


@pytest.fixture
async def admin(srv: RunningServer) -> AsyncIterator[AdminClient]:
    async with srv.admin() as client:
        yield client


async def test_a_raising_handler_is_reported_and_the_others_still_run(
    srv: RunningServer, admin: AdminClient
) -> None:
    client = IntradayClient(**fast(srv.url))
    recorder = Recorder(client)
    failures: list[Exception] = []
    seen: list[str] = []

    def sync_boom(message: Message[KpiPayload]) -> None:
        failures.append(RuntimeError(f"sync boom {message.id}"))
        raise failures[-1]

    async def async_boom(message: Message[Payload]) -> None:
        failures.append(ValueError(f"async boom {message.id}"))
        raise failures[-1]

    client.on(on_kpi_update=sync_boom)
    client.add_listener("kpi", async_boom)
    client.add_listener("*", lambda message: seen.append(message.id))
    async with closing(client):
        await client.connect()
        await client.subscribe(["kpi"], queue_name="support")
        sent = []
        for score in (10, 20):
            sent.append((await admin.publish_kpi(kpi(health_score=score))).message_id)
            await recorder.until(lambda: len(seen) == len(sent))

        # Every handler ran for every message, in registration order per key.
        assert seen == sent
        assert [m.id for m in recorder.kpis] == sent
        reported = [e for e in recorder.errors if e.__cause__ in failures]
        assert [e.__cause__ for e in reported] == failures
        assert len(failures) == 4
        assert client.statistics().handler_errors == 4
        assert client.state is ConnectionState.AUTHENTICATED
        assert recorder.disconnects == []


async def test_requires_ack_is_acknowledged_after_the_handler_finished(
    srv: RunningServer, admin: AdminClient
) -> None:
    client = IntradayClient(**fast(srv.url))
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow(message: Message[KpiPayload]) -> None:
        entered.set()
        await release.wait()

    client.on(on_kpi_update=slow)
    async with closing(client):
        await client.connect()
        await client.subscribe(["kpi"], queue_name="support")
        result = await admin.publish_kpi(kpi(), requires_ack=True)
        assert result.recipients == 1
        await asyncio.wait_for(entered.wait(), WAIT)
        held_from = time.monotonic()
        # A round trip on the same connection: an early ack would be in by now.
        await client.ping()
        stats = await admin.stats()
        assert stats.average_latency_ms is None
        assert stats.max_latency_ms is None
        held_ms = (time.monotonic() - held_from) * 1000
        release.set()

        stats = await eventually(lambda: _latency_recorded(admin))
        assert stats.average_latency_ms is not None
        assert stats.max_latency_ms is not None
        # The server measured from its emit to the ack: the whole hold and more.
        assert stats.max_latency_ms >= held_ms


async def _latency_recorded(admin: AdminClient) -> Any:
    stats = await admin.stats()
    return stats if stats.average_latency_ms is not None else None


class _BadAuthAckServer(ScriptedServer):
    """Answers ``authenticate`` with a success ack that lacks ``server`` and ``socket_id``."""

    async def _authenticate(self, sid: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"success": True, "user_id": data["user_id"]}


async def test_a_malformed_authenticate_ack_fails_the_client_instead_of_hanging() -> None:
    async with _BadAuthAckServer() as scripted:
        client = IntradayClient(**fast(scripted.url))
        async with closing(client):
            with pytest.raises(MalformedMessageError, match="authenticate"):
                await asyncio.wait_for(client.connect(), WAIT)
            assert client.state is ConnectionState.FAILED
            assert isinstance(client.failure, MalformedMessageError)
