"""Nothing lost while connected (section 6's live completeness), and one key on two nodes.

Two cluster nodes (real processes) over a Redis whose pub/sub output buffer
limit is low. The node a client is connected to is paused (SIGSTOP) while
60 large messages are published through the other node, so Redis drops
its subscription; then it runs again and nothing more is published. The
node sees from the log that it is behind and sends the 60 messages: the
client handles all of them, in order, without reconnecting.

The same POST with one ``Idempotency-Key`` sent to both nodes at once is
delivered once; the key with another body is 409 on either node.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from client_sdk import IntradayClient
from tests.cluster.conftest import cluster, eventually
from tests.delivery.sequence import ORG, TIMESTAMP, Handled
from tests.sdk.conftest import fast_config

MISSED = 60
PAD = 120_000
"""Bytes of padding per message: 60 of them overflow the kernel's socket buffers too."""


def kpi(n: int, pad: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {
        "organization_id": ORG,
        "queue_name": "support",
        "timestamp": TIMESTAMP,
        "n": n,
    }
    if pad:
        body["pad"] = "x" * pad
    return body


async def _pubsub_clients(redis: Any) -> int:
    return len(await redis.client_list(_type="pubsub"))


@pytest.mark.timeout(120)
async def test_a_node_that_lost_its_subscription_sends_what_it_missed_from_the_log(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, 2) as nodes:
        redis = aioredis.from_url(nodes.redis.url, decode_responses=True)
        try:
            await redis.config_set("client-output-buffer-limit", "pubsub 256kb 0 0")
            receiving = nodes.nodes[1]
            assert receiving.process is not None
            config = fast_config(nodes.urls[1], reconnection_attempts=None, timeout=10.0)
            async with (
                IntradayClient(config) as client,
                httpx.AsyncClient(base_url=nodes.urls[0], timeout=10) as http,
            ):
                handled = Handled(client)
                await client.subscribe(["kpi"])
                assert (await http.post("/api/ws/broadcast/kpi", json=kpi(0))).status_code == 200
                await handled.until(1)
                subscribers = await _pubsub_clients(redis)

                os.kill(receiving.process.pid, signal.SIGSTOP)
                try:
                    for n in range(1, MISSED + 1):
                        sent = await http.post("/api/ws/broadcast/kpi", json=kpi(n, PAD))
                        assert sent.status_code == 200, sent.text

                    async def dropped() -> bool:
                        return await _pubsub_clients(redis) < subscribers

                    await eventually(dropped, "Redis dropped the paused node's subscription")
                finally:
                    os.kill(receiving.process.pid, signal.SIGCONT)
                resumed = time.monotonic()
                await handled.until(MISSED + 1, timeout=30)
                took = time.monotonic() - resumed
                print(f"\n{MISSED} missed messages handled {took:.2f} s after the node resumed")
                handled.assert_exactly(range(MISSED + 1))
                assert handled.reconnects == 0
                assert handled.gaps == []
        finally:
            await redis.aclose()


@pytest.mark.timeout(90)
async def test_one_key_sent_to_both_nodes_is_delivered_once(tmp_path: Path) -> None:
    async with (
        cluster(tmp_path, 2) as nodes,
        IntradayClient(fast_config(nodes.urls[1])) as client,
        httpx.AsyncClient(timeout=10) as http,
    ):
        handled = Handled(client)
        await client.subscribe(["kpi"])
        key = {"Idempotency-Key": "report-2026-12-07"}
        answers = await asyncio.gather(
            *(
                http.post(f"{url}/api/ws/broadcast/kpi", json=kpi(1), headers=key)
                for url in nodes.urls
                for _ in range(3)
            )
        )
        assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
        assert len({a.json()["message_id"] for a in answers}) == 1
        for url in nodes.urls:
            reused = await http.post(f"{url}/api/ws/broadcast/kpi", json=kpi(2), headers=key)
            assert reused.status_code == 409, reused.text
        await http.post(f"{nodes.urls[0]}/api/ws/broadcast/kpi", json=kpi(2))
        await handled.until(2)
        assert handled.numbers == [1, 2]
