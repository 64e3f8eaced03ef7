"""Redis SIGKILLed and restarted under a cluster: 503 meanwhile, everything after, no restart.

While Redis is away a broadcast through any node answers 503
``INTERNAL_ERROR`` (retryable) and reaches nobody; the clients of every node
stay connected. Redis comes back on its port with its append-only file, the
nodes' listeners resubscribe by themselves, the next broadcast reaches every
client, and a replay from the start is still complete.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from client_sdk import ConnectionState, IntradayClient
from client_sdk.admin import AdminClient
from reference_server.app import ReferenceServer
from tests.cluster.conftest import FAST_BEATS, Cluster, cluster, eventually
from tests.delivery.sequence import ORG, TIMESTAMP, Handled, publish
from tests.sdk.conftest import fast_config


def _in_process(
    make_server: Callable[..., Awaitable[ReferenceServer]],
) -> Callable[[str], Awaitable[str]]:
    """Node n0 in this process (its outage handling is measured), with fast heartbeats."""

    async def start(redis_url: str) -> str:
        settings = {"node_heartbeat_seconds": 0.5, "node_timeout_seconds": 3}
        return (await make_server(cluster=redis_url, node_id="n0", **settings)).url

    return start


async def _recovered(running: Cluster) -> bool:
    for index in range(len(running.urls)):
        redis = (await running.health(index))["cluster"]["redis"]
        if not (redis["reachable"] and redis["listening"]):
            return False
    return True


@pytest.mark.timeout(90)
async def test_a_redis_outage_refuses_broadcasts_and_the_cluster_recovers_by_itself(
    make_server: Callable[..., Awaitable[ReferenceServer]], tmp_path: Path
) -> None:
    local = _in_process(make_server)
    async with cluster(tmp_path, 1, args=FAST_BEATS, appendonly=True, local=local) as running:
        clients = [
            IntradayClient(fast_config(url, user_id=f"user_{i}", reconnection_attempts=None))
            for i, url in enumerate(running.urls)
        ]
        handled = [Handled(c) for c in clients]
        try:
            for client in clients:
                await client.connect()
                await client.subscribe(["kpi", "alerts"])
            async with AdminClient(running.urls[0]) as admin:
                for n in (1, 2, 3):
                    await publish(admin, n)
            for record in handled:
                await record.until(3)

            await running.redis.kill()
            for index, url in enumerate(running.urls):
                async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                    body = {"organization_id": ORG, "timestamp": TIMESTAMP, "n": 100 + index}
                    refused = await http.post("/api/ws/broadcast/kpi", json=body)
                    assert refused.status_code == 503, refused.text
                    error = refused.json()["error"]
                    assert (error["code"], error["retryable"]) == ("INTERNAL_ERROR", True)
                    health = (await http.get("/api/ws/health")).json()
                    assert health["cluster"]["redis"]["reachable"] is False
            assert all(c.state is ConnectionState.AUTHENTICATED for c in clients)

            await running.redis.start()  # the same port and append-only file
            await eventually(lambda: _recovered(running), "every node back on Redis")
            async with AdminClient(running.urls[1]) as admin:
                await publish(admin, 4)
            for record in handled:
                await record.until(4)
                record.assert_exactly(range(1, 5))  # 100 and 101 were refused: nobody got them
                assert record.gaps == []
            assert await _replay_from_start(running.urls[0]) == {
                "kpi:org_a": (2, True),
                "alerts:org_a": (2, True),
            }
        finally:
            for client in clients:
                await client.close()


async def _replay_from_start(url: str) -> dict[str, tuple[int, bool]]:
    sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
    auth = {"user_id": "late", "organization_id": ORG}
    await sio.connect(url, socketio_path="/ws", auth=auth, transports=["websocket"])
    try:
        since = {"kpi:org_a": 0, "alerts:org_a": 0}
        answer: dict[str, Any] = await sio.call(
            "subscribe", {"channels": ["kpi", "alerts"], "since": since}, timeout=10
        )
    finally:
        await sio.disconnect()
    return {name: (r["replayed"], r["complete"]) for name, r in answer["replay"].items()}


@pytest.mark.timeout(60)
async def test_a_redis_restarted_empty_gets_every_nodes_connections_back(
    make_server: Callable[..., Awaitable[ReferenceServer]], tmp_path: Path
) -> None:
    """Without persistence Redis forgets the registry; each node's heartbeat re-asserts its own."""
    async with cluster(tmp_path, 1, args=FAST_BEATS, local=_in_process(make_server)) as running:
        clients = []
        for url in running.urls:
            sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
            auth = {"user_id": "user_1", "organization_id": ORG}
            await sio.connect(url, socketio_path="/ws", auth=auth, transports=["websocket"])
            assert (await sio.call("subscribe", {"channels": ["kpi"]}))["success"]
            clients.append(sio)
        try:
            await running.redis.kill()
            await running.redis.start()  # empty: no append-only file
            async with httpx.AsyncClient(base_url=running.urls[1], timeout=5) as http:

                async def registered_again() -> bool:
                    answer = await http.get("/api/ws/stats")
                    if answer.status_code != 200:  # Redis not reached again yet
                        assert answer.status_code == 503, answer.text
                        return False
                    stats = answer.json()
                    rooms = (await http.get("/api/ws/rooms")).json()["rooms"]
                    counts = {r["name"]: r["member_count"] for r in rooms}
                    return stats["active_connections"] == 2 and counts.get("kpi:org:org_a") == 2

                await eventually(registered_again, "both nodes' connections back in Redis")
                await eventually(lambda: _recovered(running), "every node back on Redis")
                body = {"organization_id": ORG, "timestamp": TIMESTAMP}
                sent = await http.post("/api/ws/broadcast/kpi", json=body)
                assert sent.status_code == 200, sent.text
                assert sent.json()["recipients"] == 2
        finally:
            for sio in clients:
                await sio.disconnect()
