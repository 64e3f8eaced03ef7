"""A message on its way out, and what the outbox needs of a socket kind and its transport.

A :class:`Message` is made once per broadcast and handed to every recipient's
:class:`~.outbox.Outbox`; each :class:`Codec` (Socket.IO, bridge) encodes it
once, and the frames it makes are shared by every socket of that kind.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from .batching import batchable
from .frames import MessageFrames

__all__ = ["Codec", "Encoded", "Message", "WireLike"]

Encoded = tuple[Any, MessageFrames | None, int]
"""What a codec makes of a message: the writer's item, its frames (for direct writes), its size."""


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class Message:
    """One message to any number of sockets, encoded once (per codec) for all of them."""

    __slots__ = ("_batches", "_json", "batchable", "data", "event", "made")

    def __init__(self, event: str, data: Any) -> None:
        self.event = str(event)
        self.data = data
        self.batchable = batchable(self.event, data)
        self._json: str | None = None
        self.made: dict[Codec, Encoded] = {}
        """What :meth:`encoded` made, per codec."""
        self._batches: dict[Codec, tuple[list[Message], list[Encoded]]] | None = None

    @property
    def json(self) -> str:
        """The data as JSON, made once."""
        if self._json is None:
            self._json = _json(self.data)
        return self._json

    def encoded(self, codec: Codec) -> Encoded:
        """The message as ``codec`` sends it without an ack, made once."""
        found = self.made.get(codec)
        if found is None:
            found = self.made[codec] = codec.single(self, None)
        return found

    def batch_encoded(self, codec: Codec, batch: list[Message]) -> list[Encoded]:
        """``batch`` (which starts with this message) as ``codec`` sends it.

        The sockets of one room gather the same messages and flush them at
        the same moment: the last batch made is kept, so they share one.
        """
        if self._batches is None:
            self._batches = {}
        found = self._batches.get(codec)
        if found is not None:
            messages, encoded = found
            if len(messages) == len(batch) and all(
                a is b for a, b in zip(messages, batch, strict=True)
            ):
                return encoded
        encoded = codec.batch(batch)
        self._batches[codec] = (batch, encoded)
        return encoded


class Codec(Protocol):
    """How one kind of socket (Socket.IO, bridge) carries messages, batches and acks."""

    asks_acks: bool
    """Whether the client can be asked to acknowledge a message (the bridge cannot)."""

    def single(self, message: Message, ack_id: int | None) -> Encoded:
        """One message as its own event; with ``ack_id`` the client is asked to acknowledge."""
        ...

    def batch(self, messages: list[Message]) -> list[Encoded]:
        """These messages as ``batch`` events, in order (several if one would be too large)."""
        ...

    def ack(self, ack_id: int, data: Any) -> Encoded:
        """The answer to the client's request ``ack_id``."""
        ...


class WireLike(Protocol):
    """The transport under an outbox (:class:`~.uvicorn_server.Wire`)."""

    def ready(self) -> bool:
        """Whether a frame written now goes out now."""
        ...

    def buffered(self) -> int:
        """Bytes the transport still holds."""
        ...

    def frame(self, frames: MessageFrames) -> bytes | None:
        """The frame of ``frames`` this connection takes; ``None`` if none fits it."""
        ...

    def send(self, data: bytes) -> None:
        """Write whole frames (dropped once the connection has begun to close)."""
        ...
