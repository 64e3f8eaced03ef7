"""The SDK with batching on sees exactly what it sees with batching off (protocol section 5)."""

from __future__ import annotations

import asyncio
from typing import Any

from client_sdk import IntradayClient, Message
from client_sdk.protocol import BroadcastRequest
from reference_server.app import ReferenceServer
from tests.conftest import WAIT, ServerFactory, alert, kpi
from tests.sdk.conftest import fast_config

ORG = "org_a"


async def burst(server: ReferenceServer, count: int) -> list[str]:
    """Publish ``count`` messages of two channels, one in five with ``requires_ack``."""
    ids = []
    for n in range(count):
        if n % 2:
            body = {"event": "alert:triggered", "data": alert(n), "requires_ack": n % 5 == 0}
        else:
            body = {"event": "kpi:update", "data": kpi(ORG, ("q1", "q2")[n % 4 // 2])}
        result = await server.publisher.publish(BroadcastRequest.model_validate(body))
        ids.append(result.message_id)
    return ids


async def test_batch_on_and_off_see_the_same_messages_in_the_same_order(
    make_server: ServerFactory,
) -> None:
    server = await make_server(batch_window_ms=50, batch_max_messages=8)
    seen: dict[bool, list[tuple[str, str, bool]]] = {True: [], False: []}
    done = {True: asyncio.Event(), False: asyncio.Event()}
    total = 60

    def recorder(batch: bool) -> Any:
        def record(message: Message[Any]) -> None:
            seen[batch].append((message.id, message.event.value, message.replayed))
            if len(seen[batch]) == total:
                done[batch].set()

        return record

    clients = {
        batch: IntradayClient(fast_config(server.url, batch=batch, user_id=f"user_{batch}"))
        for batch in (True, False)
    }
    try:
        for batch, client in clients.items():
            await client.connect()
            client.add_listener("*", recorder(batch))
            await client.subscribe(["kpi", "alerts"])
        announced = {
            c.socket_id: "batch" in c.capabilities for c in server.hub.registry if c.identity
        }
        assert announced == {clients[True].socket_id: True, clients[False].socket_id: False}
        ids = await burst(server, total)
        for event in done.values():
            await asyncio.wait_for(event.wait(), WAIT)
    finally:
        for client in clients.values():
            await client.close()
    assert [i for i, _, _ in seen[True]] == ids
    assert seen[True] == seen[False]
    assert clients[True].statistics().messages_received == total
    assert server.app.stats.max_latency_ms is not None  # the requires_ack ones were acked
