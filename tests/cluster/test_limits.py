"""Connection limits are the cluster's, exact under concurrency, and a dead node's come back.

Small limits (5 per organization, 9 in all) and fast heartbeats (a node is
dead 3 s after its last one) keep this quick. Clients connect at once,
spread over the three nodes, so each node's own count stays below the limit
and only the cluster-wide one can refuse them. Node n0 runs in this process
(the reaping of a dead node is its code, measured); n1 and n2 are
subprocesses, one of which is SIGKILLed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from reference_server.app import ReferenceServer
from tests.cluster.conftest import FAST_BEATS, Cluster, cluster, eventually

LIMITS = ("--max-connections-per-org", "5", "--max-connections-total", "9")
LOCAL_SETTINGS: dict[str, Any] = {
    "max_connections_per_org": 5,
    "max_connections_total": 9,
    "node_heartbeat_seconds": 0.5,
    "node_timeout_seconds": 3,
}


class Attempt:
    """One client's connection attempt and, if refused, the protocol's error."""

    def __init__(self, org: str) -> None:
        self.org = org
        self.error: dict[str, Any] | None = None
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        self.sio.on("connect_error", self._refused)

    def _refused(self, data: Any = None) -> None:
        # python-socketio hands over {"message", "data": <the protocol's ERROR>}.
        self.error = data.get("data") if isinstance(data, dict) else None

    async def connect(self, url: str) -> bool:
        auth = {"user_id": f"user_{id(self)}", "organization_id": self.org}
        try:
            await self.sio.connect(
                url, socketio_path="/ws", auth=auth, transports=["websocket"], wait_timeout=10
            )
        except socketio.exceptions.ConnectionError:
            return False
        return True


async def attempt(running: Cluster, orgs: list[str]) -> tuple[list[Attempt], list[Attempt]]:
    """Connect one client per entry of ``orgs`` at once, round robin over the nodes."""
    tries = [Attempt(org) for org in orgs]
    results = await asyncio.gather(
        *(t.connect(running.urls[i % len(running.urls)]) for i, t in enumerate(tries))
    )
    admitted = [t for t, ok in zip(tries, results, strict=True) if ok]
    refused = [t for t, ok in zip(tries, results, strict=True) if not ok]
    for refusal in refused:
        assert refusal.error is not None
        assert refusal.error.get("code") == "CONNECTION_LIMIT", refusal.error
    return admitted, refused


async def active(running: Cluster, index: int = 0) -> int:
    async with httpx.AsyncClient(base_url=running.urls[index], timeout=5) as http:
        count: int = (await http.get("/api/ws/stats")).json()["active_connections"]
        return count


@pytest.mark.timeout(90)
async def test_limits_hold_across_nodes_and_a_dead_nodes_slots_come_back(
    make_server: Callable[..., Awaitable[ReferenceServer]], tmp_path: Path
) -> None:
    async def in_process(redis_url: str) -> str:
        return (await make_server(cluster=redis_url, node_id="n0", **LOCAL_SETTINGS)).url

    async with cluster(tmp_path, 2, args=[*LIMITS, *FAST_BEATS], local=in_process) as running:
        # Seven of one organization at once: exactly its five get in.
        admitted_a, refused = await attempt(running, ["org_a"] * 7)
        assert (len(admitted_a), len(refused)) == (5, 2)
        # Six of another: the total (9) lets exactly four more in.
        admitted_b, refused = await attempt(running, ["org_b"] * 6)
        assert (len(admitted_b), len(refused)) == (4, 2)
        assert await active(running, 1) == 9
        assert (await attempt(running, ["org_c"]))[0] == []  # one past the total

        # A disconnect gives its slot back at once, on every node.
        leaving = admitted_b.pop()
        await leaving.sio.disconnect()

        async def released() -> bool:  # the server learns of the disconnect a moment later
            return await active(running, 1) == 8

        await eventually(released, "the slot given back", timeout=5)
        again, _ = await attempt(running, ["org_c"])
        assert len(again) == 1

        # SIGKILL the subprocess node holding the most: its slots come back within the bound.
        everyone = admitted_a + admitted_b + again
        counts = [(sum(1 for t in everyone if t.sio.connection_url == node.url), i)
                  for i, node in enumerate(running.nodes)]  # fmt: skip
        lost, victim = max(counts)
        assert lost > 0
        dead = f"n{victim + 1}"
        await running.nodes[victim].kill()
        killed_at = time.monotonic()
        await eventually(lambda: _gone(running, 0, dead), "the dead node reaped")
        took = time.monotonic() - killed_at
        assert took < 3 + 0.5 + 1.5, took  # timeout + one heartbeat (+ slack for a busy machine)
        assert await active(running, 0) == 9 - lost
        del running.nodes[victim]
        back, refused = await attempt(running, ["org_d"] * (lost + 1))
        assert (len(back), len(refused)) == (lost, 1)
        for t in admitted_a + admitted_b + again + back:
            if t.sio.connected:
                await t.sio.disconnect()


async def _gone(running: Cluster, index: int, node: str) -> bool:
    return node not in await running.live_nodes(index)
