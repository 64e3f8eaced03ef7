"""The management API of any node answers for the cluster, and kicks sockets on other nodes.

Both nodes run in this process (their code is measured); Redis is a real one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import socketio

from reference_server.app import ReferenceServer
from tests.cluster.conftest import eventually
from tests.processes import RedisProcess


@pytest.mark.timeout(60)
async def test_delete_through_node_a_kicks_a_socket_on_node_b(
    make_server: Callable[..., Awaitable[ReferenceServer]], tmp_path: Path
) -> None:
    async with RedisProcess(tmp_path) as redis:
        node_a = await make_server(cluster=redis.url, node_id="n0")
        node_b = await make_server(cluster=redis.url, node_id="n1")
        sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        gone = asyncio.Event()
        sio.on("disconnect", lambda *_: gone.set())
        auth = {"user_id": "user_1", "organization_id": "org_a"}
        await sio.connect(node_b.url, socketio_path="/ws", auth=auth, transports=["websocket"])
        answer = await sio.call("subscribe", {"channels": ["kpi"], "department_id": "sales"})
        assert answer["success"]
        sid = sio.get_sid()
        assert sid is not None
        async with httpx.AsyncClient(base_url=node_a.url, timeout=5) as http:

            async def listed() -> bool:
                body = (await http.get("/api/ws/connections")).json()
                return [c["socket_id"] for c in body["connections"]] == [sid]

            await eventually(listed, "node B's socket listed by node A")
            detail = (await http.get(f"/api/ws/connections/{sid}")).json()["connection"]
            assert (detail["node"], detail["organization_id"]) == ("n1", "org_a")
            assert detail["subscriptions"] == ["kpi:org:org_a:dept:sales"]
            rooms = {
                r["name"]: r["member_count"]
                for r in (await http.get("/api/ws/rooms")).json()["rooms"]
            }
            assert rooms == {"kpi:org:org_a:dept:sales": 1, "org:org_a": 1}
            health = (await http.get("/api/ws/health")).json()["cluster"]
            assert health["node_id"] == "n0"
            assert health["redis"]["reachable"] is True
            assert {n["node_id"]: n["connections"] for n in health["nodes"]} == {"n0": 0, "n1": 1}

            # A message for chosen sockets reaches one on another node; its ack, which
            # arrives at node B, counts in the cluster's latency figures.
            acked = asyncio.Event()

            def on_kpi(envelope: dict[str, object]) -> bool:
                acked.set()
                return True  # the ack

            sio.on("kpi:update", on_kpi)
            request = {
                "event": "kpi:update",
                "data": {"organization_id": "org_a", "timestamp": "2026-11-25T10:30:00Z"},
                "target": {"organization_id": "org_a", "socket_ids": [sid, "no-such-socket"]},
                "requires_ack": True,
            }
            sent = await http.post("/api/ws/broadcast", json=request)
            assert sent.status_code == 200, sent.text
            assert sent.json()["recipients"] == 1
            await asyncio.wait_for(acked.wait(), 5)

            async def latency_counted() -> bool:
                stats = (await http.get("/api/ws/stats")).json()
                return stats["average_latency_ms"] is not None

            await eventually(latency_counted, "node B's ack latency in node A's stats")
            stats = (await http.get("/api/ws/stats")).json()
            assert stats["nodes"]["n1"]["max_latency_ms"] == stats["max_latency_ms"]
            assert stats["nodes"]["n0"]["total_messages"] == stats["total_messages"] == 1

            kicked = await http.delete(f"/api/ws/connections/{sid}")
            assert kicked.status_code == 200, kicked.text
            assert kicked.json() == {"success": True, "socket_id": sid}
            await asyncio.wait_for(gone.wait(), 5)

            async def forgotten() -> bool:
                return (await http.get(f"/api/ws/connections/{sid}")).status_code == 404

            await eventually(forgotten, "the kicked socket gone from the registry")
            assert (await http.delete(f"/api/ws/connections/{sid}")).status_code == 404
            assert (await http.delete("/api/ws/connections/no-such-socket")).status_code == 404
            stats = (await http.get("/api/ws/stats")).json()
            assert stats["active_connections"] == 0
