"""Room emits that write one WebSocket frame to every socket that can take it now.

python-socketio's emit creates an asyncio task per recipient; each task queues
the packet for the socket's Engine.IO writer task, which encodes it and hands
it to uvicorn, which builds a WebSocket frame around it. Those hand-offs, not
JSON, are most of the fan-out's cost per delivery (PITFALLS.md). A frame from
server to client is not masked, so one message is the same bytes for every
WebSocket recipient that does not compress it: :class:`FrameWritingManager`
builds that frame once per emit and writes it to each socket's transport.

It writes directly only where that cannot overtake anything or skip a rule:

- the socket is an open WebSocket (upgraded, not upgrading, not closing) and
  its Engine.IO queue is empty, so nothing earlier waits for the writer task
  (a packet the writer took from the queue is written before it yields,
  unless uvicorn's flow control holds it, which is the next check);
- uvicorn's protocol is writable, has sent no close, and its transport holds
  nothing unsent: a slow reader goes the queued way, where the per-socket
  bound of :mod:`.engineio_limits` applies;
- the message goes uncompressed on that connection: no permessage-deflate,
  or :class:`~.ws_compression.ThresholdDeflate` with the message under its
  threshold (a compressed message needs the connection's own compressor).

Every other recipient (polling, a backlog, a compressed message, an ack
callback, binary attachments) takes python-socketio's own path, in order.

:class:`WebSocketIndex` tells which uvicorn protocol carries an Engine.IO
session: :class:`~.engineio_guard.EngineIOGuard` records it as each
WebSocket opens (in the ASGI scope for a direct WebSocket, by session id for
an upgrade from polling).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qs

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from .ws_compression import ThresholdDeflate

__all__ = ["FrameWritingManager", "WebSocketIndex", "text_frame"]

SCOPE_KEY: Final = "intraday.websocket"
"""Where the guard leaves a direct WebSocket's uvicorn protocol in its ASGI scope."""


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame carrying ``payload`` (RFC 6455, 5.2)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, size))
    elif size < 65_536:
        head = struct.pack("!BBH", 0x81, 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 127, size)
    return head + payload


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

    def protocol(
        self, eio_sid: str, environ: Mapping[str, Any] | None
    ) -> WebSocketsSansIOProtocol | None:
        """The protocol of ``eio_sid`` (its connect ``environ`` for a direct WebSocket)."""
        upgraded = self._upgrades.get(eio_sid)
        if upgraded is not None:
            return upgraded
        if environ is None:
            return None
        scope = environ.get("asgi.scope")
        found = scope.get(SCOPE_KEY) if isinstance(scope, MutableMapping) else None
        return found if isinstance(found, WebSocketsSansIOProtocol) else None


def _uncompressed(extensions: Iterable[Any], size: int) -> bool:
    return all(isinstance(e, ThresholdDeflate) and size < e.threshold for e in extensions)


def _writable_now(socket: Any, protocol: WebSocketsSansIOProtocol, size: int) -> bool:
    """Whether a frame written now lands after everything queued before it (module docstring)."""
    transport = protocol.transport
    return bool(
        socket.upgraded
        and not socket.upgrading
        and not socket.closing
        and not socket.closed
        and socket.queue.empty()
        and protocol.handshake_complete
        and protocol.initial_response is None
        and not protocol.close_sent
        and not protocol.disconnected
        and protocol.writable.is_set()
        and protocol.conn.state is State.OPEN
        and not transport.is_closing()
        and transport.get_write_buffer_size() == 0
        and _uncompressed(protocol.conn.extensions, size)
    )


class FrameWritingManager(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's client manager, with emits written as one frame (module docstring).

    It cooperates with python-socketio's other managers: a cluster's manager
    that derives from ``AsyncRedisManager`` and this class gets the direct
    writes for the emits it delivers locally.

    Until :meth:`attach` gives it the :class:`WebSocketIndex`, it emits as
    python-socketio does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._index: WebSocketIndex | None = None
        self.direct_writes = 0
        """Deliveries written straight to a transport (for tests and profiles)."""

    def attach(self, websockets: WebSocketIndex) -> None:
        """Write directly to the WebSockets ``websockets`` knows from now on."""
        self._index = websockets

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        """Emit ``event`` to ``to``/``room`` (as python-socketio does), directly where possible."""
        room = to or room
        index = self._index
        if index is None or callback is not None or namespace not in self.rooms:
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                               callback=callback, **kwargs)  # fmt: skip
            return
        # As python-socketio reads it: a tuple is several arguments, None is none.
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        encoded = self.server.packet_class(
            sio_packet.EVENT, namespace=namespace, data=[event, *args]
        ).encode()
        if isinstance(encoded, list):  # binary attachments: several Engine.IO packets
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, **kwargs)
            return
        message = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        payload = message.encode().encode()
        frame = text_frame(payload)
        skipped = skip_sid if isinstance(skip_sid, list | set | frozenset | tuple) else [skip_sid]
        sockets = self.server.eio.sockets
        environ = self.server.environ
        queued: list[str] = []
        written = 0
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skipped:
                continue
            socket = sockets.get(eio_sid)
            if socket is None:
                continue
            protocol = index.protocol(eio_sid, environ.get(eio_sid))
            if protocol is not None and _writable_now(socket, protocol, len(payload)):
                protocol.transport.write(frame)
                written += 1
            else:
                queued.append(eio_sid)
        self.direct_writes += written
        for eio_sid in queued:  # each only queues (or refuses) the packet: nothing waits long
            await self.server._send_eio_packet(eio_sid, message)
