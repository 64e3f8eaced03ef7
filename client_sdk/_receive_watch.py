"""The receive timeout of a read loop as one timer per connection (see ``_transport``)."""

from __future__ import annotations

import asyncio

__all__ = ["ReceiveWatch"]


class ReceiveWatch:
    """The receive timeout of one read loop: one timer, re-armed when it fires.

    ``asyncio.wait_for(ws.receive(), limit)`` makes a ``Timeout``, a timer
    handle and its cancellation for every message. This is the same bound:
    when a receive has waited ``limit`` seconds, the read loop's task is
    cancelled there and :meth:`expired` turns that into ``TimeoutError``
    (a cancellation from elsewhere stays one). A receive starts its own
    ``limit``, as before; time spent between receives does not count.
    """

    def __init__(self, limit: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.since = self.loop.time()
        self.waiting = False
        self._task = asyncio.current_task()
        self._limit = limit
        self._fired = False
        self._timer: asyncio.TimerHandle | None = self.loop.call_at(self.since + limit, self._check)

    def _check(self) -> None:
        now, due = self.loop.time(), self.since + self._limit
        if self.waiting and now >= due and self._task is not None:
            self._fired, self._timer = True, None
            self._task.cancel()
            return
        # Waiting less than limit: check at its end. Not waiting: a receive
        # started later ends its limit after now + limit at the earliest.
        self._timer = self.loop.call_at(due if self.waiting else now + self._limit, self._check)

    def expired(self) -> bool:
        """Whether the cancellation being handled is this timeout's (it is then withdrawn)."""
        if not self._fired or self._task is None:
            return False
        self._fired = False
        return self._task.uncancel() == 0

    def stop(self) -> None:
        """No more receives to watch: the timer goes."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
