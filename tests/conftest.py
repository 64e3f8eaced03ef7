"""Shared fixtures: a real reference server on a free port, real clients.

``make_server(**settings)`` starts a :class:`ReferenceServer` in this event
loop on port 0 and stops it after the test (``wrap_fanout``,
``wrap_screen``, ``wrap_store`` and ``wrap_resumer`` build a deliberately
faulty one, see
``tests/contract/faults.py``); ``SioClient`` is a thin wrapper
over python-socketio's AsyncClient that records every event so tests can wait
on them with a timeout instead of sleeping.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import socketio

from reference_server.app import ReferenceServer
from reference_server.config import load_settings
from reference_server.delivery import FanoutWrapper
from reference_server.resume import ResumerWrapper
from reference_server.screening import ScreenWrapper
from reference_server.store import StoreWrapper

WAIT = 5.0


class SioClient:
    """A python-socketio client that keeps every event it receives."""

    def __init__(self, url: str, path: str = "/ws") -> None:
        self.url = url
        self.path = path
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Condition()
        self.disconnected = asyncio.Event()
        self.disconnect_reason: Any = None
        self.connect_error: Any = None
        self.sio.on("*", self._record)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("connect_error", self._on_connect_error)

    async def _record(self, event: str, *args: Any) -> None:
        async with self._changed:
            self.events.append((event, args[0] if args else None))
            self._changed.notify_all()

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.disconnect_reason = reason
        self.disconnected.set()

    async def _on_connect_error(self, data: Any) -> None:
        self.connect_error = data

    async def connect(
        self, auth: dict[str, Any] | None = None, transports: list[str] | None = None
    ) -> None:
        await self.sio.connect(
            self.url,
            socketio_path=self.path.strip("/"),
            transports=transports or ["websocket"],
            auth=auth,
            wait_timeout=WAIT,
        )

    async def authenticate(self, user_id: str = "user_1", organization_id: str = "org_a") -> Any:
        return await self.call(
            "authenticate", {"user_id": user_id, "organization_id": organization_id}
        )

    async def call(self, event: str, data: Any = None, timeout: float = WAIT) -> Any:
        return await self.sio.call(event, data, timeout=timeout)

    async def emit(self, event: str, data: Any = None) -> None:
        await self.sio.emit(event, data)

    def received(self, event: str) -> list[Any]:
        return [data for name, data in self.events if name == event]

    async def wait_for(self, event: str, count: int = 1, timeout: float = WAIT) -> list[Any]:
        """Wait until ``count`` events named ``event`` have arrived; return them."""

        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.received(event)) >= count)

        await asyncio.wait_for(enough(), timeout)
        return self.received(event)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


ServerFactory = Callable[..., Awaitable[ReferenceServer]]
ClientFactory = Callable[..., Awaitable[SioClient]]


@pytest.fixture(autouse=True)
def _ctrl_c_left_as_in_a_terminal() -> Iterator[None]:
    """No test may leave Ctrl-C (SIGINT) handled otherwise than as in a terminal.

    A handler left behind outlives the test: python-engineio's client, made
    without ``handle_sigint=False``, replaced the process's handler for good with
    one that chains to whatever handler was there, and a later test that stops an
    in-process CLI with SIGINT then waited forever (under pytest-xdist, only in
    some orders of modules). The leak fails the test that made it; the handler
    is restored so that the next test starts clean.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    yield
    handler = signal.getsignal(signal.SIGINT)
    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    if handler is signal.default_int_handler and not blocked:
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    pytest.fail(f"the test left SIGINT handled by {handler!r} (blocked: {blocked})")


@pytest.fixture
async def make_server() -> AsyncIterator[ServerFactory]:
    """Start reference servers with the given settings; all stopped after the test."""
    servers: list[ReferenceServer] = []

    async def start(
        *,
        wrap_fanout: FanoutWrapper | None = None,
        wrap_screen: ScreenWrapper | None = None,
        wrap_store: StoreWrapper | None = None,
        wrap_resumer: ResumerWrapper | None = None,
        **settings: Any,
    ) -> ReferenceServer:
        settings.setdefault("port", 0)
        settings.setdefault("shutdown_drain_ms", 0)
        server = ReferenceServer(
            load_settings(**settings),
            install_signal_handlers=False,
            wrap_fanout=wrap_fanout,
            wrap_screen=wrap_screen,
            wrap_store=wrap_store,
            wrap_resumer=wrap_resumer,
        )
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def server(make_server: ServerFactory) -> ReferenceServer:
    """A reference server with default settings."""
    return await make_server()


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[[ReferenceServer], SioClient]]:
    """Create (not connect) clients for a server; all closed after the test."""
    clients: list[SioClient] = []

    def create(server: ReferenceServer) -> SioClient:
        client = SioClient(server.url, server.settings.path)
        clients.append(client)
        return client

    yield create
    for client in clients:
        await client.close()


@pytest.fixture
async def authed(
    server: ReferenceServer, make_client: Callable[[ReferenceServer], SioClient]
) -> Callable[..., Awaitable[SioClient]]:
    """Connected, authenticated clients of ``server``: ``await authed("user", "org")``."""

    async def connect(user_id: str = "user_1", organization_id: str = "org_a") -> SioClient:
        client = make_client(server)
        await client.connect()
        ack = await client.authenticate(user_id, organization_id)
        assert ack["success"] is True, ack
        return client

    return connect


@pytest.fixture
async def api(server: ReferenceServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the management API of ``server``."""
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as client:
        yield client


def kpi(org: str = "org_a", queue: str = "support", **extra: Any) -> dict[str, Any]:
    """A valid ``kpi:update`` payload: the seed's minimal KPI update."""
    return {
        "organization_id": org,
        "queue_name": queue,
        "timestamp": "2026-11-25T10:30:00Z",
        "utilization": {"current_utilization": 85},
        "health_score": 90,
        **extra,
    }


def alert(n: int, org: str = "org_a", queue: str = "q1") -> dict[str, Any]:
    """A valid ``alert:triggered`` payload, numbered ``n`` by its ``alert_id``."""
    return {
        "organization_id": org,
        "queue_name": queue,
        "timestamp": "2026-11-25T10:30:00Z",
        "alert_id": f"alert_{n}",
        "rule_name": "utilization_high",
        "severity": "high",
    }


async def eventually(
    condition: Callable[[], Awaitable[Any]], timeout: float = 5.0, interval: float = 0.02
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``.

    For state only observable by asking (the server's registry, its stats),
    where no event announces the change.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = await condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {condition}")
        await asyncio.sleep(interval)


SAMPLE_PAYLOADS: dict[str, dict[str, Any]] = {
    "kpi": kpi(),
    "backlog": {
        "organization_id": "org_a",
        "queue_name": "support",
        "timestamp": "2026-11-25T10:30:00Z",
        "total_items": 42,
    },
    "attendance": {
        "organization_id": "org_a",
        "queue_name": "support",
        "timestamp": "2026-11-25T10:30:00Z",
        "scheduled": 10,
        "present": 9,
    },
    "alert": {
        "organization_id": "org_a",
        "queue_name": "support",
        "timestamp": "2026-11-25T10:30:00Z",
        "alert_id": "alert_1",
        "rule_name": "High utilization",
        "severity": "high",
    },
}
"""A valid payload per broadcast kind (``/broadcast/{kind}``), all for org_a/support."""
