"""uvicorn and websockets, as the server runs them: the only module that touches their insides.

Every use of uvicorn's or websockets' internals is in this module, and only
here; it holds hooks, not policy. The policies that use them live in modules
that import this one: the outbox (:mod:`.outbox`, through :class:`Wire`),
the TCP connection bounds (:mod:`.http_guard`, through
:class:`HTTPConnectionHooks`) and the graceful drain (:mod:`.drain`, through
:class:`ServerHooks`). Checked with uvicorn 0.55.0, websockets 17.4 and
httptools 0.9.0; ``tests/server/test_transport_seams.py`` fails when one of
them changes what a hook relies on (the test named in the last column).

What is touched / why / the test that fails when upstream changes it:

1. ``WebSocketsSansIOProtocol`` subclassed (``uvicorn.Config(ws=...)``): its
   ``conn`` replaced; its ``queue`` (uvicorn calls ``put_nowait``, ``get``,
   ``empty``) and ``writable`` (``set``, ``clear``, ``wait``, ``is_set``)
   replaced by :mod:`.lean` ones; ``start_keepalive`` (called once, right
   after the handshake response is written) also empties ``request.headers``
   and drops ``response`` / compression with a threshold, and 9 KiB less per
   idle connection (bench/idle_memory.py) /
   ``test_uvicorn_websocket_protocol_keeps_what_the_hooks_replace``.
2. websockets' ``PerMessageDeflate``: ``encode`` overridden, ``encoder`` and
   ``decoder`` made in ``__init__`` (we make them on first use) / a message
   under the threshold goes uncompressed (RFC 7692 allows it), and no 30 KiB
   of zlib state per connection / ``test_websockets_deflate_keeps_what_
   threshold_deflate_overrides``.
3. The protocol is the ``__self__`` of the ASGI ``send``; read: its
   ``transport``, ``conn.state``, ``conn.extensions``, ``handshake_complete``,
   ``initial_response``, ``close_sent``, ``disconnected`` / the outbox writes
   a prebuilt frame straight to the transport when idle and counts what the
   transport still holds / ``test_uvicorn_websocket_protocol_keeps_what_the_
   hooks_replace`` (and tests/server/test_outbox_writes.py end to end).
4. ``uvicorn.Config(http=cls)`` calls ``cls(config=, server_state=,
   app_state=, _loop=)``; ``uvicorn.config.HTTP_PROTOCOLS["auto"]`` (loaded
   with ``uvicorn.importer.import_from_string``); the application's task is
   created inside the protocol's ``data_received``; ``server_state.connections``
   / the connection bounds (:mod:`.http_guard`) wrap the protocol uvicorn would
   use, know which connection a request came on, and cap the open ones /
   ``test_uvicorn_http_protocol_is_made_and_counted_as_the_hooks_expect``.
5. ``uvicorn.Server``: ``_wait_tasks_to_complete``, ``handle_exit`` and
   ``capture_signals`` overridden; ``_captured_signals`` left alone on
   purpose; ``should_exit``, ``force_exit``, ``started``, ``servers``,
   ``server_state.connections`` read or set / the graceful drain
   (:mod:`.drain`) runs first, aborts the connections still open after it,
   exits 0 on SIGTERM, and embeds without signal handlers /
   ``test_uvicorn_server_keeps_what_the_drain_overrides`` (and
   tests/server/test_shutdown.py end to end).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import weakref
import zlib
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from types import FrameType
from typing import Any, Final
from urllib.parse import parse_qs

import uvicorn
from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import CONT, CTRL_OPCODES, Frame
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import ExtensionParameter

from .frames import MessageFrames
from .lean import LeanEvent, LeanQueue

__all__ = [
    "SCOPE_KEY",
    "HTTPConnectionHooks",
    "ServerHooks",
    "ThresholdDeflate",
    "ThresholdDeflateFactory",
    "WebSocketIndex",
    "Wire",
    "connection_of_request",
    "frame_for",
    "websocket_protocol",
    "wire_of",
]

# -- the WebSocket protocol: compression with a threshold, lean per-connection state --


class ThresholdDeflate(PerMessageDeflate):
    """permessage-deflate that sends single-frame messages under ``threshold`` bytes as they are.

    Its zlib objects are made when first used, not when the connection opens:
    most connections never send or receive a message over the threshold, and
    the two objects, made at once, held about 30 KiB of every idle connection.
    """

    def __init__(self, *args: Any, threshold: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threshold = threshold
        self._plain = False
        # PerMessageDeflate made them; __getattr__ makes them again on first use.
        self.__dict__.pop("encoder", None)
        self.__dict__.pop("decoder", None)

    def __getattr__(self, name: str) -> Any:
        # Only reached for a missing attribute: the codecs before their first use.
        if name == "encoder" and not self.local_no_context_takeover:
            settings = self.compress_settings
            self.encoder = zlib.compressobj(wbits=-self.local_max_window_bits, **settings)
            return self.encoder
        if name == "decoder" and not self.remote_no_context_takeover:
            self.decoder = zlib.decompressobj(wbits=-self.remote_max_window_bits)
            return self.decoder
        raise AttributeError(name)

    def encode(self, frame: Frame) -> Frame:
        """Compress ``frame``, unless it is a whole message under the threshold."""
        if frame.opcode in CTRL_OPCODES:
            return frame
        if frame.opcode is not CONT:
            self._plain = frame.fin and len(frame.data) < self.threshold
        if self._plain:
            return frame  # RSV1 stays clear: an uncompressed message (RFC 7692, 6.1)
        return super().encode(frame)


class ThresholdDeflateFactory(ServerPerMessageDeflateFactory):
    """Negotiates permessage-deflate as websockets does, with :class:`ThresholdDeflate`."""

    def __init__(self, threshold: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        response, negotiated = super().process_request_params(params, accepted_extensions)
        extension = ThresholdDeflate(
            negotiated.remote_no_context_takeover,
            negotiated.local_no_context_takeover,
            negotiated.remote_max_window_bits,
            negotiated.local_max_window_bits,
            self.compress_settings,
            threshold=self.threshold,
        )
        return response, extension


def websocket_protocol(threshold: int) -> type[WebSocketsSansIOProtocol]:
    """uvicorn's sans-I/O WebSocket protocol, compressing messages of ``threshold`` bytes up.

    Also lighter per connection: its event queue and ``writable`` flag are
    :mod:`.lean` ones (3.8 KiB less), and the handshake's headers are let go
    of once the response is sent (uvicorn copied them into the ASGI scope).
    """

    # uvicorn's own settings (12-bit windows, memLevel 5), our extension, and no
    # context takeover from server to client: each compressed message starts
    # afresh, so one compression serves every socket (frames.MessageFrames) and no
    # compressor lives between messages. The factory only negotiates (each
    # connection gets its own extension from it): one list serves every connection.
    factories = [
        ThresholdDeflateFactory(
            threshold,
            server_no_context_takeover=True,
            server_max_window_bits=12,
            client_max_window_bits=12,
            compress_settings={"memLevel": 5},
        )
    ]

    class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.queue: Any = LeanQueue()
            self.writable: Any = LeanEvent()
            self.writable.set()
            if self.config.ws_per_message_deflate:
                self.conn = ServerProtocol(
                    extensions=factories,
                    max_size=self.config.ws_max_size,
                    logger=logging.getLogger("uvicorn.error"),
                )

        def start_keepalive(self) -> None:
            # Called once, right after the handshake response was written. The
            # request stays referenced by websockets' parser for the connection's
            # life: empty its headers (about 2 KiB) and drop the response.
            super().start_keepalive()
            request = getattr(self, "request", None)
            if request is not None:
                request.headers.clear()
            self.response = None  # type: ignore[assignment]

    return LeanWebSocketProtocol


# -- the wire: what the outbox writes through ---------------------------------------

SCOPE_KEY: Final = "intraday.websocket"
"""Where the guard leaves a direct WebSocket's uvicorn protocol in its ASGI scope."""


class Wire:
    """One uvicorn WebSocket, seen by the outbox that writes to it."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol

    def ready(self) -> bool:
        """Open, not paused by flow control, and holding nothing unsent: a frame goes out now."""
        protocol = self._protocol
        transport = protocol.transport
        return bool(
            protocol.handshake_complete
            and protocol.initial_response is None
            and not protocol.close_sent
            and not protocol.disconnected
            and protocol.writable.is_set()
            and protocol.conn.state is State.OPEN
            and not transport.is_closing()
            and transport.get_write_buffer_size() == 0
        )

    def buffered(self) -> int:
        """Bytes the transport holds, not yet handed to the kernel."""
        transport = self._protocol.transport
        return 0 if transport.is_closing() else int(transport.get_write_buffer_size())

    def frame(self, frames: MessageFrames) -> bytes | None:
        """The frame of ``frames`` this connection takes; ``None`` if none fits it."""
        return frame_for(frames, self._protocol.conn.extensions)

    def send(self, data: bytes) -> None:
        """Write whole frames, unless the connection has begun to close (then they are dropped)."""
        protocol = self._protocol
        transport = protocol.transport
        if not (protocol.close_sent or protocol.disconnected or transport.is_closing()):
            transport.write(data)

    async def drained(self) -> None:
        """Return once uvicorn's flow control lets writes through again."""
        await self._protocol.writable.wait()


def frame_for(frames: MessageFrames, extensions: Sequence[Any]) -> bytes | None:
    """The frame for a connection with these extensions; ``None``: its own compressor only."""
    if not extensions:
        return frames.plain()
    if len(extensions) != 1 or not isinstance(extensions[0], ThresholdDeflate):
        return None
    deflate = extensions[0]
    if frames.weight < deflate.threshold:
        return frames.plain()
    if not deflate.local_no_context_takeover:
        return None  # compressed against this connection's history
    return frames.deflated(deflate.local_max_window_bits, deflate.compress_settings)


def wire_of(send: Any) -> Wire | None:
    """The wire behind an ASGI WebSocket ``send`` (``None`` under another server)."""
    protocol = getattr(send, "__self__", None)
    return Wire(protocol) if isinstance(protocol, WebSocketsSansIOProtocol) else None


class WebSocketIndex:
    """Which uvicorn WebSocket protocol carries each Engine.IO session."""

    def __init__(self) -> None:
        self._upgrades: dict[str, WebSocketsSansIOProtocol] = {}

    def opened(self, scope: MutableMapping[str, Any], send: Any) -> str | None:
        """Record the protocol behind ``send``; the session id to :meth:`closed` for an upgrade."""
        protocol = getattr(send, "__self__", None)
        if not isinstance(protocol, WebSocketsSansIOProtocol):
            return None  # another server or WebSocket implementation: no direct writes
        scope[SCOPE_KEY] = protocol
        query = scope.get("query_string", b"")
        sids = parse_qs(query.decode("latin-1") if isinstance(query, bytes) else "").get("sid")
        if not sids:
            return None
        sid: str = sids[0]
        self._upgrades[sid] = protocol
        return sid

    def closed(self, sid: str) -> None:
        """Forget the upgraded session ``sid``."""
        self._upgrades.pop(sid, None)

    def wire(self, eio_sid: str, environ: Mapping[str, Any] | None) -> Wire | None:
        """The wire of ``eio_sid`` (its connect ``environ`` for a direct WebSocket)."""
        protocol = self._upgrades.get(eio_sid)
        if protocol is None and environ is not None:
            scope = environ.get("asgi.scope")
            found = scope.get(SCOPE_KEY) if isinstance(scope, MutableMapping) else None
            protocol = found if isinstance(found, WebSocketsSansIOProtocol) else None
        return Wire(protocol) if protocol is not None else None


# -- the HTTP protocol: what the connection bounds wrap --------------------------------

# A weak reference: every context copied while uvicorn handles the request keeps
# it (the WebSocket's ASGI task, and the context of that task's done callback,
# for the connection's life); a strong one kept uvicorn's HTTP protocol (its
# parser, buffers and flow control: about 4 KiB) alive as long as the WebSocket.
_request_connection: contextvars.ContextVar[weakref.ref[HTTPConnectionHooks] | None] = (
    contextvars.ContextVar("intraday_http_connection", default=None)
)


def connection_of_request() -> HTTPConnectionHooks | None:
    """The connection the current ASGI request arrived on (``None`` under another server)."""
    ref = _request_connection.get()
    return ref() if ref is not None else None


class HTTPConnectionHooks(asyncio.Protocol):
    """uvicorn's HTTP protocol for one connection, wrapped without subclassing it.

    ``uvicorn.Config(http=...)`` takes a subclass; it forwards everything to the
    protocol uvicorn would use (``HTTP_PROTOCOLS["auto"]``: httptools, else
    h11) and makes the connection known to the requests it carries
    (:func:`connection_of_request`: uvicorn creates the application's task
    inside ``data_received``, so the task inherits the context set around it).
    """

    def __init__(self, **kwargs: Any) -> None:
        self._inner: Any = _http_protocol()(**kwargs)
        self._server_state = kwargs["server_state"]
        self._ref = weakref.ref(self)

    def open_connections(self) -> int:
        """HTTP and WebSocket connections the server has open."""
        return len(self._server_state.connections)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        token = _request_connection.set(self._ref)
        try:
            self._inner.data_received(data)
        finally:
            _request_connection.reset(token)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


_HTTP_PROTOCOL: list[type[asyncio.Protocol]] = []


def _http_protocol() -> type[asyncio.Protocol]:
    if not _HTTP_PROTOCOL:
        _HTTP_PROTOCOL.append(import_from_string(HTTP_PROTOCOLS["auto"]))
    return _HTTP_PROTOCOL[0]


# -- the server: what the drain overrides ----------------------------------------------


class ServerHooks(uvicorn.Server):
    """uvicorn's server, with the places a graceful drain needs as plain methods.

    Subclasses override :meth:`on_exit_signal` (a signal arrived) and
    :meth:`before_closing` (the application's shutdown is done; uvicorn is
    about to wait for the open connections).
    """

    def __init__(self, config: uvicorn.Config, *, signals: bool) -> None:
        super().__init__(config)
        self._signals = signals
        self.loop: asyncio.AbstractEventLoop | None = None
        """The loop serving, once started."""
        self.listening = asyncio.Event()
        """Set once the server listens."""

    def on_exit_signal(self, sig: int) -> None:
        """SIGTERM or SIGINT arrived (uvicorn's default: stop now)."""
        self.stop_serving(force=False)

    async def before_closing(self) -> None:
        """Run before uvicorn waits for the open connections to close."""

    def stop_serving(self, *, force: bool) -> None:
        """Let uvicorn stop (``force``: without waiting for connections)."""
        self.should_exit = True
        self.force_exit = force

    @property
    def forced(self) -> bool:
        """Whether the exit is forced (a second signal)."""
        return bool(self.force_exit)

    def open_connections(self) -> list[asyncio.Protocol]:
        """Every open HTTP and WebSocket connection's protocol."""
        return list(self.server_state.connections)

    @staticmethod
    def abort(connection: asyncio.Protocol) -> None:
        """Abort a connection's transport: its tasks end."""
        transport = getattr(connection, "transport", None)
        if transport is not None:
            transport.abort()

    def ports(self) -> list[int]:
        """The ports listened on."""
        return [int(s.getsockname()[1]) for server in self.servers for s in server.sockets]

    async def startup(self, sockets: Any = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets=sockets)
        if self.started:
            self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if not self._signals:
            yield
            return
        with super().capture_signals():
            yield

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Deliberately not recorded in _captured_signals: uvicorn would re-raise
        # it after shutdown and the process would die of the signal, not exit 0.
        self.on_exit_signal(sig)

    async def _wait_tasks_to_complete(self) -> None:
        await self.before_closing()
        await super()._wait_tasks_to_complete()
