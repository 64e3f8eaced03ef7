"""Backpressure for pull consumers: what a stream keeps when its reader falls behind.

Rx observers are synchronous callbacks: each one gets every message, in
order, inside the client's dispatcher. A slow consumer is an *async* one,
reading with ``async for`` and awaiting its own work between messages.
Each such reader gets its own :class:`PolicyQueue`, which obeys one
:class:`Backpressure` policy:

- :data:`KEEP_LATEST`: only the newest message waits (a KPI tile needs no history);
- :func:`BUFFER` ``(n)``: the newest ``n`` wait, in order; older ones are dropped;
- :data:`UNBOUNDED`: everything waits (memory grows with the backlog).

Every drop is counted, on the queue and through its ``on_drop`` callback
(the hooks pass it on to the client, which counts them in its statistics).

Example:
    >>> queue = PolicyQueue(BUFFER(2))
    >>> for n in range(5):
    ...     queue.put_nowait(n)
    >>> len(queue), queue.dropped
    (2, 3)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, Literal, TypeVar

__all__ = ["BUFFER", "KEEP_LATEST", "UNBOUNDED", "Backpressure", "PolicyQueue"]

T = TypeVar("T")

PolicyKind = Literal["keep_latest", "buffer", "unbounded"]


@dataclass(frozen=True, slots=True)
class Backpressure:
    """A policy for a consumer that reads slower than messages arrive.

    Use the constants :data:`KEEP_LATEST` and :data:`UNBOUNDED`, or
    :func:`BUFFER` for a bounded buffer.

    Attributes:
        kind: ``"keep_latest"``, ``"buffer"`` or ``"unbounded"``.
        capacity: how many messages may wait (``None``: no limit). When one
            more arrives, the oldest waiting message is dropped.

    Example:
        >>> BUFFER(5).capacity, KEEP_LATEST.capacity, UNBOUNDED.capacity
        (5, 1, None)
    """

    kind: PolicyKind
    capacity: int | None

    def __post_init__(self) -> None:
        expected_none = self.kind == "unbounded"
        if (self.capacity is None) != expected_none:
            raise ValueError(f"{self.kind}: capacity must be {'None' if expected_none else 'set'}")
        if self.capacity is not None and self.capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {self.capacity}")
        if self.kind == "keep_latest" and self.capacity != 1:
            raise ValueError("keep_latest keeps exactly one message")

    def __repr__(self) -> str:
        if self.kind == "buffer":
            return f"BUFFER({self.capacity})"
        return self.kind.upper()


KEEP_LATEST: Final = Backpressure("keep_latest", 1)
"""Keep only the newest message; every older one waiting is dropped."""

UNBOUNDED: Final = Backpressure("unbounded", None)
"""Keep everything, in order; nothing is dropped and memory is not bounded."""


def BUFFER(size: int) -> Backpressure:  # upper case: reads as a constant with an argument
    """Keep the newest ``size`` messages, in order, dropping the oldest beyond that.

    Raises:
        ValueError: ``size`` is below 1.

    Example:
        >>> BUFFER(100)
        BUFFER(100)
    """
    return Backpressure("buffer", size)


class PolicyQueue(Generic[T]):
    """An async queue that obeys a :class:`Backpressure` policy; iterate it with ``async for``.

    :meth:`put_nowait` never blocks and never fails: when the policy's
    capacity is exceeded the oldest item is dropped and counted. Iteration
    ends once the queue is closed and drained; if it was closed with an
    error, that error is raised after the last item instead.

    Nothing bound to an event loop is created before the first wait.

    Example:
        >>> async def read(queue: PolicyQueue[int]) -> list[int]:
        ...     return [item async for item in queue]
        >>> queue = PolicyQueue(KEEP_LATEST)
        >>> for n in range(3):
        ...     queue.put_nowait(n)
        >>> queue.close()
        >>> asyncio.run(read(queue)), queue.dropped
        ([2], 2)
    """

    def __init__(
        self,
        policy: Backpressure,
        on_drop: Callable[[int], None] | None = None,
        *,
        on_evict: Callable[[T], None] | None = None,
    ) -> None:
        self._policy = policy
        self._on_drop = on_drop
        # Sees each dropped item: the dispatcher releases the ack it holds.
        self._on_evict = on_evict
        self._items: deque[T] = deque()
        self._dropped = 0
        self._closed = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def policy(self) -> Backpressure:
        """The policy this queue obeys."""
        return self._policy

    @property
    def dropped(self) -> int:
        """How many items this queue dropped so far."""
        return self._dropped

    @property
    def closed(self) -> bool:
        """Whether the producer closed the queue (items may still wait)."""
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<PolicyQueue {self._policy!r} waiting={len(self)} dropped={self._dropped}>"

    def put_nowait(self, item: T) -> None:
        """Add ``item``, dropping the oldest ones beyond the capacity. Ignored once closed."""
        if self._closed:
            return
        self._items.append(item)
        capacity = self._policy.capacity
        if capacity is not None and len(self._items) > capacity:
            excess = len(self._items) - capacity
            for _ in range(excess):
                evicted = self._items.popleft()
                if self._on_evict is not None:
                    self._on_evict(evicted)
            self._dropped += excess
            if self._on_drop is not None:
                self._on_drop(excess)
        self._wake()

    def get_nowait(self) -> T:
        """The oldest waiting item.

        Raises:
            IndexError: nothing is waiting.
        """
        return self._items.popleft()

    def close(self, error: BaseException | None = None) -> None:
        """End the stream: readers get what is waiting, then the end (or ``error``)."""
        if self._closed:
            return
        self._closed = True
        self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Return once an item is waiting or the queue is closed (at once if so already).

        Takes nothing off the queue: for a reader that decides only then
        whether to take the next item. Cancelling it is safe.
        """
        while not self._items and not self._closed:
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None

    def __aiter__(self) -> PolicyQueue[T]:
        return self

    async def __anext__(self) -> T:
        """The next item, waiting for one if needed. Cancelling it is safe (nothing is lost)."""
        while not self._items:
            if self._closed:
                error, self._error = self._error, None
                if error is not None:
                    raise error
                raise StopAsyncIteration
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        return self._items.popleft()
