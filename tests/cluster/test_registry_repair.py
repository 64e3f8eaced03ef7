"""The registry in Redis when it goes wrong: restarted empty, or holding a malformed entry.

- Redis restarted empty forgets every connection: until every live node has
  registered its own again, the cluster's counts are too low, and a claim
  would overshoot the limits (an organization capped at 2 held 3). Claims
  are refused (``INTERNAL_ERROR``, retryable) until the nodes' heartbeats
  have rebuilt the registry; then the limit refuses as before.
- One malformed entry (written by hand, or by another version) is skipped
  and logged: ``/connections`` and ``/stats`` still answer 200.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
import socketio

from reference_server.app import ReferenceServer
from reference_server.cluster.registry import PREFIX
from tests.cluster.conftest import FAST_BEATS, cluster, eventually
from tests.cluster.test_limits import Attempt
from tests.delivery.sequence import ORG


def _in_process(
    make_server: Callable[..., Awaitable[ReferenceServer]],
) -> Callable[[str], Awaitable[str]]:
    async def start(redis_url: str) -> str:
        settings = {
            "node_heartbeat_seconds": 0.5,
            "node_timeout_seconds": 3,
            "max_connections_per_org": 2,
        }
        return (await make_server(cluster=redis_url, node_id="n0", **settings)).url

    return start


@pytest.mark.timeout(60)
async def test_after_redis_restarts_empty_claims_wait_and_the_limit_holds(
    make_server: Callable[..., Awaitable[ReferenceServer]], tmp_path: Path
) -> None:
    args = [*FAST_BEATS, "--max-connections-per-org", "2"]
    async with cluster(tmp_path, 1, args=args, local=_in_process(make_server)) as running:
        held = [Attempt(ORG), Attempt(ORG)]
        for index, client in enumerate(held):  # one on each node: the organization is full
            assert await client.connect(running.urls[index])
        try:
            await running.redis.kill()
            await running.redis.start()  # empty: no append-only file

            admitted: list[Attempt] = []
            codes: list[str] = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # newcomers knock at both nodes meanwhile
                tries = [Attempt(ORG) for _ in running.urls]
                results = await asyncio.gather(
                    *(t.connect(url) for t, url in zip(tries, running.urls, strict=True))
                )
                admitted.extend(t for t, ok in zip(tries, results, strict=True) if ok)
                for refused in (t for t, ok in zip(tries, results, strict=True) if not ok):
                    assert refused.error is not None
                    assert refused.error["retryable"] is True
                    assert "127.0.0.1" not in refused.error["message"]
                    codes.append(refused.error["code"])
                if codes and codes[-1] == "CONNECTION_LIMIT" and codes[-2:-1] == codes[-1:]:
                    break  # the registry is whole again: the limit itself refuses
            assert admitted == [], "admitted beyond the organization's limit of 2"
            assert codes[0] == "INTERNAL_ERROR"  # the registry was being rebuilt
            assert codes[-1] == "CONNECTION_LIMIT"

            async with httpx.AsyncClient(base_url=running.urls[1], timeout=5) as http:

                async def both_counted() -> bool:
                    stats = (await http.get("/api/ws/stats")).json()
                    return bool(stats.get("connections_by_org", {}).get(ORG) == 2)

                await eventually(both_counted, "the two held connections counted again")
        finally:
            for client in held:
                await client.sio.disconnect()


@pytest.mark.timeout(60)
async def test_a_malformed_registry_entry_is_skipped_not_a_500(
    make_server: Callable[..., Awaitable[ReferenceServer]], tmp_path: Path
) -> None:
    async with cluster(tmp_path, 1, args=FAST_BEATS, local=_in_process(make_server)) as running:
        sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        auth = {"user_id": "user_1", "organization_id": ORG}
        await sio.connect(running.urls[1], socketio_path="/ws", auth=auth, transports=["websocket"])
        redis = aioredis.from_url(running.redis.url)
        try:
            await redis.hset(PREFIX + "conns", "bad-json", "{not json")
            await redis.hset(PREFIX + "conns", "bad-shape", '{"socket_id": 5, "node": "n9"}')
            await redis.hset(PREFIX + "conns", "not-an-object", "[1, 2]")
            await redis.hset(PREFIX + "nodeinfo", "n1", '{"figures": "nonsense"}')
            await redis.hset(PREFIX + "node:n1:rooms", "kpi:org:org_a", "many")
            async with httpx.AsyncClient(base_url=running.urls[0], timeout=5) as http:
                listed = await http.get("/api/ws/connections")
                assert listed.status_code == 200, listed.text
                ids = [c["socket_id"] for c in listed.json()["connections"]]
                assert ids == [sio.get_sid("/")]  # the good entry, the bad ones skipped
                for path in ("/api/ws/stats", "/api/ws/rooms", "/api/ws/connections/bad-json"):
                    answer = await http.get(path)
                    assert answer.status_code in (200, 404), (path, answer.text)
        finally:
            await sio.disconnect()
            await redis.aclose()
