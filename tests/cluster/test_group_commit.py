"""The group commit: a stream's items that queue while one commit runs go in the next, in order.

Pure asyncio: the commit is a function the test holds open with an event.
"""

from __future__ import annotations

import asyncio

import pytest

from reference_server.cluster.group_commit import GroupCommit


class Commits:
    """A commit function that records its groups and waits for the test to release each."""

    def __init__(self) -> None:
        self.groups: list[tuple[str, list[int]]] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def __call__(self, stream: str, items: list[int]) -> str:
        self.groups.append((stream, items))
        number = len(self.groups)
        self.started.set()
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return f"group {number}"


async def test_a_lone_item_goes_at_once_and_those_queued_meanwhile_go_together() -> None:
    commits = Commits()
    group = GroupCommit(commits, max_group=3)
    first = asyncio.create_task(group.submit("s", 1))
    await commits.started.wait()
    assert commits.groups == [("s", [1])]  # alone: committed without waiting for others
    queued = [asyncio.create_task(group.submit("s", n)) for n in (2, 3, 4, 5)]
    other = asyncio.create_task(group.submit("t", 9))  # another stream does not wait
    await asyncio.sleep(0)
    commits.release.set()
    assert await first == "group 1"
    results = await asyncio.gather(*queued, other)
    assert commits.groups[0] == ("s", [1])
    # In order, at most max_group a commit; stream t on its own.
    assert [g for g in commits.groups if g[0] == "s"] == [("s", [1]), ("s", [2, 3, 4]), ("s", [5])]
    assert ("t", [9]) in commits.groups
    assert results[:4] == [results[0]] * 3 + [results[3]]


async def test_a_failed_commit_fails_every_item_of_its_group_and_the_next_group_goes_on() -> None:
    commits = Commits()
    group = GroupCommit(commits)
    commits.fail = RuntimeError("redis away")
    first = asyncio.create_task(group.submit("s", 1))
    await commits.started.wait()
    second = asyncio.create_task(group.submit("s", 2))
    await asyncio.sleep(0)
    commits.release.set()
    with pytest.raises(RuntimeError, match="redis away"):
        await first
    with pytest.raises(RuntimeError, match="redis away"):
        await second  # its own group failed too (the commit function still fails)
    commits.fail = None
    assert await group.submit("s", 3) == "group 3"
    assert commits.groups == [("s", [1]), ("s", [2]), ("s", [3])]


async def test_a_caller_that_stops_waiting_does_not_strand_the_items_behind_it() -> None:
    commits = Commits()
    group = GroupCommit(commits)
    first = asyncio.create_task(group.submit("s", 1))
    await commits.started.wait()
    behind = asyncio.create_task(group.submit("s", 2))
    await asyncio.sleep(0)
    first.cancel()
    commits.release.set()
    assert await behind == "group 2"
    assert commits.groups == [("s", [1]), ("s", [2])]
