"""Small stand-ins for ``asyncio.Queue`` and ``asyncio.Event``, for state every connection holds.

An ``asyncio.Queue`` makes four ``collections.deque`` objects when it is
created (its items, its getters, its putters, and the deque of its
``join()`` event), an ``asyncio.Event`` one; an empty deque holds a block of
64 slots, about 760 bytes. uvicorn's WebSocket protocol keeps one of each for
the life of every connection (its incoming-event queue and its ``writable``
flag): 3.8 KiB of an idle connection's 50 (bench/idle_memory.py). These two
classes keep the part of that interface uvicorn uses
(:mod:`.uvicorn_server` lists it) with nothing allocated until someone waits.

Same semantics as asyncio's for that part: FIFO; a waiter woken by
``set()``/``put_nowait()`` resumes in the order it began to wait; a
cancelled ``get()`` leaves the item for the next one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["LeanEvent", "LeanQueue"]

T = TypeVar("T")


class LeanEvent:
    """``asyncio.Event``'s ``is_set``/``set``/``clear``/``wait``, its waiters made on demand."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._value

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        """Clear the flag: :meth:`wait` blocks again."""
        self._value = False

    async def wait(self) -> bool:
        """Return ``True`` once the flag is set (at once if it is). Safe to cancel."""
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class LeanQueue(Generic[T]):
    """An unbounded FIFO with ``put_nowait``/``get``/``get_nowait``/``empty``/``qsize``.

    Its deque is made with the first item that has to wait, and dropped when
    it empties again (a connection's queue is empty nearly all the time).
    """

    __slots__ = ("_getters", "_items")

    def __init__(self) -> None:
        self._items: deque[T] | None = None
        self._getters: list[asyncio.Future[None]] | None = None

    def qsize(self) -> int:
        """How many items wait."""
        return len(self._items) if self._items is not None else 0

    def empty(self) -> bool:
        """Whether no item waits."""
        return not self._items

    def put_nowait(self, item: T) -> None:
        """Append ``item`` and wake the longest waiting :meth:`get`."""
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        while self._getters:
            getter = self._getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                break
        if not self._getters:
            self._getters = None

    def get_nowait(self) -> T:
        """The first item; ``asyncio.QueueEmpty`` if there is none."""
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None
        return item

    async def get(self) -> T:
        """The first item, once there is one. Safe to cancel: no item is lost."""
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                if self._getters is not None and getter in self._getters:
                    self._getters.remove(getter)
                elif self._items:
                    self._wake_next()  # it was woken for an item it will not take
                raise
        return self.get_nowait()

    def _wake_next(self) -> None:
        while self._getters:
            getter = self._getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                return
