"""A broadcast's ``recipients`` over two nodes: exact, and no Redis work per recipient.

Each node counts the sockets a delivery concerns on that node (a socket in
two matching rooms once) and answers the publishing node; Redis carries one
publish and one answer per node, so the commands it runs per broadcast are
the same for a room of 2 members and of 14.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from reference_server.app import ReferenceServer
from reference_server.cluster.distribution import ANSWER_TIMEOUT
from tests.cluster.conftest import cluster
from tests.conftest import ServerFactory, SioClient, eventually, kpi
from tests.processes import RedisProcess

SLOW_BEATS = {"node_heartbeat_seconds": 30, "node_timeout_seconds": 60}
"""No heartbeat during the test (each runs a script over the node's connections)."""


UPKEEP = {"pexpire", "xrange", "xtrim", "zrange", "zrangebyscore", "zremrangebyscore", "zcard"}
UPKEEP |= {"exists", "set", "zadd"}
"""What the store's upkeep of a stream runs, on its own clock (at most once a second): a
window of 5 broadcasts may hold one or none, whatever the room. Every broadcast also runs
one ``SET`` and one ``ZADD``, so leaving them out hides no work per recipient."""


async def _commands(redis: Any) -> int:
    stats = await redis.info("commandstats")
    return sum(
        int(entry["calls"])
        for name, entry in stats.items()
        if name.removeprefix("cmdstat_") not in UPKEEP
    )


@pytest.mark.timeout(60)
async def test_recipients_are_exact_and_redis_work_does_not_grow_with_the_room(
    make_server: ServerFactory,
    make_client: Callable[[ReferenceServer], SioClient],
    tmp_path: Path,
) -> None:
    async with RedisProcess(tmp_path) as redis_process:
        nodes = [
            await make_server(cluster=redis_process.url, node_id=f"n{i}", **SLOW_BEATS)
            for i in range(2)
        ]

        async def subscriber(node: int, *filters: dict[str, Any]) -> SioClient:
            client = make_client(nodes[node])
            await client.connect()
            assert (await client.authenticate(f"user_{id(client)}", "org_a"))["success"]
            for extra in filters:
                assert (await client.call("subscribe", {"channels": ["kpi"], **extra}))["success"]
            return client

        here = await subscriber(0, {})
        # On the other node, in two rooms the message matches: counted once, sent once.
        there = await subscriber(1, {}, {"queue_name": "support"})
        redis = aioredis.from_url(redis_process.url)
        async with httpx.AsyncClient(base_url=nodes[0].url, timeout=10) as http:

            async def broadcast(body: dict[str, Any], times: int = 1) -> list[dict[str, Any]]:
                answers = []
                for _ in range(times):
                    answer = await http.post("/api/ws/broadcast/kpi", json=body)
                    assert answer.status_code == 200, answer.text
                    answers.append(answer.json())
                return answers

            (first,) = await broadcast(kpi("org_a", "support"))
            assert first["recipients"] == 2
            chosen = {"event": "kpi:update", "data": kpi("org_a", "support"),
                      "target": {"socket_ids": [there.sio.get_sid("/"), "nobody"]}}  # fmt: skip
            answer = await http.post("/api/ws/broadcast", json=chosen)
            assert answer.json()["recipients"] == 1, answer.text
            assert len(await there.wait_for("kpi:update", 2)) == 2
            assert len(await here.wait_for("kpi:update", 1)) == 1

            before = await _commands(redis)
            assert {a["recipients"] for a in await broadcast(kpi(), times=5)} == {2}
            small = await _commands(redis) - before

            crowd = [await subscriber(1, {}) for _ in range(12)]

            async def registered() -> bool:  # the joins reached Redis: nothing else is pending
                rooms = (await http.get("/api/ws/rooms")).json()["rooms"]
                return any(r["name"] == "kpi:org:org_a" and r["member_count"] == 14 for r in rooms)

            await eventually(registered, timeout=10)
            before = await _commands(redis)
            assert {a["recipients"] for a in await broadcast(kpi(), times=5)} == {14}
            large = await _commands(redis) - before
        await redis.aclose()
        # Live completeness reads the streams' heads (and at times the log) on its own clock:
        # a few commands of noise, against 12 more members x 5 broadcasts per recipient.
        assert abs(large - small) <= 4, (small, large)
        for client in (here, there, *crowd):
            await client.close()


@pytest.mark.timeout(90)
async def test_a_stalled_node_delays_one_broadcast_not_every_one(tmp_path: Path) -> None:
    """A paused node costs one answer deadline, then is not waited for until it answers again."""
    async with cluster(tmp_path, 2) as nodes:
        paused = nodes.nodes[1].process
        assert paused is not None
        async with httpx.AsyncClient(base_url=nodes.urls[0], timeout=30) as http:
            os.kill(paused.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                for n in range(6):
                    answer = await http.post("/api/ws/broadcast/kpi", json=kpi(queue=f"q{n}"))
                    assert answer.status_code == 200, answer.text
                took = time.monotonic() - started
            finally:
                os.kill(paused.pid, signal.SIGCONT)
            # Six broadcasts that each waited for the paused node would take 6 deadlines.
            assert took < 2 * ANSWER_TIMEOUT + 3, took
