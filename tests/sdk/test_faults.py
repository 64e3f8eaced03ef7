"""IntradayClient against faults: a misbehaving server, bad handlers, acks.

Off-protocol messages come from a scripted python-socketio server (the only
fault here the real server cannot produce). Handler failures and
``requires_ack`` timing use the real server. (Refused credentials are in
``test_credentials.py``, against the real server in ``jwt`` mode.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import socketio
import uvicorn

from client_sdk import IntradayClient, Message
from client_sdk.admin import AdminClient
from client_sdk.exceptions import MalformedMessageError, RateLimitedError, ServerError
from client_sdk.protocol import ConnectionState, ErrorCode, KpiPayload, Payload
from tests.conftest import WAIT, eventually, kpi
from tests.sdk.conftest import ClientFactory, Watcher, fast_config


@contextlib.asynccontextmanager
async def closing(client: IntradayClient) -> AsyncIterator[IntradayClient]:
    try:
        yield client
    finally:
        await client.close()


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
        client = IntradayClient(fast_config(scripted.url))
        watcher = Watcher(client)
        async with closing(client):
            await client.connect()
            await client.subscribe(["kpi"], queue_name="support")
            await watcher.until(lambda: bool(watcher.notifications))  # script done

            malformed = [e for e in watcher.errors if isinstance(e, MalformedMessageError)]
            assert len(malformed) == 2
            assert {e.event for e in malformed} == {"kpi:update"}
            assert [m.id for m in watcher.kpis] == ["valid"]
            stats = client.statistics()
            assert stats.duplicates_dropped == 1
            assert stats.malformed_dropped == 2
            server_errors = [e for e in watcher.on_errors if isinstance(e, ServerError)]
            assert len(server_errors) == 1
            assert isinstance(server_errors[0], RateLimitedError)
            assert server_errors[0].code is ErrorCode.RATE_LIMIT_EXCEEDED
            assert server_errors[0].retryable is True
            assert server_errors[0] in watcher.errors
            assert client.state is ConnectionState.AUTHENTICATED
            assert watcher.disconnects == []


# -- handlers and acks against the real server -------------------------------------------


async def test_a_raising_handler_is_reported_and_the_others_still_run(
    admin: AdminClient, make_client: ClientFactory
) -> None:
    client = make_client()
    watcher = Watcher(client)
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
    await client.connect()
    await client.subscribe(["kpi"], queue_name="support")
    sent = []
    for score in (10, 20):
        sent.append((await admin.publish_kpi(kpi(health_score=score))).message_id)
        await watcher.until(lambda: len(seen) == len(sent))

    # Every handler ran for every message, in registration order per key.
    assert seen == sent
    assert [m.id for m in watcher.kpis] == sent
    reported = [e for e in watcher.errors if e.__cause__ in failures]
    assert [e.__cause__ for e in reported] == failures
    assert len(failures) == 4
    assert client.statistics().handler_errors == 4
    assert client.state is ConnectionState.AUTHENTICATED
    assert watcher.disconnects == []


async def test_requires_ack_is_acknowledged_after_the_handler_finished(
    admin: AdminClient, make_client: ClientFactory
) -> None:
    client = make_client()
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow(message: Message[KpiPayload]) -> None:
        entered.set()
        await release.wait()

    client.on(on_kpi_update=slow)
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
        client = IntradayClient(fast_config(scripted.url))
        async with closing(client):
            with pytest.raises(MalformedMessageError, match="authenticate"):
                await asyncio.wait_for(client.connect(), WAIT)
            assert client.state is ConnectionState.FAILED
            assert isinstance(client.failure, MalformedMessageError)
