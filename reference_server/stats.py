"""Message counters and delivery latency for ``GET /stats``."""

from __future__ import annotations

import time
from collections import Counter, deque

__all__ = ["ServerStats"]


class ServerStats:
    """Counts what the server sends and how long acknowledged messages take.

    ``messages_per_second`` is measured over the last ten seconds, so it
    reflects the current load rather than the average since start.
    """

    RATE_WINDOW_SECONDS = 10.0

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.total_messages = 0
        self.messages_by_event: Counter[str] = Counter()
        self.error_count = 0
        self.errors_by_code: Counter[str] = Counter()
        self.disconnects_by_reason: Counter[str] = Counter()
        self._latency_count = 0
        self._latency_total_ms = 0.0
        self.max_latency_ms: float | None = None
        self._recent: deque[tuple[float, int]] = deque()

    def record_message(self, event: str, now: float | None = None) -> None:
        """Count one published message (whatever its number of recipients)."""
        now = time.monotonic() if now is None else now
        self.total_messages += 1
        self.messages_by_event[event] += 1
        if self._recent and now - self._recent[-1][0] < 1.0:
            stamp, count = self._recent[-1]
            self._recent[-1] = (stamp, count + 1)
        else:
            self._recent.append((now, 1))
        self._trim(now)

    def record_error(self, code: str | None = None) -> None:
        """Count one error answered to a client or API caller, by its protocol code."""
        self.error_count += 1
        self.errors_by_code[str(code) if code else "UNKNOWN"] += 1

    def record_disconnect(self, reason: str) -> None:
        """Count one socket or session the server closed, by why (``too_slow``...)."""
        self.disconnects_by_reason[reason] += 1

    def record_latency(self, milliseconds: float) -> None:
        """Record the ack round trip of one ``requires_ack`` delivery."""
        self._latency_count += 1
        self._latency_total_ms += milliseconds
        if self.max_latency_ms is None or milliseconds > self.max_latency_ms:
            self.max_latency_ms = milliseconds

    @property
    def latency_count(self) -> int:
        """How many acks were timed."""
        return self._latency_count

    @property
    def latency_total_ms(self) -> float:
        """The sum of every timed ack's round trip."""
        return self._latency_total_ms

    @property
    def average_latency_ms(self) -> float | None:
        """Mean ack round trip, or ``None`` before the first ack."""
        if not self._latency_count:
            return None
        return self._latency_total_ms / self._latency_count

    def messages_per_second(self, now: float | None = None) -> float:
        """Messages published per second over the last ten seconds (or since start)."""
        now = time.monotonic() if now is None else now
        self._trim(now)
        span = min(self.RATE_WINDOW_SECONDS, max(now - self.started, 1.0))
        return sum(count for _, count in self._recent) / span

    def uptime_seconds(self) -> float:
        """Seconds since the server started."""
        return time.monotonic() - self.started

    def _trim(self, now: float) -> None:
        while self._recent and now - self._recent[0][0] > self.RATE_WINDOW_SECONDS:
            self._recent.popleft()
