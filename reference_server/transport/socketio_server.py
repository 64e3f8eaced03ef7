"""The Socket.IO transport: python-socketio's ``AsyncServer``, its sockets and their outboxes.

Every private hook into python-socketio and python-engineio is in this module,
and only here; each overrides a method on the way *in* (ingress) or of session
admission. Nothing goes out through python-socketio's emit: every byte a
socket receives leaves through its :class:`~.outbox.Outbox`, which python-engineio
makes as the session's queue through ``AsyncServer.create_queue`` (documented).

Checked against python-socketio 5.16.3-5.18.1 and python-engineio 4.13.3-4.15.1.
``tests/server/test_transport_seams.py`` fails when one of them changes.

==============================  =========================================  =========
Overridden (python-socketio)    Why                                        Job
==============================  =========================================  =========
``_engineio_server_class``      our Engine.IO server, whose                admission
                                ``create_queue`` makes the outbox
``_handle_eio_connect``         count a session without a socket (bare),   admission
                                refuse one beyond the overflow; bind its
                                outbox to its WebSocket
``_handle_eio_disconnect``      forget the session; end its outbox;        admission
                                answer the pending long-poll GET at once
``_handle_connect``             CONNECT rate, unknown namespace, a second  admission
                                CONNECT; the welcome after the CONNECT
``_handle_disconnect``          a session whose socket left is bare again  admission
``_handle_eio_message``         screen before decoding; the ack id with    ingress
                                the event; our acks; binary refused
==============================  =========================================  =========

No other private method is called (only each hook's own ``super()``). Relied on
besides (read, not overridden): ``AsyncServer.eio``, ``environ``,
``manager_initialized``, ``manager.sid_from_eio_sid``/``eio_sid_from_sid``,
``ConnectionRefusedError.error_args``;
python-engineio's ``AsyncServer.sockets`` and a socket's ``queue``,
``upgraded``, ``upgrading``, ``closing``, ``closed`` and ``close()``; and the
shape of ``AsyncSocket.poll`` (one ``get()``, then ``get_nowait()`` until
``QueueEmpty``), which caps a long-poll response at 16 packets
(:data:`~.outbox.MAX_PACKETS_PER_ROUND`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Coroutine
from typing import Any

import engineio
import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from client_sdk.protocol import ControlEvent, ErrorCode, ProtocolError

from ..config import ServerSettings
from ..connections import Connection
from ..hub import Hub
from ..screening import IngressScreen
from .admission import SessionAdmission
from .codecs import SocketIOCodec
from .fanout import outbox_of
from .guard import engineio_logger
from .ingress import NAMESPACE, Ingress
from .message import Message, WireLike
from .outbox import Outbox, OutboxLink, OutboxPolicy
from .uvicorn_server import WebSocketIndex

__all__ = [
    "POLLING_CLOSE_GRACE",
    "IntradaySocketServer",
    "SocketIOLink",
    "create_socketio_server",
    "outbox_policy",
]

log = logging.getLogger(__name__)

POLLING_CLOSE_GRACE = 1.0
"""Seconds a closed polling session waits for the GET that collects its last packets."""


def outbox_policy(settings: ServerSettings) -> OutboxPolicy:
    """The outbox limits ``settings`` give."""
    return OutboxPolicy(
        max_messages=settings.max_queued_messages_per_socket,
        max_bytes=settings.max_queued_bytes_per_socket,
        batch_window_ms=settings.batch_window_ms,
        batch_max_messages=settings.batch_max_messages,
    )


class OutboxEngineIOServer(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server whose sessions queue into an :class:`~.outbox.Outbox`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outbox_codec = SocketIOCodec(1_048_576)
        self.outbox_policy = OutboxPolicy(1000, 8 * 1_048_576, 50, 100)

    def create_queue(self, *args: Any, **kwargs: Any) -> Outbox:
        """The session's queue: its outbox (python-engineio's documented factory)."""
        return Outbox(self.outbox_codec, self.outbox_policy)


class SocketIOLink(OutboxLink):
    """A Socket.IO socket as the hub sees it: everything through its outbox."""

    __slots__ = ("_server", "_sid", "outbox")

    def __init__(self, server: IntradaySocketServer, sid: str, outbox: Outbox) -> None:
        self._server = server
        self._sid = sid
        self.outbox = outbox

    @property
    def transport(self) -> str:
        """``websocket`` or ``polling`` (it changes when a polling client upgrades)."""
        try:
            return str(self._server.transport(self._sid, namespace=NAMESPACE))
        except KeyError:
            return "closed"

    async def join(self, room: str) -> None:
        """Enter python-socketio's room too (the Admin UI shows them)."""
        await self._server.enter_room(self._sid, room, namespace=NAMESPACE)

    async def leave(self, room: str) -> None:
        """Leave python-socketio's room."""
        await self._server.leave_room(self._sid, room, namespace=NAMESPACE)

    async def close(self) -> None:
        """Kick the socket: Socket.IO DISCONNECT, then the Engine.IO session is closed too.

        python-socketio's ``disconnect`` alone leaves the Engine.IO session
        open, on which a client could send CONNECT again and be back at once.
        """
        self.outbox.flush()
        eio_sid = self._server.manager.eio_sid_from_sid(self._sid, NAMESPACE)
        await self._server.disconnect(self._sid, namespace=NAMESPACE)
        if eio_sid is not None:
            await self._server.close_session(eio_sid)

    async def drop(self) -> None:
        """Close the transport without a Socket.IO DISCONNECT (a shutdown, not a kick).

        Clients read a DISCONNECT as "do not come back"; a server going away
        for a restart wants them back, so only the Engine.IO session ends.
        """
        self.outbox.flush()  # the shutdown notice may be gathered
        eio_sid = self._server.manager.eio_sid_from_sid(self._sid, NAMESPACE)
        if eio_sid is not None:
            await self._server.close_session(eio_sid)


def _refusal(error: ProtocolError) -> Exception:
    # (message, ERROR): the only form whose ERROR reaches a JavaScript client's
    # connect_error as its ``data``.
    refusal: Exception = socketio.exceptions.ConnectionRefusedError(error.message, error.to_wire())
    return refusal


class IntradaySocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server with the protocol's admission, ingress and outboxes."""

    def __init__(
        self,
        hub: Hub,
        screen: IngressScreen,
        websockets: WebSocketIndex | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._hub = hub
        settings = hub.settings
        self.outbox_policy = outbox_policy(settings)
        eio: OutboxEngineIOServer = self.eio
        eio.outbox_policy = self.outbox_policy
        eio.outbox_codec = SocketIOCodec(settings.max_message_size_bytes)
        self._websockets = websockets
        self._admission = SessionAdmission(hub, self._expire_session)
        self._ingress = Ingress(hub, screen)
        self._welcome: dict[str, dict[str, Any]] = {}
        self.foreign_namespaces = False
        """Set by :func:`instrument_for_admin_ui`: events of other namespaces are handled."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._ending: set[str] = set()  # polling sessions closing after their grace
        self.on("connect", self._on_connect, namespace=NAMESPACE)
        self.on("disconnect", self._on_disconnect, namespace=NAMESPACE)

    def outboxes(self) -> list[Outbox]:
        """The outbox of every Engine.IO session."""
        return [s.queue for s in self.eio.sockets.values() if isinstance(s.queue, Outbox)]

    def _outbox(self, eio_sid: str) -> Outbox | None:
        socket = self.eio.sockets.get(eio_sid)
        queue = socket.queue if socket is not None else None
        return queue if isinstance(queue, Outbox) else None

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- hooks: session admission ---------------------------------------------

    def _engineio_server_class(self) -> type[OutboxEngineIOServer]:
        return OutboxEngineIOServer

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> bool | None:
        if not self._admission.watch(eio_sid):
            return False  # python-engineio refuses the session (HTTP 401)
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None and isinstance(socket.queue, Outbox):
            # Partials, not closures: they live as long as the session.
            socket.queue.find_wire = functools.partial(self._find_wire, eio_sid, socket)
            socket.queue.on_too_slow = functools.partial(self._too_slow, eio_sid)
        # The environ is kept for the session's life, and with it the ASGI scope.
        # Its body reader is an instance of a class python-engineio defines per
        # request (2.4 KiB), and nothing reads a connect request's body; the
        # scope's header list (1 KiB) is read on the way in only (the environ
        # keeps its own copy of the headers as HTTP_* keys).
        environ.pop("wsgi.input", None)
        scope = environ.get("asgi.scope")
        if isinstance(scope, dict) and scope.get("type") == "websocket":
            scope["headers"] = []
        await super()._handle_eio_connect(eio_sid, environ)
        return None

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        outbox = self._outbox(eio_sid)
        if outbox is not None:
            # What was written straight this turn (a notice flushed just before the
            # close, say) goes now; end() follows.
            outbox.closing()
        self._admission.ended(eio_sid)
        self._ending.discard(eio_sid)
        await super()._handle_eio_disconnect(eio_sid, reason)
        socket = self.eio.sockets.get(eio_sid)
        if socket is None:
            return
        if isinstance(socket.queue, Outbox):
            socket.queue.end()
        # python-engineio leaves a pending long-poll GET hanging after the
        # client's CLOSE packet (for ping_interval + ping_timeout): a Python
        # client's disconnect() waits for it and so does the server's shutdown.
        # Answer it now, as engine.io does.
        if reason == self.reason.CLIENT_DISCONNECT and not socket.upgraded:
            socket.queue.put_nowait(None)

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        namespace = namespace or NAMESPACE
        refusal = self._admission.connect_refusal(eio_sid)
        if refusal is not None:
            await self._refuse_connect(eio_sid, namespace, refusal)
            self._hub.stats.record_disconnect("connect_rate")
            await self.close_session(eio_sid)
            return
        if namespace != NAMESPACE and self.foreign_namespaces:
            # The Socket.IO Admin UI's namespace: python-socketio's own handler and
            # credentials check; an admin session is not a bare one to time out.
            self._admission.unwatch(eio_sid)
            await super()._handle_connect(eio_sid, namespace, data)
            return
        if namespace != NAMESPACE:
            shown = namespace[:100]
            error = ProtocolError(ErrorCode.INVALID_MESSAGE, f"unknown namespace: {shown}")
            await self._refuse_connect(eio_sid, namespace, error)
            return
        if self.manager.sid_from_eio_sid(eio_sid, NAMESPACE) is not None:
            error = ProtocolError(ErrorCode.INVALID_MESSAGE, "this session is already connected")
            await self._refuse_connect(eio_sid, namespace, error)
            return
        # The socket takes the session's place in the count (Hub.admit counts it).
        self._admission.unwatch(eio_sid)
        await super()._handle_connect(eio_sid, namespace, data)
        sid = self.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        if sid is None or not self.manager.is_connected(sid, NAMESPACE):
            # Refused (limit, bad credentials): the CONNECT_ERROR is queued; the
            # session ends after it instead of idling without a socket.
            await self.close_session(eio_sid)
            return
        # The CONNECT packet is in the outbox now, so ``authenticated`` follows it.
        welcome = self._welcome.pop(sid, None)
        outbox = self._outbox(eio_sid)
        if welcome is not None and outbox is not None:
            outbox.deliver(Message(ControlEvent.AUTHENTICATED.value, welcome))

    async def _handle_disconnect(
        self, eio_sid: str, namespace: str | None, reason: Any = None
    ) -> None:
        await super()._handle_disconnect(eio_sid, namespace, reason)
        socket = self.eio.sockets.get(eio_sid)
        still_open = socket is not None and not (socket.closing or socket.closed)
        # The client left the namespace (a DISCONNECT packet) but kept the
        # session: it is bare again, with a new deadline, or closed when full.
        bare = still_open and self.manager.sid_from_eio_sid(eio_sid, NAMESPACE) is None
        if bare and not self._admission.watch(eio_sid):
            await self.close_session(eio_sid)

    # -- hook: ingress ----------------------------------------------------------

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closing or socket.closed or eio_sid in self._ending:
            return  # a session the server closed: nothing it sends counts any more
        kind = data[:1] if isinstance(data, str) else None
        if kind in ("2", "3") and self.foreign_namespaces and data[1:2] == "/":
            # The Socket.IO Admin UI's commands: python-socketio's own handlers.
            await super()._handle_eio_message(eio_sid, data)
        elif kind == "2":
            connection = self._connection(eio_sid)
            if connection is not None:
                await self._ingress.event(connection, data)
        elif kind == "3":
            if isinstance(socket.queue, Outbox):
                self._ingress.ack(socket.queue, data)
        elif kind in ("5", "6"):
            # Binary events and acks: the protocol is JSON only. Refused without
            # keeping state, so the attachments that follow are dropped below.
            connection = self._connection(eio_sid)
            if connection is not None and kind == "5":
                await self._ingress.binary(connection, data)
        elif isinstance(data, bytes):
            return
        else:
            try:
                await super()._handle_eio_message(eio_sid, data)
            except Exception:  # a malformed packet must not reach the log as a traceback
                self._hub.stats.record_error()
                log.debug("dropped a malformed packet from %s", eio_sid)

    # -- the socket's handlers --------------------------------------------------

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> bool:
        hub = self._hub
        eio_sid = self.manager.eio_sid_from_sid(sid, NAMESPACE)
        outbox = self._outbox(eio_sid) if eio_sid is not None else None
        if outbox is None:
            return False
        try:
            connection = await hub.admit(sid, SocketIOLink(self, sid, outbox))
        except ProtocolError as error:
            hub.stats.record_error(error.code)
            raise _refusal(error) from None
        if auth is None:
            return True
        try:
            if not isinstance(auth, dict):
                raise ProtocolError(ErrorCode.INVALID_MESSAGE, "handshake auth must be an object")
            self._welcome[sid] = await hub.authenticate_handshake(connection, auth)
        except ProtocolError as error:
            connection.closing = True  # refused, not a disconnect: the metrics count it as an auth
            hub.forget(sid)
            hub.stats.record_error(error.code)
            raise _refusal(error) from None
        return True

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._welcome.pop(sid, None)
        connection = self._hub.registry.get(sid)
        outbox = outbox_of(connection) if connection is not None else None
        if outbox is not None:
            outbox.reset()  # nobody is left to read what was gathered
        self._hub.forget(sid)

    def _connection(self, eio_sid: str) -> Connection | None:
        sid = self.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        return self._hub.registry.get(sid) if sid is not None else None

    async def _refuse_connect(self, eio_sid: str, namespace: str, error: ProtocolError) -> None:
        # The same CONNECT_ERROR body as a refusal by the connect handler.
        self._hub.stats.record_error()
        body = _refusal(error).error_args  # type: ignore[attr-defined]
        pkt = self.packet_class(sio_packet.CONNECT_ERROR, data=body, namespace=namespace)
        outbox = self._outbox(eio_sid)
        if outbox is not None:
            outbox.put_nowait(eio_packet.Packet(eio_packet.MESSAGE, pkt.encode()))

    # -- Engine.IO sessions ---------------------------------------------------

    def _find_wire(self, eio_sid: str, socket: Any) -> WireLike | None:
        """``eio_sid``'s WebSocket, while it may be written to straight.

        Asked until it finds it; the outbox keeps that (``Outbox.wire``).
        """
        if not socket.upgraded or socket.upgrading or socket.closing or socket.closed:
            return None
        if self._websockets is None:
            return None
        return self._websockets.wire(eio_sid, self.environ.get(eio_sid))

    def _too_slow(self, eio_sid: str, messages: int, size: int) -> None:
        sid = self.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        log.warning(
            "disconnecting %s: too slow (%d messages, %d bytes waiting to be written)",
            sid or eio_sid,
            messages,
            size,
        )
        self._hub.stats.record_disconnect("too_slow")
        self._background(self.close_session(eio_sid, discard=True))

    def _expire_session(self, eio_sid: str) -> None:
        self._background(self.close_session(eio_sid))

    def abandon(self, eio_sid: str) -> None:
        """The client went away with a long-poll pending: the session ends now."""
        if eio_sid in self.eio.sockets:
            self._background(self.close_session(eio_sid, discard=True))

    async def close_session(self, eio_sid: str, *, discard: bool = False) -> None:
        """End the Engine.IO session ``eio_sid`` and its transport.

        What is queued (an ``error``, the DISCONNECT, a CONNECT_ERROR) goes
        out first, unless ``discard`` (a client too slow to read it). No
        Engine.IO CLOSE packet is sent: python-socketio's client, handed a
        CLOSE right behind a DISCONNECT, reports the loss only seconds later;
        the end of the transport itself tells every client at once.

        A polling client may have no GET pending to collect what is queued (a
        browser sends its CONNECT and its next poll at once), so its session
        ends ``POLLING_CLOSE_GRACE`` seconds later; nothing it sends meanwhile
        is handled.
        """
        socket = self.eio.sockets.get(eio_sid)
        if socket is None:
            return
        if not (socket.upgraded or discard):
            if eio_sid not in self._ending:
                self._ending.add(eio_sid)
                loop = asyncio.get_running_loop()
                loop.call_later(POLLING_CLOSE_GRACE, self._end_later, eio_sid)
            return
        await self._end_session(eio_sid, discard)

    def _end_later(self, eio_sid: str) -> None:
        self._background(self._end_session(eio_sid, False))

    async def _end_session(self, eio_sid: str, discard: bool) -> None:
        self._ending.discard(eio_sid)
        socket = self.eio.sockets.get(eio_sid)
        if socket is None:
            return
        if discard and isinstance(socket.queue, Outbox):
            socket.queue.discard()
        with contextlib.suppress(Exception):
            await socket.close(wait=False, abort=True)
        self.eio.sockets.pop(eio_sid, None)
        # python-engineio's WebSocket writer and a pending long-poll GET only
        # end on None: then the WebSocket is closed and the GET answered.
        socket.queue.put_nowait(None)


def create_socketio_server(
    settings: ServerSettings,
    hub: Hub,
    screen: IngressScreen,
    *,
    websockets: WebSocketIndex | None = None,
) -> IntradaySocketServer:
    """Build the Socket.IO server that screens events with ``screen`` and hands them to ``hub``.

    ``websockets`` finds each session's WebSocket for direct writes.
    """
    return IntradaySocketServer(
        hub,
        screen,
        websockets,
        async_mode="asgi",
        cors_allowed_origins=list(settings.cors_origins),
        ping_interval=settings.ping_interval_ms / 1000,
        ping_timeout=settings.ping_timeout_ms / 1000,
        max_http_buffer_size=settings.transport_message_limit,
        http_compression=settings.compression_enabled,
        compression_threshold=settings.compression_threshold_bytes,
        logger=False,
        engineio_logger=engineio_logger(),
    )
