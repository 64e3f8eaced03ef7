"""The private hooks of the two seam modules still fit upstream.

``reference_server/transport/socketio_server.py`` (python-socketio and
python-engineio) and ``reference_server/transport/uvicorn_server.py`` (uvicorn
and websockets) each list their hooks in one table; each test here fails when
the installed library changes what a hook relies on (its name, its
parameters, the way it is called), so that an upgrade is read before it is
trusted. The behaviour each hook
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
import uvicorn
import uvicorn.server
import websockets.datastructures
from engineio.async_socket import AsyncSocket
from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.server import ServerProtocol

from reference_server.transport import socketio_server, uvicorn_server
from reference_server.transport.lean import LeanEvent, LeanQueue
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
    # One module touches uvicorn and websockets; the policies (the connection bounds,
    # the drain, the outbox) import its hooks.
    assert insiders == ["uvicorn_server.py"]
    assert inside


# -- uvicorn and websockets (reference_server/transport/uvicorn_server.py) ------------


def _source(obj: object) -> str:
    return inspect.getsource(obj)  # type: ignore[arg-type]


def test_the_uvicorn_table_names_every_test_of_this_section() -> None:
    table = Path(uvicorn_server.__file__).read_text().split('"""', 2)[1]
    for name in (
        "test_uvicorn_websocket_protocol_keeps_what_the_hooks_replace",
        "test_websockets_deflate_keeps_what_threshold_deflate_overrides",
        "test_uvicorn_http_protocol_is_made_and_counted_as_the_hooks_expect",
        "test_uvicorn_server_keeps_what_the_drain_overrides",
    ):
        assert name in table.replace("_\n   ", "_").replace("\n   ", ""), name
        assert callable(globals()[name])


def test_uvicorn_websocket_protocol_keeps_what_the_hooks_replace() -> None:
    init = _source(WebSocketsSansIOProtocol.__init__)
    for name in ("self.queue", "self.writable", "self.conn = "):
        assert name in init, name
    whole = _source(WebSocketsSansIOProtocol)
    # The lean queue and event offer what uvicorn calls on them, and nothing else is called.
    queue_calls = set(re.findall(r"self\.queue\.(\w+)\(", whole))
    assert queue_calls <= {"put_nowait", "get", "empty"}, queue_calls
    assert all(callable(getattr(LeanQueue, m)) for m in queue_calls)
    writable_calls = set(re.findall(r"self\.writable\.(\w+)\(", whole))
    assert writable_calls <= {"set", "clear", "wait", "is_set"}, writable_calls
    assert all(callable(getattr(LeanEvent, m)) for m in writable_calls)
    # start_keepalive is called once, right after the handshake response is written,
    # and request/response are not read after it.
    send = _source(WebSocketsSansIOProtocol.send)
    assert send.count("self.start_keepalive()") == 1
    after = send.split("self.start_keepalive()", 1)[1]
    assert "self.request" not in after
    assert "self.response" not in after
    assert whole.count("self.start_keepalive()") == 1
    assert "self.request = event" in _source(WebSocketsSansIOProtocol.handle_connect)
    # What the Wire reads.
    for name in ("handshake_complete", "initial_response", "close_sent", "disconnected"):
        assert re.search(rf"self\.{name}\b[^=\n]*= ", init), name
    assert "self.transport" in init
    assert callable(websockets.datastructures.Headers.clear)
    assert {"state", "extensions"} <= set(dir(ServerProtocol(extensions=[])))


def test_websockets_deflate_keeps_what_threshold_deflate_overrides() -> None:
    init = _source(PerMessageDeflate.__init__)
    assert "self.encoder = " in init
    assert "self.decoder = " in init
    assert list(inspect.signature(PerMessageDeflate.encode).parameters) == ["self", "frame"]
    assert list(inspect.signature(PerMessageDeflate.decode).parameters)[:2] == ["self", "frame"]


def test_uvicorn_http_protocol_is_made_and_counted_as_the_hooks_expect() -> None:
    assert "auto" in HTTP_PROTOCOLS
    config = _source(uvicorn.Config.load)
    assert "self.http_protocol_class" in config
    server = _source(uvicorn.Server)
    # Made with these keywords, the connections counted in server_state.
    assert re.search(
        r"config\.http_protocol_class\(.*\s*config=config,\s*server_state=self\.server_state,"
        r"\s*app_state=self\.lifespan\.state,\s*_loop=_loop,?\s*\)",
        server,
    ), "uvicorn makes its HTTP protocol differently"
    assert "connections" in _source(uvicorn.server.ServerState.__init__)
    # The ASGI task is made inside data_received (so it inherits the context set around
    # it), unless reset_contextvars is on (off by default).
    httptools = import_from_string(HTTP_PROTOCOLS["auto"])
    assert "self.loop.create_task(cycle.run_asgi(app))" in _source(httptools)
    assert inspect.signature(uvicorn.Config).parameters["reset_contextvars"].default is False


def test_uvicorn_server_keeps_what_the_drain_overrides() -> None:
    server = _source(uvicorn.Server)
    assert "await self._wait_tasks_to_complete()" in server
    assert list(inspect.signature(uvicorn.Server.handle_exit).parameters) == [
        "self",
        "sig",
        "frame",
    ]
    assert "self._captured_signals.append(sig)" in _source(uvicorn.Server.handle_exit)
    assert "capture_signals" in _source(uvicorn.Server.serve)
    for name in ("should_exit", "force_exit", "started"):
        assert f"self.{name} = " in _source(uvicorn.Server.__init__), name
    assert "self.servers" in _source(uvicorn.Server.startup)
