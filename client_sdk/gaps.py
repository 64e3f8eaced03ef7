"""Gaps: where messages may have been missed, said out loud (protocol section 6).

Socket.IO alone delivers at most once: a message published while a client
reconnects is lost without a word. This SDK resumes every stream it reads
from the last message it saw, and when the server cannot give everything
back it says so with a :class:`Gap`, on ``on_gap``, on
``IntradayClient.gaps`` and in ``statistics().gaps``. A gap is never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .protocol import ReplayResult

__all__ = ["Gap", "GapReason"]


class GapReason(StrEnum):
    """Why messages of a stream may be missing."""

    INCOMPLETE = "incomplete"
    """The server's log no longer reaches back to the last message seen."""
    EPOCH_CHANGED = "epoch_changed"
    """The stream's log started again from empty (a server without durable storage restarted)."""
    NO_REPLAY = "no_replay"
    """The server cannot replay (no ``replay`` capability): what was published meanwhile is lost."""
    OVERFLOW = "overflow"
    """The handlers fell behind and the client dropped a message it cannot ask for again
    (one without ``seq``: the server cannot replay); see ``handler_backpressure``."""
    INVALID_POSITION = "invalid_position"
    """The ``resume_store`` held a position of the stream that is not valid; it was dropped."""


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages of ``stream`` published while the client was away may be missing.

    Attributes:
        stream: ``{channel}:{org}``.
        last_seq: the seq of the last message seen before the gap (``None``: none).
        last_epoch: its epoch.
        reason: why.
        server: what the server answered about the replay (``None``: nothing).

    Example:
        >>> client.on(on_gap=lambda gap: print("missed", gap.stream, gap.reason))  # doctest: +SKIP
    """

    stream: str
    last_seq: int | None
    last_epoch: str | None
    reason: GapReason
    server: ReplayResult | None = None
