"""Three nodes, 300 clients: a broadcast through any node reaches each matching client once.

The clients (python-socketio AsyncClients, in this process) are spread over
the three node subprocesses and subscribe at every room level of three
organizations. Each node's API publishes one KPI per level; then one
``system:maintenance`` per organization closes the round: Redis delivers
every node's channel in publish order, so a client that has the closing
message has everything it was going to get.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from client_sdk.protocol import Scope
from tests.cluster.conftest import cluster

ORGS = ("org_a", "org_b", "org_c")
LEVELS = [(None, None), ("sales", None), ("sales", "inbound"), ("sales", "outbound"),
          ("support", "inbound")]  # fmt: skip
"""Department and queue of each subscription level (none: the organization's room)."""
SCOPES = [Scope(org, dept, queue) for org in ORGS for dept, queue in LEVELS]
TARGETS = [Scope(org, dept, queue) for org in ORGS for dept, queue in LEVELS[:3] + LEVELS[4:]]
CLIENTS = 300
TIMESTAMP = "2026-11-25T10:30:00Z"


class Recorder:
    """One client: its scope, node and the message ids it received, counted."""

    def __init__(self, scope: Scope, node: int) -> None:
        self.scope = scope
        self.node = node
        self.received: Counter[str] = Counter()
        self.targets: dict[str, Scope] = {}
        self.closed = asyncio.Event()
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        self.sio.on("kpi:update", self._kpi)
        self.sio.on("system:maintenance", self._closing)

    def _kpi(self, envelope: dict[str, Any]) -> None:
        self.received[envelope["id"]] += 1
        self.targets[envelope["id"]] = Scope(**envelope["target"])

    def _closing(self, _: dict[str, Any]) -> None:
        self.closed.set()

    async def connect(self, url: str) -> None:
        auth = {"user_id": f"user_{id(self)}", "organization_id": self.scope.organization_id}
        await self.sio.connect(
            url, socketio_path="/ws", auth=auth, transports=["websocket"], wait_timeout=10
        )
        request = {"channels": ["kpi"], "department_id": self.scope.department_id,
                   "queue_name": self.scope.queue_name}  # fmt: skip
        answer = await self.sio.call("subscribe", request, timeout=10)
        assert answer["success"], answer


@pytest.mark.timeout(90)
async def test_each_broadcast_through_each_node_reaches_each_matching_client_once(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, 3) as running:
        scopes = itertools.cycle(SCOPES)
        clients = [Recorder(next(scopes), i % 3) for i in range(CLIENTS)]
        gate = asyncio.Semaphore(50)

        async def connect(client: Recorder) -> None:
            async with gate:
                await client.connect(running.nodes[client.node].url)

        await asyncio.gather(*(connect(c) for c in clients))
        sent: dict[str, Scope] = {}
        async with httpx.AsyncClient(timeout=10) as http:
            stats = (await http.get(f"{running.nodes[1].url}/api/ws/stats")).json()
            assert stats["active_connections"] == CLIENTS
            assert sorted(stats["nodes"]) == ["n0", "n1", "n2"]
            for node in running.nodes:
                for target in TARGETS:
                    body = {"organization_id": target.organization_id, "timestamp": TIMESTAMP,
                            "department_id": target.department_id,
                            "queue_name": target.queue_name}  # fmt: skip
                    body = {k: v for k, v in body.items() if v is not None}
                    answer = await http.post(f"{node.url}/api/ws/broadcast/kpi", json=body)
                    assert answer.status_code == 200, answer.text
                    result = answer.json()
                    sent[result["message_id"]] = target
                    expected = sum(c.scope.covers(target) for c in clients)
                    assert result["recipients"] == expected
            for org, node in zip(ORGS, running.nodes, strict=True):
                closing = {"event": "system:maintenance", "target": {"organization_id": org},
                           "data": {"organization_id": org, "message": "end of round"}}  # fmt: skip
                answer = await http.post(f"{node.url}/api/ws/broadcast", json=closing)
                assert answer.status_code == 200, answer.text
        async with asyncio.timeout(20):
            await asyncio.gather(*(c.closed.wait() for c in clients))
        for client in clients:
            wanted = {mid for mid, target in sent.items() if client.scope.covers(target)}
            assert set(client.received) == wanted, (client.scope, client.node)
            assert all(count == 1 for count in client.received.values()), client.scope
            assert all(t.organization_id == client.scope.organization_id
                       for t in client.targets.values())  # fmt: skip
        await asyncio.gather(*(c.sio.disconnect() for c in clients))
