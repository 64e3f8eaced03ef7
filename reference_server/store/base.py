"""The interface of a message store, and the snapshot rule both stores apply.

A store is asked four things: append a message (and so give it its place),
read what followed a position, the latest message of each ``(event,
target)`` (the snapshot), and its own figures. It never decides who receives
a message: the publisher and the subscribe handler filter by the delivery
rule, so a store cannot leak one organization's messages to another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from client_sdk.protocol import ErrorCode, ProtocolError, ServerEvent

__all__ = [
    "KeyRecord",
    "MessageStore",
    "ReplaySlice",
    "StoreStats",
    "StoreUnavailableError",
    "StoredMessage",
    "StreamHead",
    "UnconfirmedAppendError",
    "life_epoch",
    "snapshot_key",
]


class StoreUnavailableError(ProtocolError):
    """The store cannot be reached: ``INTERNAL_ERROR``, retryable, HTTP 503.

    Nothing is delivered that was not stored, so a broadcast that meets this
    error reached nobody and may simply be sent again.
    """

    http_status = 503

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INTERNAL_ERROR, message, retryable=True)


class UnconfirmedAppendError(StoreUnavailableError):
    """Logged, but fewer replicas than required confirmed it in time: 503, retryable.

    Unlike its base, the message stands: it is in the log (subscribers get it
    live or from the log), so a retry with the same ``Idempotency-Key`` must
    answer this ``message_id`` instead of publishing it again.
    """

    def __init__(self, message_id: str) -> None:
        super().__init__(
            "the message store's replicas did not confirm the message in time;"
            " it is logged and may have been delivered"
        )
        self.message_id = message_id


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One logged message: its place in the stream and the envelope as sent."""

    seq: int
    envelope: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReplaySlice:
    """What followed a position: the messages (in ``seq`` order) and what the log says.

    Attributes:
        messages: the logged messages after the position, oldest first.
        complete: ``False`` when messages may be missing (the log no longer
            reaches back that far, or the epoch is not the stream's).
        epoch: the stream's current epoch.
        latest: the seq of the stream's newest message (0: none yet).
    """

    messages: tuple[StoredMessage, ...]
    complete: bool
    epoch: str
    latest: int


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What an idempotency key holds: the request's fingerprint and, once settled, its answer."""

    fingerprint: str
    result: dict[str, Any] | None
    """``None``: the first request with the key is still publishing."""
    message_id: str | None = None
    """The ``message_id`` the request publishing under the key gives its message."""


@dataclass(frozen=True, slots=True)
class StreamHead:
    """Where a stream's log stands: its epoch (``None``: no log yet) and its newest seq."""

    epoch: str | None
    latest: int


@dataclass(frozen=True, slots=True)
class StoreStats:
    """A store's figures for ``/stats`` and ``/health``.

    Attributes:
        kind: ``memory`` or ``redis``.
        streams: streams with a log.
        messages: messages held over all streams.
        oldest_age_seconds: age of the oldest message held (``None``: none).
        reachable: whether the store answered.
    """

    kind: str
    streams: int
    messages: int
    oldest_age_seconds: float | None
    reachable: bool = True


class MessageStore(Protocol):
    """The message log of every stream, with its snapshot."""

    kind: str
    """``memory`` or ``redis``."""

    async def append(self, stream: str, envelope: dict[str, Any]) -> tuple[int, str]:
        """Log ``envelope`` as the next message of ``stream``; its ``(seq, epoch)``.

        The store sets ``seq`` and ``epoch`` in ``envelope`` too, so the
        envelope delivered is the one logged.

        Raises:
            StoreUnavailableError: the store cannot be reached (nothing was logged).
        """
        ...

    async def read_since(self, stream: str, seq: int, epoch: str | None) -> ReplaySlice:
        """The messages of ``stream`` after ``seq`` (of ``epoch``, if given).

        Raises:
            StoreUnavailableError: the store cannot be reached.
        """
        ...

    async def snapshot(self, stream: str) -> list[StoredMessage]:
        """The latest message of each ``(event, target)`` of ``stream``, oldest first.

        Raises:
            StoreUnavailableError: the store cannot be reached.
        """
        ...

    async def heads(self, streams: list[str]) -> dict[str, StreamHead]:
        """Where each of ``streams`` stands, read in one step (one pipelined round trip).

        Live completeness compares these with what a node delivered.

        Raises:
            StoreUnavailableError: the store cannot be reached.
        """
        ...

    async def stats(self) -> StoreStats:
        """Streams, messages held, the oldest message's age (never raises)."""
        ...

    async def close(self) -> None:
        """Release connections (never raises)."""
        ...


def snapshot_key(envelope: dict[str, Any]) -> tuple[str | None, bool]:
    """Which snapshot entry a message replaces, and whether it removes it instead.

    The latest message of each ``(event, target)`` is kept: the last
    ``kpi:update`` of each queue, the last ``backlog:snapshot``, the last
    ``attendance:update``. Alerts are kept per alert, whatever the step of its
    life, until ``alert:resolved`` removes it: the snapshot holds the open
    alerts. ``None``: the message is not part of the snapshot.
    """
    event = envelope["event"]
    target = envelope["target"]
    if event.startswith("alert:"):
        alert_id = envelope["data"].get("alert_id")
        if not isinstance(alert_id, str):
            return None, False
        return f"alert|{alert_id}", event == ServerEvent.ALERT_RESOLVED.value
    dept = target.get("department_id") or ""
    queue = target.get("queue_name") or ""
    return f"{event}|{dept}|{queue}", False


def life_epoch(base: str, now: float, max_age_seconds: float) -> str:
    """The epoch of a stream whose log starts (again) from empty at ``now``.

    A stream silent for longer than the age bound is forgotten, seq counter
    included, and starts again at seq 1. Its new epoch must differ from the
    old one, yet a store must not keep anything per forgotten stream: the
    epoch names the age-bound window the life began in. Two lives of a stream
    are at least the age bound apart, so they never share a window. A reader
    of a stream not (or no longer) logged gets the epoch its first message
    will have, unless that message comes in a later window: a resume from
    the reader's position is then told ``complete: false`` (a gap reported,
    never a silent one).
    """
    return f"{base}.{int(now // max_age_seconds):x}"
