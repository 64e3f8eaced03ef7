"""The management API of any node answers for the cluster, and kicks sockets on other nodes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import socketio

from tests.cluster.conftest import cluster, eventually


@pytest.mark.timeout(60)
async def test_delete_through_node_a_kicks_a_socket_on_node_b(tmp_path: Path) -> None:
    async with cluster(tmp_path, 2) as running:
        node_a, node_b = running.nodes
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
