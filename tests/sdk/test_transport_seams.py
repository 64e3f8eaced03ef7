"""The SDK's private hooks into python-socketio and python-engineio still fit upstream.

``client_sdk/_transport.py`` lists them in one table. The first tests fail
when the installed libraries change what a hook relies on (its name, its
parameters, the way it is called), so that an upgrade is read before it is
trusted. The last ones check, against the real reference server, what the
hook is for: plain events are taken without a task per message, in order
with the ones that still take python-socketio's way (an event asking for an
ack, an ack), and nothing else changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import re
from pathlib import Path
from typing import Any

import engineio
import pytest
import socketio
import socketio.base_client

from client_sdk import IntradayClient, Message
from client_sdk import _transport as transport_module
from client_sdk.admin import AdminClient
from client_sdk.protocol import ConnectionState, KpiPayload
from client_sdk.testing import RunningServer
from client_sdk.verify.proxy import TcpProxy
from tests.conftest import WAIT, kpi
from tests.sdk.conftest import ClientFactory, Watcher, fast_config

HEARTBEAT = {"ping_interval_ms": 1000, "ping_timeout_ms": 500}


@pytest.fixture
def server_settings() -> dict[str, Any]:
    """``srv`` with a fast heartbeat: a client's receive limit is 1.5 s."""
    return HEARTBEAT


MODULE = Path(transport_module.__file__)


def _private(cls: type, base: type) -> set[str]:
    own = vars(cls)
    return {n for n in own if n.startswith("_") and not n.startswith("__") and hasattr(base, n)}


def test_each_private_hook_is_listed_in_the_modules_table() -> None:
    table = MODULE.read_text().split('"""', 2)[1]
    overridden = {
        "socketio.AsyncClient": _private(transport_module._SocketIOClient, socketio.AsyncClient),
        "engineio.AsyncClient": _private(transport_module._EngineIOClient, engineio.AsyncClient),
    }
    assert overridden == {
        "socketio.AsyncClient": {"_engineio_client_class"},
        "engineio.AsyncClient": {"_read_loop_websocket", "_trigger_event"},
    }
    rows = {
        "``AsyncClient._engineio_client_class``": "socketio",
        "``AsyncClient._read_loop_websocket``": "engineio",
        "``AsyncClient._trigger_event``": "engineio",
        "``AsyncClient._binary_packet``": "socketio",
    }
    for name, library in rows.items():
        assert re.search(rf"^{re.escape(name)}\s+{library}\s", table, re.M), name


def test_python_socketio_makes_its_engineio_client_through_the_hook() -> None:
    assert list(inspect.signature(socketio.AsyncClient._engineio_client_class).parameters) == [
        "self"
    ]
    init = inspect.getsource(socketio.base_client.BaseClient.__init__)
    assert "self.eio = self._engineio_client_class()(" in init
    assert "self.eio.on('message', self._handle_eio_message)" in init
    # Its message handler reads the binary attachment state first.
    handle = inspect.getsource(socketio.AsyncClient._handle_eio_message)
    assert re.search(r"if self\._binary_packet:\s+pkt = self\._binary_packet", handle)
    assert "self._binary_packet = None" in inspect.getsource(socketio.AsyncClient.__init__) or (
        "self._binary_packet = None" in init
    )


def test_the_websocket_read_loop_replaced_is_still_upstreams() -> None:
    # Ours is a copy with two changes (see its docstring): when python-engineio
    # changes its loop, read the new one, port the changes, update the pin.
    source = inspect.getsource(engineio.AsyncClient._read_loop_websocket)
    assert hashlib.sha256(source.encode()).hexdigest() == transport_module.READ_LOOP_SHA256
    assert transport_module.READ_LOOP_REPLACED
    assert list(inspect.signature(engineio.AsyncClient._read_loop_websocket).parameters) == ["self"]
    connect = inspect.getsource(engineio.AsyncClient._connect_websocket)
    assert "self.start_background_task(\n            self._read_loop_websocket)" in connect
    # What the loop calls besides: a packet is received through _receive_packet.
    receive = inspect.getsource(engineio.AsyncClient._receive_packet)
    assert "if pkt.packet_type == packet.MESSAGE:" in receive


def test_python_engineio_triggers_each_message_as_a_task_through_the_hook() -> None:
    trigger = engineio.AsyncClient._trigger_event
    assert list(inspect.signature(trigger).parameters) == ["self", "event", "args", "kwargs"]
    receive = inspect.getsource(engineio.AsyncClient._receive_packet)
    assert "await self._trigger_event('message', pkt.data, run_async=True)" in receive
    source = inspect.getsource(trigger)
    assert "run_async = kwargs.pop('run_async', False)" in source
    # With run_async, the task it started is what it returns.
    assert source.count("return task") == 2


def test_python_socketio_calls_the_catch_all_handler_with_the_event_and_its_arguments() -> None:
    # What _take stands in for: an event without its own handler goes to "*"
    # as (event, *arguments); an event with one (ours: connect_error, disconnect) does not.
    handle_event = inspect.getsource(socketio.AsyncClient._handle_event)
    assert "self._trigger_event(data[0], namespace, *data[1:])" in handle_event
    lookup = inspect.getsource(socketio.base_client.BaseClient._get_event_handler)
    assert "if event in self.handlers[namespace]" in lookup
    assert "'*' in self.handlers[namespace]" in lookup
    assert "args = (event, *args)" in lookup


async def _subscribed_to_kpi(
    make_client: ClientFactory, count: int
) -> tuple[list[tuple[int, bool]], asyncio.Event, IntradayClient]:
    """A client subscribed to kpi; what it handles as (n, requires_ack), set once ``count``."""
    seen: list[tuple[int, bool]] = []
    done = asyncio.Event()

    def on_kpi(message: Message[KpiPayload]) -> None:
        seen.append((message.payload.model_extra["n"], message.envelope.requires_ack))  # type: ignore[index]
        if len(seen) == count:
            done.set()

    client: IntradayClient = make_client()
    await client.connect()
    client.on(on_kpi_update=on_kpi)
    await client.subscribe(["kpi"])
    return seen, done, client


async def test_plain_events_are_taken_without_a_task_each_and_keep_their_order(
    make_client: ClientFactory, admin: AdminClient
) -> None:
    count = 30
    seen, done, client = await _subscribed_to_kpi(make_client, count)
    transport = client._supervisor.transport
    assert transport is not None
    eio: Any = transport._client.eio
    tasks_started: list[Any] = []
    trigger = type(eio)._trigger_event

    async def watching(self: Any, event: str, *args: Any, **kwargs: Any) -> Any:
        task = await trigger(self, event, *args, **kwargs)
        if event == "message" and task is not None:
            tasks_started.append(task)
        return task

    eio._trigger_event = watching.__get__(eio)
    # Every third one asks for an ack: it goes python-socketio's way, in a task,
    # and the plain events around it must neither overtake it nor fall behind.
    for n in range(count):
        await admin.publish_kpi(kpi(n=n), requires_ack=n % 3 == 0)
    async with asyncio.timeout(WAIT):
        await done.wait()
    assert seen == [(n, n % 3 == 0) for n in range(count)]
    assert 0 < len(tasks_started) < count


async def test_over_another_engineio_loop_the_client_reads_with_upstreams_in_order(
    make_client: ClientFactory, admin: AdminClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a user on a python-engineio whose loop we did not check gets: its own
    # loop, a task per message, and still every message in order.
    monkeypatch.setattr(transport_module, "READ_LOOP_REPLACED", False)
    seen, done, _ = await _subscribed_to_kpi(make_client, 30)
    for n in range(30):
        await admin.publish_kpi(kpi(n=n), requires_ack=n % 3 == 0)
    async with asyncio.timeout(WAIT):
        await done.wait()
    assert seen == [(n, n % 3 == 0) for n in range(30)]


async def test_a_silent_connection_ends_when_its_receive_timeout_expires(
    srv: RunningServer, proxy: TcpProxy
) -> None:
    # The read loop's one timer must end a receive that waited ping_interval +
    # ping_timeout (1.5 s here), as wait_for around each receive did: nothing
    # else in python-engineio's client notices a connection gone silent.
    client = IntradayClient(fast_config(proxy.url, path=srv.path, reconnection_attempts=None))
    watcher = Watcher(client)
    try:
        await client.connect()
        seen = len(watcher.states)
        loop = asyncio.get_running_loop()
        proxy.blackhole()
        silent_since = loop.time()
        await watcher.until(lambda: ConnectionState.RECONNECTING in watcher.states[seen:])
        noticed_after = loop.time() - silent_since
    finally:
        proxy.restore()
        await client.close()
    limit = (HEARTBEAT["ping_interval_ms"] + HEARTBEAT["ping_timeout_ms"]) / 1000
    # Not much earlier than a receive's limit (the last ping may have come just
    # before the black hole), and not much later.
    assert limit - 1.0 <= noticed_after < 5.0
