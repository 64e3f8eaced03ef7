"""What a verify run recorded, and what it adds up to per stream.

Every publish (its number ``n``, stream, ``message_id``, when it was sent)
and, per subscriber, every delivery to its handler (``n``, when), every gap
the subscriber was told of and every disconnect are recorded here; nothing
is judged while the run goes. :func:`tally` then classifies each published
message for each subscriber:

- **delivered**: handled at least once;
- **lost**: never handled and covered by no gap the subscriber was told of;
- **lost but reported**: never handled, but a gap of its stream covers it: the
  gap was reported after the message was published, and the message was
  published after the last message of the stream the subscriber had handled
  (a gap says "what came after the last one you saw may be missing");
- **duplicated**: handled more than once (each extra time counts);
- **out of order**: handled after a later message of its stream;
- **phantom**: handled but never published by this run (numbers are per run,
  in an organization of the run's own, so nothing else publishes there).

A publish that failed for good (after the admin client's retries) is not
expected anywhere; a delivery of it is not a phantom.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Ledger", "Published", "StreamFigures", "SubscriberLog", "tally"]


@dataclass(slots=True)
class Published:
    """One numbered message sent through the management API."""

    n: int
    stream: str
    sent_at: float
    message_id: str | None = None
    failed: str | None = None
    """Why the publish failed for good (``None``: the server took it)."""


@dataclass(slots=True)
class Delivery:
    """One message handed to a subscriber's handler."""

    stream: str
    n: int | None
    """``None``: a message without this run's number (a phantom)."""
    message_id: str
    at: float
    replayed: bool = False


@dataclass(slots=True)
class GapReport:
    """A gap a subscriber was told of: messages of ``stream`` may be missing."""

    stream: str | None
    """``None``: every stream."""
    at: float
    reason: str


@dataclass
class SubscriberLog:
    """What one subscriber saw."""

    name: str
    kind: str
    """``sdk`` or ``raw``."""
    deliveries: list[Delivery] = field(default_factory=list)
    gaps: list[GapReport] = field(default_factory=list)
    disconnects: int = 0

    def delivered(
        self, stream: str, n: int | None, message_id: str, *, replayed: bool = False
    ) -> None:
        """Record a message handed to the handler."""
        self.deliveries.append(Delivery(stream, n, message_id, time.monotonic(), replayed))

    def gap(self, stream: str | None, reason: str) -> None:
        """Record a gap the subscriber was told of."""
        self.gaps.append(GapReport(stream, time.monotonic(), reason))


@dataclass
class Ledger:
    """Everything a run recorded."""

    run_id: str
    organization_id: str
    published: dict[int, Published] = field(default_factory=dict)
    subscribers: list[SubscriberLog] = field(default_factory=list)

    def publishing(self, n: int, stream: str) -> Published:
        """Record that message ``n`` of ``stream`` is being sent now."""
        entry = self.published[n] = Published(n, stream, time.monotonic())
        return entry

    def subscriber(self, name: str, kind: str) -> SubscriberLog:
        """A new subscriber's log."""
        log = SubscriberLog(name, kind)
        self.subscribers.append(log)
        return log


@dataclass
class StreamFigures:
    """One stream's figures over the subscribers of one kind (or all)."""

    stream: str
    kind: str
    subscribers: int = 0
    published: int = 0
    expected: int = 0
    """``published`` times ``subscribers``: the deliveries a perfect run makes."""
    delivered: int = 0
    lost: int = 0
    lost_reported: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    phantom: int = 0
    replayed: int = 0
    gaps_reported: int = 0
    publish_failures: int = 0

    @property
    def delivered_percent(self) -> float:
        """Share of the expected deliveries that were made (100 when nothing was expected)."""
        return 100.0 * self.delivered / self.expected if self.expected else 100.0

    @property
    def clean(self) -> bool:
        """Nothing lost in silence, doubled, reordered or invented."""
        return not (self.lost or self.duplicated or self.out_of_order or self.phantom)

    def add(self, other: StreamFigures) -> None:
        """Add ``other``'s counts to these (for totals)."""
        for name in (
            "subscribers",
            "published",
            "expected",
            "delivered",
            "lost",
            "lost_reported",
            "duplicated",
            "out_of_order",
            "phantom",
            "replayed",
            "gaps_reported",
            "publish_failures",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready values."""
        return {
            "stream": self.stream,
            "kind": self.kind,
            "subscribers": self.subscribers,
            "published": self.published,
            "expected": self.expected,
            "delivered": self.delivered,
            "delivered_percent": round(self.delivered_percent, 3),
            "lost": self.lost,
            "lost_reported": self.lost_reported,
            "duplicated": self.duplicated,
            "out_of_order": self.out_of_order,
            "phantom": self.phantom,
            "replayed": self.replayed,
            "gaps_reported": self.gaps_reported,
            "publish_failures": self.publish_failures,
        }


def _covered(gaps: list[GapReport], stream: str, sent_at: float, after: float) -> bool:
    return any(
        (gap.stream is None or gap.stream == stream) and after <= sent_at <= gap.at for gap in gaps
    )


def _one(ledger: Ledger, log: SubscriberLog, stream: str, into: StreamFigures) -> None:
    """Classify every message of ``stream`` for one subscriber."""
    published = {p.n: p for p in ledger.published.values() if p.stream == stream}
    good = {n: p for n, p in published.items() if p.failed is None}
    into.subscribers += 1
    into.published = len(good)
    into.expected += len(good)
    into.publish_failures = len(published) - len(good)
    into.gaps_reported += sum(1 for g in log.gaps if g.stream in (None, stream))
    counts: Counter[int] = Counter()
    highest = 0
    for delivery in log.deliveries:
        if delivery.stream != stream:
            continue
        n = delivery.n
        if n is None or n not in published:
            into.phantom += 1
            continue
        counts[n] += 1
        if counts[n] > 1:
            into.duplicated += 1
            continue
        if delivery.replayed:
            into.replayed += 1
        if n < highest:
            into.out_of_order += 1
        highest = max(highest, n)
    delivered_times = sorted(published[n].sent_at for n in counts if n in published)
    for n, entry in good.items():
        if counts[n]:
            into.delivered += 1
            continue
        # A gap covers what was published after the last message of the
        # stream the subscriber had handled.
        index = bisect.bisect_left(delivered_times, entry.sent_at)
        after = delivered_times[index - 1] if index else float("-inf")
        if _covered(log.gaps, stream, entry.sent_at, after):
            into.lost_reported += 1
        else:
            into.lost += 1


def tally(ledger: Ledger, streams: list[str]) -> list[StreamFigures]:
    """Per stream and subscriber kind: the run's figures."""
    rows: list[StreamFigures] = []
    kinds = sorted({log.kind for log in ledger.subscribers})
    for stream in streams:
        for kind in kinds:
            row = StreamFigures(stream, kind)
            for log in ledger.subscribers:
                if log.kind == kind:
                    _one(ledger, log, stream, row)
            rows.append(row)
    return rows
