"""The private hooks of ``reference_server/transport/socketio_server.py`` still fit upstream.

Each overridden python-socketio method is listed in that module's table; each
test here fails when the installed python-socketio or python-engineio changes
what the override relies on (its name, its parameters, the way it is called),
so that an upgrade is read before it is trusted. The behaviour each hook
provides is covered end to end elsewhere (tests/server/test_limits.py,
test_bad_frames.py, test_outbox.py ...).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import engineio
import pytest
import socketio
from engineio.async_socket import AsyncSocket

from reference_server.transport import socketio_server
from reference_server.transport.outbox import MAX_PACKETS_PER_ROUND, Outbox

MODULE = Path(socketio_server.__file__)

HOOKS = {
    "_engineio_server_class": ["self"],
    "_handle_eio_connect": ["self", "eio_sid", "environ"],
    "_handle_eio_disconnect": ["self", "eio_sid", "reason"],
    "_handle_connect": ["self", "eio_sid", "namespace", "data"],
    "_handle_disconnect": ["self", "eio_sid", "namespace", "reason"],
    "_handle_eio_message": ["self", "eio_sid", "data"],
}


def _overridden() -> set[str]:
    own = vars(socketio_server.IntradaySocketServer)
    upstream = {name for name in dir(socketio.AsyncServer) if name.startswith("_")}
    return {name for name in own if name in upstream and not name.startswith("__")}


def test_at_most_six_private_methods_are_overridden_all_listed_in_the_table() -> None:
    overridden = _overridden()
    assert overridden == set(HOOKS)
    assert len(overridden) <= 6
    table = MODULE.read_text().split('"""', 2)[1]
    for name in overridden:
        assert f"``{name}``" in table, f"{name} is not in the module's table"
    # The Engine.IO server overrides one method, and a public, documented one.
    engineio_own = vars(socketio_server.OutboxEngineIOServer)
    assert [n for n in engineio_own if not n.startswith("__")] == ["create_queue"]
    assert engineio.AsyncServer.create_queue.__doc__


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_each_hook_keeps_its_upstream_parameters(name: str) -> None:
    upstream = getattr(socketio.AsyncServer, name)
    parameters = list(inspect.signature(upstream).parameters)
    assert parameters == HOOKS[name], f"python-socketio changed {name}: {parameters}"


def test_python_socketio_still_routes_engineio_events_through_the_hooks() -> None:
    init = inspect.getsource(socketio.base_server.BaseServer.__init__)
    # Its Engine.IO handlers are registered by these names, and the engine class made by the hook.
    for name in ("_handle_eio_connect", "_handle_eio_message", "_handle_eio_disconnect"):
        assert re.search(rf"self\.eio\.on\(\s*'\w+',\s*self\.{name}\)", init), name
    assert "self._engineio_server_class()" in init
    handle_message = inspect.getsource(socketio.AsyncServer._handle_eio_message)
    assert "_handle_connect" in handle_message
    assert "_handle_disconnect" in handle_message


def test_a_session_queue_is_made_by_create_queue_and_polled_get_then_get_nowait() -> None:
    """The outbox is the session's queue; a poll takes one get() and get_nowait() until empty.

    The 16-packet cap of a long-poll response relies on that shape.
    """
    base = inspect.getsource(engineio.base_socket.BaseSocket.__init__)
    assert "self.queue = self.server.create_queue()" in base
    poll = inspect.getsource(AsyncSocket.poll)
    assert "self.queue.get()" in poll
    assert "self.queue.get_nowait()" in poll
    assert "asyncio.QueueEmpty" in poll
    assert engineio.payload.Payload.max_decode_packets == MAX_PACKETS_PER_ROUND
    # Everything python-engineio sends to a client goes through the queue's put.
    send = inspect.getsource(AsyncSocket.send)
    assert "self.queue.put(pkt)" in send
    for method in ("put", "put_nowait", "get", "get_nowait", "task_done", "join", "empty"):
        assert callable(getattr(Outbox, method))


def test_no_module_but_the_transport_touches_the_wire_libraries() -> None:
    root = MODULE.parents[1]
    wire = re.compile(
        r"^\s*(?:import|from)\s+(?:socketio|engineio|websockets|uvicorn\.protocols)\b", re.M
    )
    outside = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "transport" not in path.relative_to(root).parts and wire.search(path.read_text())
    ]
    assert outside == []
    inside = [p.name for p in (root / "transport").glob("*.py") if wire.search(p.read_text())]
    uvicorn_or_websockets = re.compile(r"^\s*(?:import|from)\s+(?:websockets|uvicorn)\b", re.M)
    insiders = [
        p.name
        for p in (root / "transport").glob("*.py")
        if uvicorn_or_websockets.search(p.read_text())
    ]
    # The WebSocket protocol and the drain; the TCP connection bounds before any request
    # (each with its own table of what it relies on).
    assert sorted(insiders) == ["http_guard.py", "uvicorn_server.py"]
    assert inside
