"""The lean queue and event behave as asyncio's for what uvicorn uses of them."""

from __future__ import annotations

import asyncio

import pytest

from reference_server.transport.lean import LeanEvent, LeanQueue


async def test_queue_is_fifo_and_wakes_getters_in_the_order_they_waited() -> None:
    queue: LeanQueue[int] = LeanQueue()
    assert queue.empty()
    got: list[tuple[str, int]] = []

    async def getter(name: str) -> None:
        got.append((name, await queue.get()))

    first = asyncio.create_task(getter("first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(getter("second"))
    await asyncio.sleep(0)
    queue.put_nowait(1)
    queue.put_nowait(2)
    queue.put_nowait(3)
    async with asyncio.timeout(5):
        await asyncio.gather(first, second)
    assert got == [("first", 1), ("second", 2)]
    assert queue.qsize() == 1
    assert queue.get_nowait() == 3
    assert queue.empty()
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()


async def test_a_cancelled_get_leaves_its_item_to_the_next_getter() -> None:
    queue: LeanQueue[str] = LeanQueue()
    cancelled = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("item")  # wakes `cancelled`, which is then cancelled before it runs
    cancelled.cancel()
    async with asyncio.timeout(5):
        assert await waiting == "item"
    assert cancelled.cancelled()
    assert queue.empty()


async def test_event_wait_set_clear() -> None:
    event = LeanEvent()
    assert not event.is_set()
    waiters = [asyncio.create_task(event.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    event.set()
    async with asyncio.timeout(5):
        assert await asyncio.gather(*waiters) == [True, True, True]
    assert await event.wait() is True  # set: at once
    event.clear()
    blocked = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    blocked.cancel()  # safe to cancel
    with pytest.raises(asyncio.CancelledError):
        await blocked
    event.set()
    assert event.is_set()
