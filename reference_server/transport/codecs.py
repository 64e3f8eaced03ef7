"""How messages, batches and acks look on each kind of socket (see :class:`.message.Codec`).

Both encode the envelope's JSON once per message (:attr:`.message.Message.json`)
and wrap it per socket kind: a Socket.IO EVENT packet inside an Engine.IO
MESSAGE packet, or a bridge frame ``{"event", "data"}``. The texts are the
ones python-socketio and the bridge made before, byte for byte.
"""

from __future__ import annotations

import json
from typing import Any

from engineio import packet as eio_packet

from client_sdk.protocol import ControlEvent, ack_frame

from .batching import split_encoded
from .frames import MessageFrames
from .message import Encoded, Message

__all__ = ["BridgeCodec", "FramedPacket", "SocketIOCodec"]

_BATCH = json.dumps(ControlEvent.BATCH.value)
_SINGLE_SOCKETIO = len('42["",]')
"""A single message's frame (``42["event",data]``) beyond its event name and data."""
_SINGLE_BRIDGE = len('{"event":"","data":}')
"""A single bridge frame (``{"event":"...","data":...}``) beyond its event name and data."""


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class FramedPacket(eio_packet.Packet):  # type: ignore[misc]
    """An Engine.IO MESSAGE packet whose text lives once, in its WebSocket frame.

    python-engineio's writer asks it for :meth:`encode` (a WebSocket frame's
    text, or one packet of a long-poll payload); nothing is cached, so a
    packet waiting in an outbox holds its bytes once.
    """

    def __init__(self, frames: MessageFrames) -> None:
        self.packet_type = eio_packet.MESSAGE
        self.binary = False
        self.frames = frames

    @property
    def data(self) -> str:
        """The Socket.IO packet's text."""
        return self.frames.text()[1:]

    def encode(self, b64: bool = False) -> str:
        """``4`` and the Socket.IO packet."""
        return self.frames.text()


class SocketIOCodec:
    """Socket.IO v5 packets in namespace ``/``, as Engine.IO MESSAGE packets.

    Args:
        limit: the largest batch text (``max_message_size_bytes``).
    """

    asks_acks = True

    def __init__(self, limit: int) -> None:
        self._limit = limit

    @staticmethod
    def _packet(text: str, weight: int | None = None) -> Encoded:
        # python-engineio's writer encodes the packet; a direct write sends the frame.
        frames = MessageFrames(("4" + text).encode(), weight)
        return FramedPacket(frames), frames, len(frames)

    def single(self, message: Message, ack_id: int | None) -> Encoded:
        """``2[id]["event",data]``."""
        head = "2" if ack_id is None else f"2{ack_id}"
        if message.data is None:
            return self._packet(f"{head}[{json.dumps(message.event)}]")
        return self._packet(f"{head}[{json.dumps(message.event)},{message.json}]")

    def batch(self, messages: list[Message]) -> list[Encoded]:
        """``2["batch",{"messages":[...]}]``, cut to the size limit.

        Weighed for compression as its largest message alone (``42["event",data]``).
        """
        weight = max(len(m.event) + len(m.json) for m in messages) + _SINGLE_SOCKETIO
        texts = split_encoded(messages, self._encode_batch, self._limit)
        return [self._packet(text, weight) for text in texts]

    @staticmethod
    def _encode_batch(messages: list[Message]) -> str:
        inner = ",".join(m.json for m in messages)
        return f'2[{_BATCH},{{"messages":[{inner}]}}]'

    def ack(self, ack_id: int, data: Any) -> Encoded:
        """``3id[data]``."""
        return self._packet(f"3{ack_id}[{_json(data)}]")


class BridgeCodec:
    """The bridge's JSON text frames (protocol section 1).

    Args:
        limit: the largest batch text (``max_message_size_bytes``).
    """

    asks_acks = False

    def __init__(self, limit: int) -> None:
        self._limit = limit

    @staticmethod
    def _frame(text: str, weight: int | None = None) -> Encoded:
        # The writer sends ``frames.text()``; a direct write sends the frame.
        frames = MessageFrames(text.encode(), weight)
        return frames, frames, len(frames)

    def single(self, message: Message, ack_id: int | None) -> Encoded:
        """``{"event":..., "data":...}`` (the bridge has no server-requested acks)."""
        return self._frame(f'{{"event":{json.dumps(message.event)},"data":{message.json}}}')

    def batch(self, messages: list[Message]) -> list[Encoded]:
        """``{"event":"batch","data":{"messages":[...]}}``, cut to the size limit.

        Weighed for compression as its largest message alone (``{"event":..,"data":..}``).
        """
        weight = max(len(m.event) + len(m.json) for m in messages) + _SINGLE_BRIDGE
        texts = split_encoded(messages, self._encode_batch, self._limit)
        return [self._frame(text, weight) for text in texts]

    @staticmethod
    def _encode_batch(messages: list[Message]) -> str:
        inner = ",".join(m.json for m in messages)
        return f'{{"event":{_BATCH},"data":{{"messages":[{inner}]}}}}'

    def ack(self, ack_id: int, data: Any) -> Encoded:
        """``{"event":"ack","id":...,"data":...}``."""
        return self._frame(_json(ack_frame(ack_id, data)))
