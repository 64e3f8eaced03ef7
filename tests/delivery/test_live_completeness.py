"""Nothing lost while connected (section 6's live completeness), and one key on two nodes.

Two cluster nodes (real processes) over a Redis whose pub/sub output buffer
limit is low. The node a client is connected to is paused (SIGSTOP) while
60 large messages are published through the other node, so Redis drops
its subscription; then it runs again and nothing more is published. The
node sees from the log that it is behind and sends the 60 messages: the
client handles all of them, in order, without reconnecting.

The same POST with one ``Idempotency-Key`` sent to both nodes at once is
delivered once; the key with another body is 409 on either node.

In one process: messages appended to a server's log that the server itself
never delivered (what a node of a cluster sees when another node's
publishes did not reach it) go to its subscribers from the log, in order;
when the log no longer holds them, the subscriber gets section 6's
``error`` instead.
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
from reference_server.app import ReferenceServer
from tests.cluster.conftest import cluster, eventually
from tests.conftest import SioClient
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


async def _subscribed(server: ReferenceServer) -> SioClient:
    client = SioClient(server.url)
    await client.connect()
    assert (await client.authenticate(organization_id=ORG))["success"]
    answer = await client.call("subscribe", {"channels": ["kpi"]})
    assert answer["success"], answer
    return client


async def _append_unseen(server: ReferenceServer, numbers: range) -> None:
    """Log KPI updates of ``numbers`` the way another node's publish would: not delivered here."""
    store = server.app.store
    assert store is not None
    for n in numbers:
        envelope = {
            "id": f"unseen-{n}",
            "event": "kpi:update",
            "channel": "kpi",
            "timestamp": TIMESTAMP,
            "priority": "medium",
            "requires_ack": False,
            "target": {"organization_id": ORG, "department_id": None, "queue_name": "support"},
            "data": kpi(n),
        }
        await store.append(f"kpi:{ORG}", envelope)


async def test_what_the_log_has_and_this_node_did_not_deliver_follows_in_order(
    make_server: Any,
) -> None:
    server = await make_server(completeness_check_seconds=0.1)
    client = await _subscribed(server)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            await http.post("/api/ws/broadcast/kpi", json=kpi(0))
            await client.wait_for("kpi:update", 1)
            await _append_unseen(server, range(1, 6))  # a quiet stream: nothing more published
            updates = await client.wait_for("kpi:update", 6)
            await http.post("/api/ws/broadcast/kpi", json=kpi(6))
            updates = await client.wait_for("kpi:update", 7)
        assert [u["data"]["n"] for u in updates] == list(range(7))
        assert [u["seq"] for u in updates] == list(range(1, 8))
        assert client.received("error") == []
    finally:
        await client.close()


async def test_a_jump_waits_for_what_was_skipped(make_server: Any) -> None:
    # Checks far apart: only the next delivery can notice what is missing.
    server = await make_server(completeness_check_seconds=1.0)
    client = await _subscribed(server)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            await http.post("/api/ws/broadcast/kpi", json=kpi(0))
            await client.wait_for("kpi:update", 1)
            await _append_unseen(server, range(1, 4))
            await http.post("/api/ws/broadcast/kpi", json=kpi(4))
            updates = await client.wait_for("kpi:update", 5)
        assert [u["data"]["n"] for u in updates] == list(range(5))
    finally:
        await client.close()


async def test_skipped_messages_gone_from_the_log_are_an_error_to_the_subscriber(
    make_server: Any,
) -> None:
    server = await make_server(completeness_check_seconds=0.1, store_max_messages=5)
    client = await _subscribed(server)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            await http.post("/api/ws/broadcast/kpi", json=kpi(0))
            await client.wait_for("kpi:update", 1)
        await _append_unseen(server, range(1, 21))  # the log keeps the last 5
        (error,) = await client.wait_for("error", 1)
        assert error["code"] == "INTERNAL_ERROR"
        assert error["retryable"] is True
        assert error["details"] == {"stream": f"kpi:{ORG}", "last_seq": 1}
        # Resuming with since brings what is left, and says it is not all.
        answer = await client.call("subscribe", {"channels": ["kpi"], "since": {f"kpi:{ORG}": 1}})
        assert answer["replay"][f"kpi:{ORG}"]["complete"] is False
        updates = await client.wait_for("kpi:update", 6)
        assert [u["data"]["n"] for u in updates] == [0, 16, 17, 18, 19, 20]
    finally:
        await client.close()


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
                fills = client.statistics().fills
                print(
                    f"\n{MISSED} missed messages handled {took:.2f} s after the node resumed"
                    f" (the SDK's own fills: {fills})"
                )
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
