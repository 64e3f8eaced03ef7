"""A stream's epoch follows the history of the Redis primary that holds its log.

A replica promoted to primary may lack the last appends, which clients may
have received: its streams start a new epoch at their first read or append
there, so no ``(stream, epoch, seq)`` can name two messages. A primary
restarted from its own append-only file keeps its streams' epochs (nothing
was lost, and clients resume without a gap). An append on a primary with a
replica waits (``WAIT``) until the replica holds it; without one it does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reference_server.store.redis import RedisStore
from tests.cluster.sentinel import SentinelGroup, ask
from tests.processes import RedisProcess

STREAM = "kpi:org_a"


def _envelope(n: int) -> dict[str, Any]:
    return {
        "id": f"m{n}",
        "event": "kpi:update",
        "channel": "kpi",
        "timestamp": "2026-12-07T10:00:00Z",
        "target": {"organization_id": "org_a", "queue_name": "support"},
        "data": {"organization_id": "org_a", "n": n},
    }


async def _waits(port: int) -> int:
    """How many ``WAIT`` commands the Redis server on ``port`` ran."""
    stats = await ask(port, "INFO", "commandstats")  # redis-py parses it into a dict
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))


def _store(port: int) -> RedisStore:
    return RedisStore(f"redis://127.0.0.1:{port}/0", max_messages=100, max_age_seconds=3600)


@pytest.mark.timeout(30)
async def test_a_promoted_replica_starts_a_new_epoch(tmp_path: Path) -> None:
    group = SentinelGroup(tmp_path)
    try:
        await group.start_servers()
        primary, replica = group.server_ports
        first = _store(primary)
        try:
            places = [await first.append(STREAM, _envelope(n)) for n in (1, 2, 3)]
        finally:
            await first.close()  # also when an append fails: its socket is not left to the GC
        (_, epoch) = places[-1]
        assert [seq for seq, _ in places] == [1, 2, 3]
        # The primary has a replica: each append waited for it (store_min_replicas' default).
        assert await _waits(primary) == 3

        assert await ask(replica, "REPLICAOF", "NO", "ONE")
        promoted = _store(replica)
        try:
            answer = await promoted.read_since(STREAM, 3, epoch)
            assert answer.epoch != epoch
            assert (answer.complete, answer.messages) == (False, ())  # the client sees a gap
            seq, new_epoch = await promoted.append(STREAM, _envelope(4))
            assert new_epoch == answer.epoch
            assert (seq, (await promoted.append(STREAM, _envelope(5)))[1]) == (4, new_epoch)
        finally:
            await promoted.close()
    finally:
        await group.stop()


@pytest.mark.timeout(30)
async def test_a_primary_restarted_from_its_own_disk_keeps_the_epoch(tmp_path: Path) -> None:
    async with RedisProcess(tmp_path, appendonly=True) as redis:
        store = _store(redis.port)
        try:
            _, epoch = await store.append(STREAM, _envelope(1))
            await redis.kill()
            await redis.start()  # the same append-only file
            assert await store.append(STREAM, _envelope(2)) == (2, epoch)
            assert await _waits(redis.port) == 0  # no replica, nothing to wait for
            answer = await store.read_since(STREAM, 1, epoch)
            assert (answer.complete, answer.epoch, len(answer.messages)) == (True, epoch, 1)
        finally:
            await store.close()
