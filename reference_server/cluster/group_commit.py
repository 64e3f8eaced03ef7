"""Group commit: the messages of one stream that wait for each other go to Redis together.

While a stream's messages are being logged and published (one store script,
then its ``WAIT``), the next ones of that stream queue up; when it returns,
everything queued goes in the next script, in the order it came. Each
message is still logged, published and answered on its own, in ``seq``
order; but Redis runs one script, one ``WAIT`` and one round trip for the
group, so its work per broadcast falls as the broadcasts of a stream come
faster, instead of being paid once per message (script overhead, the
replication check, the bounds, the expiries, the network). A message alone
waits for nobody: it goes at once.

Rule: every append to a stream through a :class:`GroupCommit` goes through
its queue; nothing else appends to that stream meanwhile (the store is the
cluster's Redis, and this node's distribution is its only writer here).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

__all__ = ["MAX_GROUP", "GroupCommit"]

MAX_GROUP: Final = 64
"""Most messages in one script (its arguments, and the time Redis is held by one script)."""

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """Commits the items of each stream in order, those that queued meanwhile together.

    Args:
        commit: logs one group of a stream, in order; its result is given to every
            item of the group (or its exception raised to every one).
        max_group: most items in one commit.
    """

    def __init__(
        self,
        commit: Callable[[str, list[Item]], Awaitable[Result]],
        max_group: int = MAX_GROUP,
    ) -> None:
        self._commit = commit
        self._max_group = max_group
        self._queues: dict[str, list[tuple[Item, asyncio.Future[Result]]]] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, stream: str, item: Item) -> Result:
        """Commit ``item`` after the items of ``stream`` submitted before it; the group's result.

        Cancelling the wait does not withdraw the item: it is committed with its group
        (as a script already sent to Redis would be).
        """
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(stream)
        if queue is None:
            # Nobody commits this stream now: a task of its own does, so that a caller that
            # gives up waiting cannot strand the items queued behind its own.
            self._queues[stream] = queue = []
            task = asyncio.get_running_loop().create_task(self._drain(stream, queue))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        queue.append((item, future))
        return await future

    async def _drain(self, stream: str, queue: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        group: list[tuple[Item, asyncio.Future[Result]]] = []
        try:
            while queue:
                group = queue[: self._max_group]
                del queue[: self._max_group]
                try:
                    result = await self._commit(stream, [item for item, _ in group])
                except Exception as exc:
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for _, future in group:
                    if not future.done():
                        future.set_result(result)
        finally:
            del self._queues[stream]
            for _, future in (*group, *queue):  # cancelled: their callers are told so
                if not future.done():
                    future.cancel()
