"""Batching (protocol section 5) against the real server, with real clients.

A client that announced ``batch`` gets ``batch`` ``{"messages": [...]}``
events; one that did not gets single events. Whatever the batching, each
socket sees the same messages in the same order as without it, batches never
exceed the advertised maximum, a ``requires_ack`` message keeps its place
and its ack, and a resume still gives "snapshot, replay, ack, live", each
once.

Bursts are published in-process without yielding in between, so they fall
into one window whatever the machine's speed: the tests assert what arrived
and in which order, never how fast.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from client_sdk.protocol import BroadcastRequest, ServerEvent
from reference_server.app import ReferenceServer
from reference_server.config import ServerSettings
from reference_server.store import MessageStore, ReplaySlice
from tests.conftest import WAIT, ServerFactory, SioClient, eventually, kpi
from tests.contract.faults import _WrappedStore
from tests.server.test_bridge import BridgeFactory, make_bridge  # noqa: F401 - fixture

ORG = "org_a"
MessageFactory = Callable[[ReferenceServer], SioClient]


def messages(client: SioClient) -> list[dict[str, Any]]:
    """Every envelope the client received, batched or single, in arrival order."""
    found: list[dict[str, Any]] = []
    for name, data in client.events:
        if name == "batch":
            found.extend(data["messages"])
        elif ":" in name and not name.startswith("client:"):
            found.append(data)
    return found


def batches(client: SioClient) -> list[list[dict[str, Any]]]:
    return [data["messages"] for data in client.received("batch")]


async def settle(*clients: SioClient) -> None:
    """A ``client:ping`` round trip: everything due before it has arrived (a pong flushes)."""
    for client in clients:
        before = len(client.received("client:pong"))
        await client.emit("client:ping", {})
        await client.wait_for("client:pong", count=before + 1)


async def joined(
    server: ReferenceServer,
    make_client: MessageFactory,
    *,
    batch: bool,
    filters: list[dict[str, Any]],
    user: str = "user_1",
) -> SioClient:
    client = make_client(server)
    await client.connect()
    body: dict[str, Any] = {"user_id": user, "organization_id": ORG}
    if batch:
        body["capabilities"] = ["batch"]
    ack = await client.call("authenticate", body)
    assert ack["success"] is True, ack
    for subscription in filters:
        answer = await client.call("subscribe", subscription)
        assert answer["success"] is True, answer
    return client


def request(event: ServerEvent, data: dict[str, Any], **extra: Any) -> BroadcastRequest:
    return BroadcastRequest.model_validate({"event": event.value, "data": data, **extra})


def alert(queue: str, n: int) -> dict[str, Any]:
    return {
        "organization_id": ORG,
        "queue_name": queue,
        "timestamp": "2026-11-25T10:30:00Z",
        "alert_id": f"alert_{n}",
        "rule_name": "utilization_high",
        "severity": "high",
    }


async def test_ack_advertises_batch_and_its_limits(server, make_client) -> None:
    client = await joined(server, make_client, batch=True, filters=[])
    ack = await client.call("authenticate", {"user_id": "user_1", "organization_id": ORG})
    info = ack["server"]
    assert "batch" in info["capabilities"]
    assert 1 <= info["limits"]["batch_window_ms"] <= 100
    assert info["limits"]["batch_max_messages"] == server.settings.batch_max_messages


async def test_batching_off_removes_the_capability_and_sends_singles(
    make_server: ServerFactory, make_client: MessageFactory
) -> None:
    server = await make_server(batching_enabled=False)
    client = await joined(server, make_client, batch=True, filters=[{"channels": ["kpi"]}])
    ack = await client.call("authenticate", {"user_id": "user_1", "organization_id": ORG})
    assert "batch" not in ack["server"]["capabilities"]
    assert "batch_window_ms" not in ack["server"]["limits"]
    for n in range(5):
        await server.publisher.publish(request(ServerEvent.KPI_UPDATE, kpi(ORG, f"q{n}")))
    await settle(client)
    assert len(client.received("kpi:update")) == 5
    assert not client.received("batch")


@pytest.mark.parametrize("bad", [0, 101])
def test_window_is_validated(bad: int) -> None:
    from reference_server.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="batch_window_ms"):
        load_settings(batch_window_ms=bad)


async def test_order_per_socket_is_kept_with_mixed_rooms_levels_and_clients(
    make_server: ServerFactory, make_client: MessageFactory
) -> None:
    server = await make_server(batch_max_messages=7, batch_window_ms=100)
    # One batch and one plain client on exactly the same rooms (at two levels
    # of kpi, and alerts), and a batch client on a subset.
    wide = [{"channels": ["kpi"]}, {"channels": ["kpi", "alerts"], "queue_name": "q1"}]
    batched = await joined(server, make_client, batch=True, filters=wide, user="u1")
    plain = await joined(server, make_client, batch=False, filters=wide, user="u2")
    narrow = await joined(
        server, make_client, batch=True, filters=[{"channels": ["alerts"]}], user="u3"
    )
    published: list[tuple[str, str, str]] = []  # (id, channel, queue)
    for n in range(40):
        queue = ("q1", "q2")[n % 2]
        if n % 3 == 0:
            result = await server.publisher.publish(
                request(ServerEvent.ALERT_TRIGGERED, alert(queue, n))
            )
            published.append((result.message_id, "alerts", queue))
        else:
            result = await server.publisher.publish(
                request(ServerEvent.KPI_UPDATE, kpi(ORG, queue))
            )
            published.append((result.message_id, "kpi", queue))
    await settle(batched, plain, narrow)

    wide_ids = [i for i, channel, queue in published if channel == "kpi" or queue == "q1"]
    narrow_ids = [i for i, channel, _ in published if channel == "alerts"]
    assert [m["id"] for m in messages(plain)] == wide_ids
    assert [m["id"] for m in messages(batched)] == wide_ids  # each once, in order
    assert [m["id"] for m in messages(narrow)] == narrow_ids
    assert not plain.received("batch")
    assert batches(batched)
    assert batches(narrow)
    for client in (batched, narrow):
        assert all(1 <= len(b) <= 7 for b in batches(client))
        # Messages went out gathered, not one by one: fewer events than messages.
        assert len(batches(client)) < len(messages(client))


async def test_a_batch_never_holds_more_than_the_maximum(
    make_server: ServerFactory, make_client: MessageFactory
) -> None:
    server = await make_server(batch_max_messages=5, batch_window_ms=100)
    client = await joined(server, make_client, batch=True, filters=[{"channels": ["kpi"]}])
    for n in range(23):
        await server.publisher.publish(request(ServerEvent.KPI_UPDATE, kpi(ORG, f"q{n}")))
    await settle(client)
    sizes = [len(b) for b in batches(client)]
    # The first went at once (nothing was in flight); the rest gathered behind it.
    assert len(client.received("kpi:update")) == 1
    assert sum(sizes) == 22
    assert max(sizes) == 5
    # Written straight to the WebSocket's transport, one frame built per batch.
    assert server.app.sio.outbox_policy.direct_writes >= len(sizes) - 1


async def test_requires_ack_in_a_burst_keeps_its_place_and_is_timed(
    make_server: ServerFactory, make_client: MessageFactory
) -> None:
    server = await make_server(batch_window_ms=100)
    client = await joined(server, make_client, batch=True, filters=[{"channels": ["alerts"]}])
    ids = []
    for n in range(7):
        extra = {"requires_ack": True} if n == 3 else {}
        result = await server.publisher.publish(
            request(ServerEvent.ALERT_TRIGGERED, alert("q1", n), **extra)
        )
        ids.append(result.message_id)
    await settle(client)
    assert [m["id"] for m in messages(client)] == ids
    # Sent alone, with its own ack (the first went alone too: nothing was in flight).
    singles = client.received("alert:triggered")
    assert [m["id"] for m in singles if m["requires_ack"]] == [ids[3]]
    assert len(singles) <= 2
    assert all(not m["requires_ack"] for b in batches(client) for m in b)
    await eventually(lambda: _latency_recorded(server))


async def _latency_recorded(server: ReferenceServer) -> bool:
    return server.app.stats.max_latency_ms is not None


class GatedStore(_WrappedStore):
    """Answers a replay it has read only when the test says so: live messages come meanwhile."""

    def __init__(self, real: MessageStore) -> None:
        super().__init__(real)
        self.reading = asyncio.Event()
        self.go = asyncio.Event()

    async def read_since(self, stream: str, seq: int, epoch: str | None) -> ReplaySlice:
        part = await self._real.read_since(stream, seq, epoch)
        self.reading.set()
        await self.go.wait()
        return part


async def test_replay_to_a_batch_client_keeps_snapshot_replay_ack_live_each_once(
    make_server: ServerFactory, make_client: MessageFactory
) -> None:
    stores: list[GatedStore] = []

    def gate(real: MessageStore | None, settings: ServerSettings) -> MessageStore | None:
        assert real is not None
        stores.append(GatedStore(real))
        return stores[-1]

    server = await make_server(batch_window_ms=100, batch_max_messages=10, wrap_store=gate)
    publish = server.publisher.publish
    logged = [
        (await publish(request(ServerEvent.KPI_UPDATE, kpi(ORG, f"q{n % 3}")))).message_id
        for n in range(25)
    ]
    client = await joined(server, make_client, batch=True, filters=[])
    order: list[tuple[str, Any]] = client.events
    acked = asyncio.get_running_loop().create_future()

    def on_ack(answer: Any) -> None:
        order.append(("<subscribe ack>", answer))  # in arrival order with the events
        acked.set_result(answer)

    await client.sio.emit(
        "subscribe",
        {"channels": ["kpi"], "since": {f"kpi:{ORG}": 3}, "snapshot": True},
        callback=on_ack,
    )
    await asyncio.wait_for(stores[0].reading.wait(), WAIT)
    # Published while the replay is read: held back until after the ack.
    live = [
        (await publish(request(ServerEvent.KPI_UPDATE, kpi(ORG, "q9")))).message_id
        for _ in range(5)
    ]
    stores[0].go.set()
    answer = await asyncio.wait_for(acked, WAIT)
    assert answer["replay"][f"kpi:{ORG}"]["replayed"] == 22
    await settle(client)

    names = [name for name, _ in order]
    cut = names.index("<subscribe ack>")
    before = messages_in(order[:cut])
    after = messages_in(order[cut + 1 :])
    snapshot = [m["id"] for m in before if m.get("snapshot")]
    replay = [m["id"] for m in before if not m.get("snapshot")]
    # The snapshot, read after the live messages were logged: of q0..q2 the
    # replay carries the latest, so only q9's latest, which is then not sent live.
    assert snapshot == [live[-1]]
    assert [m["id"] for m in before] == snapshot + replay  # snapshot, then replay
    assert replay == logged[3:]  # in seq order, each once
    assert [m["id"] for m in after] == live[:-1]  # held, sent after the ack, each once
    assert len(batches(client)) < len(messages(client))


def messages_in(events: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for name, data in events:
        if name == "batch":
            found.extend(data["messages"])
        elif name.startswith("kpi:"):
            found.append(data)
    return found


async def test_shutdown_notice_reaches_a_batch_client_after_its_pending_messages(
    make_server: ServerFactory, make_client: MessageFactory
) -> None:
    server = await make_server(batch_window_ms=100)
    client = await joined(server, make_client, batch=True, filters=[{"channels": ["kpi"]}])
    ids = [
        (await server.publisher.publish(request(ServerEvent.KPI_UPDATE, kpi(ORG)))).message_id
        for _ in range(3)
    ]
    await server.stop()
    await asyncio.wait_for(client.disconnected.wait(), WAIT)
    got = messages(client)
    assert [m["id"] for m in got[:3]] == ids
    assert got[-1]["event"] == "system:maintenance"


async def test_bridge_client_that_announced_batch_gets_batch_frames(
    make_server: ServerFactory,
    make_bridge: BridgeFactory,  # noqa: F811 - the fixture imported above
) -> None:
    server = await make_server(batch_window_ms=100, batch_max_messages=4)
    batched, plain = await make_bridge(server), await make_bridge(server)
    for bridge, caps in ((batched, ["batch"]), (plain, [])):
        body = {"user_id": "user_1", "organization_id": ORG, "capabilities": caps}
        ack = await bridge.call("authenticate", body)
        assert ack["success"] is True, ack
        answer = await bridge.call("subscribe", {"channels": ["kpi"]})
        assert answer["success"] is True, answer
    ids = [
        (await server.publisher.publish(request(ServerEvent.KPI_UPDATE, kpi(ORG)))).message_id
        for _ in range(10)
    ]
    await batched.ping()
    await plain.ping()
    frames = batched.received("batch")
    # The first went at once (nothing was in flight); the rest gathered behind it.
    [first] = batched.received("kpi:update")
    assert [first["id"]] + [m["id"] for f in frames for m in f["messages"]] == ids
    assert [len(f["messages"]) for f in frames] == [4, 4, 1]
    assert [m["id"] for m in plain.received("kpi:update")] == ids
    assert not plain.received("batch")


async def test_a_lone_message_to_a_batch_client_goes_at_once_not_after_the_window(
    make_server: ServerFactory, make_client: MessageFactory
) -> None:
    server = await make_server(batch_window_ms=100)
    client = await joined(server, make_client, batch=True, filters=[{"channels": ["kpi"]}])
    for n in range(2):
        await server.publisher.publish(request(ServerEvent.KPI_UPDATE, kpi(ORG, f"q{n}")))
        [*_, single] = await client.wait_for("kpi:update", n + 1)
        assert single["data"]["queue_name"] == f"q{n}"
        await asyncio.sleep(0.25)  # lone: past the two windows its write counts as pending
    # Nothing was in flight either time: no window waited for, no batch of one.
    assert not client.received("batch")
