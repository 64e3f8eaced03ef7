"""Streams, their positions and what a server says about a replay (protocol section 6).

A stream is ``(channel, organization)``, named ``{channel}:{org}``. A server
with the ``replay`` capability numbers each stream's messages 1, 2, 3, ...
(``seq``) within the life of its log (``epoch``), so a client that knows the
last ``(seq, epoch)`` it saw can ask for what followed (``since``), and learns
from the answer whether anything is missing (``complete``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, Strict

from .events import CONCRETE_CHANNELS, Channel
from .identifiers import is_identifier

__all__ = [
    "Capability",
    "Epoch",
    "ReplayResult",
    "Seq",
    "StreamName",
    "StreamPosition",
    "parse_stream",
    "stream_name",
]


class Capability(StrEnum):
    """What a server can do (``server.capabilities``) or a client accepts (``capabilities``)."""

    ACKS = "acks"
    """``requires_ack`` messages are acknowledged and timed (section 5)."""
    BATCH = "batch"
    """Messages due within a short window arrive as one ``batch`` event (section 5)."""
    REPLAY = "replay"
    """Messages carry ``seq`` and ``epoch``; ``since`` replays what followed (section 6)."""
    SNAPSHOT = "snapshot"
    """``"snapshot": true`` sends the latest message of each ``(event, target)`` first."""


Seq = Annotated[int, Strict(), Field(ge=0)]
"""A message's number in its stream (``0``: before the first message)."""

Epoch = Annotated[str, Field(min_length=1, max_length=64)]
"""The life of a stream's log; it changes only when the log starts again from empty."""

StreamName = Annotated[str, Field(min_length=3, max_length=300)]
"""``{channel}:{org}``, as keys of ``since`` and ``replay``."""

_CHANNELS: Final = {c.value: c for c in CONCRETE_CHANNELS}


def stream_name(channel: Channel, organization_id: str) -> str:
    """The name of the stream of ``channel`` in ``organization_id``.

    Raises:
        ValueError: ``channel`` is ``all``.
    """
    if channel is Channel.ALL:
        raise ValueError("'all' is not a stream; expand it into channels")
    return f"{channel.value}:{organization_id}"


def parse_stream(name: str) -> tuple[Channel, str]:
    """The channel and organization of a stream name.

    Raises:
        ValueError: ``name`` is not ``{channel}:{org}`` with a concrete channel and an identifier.
    """
    channel, sep, org = name.partition(":")
    if not sep or channel not in _CHANNELS or not is_identifier(org):
        raise ValueError(f"not a stream name: {name[:300]!r}")
    return _CHANNELS[channel], org


class StreamPosition(BaseModel):
    """The last message a client saw of a stream: ``{"seq": N, "epoch": "..."}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: Seq
    epoch: Epoch


class ReplayResult(BaseModel):
    """What a server says about the replay of one stream, in the ``subscribe`` ack.

    ``complete: false`` means messages may be missing: the log no longer
    reaches back that far, or the epoch given is not the stream's current one
    (then nothing was replayed). ``epoch`` and ``seq`` (the latest message of
    the stream) are given by servers with ``replay``; one without answers
    ``{"replayed": 0, "complete": false}``.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    replayed: int
    complete: bool
    epoch: str | None = None
    seq: int | None = None
