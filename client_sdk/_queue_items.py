"""What waits in the dispatcher's queue: server events and the resume markers between them.

Typed items, never fake events: a resume's markers keep their place in the
order of the messages without a name any listener could be registered under.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

__all__ = ["FillDone", "QueueItem", "QueuedEvent", "ResumeBegin", "ResumeEnd"]


@dataclass(slots=True)
class QueuedEvent:
    """A server event as it arrived, and the future its ack waits on."""

    name: str
    data: Any
    done: asyncio.Future[None] | None = None
    counted: bool = True
    """A message (bounded by the policy), not a control event (never dropped)."""

    def release(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)  # releases the transport task waiting to ack


@dataclass(frozen=True, slots=True)
class ResumeBegin:
    """A ``subscribe`` with ``since`` of these streams was sent (``True``: replay, not probe)."""

    streams: dict[str, bool]


@dataclass(frozen=True, slots=True)
class ResumeEnd:
    """Its answer: the raw success ack, or ``None`` if it failed."""

    streams: dict[str, bool]
    ack: Any


@dataclass(frozen=True, slots=True)
class FillDone:
    """A fill of ``stream`` ended (behind its answer's marker, if it was sent)."""

    stream: str


QueueItem = QueuedEvent | ResumeBegin | ResumeEnd | FillDone
