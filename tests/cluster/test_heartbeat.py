"""The heartbeat's work in Redis goes with what changed, not with the node's connections.

A full sync (every connection of the node made to match Redis) costs Redis
commands per connection; at every beat it made Redis's work grow with the
connections held, whatever was broadcast. It runs only when Redis may not
hold what the node wrote; otherwise a beat writes the node's entry and the
connections whose API view changed. A Redis process that is not the one of
the last sync (here: restarted from its own disk, where a write the node made
is missing) is synced in full at the next beat.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from reference_server.app import ReferenceServer
from reference_server.cluster.registry import PREFIX
from tests.conftest import ServerFactory, SioClient, eventually
from tests.processes import RedisProcess

BEATS = {"node_heartbeat_seconds": 0.2, "node_timeout_seconds": 5}

PER_CONNECTION = ("cmdstat_hget", "cmdstat_hexists", "cmdstat_smembers", "cmdstat_sadd")
"""The commands a full sync runs for each connection of the node."""


async def _per_connection_calls(redis: Any) -> int:
    stats = await redis.info("commandstats")
    return sum(int(stats.get(name, {}).get("calls", 0)) for name in PER_CONNECTION)


async def _calls_over_beats(server: ReferenceServer, redis: Any, beats: int) -> int:
    """The per-connection commands Redis ran over ``beats`` heartbeats of ``server``."""
    node = server.app.cluster
    assert node is not None
    start = node.heartbeat.beats + 2  # the next beat may have begun before the last change
    await eventually(lambda: _reached(server, start), timeout=10)
    before = await _per_connection_calls(redis)
    await eventually(lambda: _reached(server, start + beats), timeout=10)
    return await _per_connection_calls(redis) - before


async def _authenticated(
    server: ReferenceServer, make_client: Callable[[ReferenceServer], SioClient], count: int
) -> list[SioClient]:
    """``count`` clients of ``server``, connected and authenticated in organization org_a."""
    clients = [make_client(server) for _ in range(count)]
    for n, client in enumerate(clients):
        await client.connect()
        assert (await client.authenticate(f"user_{n}", "org_a"))["success"]
    return clients


async def _reached(server: ReferenceServer, beats: int) -> bool:
    node = server.app.cluster
    assert node is not None
    return node.heartbeat.beats >= beats


@pytest.mark.timeout(60)
async def test_beats_cost_redis_nothing_per_connection_held(
    make_server: ServerFactory,
    make_client: Callable[[ReferenceServer], SioClient],
    tmp_path: Path,
) -> None:
    async with RedisProcess(tmp_path) as redis_process:
        server = await make_server(cluster=redis_process.url, node_id="n0", **BEATS)
        redis = aioredis.from_url(redis_process.url)
        try:
            for client in await _authenticated(server, make_client, 20):
                assert (await client.call("subscribe", {"channels": ["kpi"]}))["success"]
            # 20 connections x 4 commands per full sync: 400 over 5 beats if each beat synced.
            assert await _calls_over_beats(server, redis, 5) <= 4
        finally:
            await redis.aclose()


@pytest.mark.timeout(60)
async def test_a_redis_restarted_from_disk_without_a_write_is_synced_in_full(
    make_server: ServerFactory,
    make_client: Callable[[ReferenceServer], SioClient],
    tmp_path: Path,
) -> None:
    async with RedisProcess(tmp_path, appendonly=True) as redis_process:
        server = await make_server(cluster=redis_process.url, node_id="n0", **BEATS)
        client = make_client(server)
        await client.connect()
        assert (await client.authenticate("user_1", "org_a"))["success"]
        sid = client.sio.get_sid("/")
        redis = aioredis.from_url(redis_process.url, decode_responses=True)
        try:
            await eventually(lambda: redis.hexists(PREFIX + "conn_node", sid), timeout=10)
            # What a restart may lose (a write not yet on disk): gone from the file as well.
            await redis.hdel(PREFIX + "conn_node", sid)
            await redis.aclose()
            await redis_process.kill()
            await redis_process.start()  # the same append-only file, another process
            redis = aioredis.from_url(redis_process.url, decode_responses=True)
            assert (
                await eventually(lambda: redis.hget(PREFIX + "conn_node", sid), timeout=10) == "n0"
            )
        finally:
            await redis.aclose()


async def _reads(redis: Any) -> int:
    return int((await redis.info("stats"))["total_reads_processed"])


@pytest.mark.timeout(60)
async def test_a_beat_is_one_round_trip_to_redis(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    # An idle Redis pays for every request it wakes up for: a node's beat (its entry, and
    # the reap of dead nodes) goes in one pipelined request, not one per script plus a
    # SCRIPT EXISTS. No client here: nothing else of the node talks to Redis meanwhile
    # (the listener pings only after 5 quiet seconds).
    async with RedisProcess(tmp_path) as redis_process:
        server = await make_server(cluster=redis_process.url, node_id="n0", **BEATS)
        node = server.app.cluster
        assert node is not None
        redis = aioredis.from_url(redis_process.url)
        try:
            start = node.heartbeat.beats + 2
            await eventually(lambda: _reached(server, start), timeout=10)
            before = await _reads(redis)
            await eventually(lambda: _reached(server, start + 10), timeout=10)
            # 10 beats: 10 requests, one more for each INFO of ours, and one beat that may
            # have begun; three requests each (30) before they were pipelined.
            assert await _reads(redis) - before <= 13
        finally:
            await redis.aclose()


@pytest.mark.timeout(60)
async def test_a_subscription_is_written_once_not_again_by_the_next_beat(
    make_server: ServerFactory,
    make_client: Callable[[ReferenceServer], SioClient],
    tmp_path: Path,
) -> None:
    # JOIN writes the connection's API view; the beat after it has nothing left to write
    # (it wrote every subscribed view again: one HGET and one HSET per socket).
    async with RedisProcess(tmp_path) as redis_process:
        server = await make_server(cluster=redis_process.url, node_id="n0", **BEATS)
        redis = aioredis.from_url(redis_process.url)
        try:
            clients = await _authenticated(server, make_client, 20)
            node = server.app.cluster
            assert node is not None
            # The connections' own writes may still be on their way: counted from a beat on.
            settled = node.heartbeat.beats + 1
            await eventually(lambda: _reached(server, settled), timeout=10)
            before = await _hget_calls(redis)
            for client in clients:
                assert (await client.call("subscribe", {"channels": ["kpi"]}))["success"]
            target = node.heartbeat.beats + 3
            await eventually(lambda: _reached(server, target), timeout=10)
            # 20 JOIN scripts read the socket's node once each; the beats read nothing more
            # (they read and wrote every subscribed view again: 40 here before).
            assert await _hget_calls(redis) - before <= 20 + 5
        finally:
            await redis.aclose()


async def _hget_calls(redis: Any) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_hget", {}).get("calls", 0))
