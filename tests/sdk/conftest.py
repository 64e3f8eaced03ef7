"""Fixtures of the SDK tier: a running reference server, its admin, a TCP proxy, clients.

``srv`` is a reference server started in this event loop with
:func:`client_sdk.testing.running_server` (the helper the SDK ships for its
users), with the settings of the ``server_settings`` fixture: none by
default; a module whose server needs other settings overrides that fixture::

    @pytest.fixture
    def server_settings() -> dict[str, Any]:
        return {"auth_mode": "jwt", "jwt_secret": SECRET}

``admin`` and ``proxy`` are an :class:`AdminClient` of ``srv`` and a
:class:`TcpProxy` in front of it. ``make_client(url=None, **overrides)``
builds an :class:`IntradayClient` of ``srv`` (or of ``url``) with
:data:`FAST_RETRIES`; it does not connect, and every client it built is closed
after the test. :func:`fast_config` is the same configuration, for a client
of another server.

:class:`Watcher` records what a client reports and :class:`Recorder` what an
Rx observable emits; both wait with ``until(condition)``, re-checked after
each recorded change and bounded by a timeout (no sleeping).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, Generic, TypeVar

import pytest

from client_sdk import IntradayClient, Message
from client_sdk.admin import AdminClient
from client_sdk.config import ClientConfig
from client_sdk.exceptions import IntradayError
from client_sdk.protocol import ConnectionState, KpiPayload, SystemPayload
from client_sdk.testing import RunningServer, running_server
from client_sdk.verify.proxy import TcpProxy
from tests.conftest import WAIT

T = TypeVar("T")

FAST_RETRIES: Final[dict[str, Any]] = {
    "reconnection_delay": 0.05,
    "reconnection_delay_max": 0.2,
    "timeout": 2.0,
    "ack_timeout": 2.0,
}
"""Client settings for tests: retries 0.05 s apart, doubling up to 0.2 s; a connection
attempt or a request gives up after 2 s, so an outage is over well within :data:`WAIT`."""


def fast_config(url: str, **changes: Any) -> ClientConfig:
    """The configuration of a test client of ``url``: user_1 of org_a, :data:`FAST_RETRIES`."""
    base = ClientConfig(url=url, user_id="user_1", organization_id="org_a", **FAST_RETRIES)
    return base.replace(**changes)


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture
def server_settings() -> dict[str, Any]:
    """Settings of the ``srv`` server (none: the defaults); override it in a module."""
    return {}


@pytest.fixture
async def srv(server_settings: dict[str, Any]) -> AsyncIterator[RunningServer]:
    """A reference server with ``server_settings``, running in this event loop."""
    async with running_server(**server_settings) as server:
        yield server


@pytest.fixture
async def admin(srv: RunningServer) -> AsyncIterator[AdminClient]:
    """An admin client of ``srv``."""
    async with srv.admin() as client:
        yield client


@pytest.fixture
async def proxy(srv: RunningServer) -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of ``srv``: connect to ``proxy.url`` to suffer its faults."""
    async with TcpProxy("127.0.0.1", srv.port) as tcp:
        yield tcp


ClientFactory = Callable[..., IntradayClient]


@pytest.fixture
async def make_client(srv: RunningServer) -> AsyncIterator[ClientFactory]:
    """Build (not connect) clients of ``srv``, or of ``url``; all closed after the test.

    ``make_client(url=None, **overrides)``: the :func:`fast_config` of ``url``
    (``srv.url`` by default) with ``overrides``, on ``srv``'s Socket.IO path.
    """
    clients: list[IntradayClient] = []

    def make(url: str | None = None, **overrides: Any) -> IntradayClient:
        settings = {"path": srv.path, **overrides}
        client = IntradayClient(fast_config(srv.url if url is None else url, **settings))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


# -- recording and waiting ------------------------------------------------------------


class Recording:
    """Things recorded as they happen; :meth:`until` waits for a condition on them."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def _into(self, items: list[Any]) -> Callable[[Any], None]:
        """A callback that appends what it is given to ``items``."""

        def record(item: Any) -> None:
            items.append(item)
            self._changed.set()

        return record

    async def until(self, condition: Callable[[], bool], timeout: float = WAIT) -> None:
        """Wait until ``condition()`` holds (checked after every recorded change)."""
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                if condition():
                    return
                await self._changed.wait()


class Watcher(Recording):
    """Records a client's states, errors, lifecycle callbacks, KPI and notification messages."""

    def __init__(self, client: IntradayClient) -> None:
        super().__init__()
        self.states: list[ConnectionState] = []
        self.errors: list[IntradayError] = []
        """What the ``errors`` stream emitted."""
        self.on_errors: list[IntradayError] = []
        """What ``on_error`` was called with."""
        self.connects = 0
        self.disconnects: list[str] = []
        self.reconnects = 0
        self.kpis: list[Message[KpiPayload]] = []
        self.notifications: list[Message[SystemPayload]] = []
        client.state_changes.subscribe(self._into(self.states))
        client.errors.subscribe(self._into(self.errors))
        client.on(
            on_connect=self._connect,
            on_disconnect=self._into(self.disconnects),
            on_reconnect=self._reconnect,
            on_error=self._into(self.on_errors),
            on_kpi_update=self._into(self.kpis),
            on_system_notification=self._into(self.notifications),
        )

    def _connect(self) -> None:
        self.connects += 1
        self._changed.set()

    def _reconnect(self) -> None:
        self.reconnects += 1
        self._changed.set()

    async def until_reconnects(self, count: int, timeout: float = WAIT) -> None:
        """Wait until ``on_reconnect`` has fired ``count`` times."""
        await self.until(lambda: self.reconnects >= count, timeout)

    async def until_disconnects(self, count: int, timeout: float = WAIT) -> None:
        """Wait until ``on_disconnect`` has fired ``count`` times."""
        await self.until(lambda: len(self.disconnects) >= count, timeout)


class Recorder(Recording, Generic[T]):
    """An Rx observer that keeps what it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[T] = []
        self.errors: list[Exception] = []
        self.completed = False

    def on_next(self, value: T) -> None:
        self.values.append(value)
        self._changed.set()

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)
        self._changed.set()

    def on_completed(self) -> None:
        self.completed = True
        self._changed.set()
