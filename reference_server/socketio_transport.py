"""The Socket.IO transport: python-socketio's ``AsyncServer`` wired to the screen and the hub.

This is the only module of the server that touches python-socketio. Its one
deep hook is :meth:`IntradaySocketServer._handle_eio_message`: event packets
are screened (size, rate) before python-socketio decodes them, and
dispatched with their ack id, because the protocol answers a refused request
in its ack when the client asked for one and as an ``error`` event
otherwise, which python-socketio's handler API cannot tell apart. Sizes are
checked here against the protocol limit while the transports are given a
larger one (see ``ServerSettings.transport_message_limit``), so an
oversized message is answered on a live connection instead of closing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Callable, Collection, Coroutine
from typing import Any

import socketio
from socketio import packet as sio_packet

from client_sdk.protocol import ControlEvent, ErrorCode, ProtocolError

from .config import ServerSettings
from .connections import Connection
from .engineio_guard import engineio_logger
from .engineio_limits import BoundedEngineIOServer, discard_queue
from .hub import Hub
from .ratelimit import RateVerdict, RateWindow
from .screening import IngressScreen

__all__ = [
    "IntradaySocketServer",
    "SocketIOFanout",
    "SocketIOLink",
    "create_socketio_server",
    "instrument_for_admin_ui",
]

log = logging.getLogger(__name__)

NAMESPACE = "/"

OVERFLOW_SESSIONS = 16
"""Sessions a full server still admits, to refuse their CONNECT with ``CONNECTION_LIMIT``."""

OVERFLOW_SECONDS = 2.0
"""How long such a session may wait before sending its CONNECT."""

POLLING_CLOSE_GRACE = 1.0
"""Seconds a closed polling session waits for the GET that collects its last packets."""


def _ack_id(encoded: str) -> int | None:
    """The ack id of an encoded EVENT packet (``2[/nsp,][id]payload``), read without decoding."""
    i = 1
    if encoded[i : i + 1] == "/":
        comma = encoded.find(",", i)
        if comma < 0:
            return None
        i = comma + 1
    j = i
    while j < len(encoded) and encoded[j].isdigit() and j - i < 16:
        j += 1
    return int(encoded[i:j]) if j > i else None


class SocketIOLink:
    """A Socket.IO socket as the hub sees it."""

    via_fanout = True

    def __init__(self, server: IntradaySocketServer, sid: str) -> None:
        self._server = server
        self._sid = sid

    @property
    def transport(self) -> str:
        """``websocket`` or ``polling`` (it changes when a polling client upgrades)."""
        try:
            return str(self._server.transport(self._sid, namespace=NAMESPACE))
        except KeyError:
            return "closed"

    async def send(self, event: str, data: Any) -> None:
        """Emit one event to this socket."""
        await self._server.emit(event, data, to=self._sid, namespace=NAMESPACE)

    async def send_ack(self, ack_id: int, data: Any) -> None:
        """Send the ACK packet for the client's request ``ack_id``."""
        eio_sid = self._server.manager.eio_sid_from_sid(self._sid, NAMESPACE)
        if eio_sid is None:
            return
        ack = self._server.packet_class(sio_packet.ACK, namespace=NAMESPACE, data=[data], id=ack_id)
        await self._server._send_packet(eio_sid, ack)

    async def join(self, room: str) -> None:
        """Enter python-socketio's room so that room emits reach the socket."""
        await self._server.enter_room(self._sid, room, namespace=NAMESPACE)

    async def leave(self, room: str) -> None:
        """Leave python-socketio's room."""
        await self._server.leave_room(self._sid, room, namespace=NAMESPACE)

    async def close(self) -> None:
        """Kick the socket: Socket.IO DISCONNECT, then the Engine.IO session is closed too.

        python-socketio's ``disconnect`` alone leaves the Engine.IO session
        open, on which a client could send CONNECT again and be back at once.
        """
        eio_sid = self._server.manager.eio_sid_from_sid(self._sid, NAMESPACE)
        await self._server.disconnect(self._sid, namespace=NAMESPACE)
        if eio_sid is not None:
            await self._server.close_session(eio_sid)

    async def drop(self) -> None:
        """Close the transport without a Socket.IO DISCONNECT (a shutdown, not a kick).

        Clients read a DISCONNECT as "do not come back"; a server going away
        for a restart wants them back, so only the Engine.IO session ends.
        """
        eio_sid = self._server.manager.eio_sid_from_sid(self._sid, NAMESPACE)
        if eio_sid is not None:
            await self._server.close_session(eio_sid)


class SocketIOFanout:
    """Room broadcasts through python-socketio: one encode, one delivery per socket.

    The application builds it around its :class:`IntradaySocketServer` and
    hands it to the publisher.
    """

    def __init__(self, server: socketio.AsyncServer) -> None:
        self._server = server

    async def emit_to_rooms(
        self, event: str, data: dict[str, Any], rooms: list[str], skip: Collection[str] = ()
    ) -> None:
        """Emit to the union of ``rooms``, but not to the sockets in ``skip``."""
        if not rooms:
            return  # python-socketio reads an empty ``to`` as "everyone"
        skip_sid = list(skip) if skip else None
        await self._server.emit(event, data, to=rooms, skip_sid=skip_sid, namespace=NAMESPACE)

    async def emit_with_ack(
        self, socket_id: str, event: str, data: dict[str, Any], on_ack: Callable[..., None]
    ) -> None:
        """Emit to one socket and call ``on_ack`` when it acknowledges."""
        await self._server.emit(event, data, to=socket_id, namespace=NAMESPACE, callback=on_ack)


def _refusal(error: ProtocolError) -> Exception:
    # (message, ERROR): the only form whose ERROR reaches a JavaScript client's
    # connect_error as its ``data``.
    refusal: Exception = socketio.exceptions.ConnectionRefusedError(error.message, error.to_wire())
    return refusal


class IntradaySocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server with the protocol's ingress rules and handlers."""

    def __init__(self, hub: Hub, screen: IngressScreen, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._hub = hub
        self._screen = screen
        self._welcome: dict[str, dict[str, Any]] = {}
        self.foreign_namespaces = False
        """Set by :func:`instrument_for_admin_ui`: events of other namespaces are handled."""
        # Engine.IO sessions without a Socket.IO socket ("bare"): each holds a
        # place in the connection count (Hub.reserve) and is closed when its
        # timer fires, so a session that never sends CONNECT cannot linger.
        self._bare: dict[str, tuple[asyncio.TimerHandle, bool]] = {}
        self._overflow_sessions = 0
        self._connects: dict[str, RateWindow] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ending: set[str] = set()  # polling sessions closing after their grace
        settings = hub.settings
        self.eio.bound(
            messages=settings.max_queued_messages_per_socket,
            size=settings.max_queued_bytes_per_socket,
            on_overflow=self._overflow,
        )
        self.on("connect", self._on_connect, namespace=NAMESPACE)
        self.on("disconnect", self._on_disconnect, namespace=NAMESPACE)

    def start_manager(self) -> None:
        """Start the client manager now (a cluster's listener), not at the first connection."""
        if not self.manager_initialized:  # type: ignore[has-type]
            self.manager_initialized = True
            self.manager.initialize()

    def _engineio_server_class(self) -> type[BoundedEngineIOServer]:
        return BoundedEngineIOServer

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- Engine.IO sessions ---------------------------------------------------

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
        if discard:
            discard_queue(socket.queue)
        with contextlib.suppress(Exception):
            await socket.close(wait=False, abort=True)
        self.eio.sockets.pop(eio_sid, None)
        # python-engineio's WebSocket writer and a pending long-poll GET only
        # end on None: then the WebSocket is closed and the GET answered.
        socket.queue.put_nowait(None)

    def _watch_bare(self, eio_sid: str) -> bool:
        """Count ``eio_sid`` as a session without a socket; ``False`` if there is no room.

        A full server still admits a few sessions beyond its limit, briefly,
        so that their CONNECT can be refused with the protocol's
        ``CONNECTION_LIMIT`` ERROR (an Engine.IO refusal reaches a client as
        a bare HTTP 401); beyond those few, the handshake itself is refused.
        """
        if eio_sid in self._bare:
            return True
        settings = self._hub.settings
        try:
            self._hub.reserve()
        except ProtocolError:
            self._hub.stats.record_error()
            if self._overflow_sessions >= OVERFLOW_SESSIONS:
                return False
            self._overflow_sessions += 1
            delay = min(settings.auth_timeout_ms / 1000, OVERFLOW_SECONDS)
            reserved = False
        else:
            delay = settings.auth_timeout_ms / 1000
            reserved = True
        handle = asyncio.get_running_loop().call_later(delay, self._expire_bare, eio_sid)
        self._bare[eio_sid] = (handle, reserved)
        return True

    def _unwatch_bare(self, eio_sid: str) -> None:
        entry = self._bare.pop(eio_sid, None)
        if entry is None:
            return
        handle, reserved = entry
        handle.cancel()
        if reserved:
            self._hub.release()
        else:
            self._overflow_sessions -= 1

    def _expire_bare(self, eio_sid: str) -> None:
        if eio_sid in self._bare:
            self._unwatch_bare(eio_sid)
            log.debug("closing Engine.IO session %s: no Socket.IO CONNECT in time", eio_sid)
            self._hub.stats.record_disconnect("no_connect_timeout")
            self._background(self.close_session(eio_sid))

    async def _overflow(self, eio_sid: str, messages: int, size: int) -> None:
        sid = self.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        log.warning(
            "disconnecting %s: too slow (%d messages, %d bytes waiting to be written)",
            sid or eio_sid,
            messages,
            size,
        )
        self._hub.stats.record_disconnect("too_slow")
        await self.close_session(eio_sid, discard=True)

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> bool | None:
        if not self._watch_bare(eio_sid):
            return False  # python-engineio refuses the session (HTTP 401)
        await super()._handle_eio_connect(eio_sid, environ)
        return None

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> bool:
        hub = self._hub
        try:
            connection = await hub.admit(sid, SocketIOLink(self, sid))
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
        self._hub.forget(sid)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        self._unwatch_bare(eio_sid)
        self._connects.pop(eio_sid, None)
        self._ending.discard(eio_sid)
        await super()._handle_eio_disconnect(eio_sid, reason)
        # python-engineio leaves a pending long-poll GET hanging after the
        # client's CLOSE packet (for ping_interval + ping_timeout): a Python
        # client's disconnect() waits for it and so does the server's shutdown.
        # Answer it now, as engine.io does.
        socket = self.eio.sockets.get(eio_sid)
        if reason == self.reason.CLIENT_DISCONNECT and socket is not None and not socket.upgraded:
            socket.queue.put_nowait(None)

    async def _refuse_connect(self, eio_sid: str, namespace: str, error: ProtocolError) -> None:
        # The same CONNECT_ERROR body as a refusal by the connect handler.
        self._hub.stats.record_error()
        body = _refusal(error).error_args  # type: ignore[attr-defined]
        pkt = self.packet_class(sio_packet.CONNECT_ERROR, data=body, namespace=namespace)
        await self._send_packet(eio_sid, pkt)

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        namespace = namespace or NAMESPACE
        settings = self._hub.settings
        window = self._connects.setdefault(eio_sid, RateWindow())
        verdict = window.hit(
            time.monotonic(), limit=settings.handshake_rate_limit_per_second, strikes=1
        )
        if verdict is not RateVerdict.ALLOW:
            limit = settings.handshake_rate_limit_per_second
            error = ProtocolError(
                ErrorCode.RATE_LIMIT_EXCEEDED,
                f"more than {limit} CONNECT packets per second on one session",
                details={"limit": limit},
            )
            await self._refuse_connect(eio_sid, namespace, error)
            self._hub.stats.record_disconnect("connect_rate")
            await self.close_session(eio_sid)
            return
        if namespace != NAMESPACE and self.foreign_namespaces:
            # The Socket.IO Admin UI's namespace: python-socketio's own handler and
            # credentials check; an admin session is not a bare one to time out.
            self._unwatch_bare(eio_sid)
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
        self._unwatch_bare(eio_sid)
        await super()._handle_connect(eio_sid, namespace, data)
        sid = self.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        if sid is None or not self.manager.is_connected(sid, NAMESPACE):
            # Refused (limit, bad credentials): the CONNECT_ERROR is queued; the
            # session ends after it instead of idling without a socket.
            await self.close_session(eio_sid)
            return
        # The CONNECT packet is out now, so ``authenticated`` cannot overtake it.
        welcome = self._welcome.pop(sid, None)
        if welcome is not None:
            await self.emit(ControlEvent.AUTHENTICATED, welcome, to=sid, namespace=NAMESPACE)

    async def _handle_disconnect(
        self, eio_sid: str, namespace: str | None, reason: Any = None
    ) -> None:
        await super()._handle_disconnect(eio_sid, namespace, reason)
        socket = self.eio.sockets.get(eio_sid)
        still_open = socket is not None and not (socket.closing or socket.closed)
        # The client left the namespace (a DISCONNECT packet) but kept the
        # session: it is bare again, with a new deadline, or closed when full.
        bare = still_open and self.manager.sid_from_eio_sid(eio_sid, NAMESPACE) is None
        if bare and not self._watch_bare(eio_sid):
            await self.close_session(eio_sid)

    def _connection(self, eio_sid: str) -> Connection | None:
        sid = self.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        return self._hub.registry.get(sid) if sid is not None else None

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closing or socket.closed or eio_sid in self._ending:
            return  # a session the server closed: nothing it sends counts any more
        if isinstance(data, str) and data[:1] == "2":
            await self._handle_event_packet(eio_sid, data)
        elif isinstance(data, str) and data[:1] in ("5", "6"):
            # Binary events and acks: the protocol is JSON only. Refuse without
            # keeping state, so the attachments that follow are dropped below.
            connection = self._connection(eio_sid)
            if connection is not None and data[:1] == "5":
                if not await self._screen.passes(connection, len(data), None):
                    return
                error = ProtocolError(ErrorCode.INVALID_MESSAGE, "binary payloads are not accepted")
                await self._hub.refuse(connection, error, None)
        elif isinstance(data, bytes):
            return
        else:
            try:
                await super()._handle_eio_message(eio_sid, data)
            except Exception:  # a malformed packet must not reach the log as a traceback
                self._hub.stats.record_error()
                log.debug("dropped a malformed packet from %s", eio_sid)

    async def _handle_event_packet(self, eio_sid: str, data: str) -> None:
        if self.foreign_namespaces and data.startswith("2/"):
            # The Socket.IO Admin UI's commands: python-socketio's own handlers.
            await super()._handle_eio_message(eio_sid, data)
            return
        connection = self._connection(eio_sid)
        if connection is None or connection.closing:
            return
        size = len(data) if data.isascii() else len(data.encode())
        ack_id = _ack_id(data)
        if not await self._screen.passes(connection, size, ack_id):
            return
        try:
            pkt = self.packet_class(encoded_packet=data)
        except Exception:
            error = ProtocolError(ErrorCode.INVALID_MESSAGE, "malformed Socket.IO packet")
            await self._hub.refuse(connection, error, ack_id)
            return
        if (pkt.namespace or NAMESPACE) != NAMESPACE:
            return
        args = pkt.data if isinstance(pkt.data, list) else []
        if not args:
            error = ProtocolError(ErrorCode.INVALID_MESSAGE, "event without a name")
            await self._hub.refuse(connection, error, pkt.id)
            return
        await self._hub.dispatch(connection, args[0], args[1:], pkt.id)


def create_socketio_server(
    settings: ServerSettings,
    hub: Hub,
    screen: IngressScreen,
    *,
    client_manager: socketio.AsyncManager | None = None,
) -> IntradaySocketServer:
    """Build the Socket.IO server that screens events with ``screen`` and hands them to ``hub``.

    ``client_manager`` keeps the rooms and delivers emits (python-socketio's own by default).
    """
    return IntradaySocketServer(
        hub,
        screen,
        client_manager=client_manager,
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


def instrument_for_admin_ui(server: IntradaySocketServer, settings: ServerSettings) -> Any:
    """Let the official Socket.IO Admin UI connect to namespace ``/admin``.

    Its credentials are the user name ``admin`` and the admin token as the
    password (no authentication without a token, which only loopback allows).
    ``production`` mode: python-socketio then reports no per-event details.

    Returns python-socketio's instrumentation, whose ``uninstrument()`` the
    application calls when it stops: ``instrument()`` patches python-engineio's
    socket class for the whole process, so an instrumented server left behind
    breaks every server started after it in the same process (one instrumented
    server per process at a time).
    """
    token = settings.admin_token

    def allowed(credentials: Any) -> bool:
        if token is None:
            return True
        if not isinstance(credentials, dict):
            return False
        given = str(credentials.get("password", "")).encode()
        # compare_digest: the time taken must not tell how much of a guess was right.
        return credentials.get("username") == "admin" and hmac.compare_digest(
            given, token.get_secret_value().encode()
        )

    instrumented = server.instrument(
        auth=allowed if token is not None else False, mode="production"
    )
    server.foreign_namespaces = True
    return instrumented
