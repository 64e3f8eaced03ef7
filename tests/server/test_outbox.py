"""One outbox per socket (``reference_server/transport/outbox.py``), as clients see it.

Every kind of recipient in one room (Socket.IO over WebSocket and over
long-polling, the bridge; batching or not) sees one burst of two streams,
``requires_ack`` messages included, in the order it was published; a plain
python-socketio client on long-polling takes a 200-message burst on one
connection; a long-polling client that goes away is released at once; a
replay larger than the socket's bound reaches a slow reader whole.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import socketio

from client_sdk.protocol import BroadcastRequest
from reference_server.app import ReferenceServer
from tests.conftest import WAIT, ServerFactory, SioClient, alert, kpi
from tests.server.raw_eio import RawEngineIO, small_socket
from tests.server.test_bridge import BridgeClient, BridgeFactory, make_bridge  # noqa: F401
from tests.server.test_slow_clients import until

ORG = "org_a"
AUTH = {"user_id": "user_1", "organization_id": ORG}


def envelopes(events: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """The messages among ``(event, data)`` pairs, batched or single, in arrival order."""
    found: list[dict[str, Any]] = []
    for name, data in events:
        if name == "batch":
            found.extend(data["messages"])
        elif name in ("kpi:update", "alert:triggered"):
            found.append(data)
    return found


async def sio_recipient(server: ReferenceServer, transport: str, batch: bool) -> SioClient:
    client = SioClient(server.url, server.settings.path)
    await client.connect(transports=[transport])
    body: dict[str, Any] = {**AUTH, "capabilities": ["batch"] if batch else []}
    assert (await client.call("authenticate", body))["success"] is True
    assert (await client.call("subscribe", {"channels": ["kpi", "alerts"]}))["success"] is True
    return client


async def bridge_recipient(opener: BridgeFactory, server: ReferenceServer, batch: bool) -> Any:
    bridge = await opener(server)
    body: dict[str, Any] = {**AUTH, "capabilities": ["batch"] if batch else []}
    assert (await bridge.call("authenticate", body))["success"] is True
    assert (await bridge.call("subscribe", {"channels": ["kpi", "alerts"]}))["success"] is True
    return bridge


@pytest.mark.timeout(60)
async def test_every_recipient_sees_two_streams_and_their_acks_in_publish_order(
    make_server: ServerFactory,
    make_bridge: BridgeFactory,  # noqa: F811 - the fixture imported above
) -> None:
    server = await make_server(batch_window_ms=50, batch_max_messages=8)
    kinds = [(t, b) for t in ("websocket", "polling") for b in (False, True)]
    sio = {kind: await sio_recipient(server, *kind) for kind in kinds}
    bridges = {b: await bridge_recipient(make_bridge, server, b) for b in (False, True)}
    try:
        ids = []
        for n in range(60):
            if n % 2:
                body = {"event": "alert:triggered", "data": alert(n), "requires_ack": n % 5 == 0}
            else:
                body = {"event": "kpi:update", "data": kpi(ORG, ("q1", "q2")[n % 4 // 2])}
            result = await server.publisher.publish(BroadcastRequest.model_validate(body))
            ids.append(result.message_id)
            if n % 7 == 6:
                await asyncio.sleep(0)  # some of the burst meets writers in flight, some not
        for kind, client in sio.items():

            def complete(client: SioClient = client) -> bool:
                return len(envelopes(client.events)) >= len(ids)

            await until(complete, WAIT * 2)
            assert [m["id"] for m in envelopes(client.events)] == ids, kind
        for batch, bridge in bridges.items():
            await bridge.ping()
            got = envelopes([(f.get("event"), f.get("data")) for f in bridge.frames])
            assert [m["id"] for m in got] == ids, ("bridge", batch)
        # The requires_ack ones went singly and were acknowledged (their latency recorded).
        await until(lambda: server.app.stats.max_latency_ms is not None, WAIT)
        for kind, client in sio.items():
            acked = [m for m in envelopes(client.events) if m["requires_ack"]]
            assert len(acked) == 6, kind
            if kind[1]:
                batched = [m for b in client.received("batch") for m in b["messages"]]
                assert not any(m["requires_ack"] for m in batched)
                assert batched, "a burst to a batch socket gathers behind what is in flight"
    finally:
        for client in sio.values():
            await client.close()


async def test_a_plain_python_socketio_client_on_polling_takes_a_burst_of_200(
    server: ReferenceServer,
) -> None:
    sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
    received: list[dict[str, Any]] = []
    done = asyncio.Event()
    connects = 0

    def on_connect() -> None:
        nonlocal connects
        connects += 1

    def on_kpi(data: dict[str, Any]) -> None:
        received.append(data)
        if len(received) == 200:
            done.set()

    sio.on("connect", on_connect)
    sio.on("kpi:update", on_kpi)
    await sio.connect(server.url, socketio_path="ws", transports=["polling"], auth=AUTH)
    try:
        assert (await sio.call("subscribe", {"channels": ["kpi"]}, timeout=WAIT))["success"]
        for n in range(200):  # one burst: all queued before the next poll comes
            request = {"event": "kpi:update", "data": kpi(ORG, f"q{n}")}
            await server.publisher.publish(BroadcastRequest.model_validate(request))
        # python-engineio's client refuses a poll response of more than 16 packets and
        # reconnects; the server sends at most 16 per response, the rest on the next poll.
        await asyncio.wait_for(done.wait(), WAIT * 4)
        assert [m["data"]["queue_name"] for m in received] == [f"q{n}" for n in range(200)]
        assert connects == 1
        assert sio.transport() == "polling"
    finally:
        await sio.disconnect()


async def test_a_polling_client_gone_with_its_poll_pending_is_released_at_once(
    server: ReferenceServer,
) -> None:
    base = f"{server.url}/ws/?EIO=4&transport=polling"
    async with httpx.AsyncClient(timeout=WAIT) as http:
        opened = (await http.get(base)).text
        sid = opened[opened.index('"sid":"') + 7 :].split('"', 1)[0]
        session = f"{base}&sid={sid}"
        auth = '40{"user_id":"user_1","organization_id":"org_a"}'
        assert (await http.post(session, content=auth)).status_code == 200
        assert (await http.get(session)).text.startswith("40")
        await until(lambda: len(server.hub.registry) == 1, WAIT)
    # A poll is pending (the server has nothing to send) when the client goes away.
    gone = httpx.AsyncClient(timeout=WAIT)
    poll = asyncio.create_task(gone.get(session))
    await until(lambda: sid in server.app.sio.eio.sockets, WAIT)
    await asyncio.sleep(0.2)  # the GET reaches the server and waits there
    poll.cancel()
    await gone.aclose()
    # Released now, not after ping_interval + ping_timeout (25 s + 20 s by default).
    await until(lambda: len(server.hub.registry) == 0, 3.0)
    assert sid not in server.app.sio.eio.sockets
    async with httpx.AsyncClient(timeout=WAIT) as http:
        listed = (await http.get(f"{server.url}/api/ws/connections")).json()
    assert listed["total_count"] == 0


@pytest.mark.timeout(60)
async def test_a_replay_larger_than_the_bound_reaches_a_slow_reader_whole(
    make_server: ServerFactory,
    make_bridge: BridgeFactory,  # noqa: F811 - the fixture imported above
) -> None:
    server = await make_server(max_queued_messages_per_socket=100)
    for n in range(600):
        request = {"event": "kpi:update", "data": kpi(ORG, f"q{n}")}
        await server.publisher.publish(BroadcastRequest.model_validate(request))
    bridge: BridgeClient = await make_bridge(server)
    await bridge.authenticate()
    bridge.ws.transport.pause_reading()  # a reader slower than the replay
    subscribe = asyncio.create_task(
        bridge.call("subscribe", {"channels": ["kpi"], "since": {"kpi:org_a": 0}})
    )
    await asyncio.sleep(0.5)
    assert not subscribe.done()  # the replay waits for the reader
    bridge.ws.transport.resume_reading()
    answer = await asyncio.wait_for(subscribe, WAIT * 4)
    assert answer["success"] is True, answer
    got = await bridge.wait_for("kpi:update", 600)
    assert [m["data"]["queue_name"] for m in got] == [f"q{n}" for n in range(600)]
    assert server.hub.stats.disconnects_by_reason["too_slow"] == 0


async def test_a_replay_larger_than_the_bound_reaches_a_slow_socketio_reader_whole(
    make_server: ServerFactory,
) -> None:
    """The same over Socket.IO: a reader that stops, then reads 1 ms a frame, gets all 600."""
    server = await make_server(max_queued_messages_per_socket=100)
    for n in range(600):
        request = {"event": "kpi:update", "data": kpi(ORG, f"q{n}")}
        await server.publisher.publish(BroadcastRequest.model_validate(request))
    raw = await RawEngineIO.open(server.url, max_queue=1, sock=small_socket(server.url))
    await raw.connect()
    assert (await raw.call(1, "authenticate", AUTH))["success"] is True
    raw.ws.transport.pause_reading()  # a reader slower than the replay
    since = {"channels": ["kpi"], "since": {"kpi:org_a": 0}}
    await raw.send("422" + json.dumps(["subscribe", since]))
    await asyncio.sleep(0.5)  # the replay meanwhile fills the socket's bound
    assert server.hub.stats.disconnects_by_reason["too_slow"] == 0
    raw.ws.transport.resume_reading()
    queues: list[str] = []
    answer: Any = None
    async with asyncio.timeout(WAIT * 6):
        while len(queues) < 600 or answer is None:
            frame = await raw.recv()
            if frame.startswith("432"):  # the subscribe's ack
                answer = json.loads(frame[3:])[0]
            elif frame.startswith('42["kpi:update"'):
                queues.append(json.loads(frame[2:])[1]["data"]["queue_name"])
                await asyncio.sleep(0.001)  # 1 ms a message: slower than loopback
    assert answer["success"] is True, answer
    assert queues == [f"q{n}" for n in range(600)]
    assert server.hub.stats.disconnects_by_reason["too_slow"] == 0
    await raw.close()
