"""The per-client rate limit (protocol section 8).

Fixed one-second windows starting at a client's first event: within a
window the first ``limit`` events pass and the rest are refused with
``RATE_LIMIT_EXCEEDED``. A window in which anything was refused is a strike;
``strikes`` consecutive strike windows disconnect the client, while a quiet
window forgives. Fixed windows make the boundary exact and testable (event
``limit`` passes, event ``limit + 1`` does not) at the cost of allowing up
to twice the rate across a window edge, which a protective limit tolerates.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["RateVerdict", "RateWindow"]


class RateVerdict(Enum):
    """What to do with one incoming event."""

    ALLOW = "allow"
    REFUSE = "refuse"
    DISCONNECT = "disconnect"


@dataclass(slots=True)
class RateWindow:
    """One client's rate-limit state."""

    window_start: float = float("-inf")
    count: int = 0
    strikes: int = 0
    struck_this_window: bool = False

    def hit(self, now: float, *, limit: int, strikes: int) -> RateVerdict:
        """Count one event at monotonic time ``now`` and judge it."""
        if now - self.window_start >= 1.0:
            elapsed_windows = int((now - self.window_start) // 1.0) if self.count else 0
            if not self.struck_this_window or elapsed_windows > 1:
                self.strikes = 0
            self.window_start, self.count, self.struck_this_window = now, 0, False
        self.count += 1
        if self.count <= limit:
            return RateVerdict.ALLOW
        if not self.struck_this_window:
            self.struck_this_window = True
            self.strikes += 1
        return RateVerdict.DISCONNECT if self.strikes >= strikes else RateVerdict.REFUSE
