"""What one load run counts: per-client sequence checks, latency, and a per-second timeline.

Everything here is plain data that crosses process boundaries as JSON: the
workers count, the orchestrator merges. Latency goes into a log-bucketed
histogram (5% wide buckets), so that merging millions of samples from many
processes costs a few hundred integers, at the price of percentiles that are
accurate to within one bucket.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LatencyHistogram", "SequenceTally", "Timeline"]

_GROWTH = 1.05
_FLOOR_MS = 0.01


@dataclass
class LatencyHistogram:
    """Milliseconds in buckets ``[FLOOR * 1.05**i, FLOOR * 1.05**(i+1))``, plus the exact max."""

    buckets: Counter[int] = field(default_factory=Counter)
    count: int = 0
    max_ms: float = 0.0

    def add(self, ms: float) -> None:
        """Count one latency."""
        index = int(math.log(max(ms, _FLOOR_MS) / _FLOOR_MS, _GROWTH))
        self.buckets[index] += 1
        self.count += 1
        self.max_ms = max(self.max_ms, ms)

    def merge(self, other: LatencyHistogram) -> None:
        """Add another histogram's counts to this one."""
        self.buckets.update(other.buckets)
        self.count += other.count
        self.max_ms = max(self.max_ms, other.max_ms)

    def percentile(self, fraction: float) -> float | None:
        """The upper edge of the bucket holding the ``fraction`` quantile (``None`` if empty)."""
        if not self.count:
            return None
        rank = max(1, math.ceil(fraction * self.count))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return min(_FLOOR_MS * _GROWTH ** (index + 1), self.max_ms)
        return self.max_ms

    def to_wire(self) -> dict[str, Any]:
        return {"buckets": dict(self.buckets), "count": self.count, "max_ms": self.max_ms}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> LatencyHistogram:
        buckets = Counter({int(k): int(v) for k, v in data["buckets"].items()})
        return cls(buckets, int(data["count"]), float(data["max_ms"]))


@dataclass
class SequenceTally:
    """One client's view of one organization's numbered stream."""

    seen: set[int] = field(default_factory=set)
    duplicated: int = 0
    out_of_order: int = 0
    highest: int = -1

    def add(self, seq: int) -> None:
        """Count one delivery of message number ``seq``."""
        if seq in self.seen:
            self.duplicated += 1
            return
        self.seen.add(seq)
        if seq < self.highest:
            self.out_of_order += 1
        self.highest = max(self.highest, seq)

    def lost(self, published: int) -> int:
        """Messages ``0 .. published-1`` this client never received."""
        return published - sum(1 for seq in self.seen if seq < published)


@dataclass
class Timeline:
    """Per wall-clock second: deliveries, latency sum and max."""

    seconds: dict[int, list[float]] = field(default_factory=dict)

    def add(self, second: int, ms: float) -> None:
        slot = self.seconds.setdefault(second, [0, 0.0, 0.0])
        slot[0] += 1
        slot[1] += ms
        slot[2] = max(slot[2], ms)

    def merge(self, other: Timeline) -> None:
        for second, (count, total, peak) in other.seconds.items():
            slot = self.seconds.setdefault(second, [0, 0.0, 0.0])
            slot[0] += count
            slot[1] += total
            slot[2] = max(slot[2], peak)

    def to_wire(self) -> dict[str, list[float]]:
        return {str(k): v for k, v in self.seconds.items()}

    @classmethod
    def from_wire(cls, data: dict[str, list[float]]) -> Timeline:
        return cls({int(k): list(v) for k, v in data.items()})
