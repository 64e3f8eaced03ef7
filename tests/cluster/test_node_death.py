"""A node SIGKILLed while a numbered sequence is published: its clients lose nothing.

Four SDK clients reach node n0 through a balancer (:class:`Balancer`); two
more sit on n1 and n2. The sequence is published alternately through n1's
and n2's API (so the order of a stream across publishing nodes is tested
too); a third of the way in, the balancer is pointed at n1 and n0 is
SIGKILLed. n0's clients reconnect through the balancer to n1 and resume
from the cluster's log: every client's handlers see every number once, each
stream in order, with no gap.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from client_sdk import IntradayClient
from client_sdk.admin import AdminClient
from tests.cluster.conftest import FAST_BEATS, Balancer, cluster
from tests.delivery.sequence import Handled, publish
from tests.sdk.conftest import fast_config

TOTAL = 60
KILL_AT = 20


@pytest.mark.timeout(90)
async def test_clients_of_a_killed_node_resume_elsewhere_and_lose_nothing(
    tmp_path: Path,
) -> None:
    async with (
        cluster(tmp_path, 3, args=FAST_BEATS) as running,
        Balancer(running.nodes[0].port) as balancer,
    ):
        n0, n1, n2 = running.nodes
        urls = [balancer.url] * 4 + [n1.url, n2.url]
        clients = [
            IntradayClient(fast_config(url, user_id=f"user_{i}", reconnection_attempts=None))
            for i, url in enumerate(urls)
        ]
        handled = [Handled(c) for c in clients]
        for client in clients:
            await client.connect()
            await client.subscribe(["kpi", "alerts"])
        try:
            async with AdminClient(n1.url) as admin_1, AdminClient(n2.url) as admin_2:
                for n in range(1, TOTAL + 1):
                    if n == KILL_AT:
                        balancer.route(n1.port)
                        await n0.kill()  # what n0 had not written yet is on its way, or lost
                    await publish(admin_1 if n % 2 else admin_2, n)
            await asyncio.gather(*(h.until(TOTAL, timeout=30) for h in handled))
        finally:
            await asyncio.gather(*(c.close() for c in clients))
        for record in handled:
            record.assert_exactly(range(1, TOTAL + 1))
            assert record.gaps == []
        assert all(h.reconnects >= 1 for h in handled[:4])  # n0's clients moved
        assert all(h.replayed == [] for h in handled[4:])  # the others never left
