"""The embedded store: each stream's log in this process, bounded by count and age.

Nothing here suspends: an append, a read and a snapshot each run in one
step of the event loop, so no publish can fall between a replay's read of
the log and the moment its socket starts receiving live messages. The epoch
is new for every store (every process start), so a restarted server tells
resuming clients that their position belongs to a log that is gone.

The log and the snapshot of a stream are both bounded by ``max_messages``
and ``max_age_seconds``; a stream whose last message is older than the age
bound is forgotten altogether (an organization that went silent costs
nothing). Its next message starts a new life of the stream, at seq 1, in a
new epoch (:func:`~reference_server.store.base.life_epoch`), so no ``seq`` is
given twice within one epoch.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .base import ReplaySlice, StoredMessage, StoreStats, StreamHead, life_epoch, snapshot_key

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Stream:
    born: float
    """When the stream's life began: its epoch names the age-bound window of it."""
    log: deque[tuple[float, StoredMessage]] = field(default_factory=deque)
    latest: int = 0
    last_append: float = 0.0
    # In the order of the last update, oldest first: what the bounds remove first.
    snapshot: dict[str, tuple[float, StoredMessage]] = field(default_factory=dict)


class MemoryStore:
    """Per-stream logs in memory.

    Args:
        max_messages: messages kept per stream (and snapshot entries); older ones are dropped.
        max_age_seconds: messages (and snapshot entries) older than this are dropped.
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

    def _epoch(self, born: float) -> str:
        return life_epoch(self.epoch, born, self._max_age)

    def _trim(self, stream: _Stream, now: float) -> None:
        log = stream.log
        while len(log) > self._max_messages:
            log.popleft()
        deadline = now - self._max_age
        while log and log[0][0] < deadline:
            log.popleft()
        snapshot = stream.snapshot
        while snapshot:
            key, (at, _) = next(iter(snapshot.items()))
            if at >= deadline and len(snapshot) <= self._max_messages:
                break
            del snapshot[key]

    def _current(self, name: str, now: float) -> _Stream | None:
        """The stream, unless it has been silent past the age bound (then it is forgotten)."""
        state = self._streams.get(name)
        if state is not None and state.last_append < now - self._max_age:
            del self._streams[name]
            return None
        return state

    async def append(self, stream: str, envelope: dict[str, Any]) -> tuple[int, str]:
        """Log ``envelope`` as the next message of ``stream``; its ``(seq, epoch)``."""
        now = self._clock()
        state = self._current(stream, now)
        if state is None:
            state = self._streams[stream] = _Stream(now)
        state.latest += 1
        state.last_append = now
        envelope["seq"] = state.latest
        epoch = envelope["epoch"] = self._epoch(state.born)
        message = StoredMessage(state.latest, envelope)
        state.log.append((now, message))
        key, removes = snapshot_key(envelope)
        if key is not None:
            state.snapshot.pop(key, None)  # re-inserted last: the dict stays in update order
            if not removes:
                state.snapshot[key] = (now, message)
        self._trim(state, now)
        return state.latest, epoch

    async def read_since(self, stream: str, seq: int, epoch: str | None) -> ReplaySlice:
        """The logged messages of ``stream`` after ``seq``, and whether any may be missing."""
        now = self._clock()
        state = self._current(stream, now)
        current = self._epoch(state.born if state is not None else now)
        latest = state.latest if state is not None else 0
        if epoch is not None and epoch != current:
            return ReplaySlice((), False, current, latest)
        if state is None or seq >= latest:
            # Nothing newer; a position beyond the log's end is not of this log.
            return ReplaySlice((), seq <= latest, current, latest)
        self._trim(state, now)
        messages = tuple(message for _, message in state.log if message.seq > seq)
        first = messages[0].seq if messages else latest + 1
        return ReplaySlice(messages, first == seq + 1, current, latest)

    async def snapshot(self, stream: str) -> list[StoredMessage]:
        """The latest message of each ``(event, target)`` of ``stream``, oldest first."""
        now = self._clock()
        state = self._current(stream, now)
        if state is None:
            return []
        self._trim(state, now)
        return [message for _, message in state.snapshot.values()]

    async def heads(self, streams: list[str]) -> dict[str, StreamHead]:
        """Where each of ``streams`` stands (``epoch`` ``None``: nothing logged yet)."""
        heads = {}
        now = self._clock()
        for name in streams:
            state = self._current(name, now)
            if state is None:
                heads[name] = StreamHead(None, 0)
            else:
                heads[name] = StreamHead(self._epoch(state.born), state.latest)
        return heads

    def held(self) -> int:
        """Messages held over all streams (read at every metrics scrape: no trimming)."""
        return sum(len(state.log) for state in self._streams.values())

    async def stats(self) -> StoreStats:
        """Streams, messages held, the oldest message's age (silent streams are forgotten)."""
        now = self._clock()
        oldest: float | None = None
        count = 0
        for name in list(self._streams):
            state = self._current(name, now)
            if state is None:
                continue
            self._trim(state, now)
            count += len(state.log)
            if state.log:
                age = now - state.log[0][0]
                oldest = age if oldest is None else max(oldest, age)
        return StoreStats(self.kind, len(self._streams), count, oldest)

    async def close(self) -> None:
        """Nothing to release."""
