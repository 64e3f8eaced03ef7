"""Room emits that write one WebSocket frame to every socket that can take it now.

python-socketio's emit creates an asyncio task per recipient; each task queues
the packet for the socket's Engine.IO writer task, which encodes it and hands
it to uvicorn, which builds a WebSocket frame around it. Those hand-offs, not
JSON, are most of the fan-out's cost per delivery (PITFALLS.md). A frame from
server to client is not masked, so one message is the same bytes for every
WebSocket recipient (and, compressed without context takeover, for every
one of one window size): :class:`FrameWritingManager` builds each frame once
per emit and writes it to each socket's transport.

It writes directly only where that cannot overtake anything or skip a rule:

- the socket is an open WebSocket (upgraded, not upgrading, not closing) and
  its Engine.IO queue is empty, so nothing earlier waits for the writer task
  (a packet the writer took from the queue is written before it yields,
  unless uvicorn's flow control holds it, which is the next check);
- uvicorn's protocol is writable, has sent no close, and its transport holds
  nothing unsent: a slow reader goes the queued way, where the per-socket
  bound of :mod:`.engineio_limits` applies;
- the connection takes one of the frames :class:`MessageFrames` builds once
  per message: uncompressed (no permessage-deflate, or a message under the
  threshold), or deflated from a fresh state, which is what a connection of
  ours without context takeover expects.

Every other recipient (polling, a backlog, an ack callback, binary
attachments) takes python-socketio's own path, in order.

:class:`WebSocketIndex` tells which uvicorn protocol carries an Engine.IO
session: :class:`~.engineio_guard.EngineIOGuard` records it as each
WebSocket opens (in the ASGI scope for a direct WebSocket, by session id for
an upgrade from polling).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qs

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from .ws_compression import ThresholdDeflate

__all__ = ["FrameWritingManager", "MessageFrames", "WebSocketIndex", "text_frame"]

SCOPE_KEY: Final = "intraday.websocket"
"""Where the guard leaves a direct WebSocket's uvicorn protocol in its ASGI scope."""


def text_frame(payload: bytes, *, compressed: bool = False) -> bytes:
    """One final, unmasked text frame carrying ``payload`` (RFC 6455, 5.2); RSV1 if compressed."""
    first = 0xC1 if compressed else 0x81
    size = len(payload)
    if size < 126:
        head = bytes((first, size))
    elif size < 65_536:
        head = struct.pack("!BBH", first, 126, size)
    else:
        head = struct.pack("!BBQ", first, 127, size)
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


class MessageFrames:
    """The WebSocket frames of one message, each built once, on first need.

    Uncompressed, for connections without permessage-deflate and for messages
    under the threshold of :class:`~.ws_compression.ThresholdDeflate`; and
    deflated, for the others. The server negotiates ``server_no_context_takeover``
    (:mod:`.ws_compression`), so a message is compressed from a fresh state on
    every connection: the compressed frame is the same bytes for all the
    connections of one window size, and is made once per message.
    """

    __slots__ = ("_deflated", "_plain", "payload")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self._plain: bytes | None = None
        self._deflated: dict[tuple[int, frozenset[tuple[str, Any]]], bytes] = {}

    def for_connection(self, extensions: Sequence[Any]) -> bytes | None:
        """The frame for a connection with these extensions; ``None``: its own compressor only."""
        if not extensions:
            return self.plain()
        if len(extensions) != 1 or not isinstance(extensions[0], ThresholdDeflate):
            return None
        deflate = extensions[0]
        if len(self.payload) < deflate.threshold:
            return self.plain()
        if not deflate.local_no_context_takeover:
            return None  # compressed against this connection's history
        return self.deflated(deflate.local_max_window_bits, deflate.compress_settings)

    def plain(self) -> bytes:
        """The uncompressed frame."""
        if self._plain is None:
            self._plain = text_frame(self.payload)
        return self._plain

    def deflated(self, window_bits: int, settings: dict[str, Any]) -> bytes:
        """The frame compressed from a fresh state with these window bits (RFC 7692, 7.2.1)."""
        key = (window_bits, frozenset(settings.items()))
        frame = self._deflated.get(key)
        if frame is None:
            encoder = zlib.compressobj(wbits=-window_bits, **settings)
            data = encoder.compress(self.payload) + encoder.flush(zlib.Z_SYNC_FLUSH)
            if data.endswith(_EMPTY_BLOCK):
                data = data[: -len(_EMPTY_BLOCK)]
            frame = self._deflated[key] = text_frame(data, compressed=True)
        return frame


_EMPTY_BLOCK: Final = b"\x00\x00\xff\xff"
"""What a sync flush ends with; permessage-deflate leaves it out (RFC 7692, 7.2.1)."""


def _writable_now(socket: Any, protocol: WebSocketsSansIOProtocol) -> bool:
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

    def write_now(self, eio_sid: str, frames: MessageFrames) -> bool:
        """Write the frame of ``frames`` that fits ``eio_sid``, if nothing can be overtaken.

        Whether it was written; if not, the caller queues the packet. For the
        batches of :mod:`.batching`, whose frames are built once for many sockets.
        """
        index = self._index
        socket = self.server.eio.sockets.get(eio_sid)
        if index is None or socket is None:
            return False
        protocol = index.protocol(eio_sid, self.server.environ.get(eio_sid))
        if protocol is None or not _writable_now(socket, protocol):
            return False
        frame = frames.for_connection(protocol.conn.extensions)
        if frame is None:
            return False
        protocol.transport.write(frame)
        self.direct_writes += 1
        return True

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
        frames = MessageFrames(message.encode().encode())
        # A set: a room of thousands checked against a long skip list stays linear.
        many = isinstance(skip_sid, list | set | frozenset | tuple)
        skipped = set(skip_sid) if many else {skip_sid}
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
            if protocol is not None and _writable_now(socket, protocol):
                frame = frames.for_connection(protocol.conn.extensions)
                if frame is not None:
                    protocol.transport.write(frame)
                    written += 1
                    continue
            queued.append(eio_sid)
        self.direct_writes += written
        for eio_sid in queued:  # each only queues (or refuses) the packet: nothing waits long
            await self.server._send_eio_packet(eio_sid, message)
