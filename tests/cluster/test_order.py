"""One stream published through two nodes at once: every socket gets it in ``seq`` order.

The append and the publish are one Lua script, so the order Redis gives the
appends is the order every node delivers in. A bridge socket (plain
WebSocket, no Socket.IO rooms) on one node and Socket.IO sockets on both see
the same sequence. Both nodes run in this process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from reference_server.app import ReferenceServer
from tests.processes import RedisProcess
from tests.server.test_bridge import BridgeFactory, make_bridge

__all__ = ["make_bridge"]  # the fixture, used here

MESSAGES = 40
TIMESTAMP = "2026-11-25T10:30:00Z"


@pytest.mark.timeout(60)
async def test_concurrent_publishers_on_two_nodes_give_every_socket_one_order(
    make_server: Callable[..., Awaitable[ReferenceServer]],
    make_bridge: BridgeFactory,
    tmp_path: Path,
) -> None:
    async with RedisProcess(tmp_path) as redis:
        nodes = [await make_server(cluster=redis.url, node_id=f"n{i}") for i in range(2)]
        seqs: list[list[int]] = [[], []]
        done = [asyncio.Event(), asyncio.Event()]
        clients = []
        for index, node in enumerate(nodes):
            sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)

            def record(envelope: dict[str, Any], index: int = index) -> None:
                seqs[index].append(envelope["seq"])
                if len(seqs[index]) == MESSAGES:
                    done[index].set()

            sio.on("kpi:update", record)
            auth = {"user_id": f"user_{index}", "organization_id": "org_a"}
            await sio.connect(node.url, socketio_path="/ws", auth=auth, transports=["websocket"])
            assert (await sio.call("subscribe", {"channels": ["kpi"]}))["success"]
            clients.append(sio)
        bridge = await make_bridge(nodes[1])
        await bridge.authenticate()
        assert (await bridge.call("subscribe", {"channels": ["kpi"]}))["success"]

        async with httpx.AsyncClient(timeout=10) as http:

            async def publish(n: int) -> int:
                body = {"organization_id": "org_a", "timestamp": TIMESTAMP, "n": n}
                answer = await http.post(f"{nodes[n % 2].url}/api/ws/broadcast/kpi", json=body)
                assert answer.status_code == 200, answer.text
                recipients: int = answer.json()["recipients"]
                return recipients

            counts = await asyncio.gather(*(publish(n) for n in range(MESSAGES)))
        assert set(counts) == {3}
        await asyncio.wait_for(asyncio.gather(*(d.wait() for d in done)), 10)
        bridged = [d["seq"] for d in await bridge.wait_for("kpi:update", MESSAGES)]
        for seen in (*seqs, bridged):
            assert seen == list(range(1, MESSAGES + 1))
        # Each node's own deliveries take the outboxes of a single server.
        assert all(node.app.sio.outbox_policy.direct_writes > 0 for node in nodes)
        for sio in clients:
            await sio.disconnect()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("store", ["none", "other-db"])
async def test_a_cluster_with_no_store_or_a_store_elsewhere_still_delivers_across_nodes(
    make_server: Callable[..., Awaitable[ReferenceServer]], tmp_path: Path, store: str
) -> None:
    """Without the cluster's own log: no seq (none), or the append and the publish in two steps."""
    async with RedisProcess(tmp_path) as redis:
        chosen = "none" if store == "none" else redis.url.removesuffix("/0") + "/1"
        nodes = [
            await make_server(cluster=redis.url, node_id=f"n{i}", store=chosen) for i in range(2)
        ]
        received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        sio.on("kpi:update", received.put_nowait)
        auth = {"user_id": "user_1", "organization_id": "org_a"}
        await sio.connect(nodes[1].url, socketio_path="/ws", auth=auth, transports=["websocket"])
        try:
            assert (await sio.call("subscribe", {"channels": ["kpi"]}))["success"]
            async with httpx.AsyncClient(timeout=10) as http:
                for n in range(3):
                    body = {"organization_id": "org_a", "timestamp": TIMESTAMP, "n": n}
                    answer = await http.post(f"{nodes[0].url}/api/ws/broadcast/kpi", json=body)
                    assert answer.json()["recipients"] == 1, answer.text
            got = [await asyncio.wait_for(received.get(), 5) for _ in range(3)]
            assert [m["data"]["n"] for m in got] == [0, 1, 2]
            assert [m.get("seq") for m in got] == ([None] * 3 if store == "none" else [1, 2, 3])
        finally:
            await sio.disconnect()
