"""The embedded store: each stream's log in this process, bounded by count and age.

Nothing here suspends: an append, a read and a snapshot each run in one
step of the event loop, so no publish can fall between a replay's read of
the log and the moment its socket starts receiving live messages. The epoch
is new for every store (every process start), so a restarted server tells
resuming clients that their position belongs to a log that is gone.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .base import ReplaySlice, StoredMessage, StoreStats, StreamHead, snapshot_key

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Stream:
    log: deque[tuple[float, StoredMessage]] = field(default_factory=deque)
    latest: int = 0
    snapshot: dict[str, StoredMessage] = field(default_factory=dict)


class MemoryStore:
    """Per-stream logs in memory.

    Args:
        max_messages: messages kept per stream; older ones are dropped.
        max_age_seconds: messages older than this are dropped.
        clock: monotonic seconds (injected by tests to age messages).
    """

    kind = "memory"

    def __init__(
        self,
        *,
        max_messages: int = 10_000,
        max_age_seconds: float = 86_400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_messages = max_messages
        self._max_age = max_age_seconds
        self._clock = clock
        self._streams: dict[str, _Stream] = {}
        # Short, and different for every store: "the life of this log".
        self.epoch = secrets.token_hex(4)

    def _trim(self, stream: _Stream, now: float) -> None:
        log = stream.log
        while len(log) > self._max_messages:
            log.popleft()
        deadline = now - self._max_age
        while log and log[0][0] < deadline:
            log.popleft()

    async def append(self, stream: str, envelope: dict[str, Any]) -> tuple[int, str]:
        """Log ``envelope`` as the next message of ``stream``; its ``(seq, epoch)``."""
        state = self._streams.get(stream)
        if state is None:
            state = self._streams[stream] = _Stream()
        state.latest += 1
        envelope["seq"] = state.latest
        envelope["epoch"] = self.epoch
        message = StoredMessage(state.latest, envelope)
        now = self._clock()
        state.log.append((now, message))
        self._trim(state, now)
        key, removes = snapshot_key(envelope)
        if key is not None:
            if removes:
                state.snapshot.pop(key, None)
            else:
                state.snapshot.pop(key, None)  # re-insert: the dict stays in seq order
                state.snapshot[key] = message
        return state.latest, self.epoch

    async def read_since(self, stream: str, seq: int, epoch: str | None) -> ReplaySlice:
        """The logged messages of ``stream`` after ``seq``, and whether any may be missing."""
        state = self._streams.get(stream)
        latest = state.latest if state is not None else 0
        if epoch is not None and epoch != self.epoch:
            return ReplaySlice((), False, self.epoch, latest)
        if state is None or seq >= latest:
            # Nothing newer; a position beyond the log's end is not of this log.
            return ReplaySlice((), seq <= latest, self.epoch, latest)
        self._trim(state, self._clock())
        messages = tuple(message for _, message in state.log if message.seq > seq)
        first = messages[0].seq if messages else latest + 1
        return ReplaySlice(messages, first == seq + 1, self.epoch, latest)

    async def snapshot(self, stream: str) -> list[StoredMessage]:
        """The latest message of each ``(event, target)`` of ``stream``, oldest first."""
        state = self._streams.get(stream)
        return list(state.snapshot.values()) if state is not None else []

    async def heads(self, streams: list[str]) -> dict[str, StreamHead]:
        """Where each of ``streams`` stands (``epoch`` ``None``: nothing logged yet)."""
        heads = {}
        for name in streams:
            state = self._streams.get(name)
            heads[name] = StreamHead(self.epoch if state else None, state.latest if state else 0)
        return heads

    def held(self) -> int:
        """Messages held over all streams (read at every metrics scrape: no trimming)."""
        return sum(len(state.log) for state in self._streams.values())

    async def stats(self) -> StoreStats:
        """Streams, messages held, the oldest message's age."""
        now = self._clock()
        oldest: float | None = None
        count = 0
        for state in self._streams.values():
            self._trim(state, now)
            count += len(state.log)
            if state.log:
                age = now - state.log[0][0]
                oldest = age if oldest is None else max(oldest, age)
        return StoreStats(self.kind, len(self._streams), count, oldest)

    async def close(self) -> None:
        """Nothing to release."""
