"""WebSocket frames built once per message, for every socket that takes the same bytes.

A frame from server to client is not masked, so one message is the same
bytes on every WebSocket that negotiated the same compression: uncompressed
(no permessage-deflate, or a message under the threshold), or deflated from
a fresh state, which is what a connection of ours without context takeover
expects (:mod:`.uvicorn_server` negotiates it). :class:`MessageFrames` builds each
variant on first need and keeps it for the next recipient: compression is
done once per message, not once per socket.

The compression threshold is weighed against :attr:`MessageFrames.weight`:
a message's own size, but for a ``batch`` the size of its largest message
as it would go alone. Batching changes how messages are framed, not whether
they are compressed: a batch of messages that would each go plain goes plain
(a Node.js ``ws`` client inflates every compressed frame on its thread pool,
at most 10 at once, at about ten times the cost of parsing a small batch).
A frame python-engineio's writer sends instead (the socket is backed up, so
the outbox queued it) passes the connection's own threshold, on its size.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Final

__all__ = ["MessageFrames", "text_frame"]


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


_EMPTY_BLOCK: Final = b"\x00\x00\xff\xff"
"""What a sync flush ends with; permessage-deflate leaves it out (RFC 7692, 7.2.1)."""


class MessageFrames:
    """The WebSocket frames of one message, each built once, on first need.

    The uncompressed frame is made at once and is the only copy of the text
    kept: :attr:`payload` and :meth:`text` are read from it, so a message
    waiting in an outbox holds its bytes once, whatever the transport.
    """

    __slots__ = ("_deflated", "_head", "_plain", "_size", "weight")

    def __init__(self, payload: bytes, weight: int | None = None) -> None:
        self._plain = text_frame(payload)
        self._size = len(payload)
        self._head = len(self._plain) - self._size
        self._deflated: dict[tuple[int, frozenset[tuple[str, Any]]], bytes] | None = None
        self.weight = self._size if weight is None else weight
        """The size weighed against the compression threshold (asked once per recipient):
        the payload's, or for a batch its largest message's as that would go alone."""

    def __len__(self) -> int:
        return self._size

    @property
    def payload(self) -> memoryview:
        """The message's bytes (a view into the frame)."""
        return memoryview(self._plain)[self._head :]

    def text(self) -> str:
        """The message as text (made on each call; nothing keeps it)."""
        return str(self.payload, "utf-8")

    def plain(self) -> bytes:
        """The uncompressed frame."""
        return self._plain

    def deflated(self, window_bits: int, settings: dict[str, Any]) -> bytes:
        """The frame compressed from a fresh state with these window bits (RFC 7692, 7.2.1)."""
        key = (window_bits, frozenset(settings.items()))
        if self._deflated is None:
            self._deflated = {}
        frame = self._deflated.get(key)
        if frame is None:
            encoder = zlib.compressobj(wbits=-window_bits, **settings)
            data = encoder.compress(self.payload) + encoder.flush(zlib.Z_SYNC_FLUSH)
            if data.endswith(_EMPTY_BLOCK):
                data = data[: -len(_EMPTY_BLOCK)]
            frame = self._deflated[key] = text_frame(data, compressed=True)
        return frame
