"""Messages written as one WebSocket frame per message (``reference_server/transport/outbox.py``).

The outbox's direct write must be taken where it can (healthy WebSocket
subscribers), must never overtake a packet already queued for the socket,
must send messages over the compression threshold compressed (once per
message), and must deliver to polling and WebSocket subscribers alike.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from engineio import packet as eio_packet
from websockets.frames import Frame

from client_sdk.protocol import BroadcastRequest
from reference_server.app import ReferenceServer
from reference_server.transport.frames import MessageFrames, text_frame
from reference_server.transport.uvicorn_server import ThresholdDeflate, frame_for
from tests.conftest import ClientFactory, kpi
from tests.server.raw_eio import RawEngineIO
from tests.server.test_ws_compression import RecordingDeflateFactory


def _direct_writes(server: ReferenceServer) -> int:
    return server.app.sio.outbox_policy.direct_writes


async def _kpi_subscribers(authed: ClientFactory, count: int) -> list[Any]:
    """``count`` authenticated clients of org_a (user_0, user_1, ...), each subscribed to kpi."""
    clients = [await authed(f"user_{i}", "org_a") for i in range(count)]
    for client in clients:
        assert (await client.call("subscribe", {"channels": ["kpi"]}))["success"] is True
    return clients


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536, 70_000])
def test_a_frame_parses_back_to_its_payload(size: int) -> None:
    payload = b"x" * size
    frame = text_frame(payload)

    def reader() -> Any:
        buffer = memoryview(frame)

        def read_exact(n: int) -> Any:
            nonlocal buffer
            chunk, buffer = bytes(buffer[:n]), buffer[n:]
            yield from ()
            return chunk

        return read_exact

    parser = Frame.parse(reader(), mask=False)
    try:
        while True:
            next(parser)
    except StopIteration as done:
        parsed: Frame = done.value
    assert parsed.fin
    assert parsed.data == payload
    assert parsed.opcode.name == "TEXT"


async def test_websocket_subscribers_get_broadcasts_written_directly_in_order(
    server: ReferenceServer, authed: ClientFactory, api: Any
) -> None:
    clients = await _kpi_subscribers(authed, 3)
    before = _direct_writes(server)
    for n in range(20):
        answer = await api.post("/api/ws/broadcast/kpi", json=kpi(queue=f"q{n}"))
        assert answer.status_code == 200
    for client in clients:
        got = await client.wait_for("kpi:update", count=20)
        assert [m["data"]["queue_name"] for m in got] == [f"q{n}" for n in range(20)]
    assert _direct_writes(server) - before == 60


async def test_broadcasts_of_one_turn_leave_in_one_write_per_socket_in_order(
    server: ReferenceServer, authed: ClientFactory
) -> None:
    """Ten broadcasts handled in one turn of the loop cost each socket one system call."""
    clients = await _kpi_subscribers(authed, 3)
    policy = server.app.sio.outbox_policy
    messages, writes = policy.direct_writes, policy.turn_writes
    publish = server.app.publisher.publish
    requests = [BroadcastRequest(event="kpi:update", data=kpi(queue=f"q{n}")) for n in range(10)]
    # Started together: each runs to its hand-off before the loop turns.
    results = await asyncio.gather(*(publish(request) for request in requests))
    assert [r.recipients for r in results] == [3] * 10
    for client in clients:
        got = await client.wait_for("kpi:update", count=10)
        assert [m["data"]["queue_name"] for m in got] == [f"q{n}" for n in range(10)]
    assert policy.direct_writes - messages == 30
    assert policy.turn_writes - writes == 3


async def test_a_broadcast_held_for_the_turn_still_reaches_a_socket_dropped_in_that_turn(
    server: ReferenceServer, authed: ClientFactory
) -> None:
    """A shutdown drops sockets without a DISCONNECT packet: what they got first goes first."""
    (client,) = await _kpi_subscribers(authed, 1)
    hub = server.app.hub
    (connection,) = list(hub.registry)
    request = BroadcastRequest(event="kpi:update", data=kpi(queue="last"))
    result = await server.app.publisher.publish(request)
    assert result.recipients == 1
    await hub.disconnect(connection, reason="shutdown")  # in the same turn: its frame is held
    got = await client.wait_for("kpi:update")
    assert [m["data"]["queue_name"] for m in got] == ["last"]
    await asyncio.wait_for(client.disconnected.wait(), 10)


async def test_polling_and_websocket_subscribers_get_the_same_sequence(
    server: ReferenceServer, make_client: Any, api: Any
) -> None:
    both = []
    for transports in (["polling"], ["websocket"]):
        client = make_client(server)
        await client.connect(transports=transports)
        assert (await client.authenticate("user_1", "org_a"))["success"] is True
        assert (await client.call("subscribe", {"channels": ["kpi"]}))["success"] is True
        both.append(client)
    for n in range(10):
        await api.post("/api/ws/broadcast/kpi", json=kpi(queue=f"q{n}"))
    sequences = [
        [m["data"]["queue_name"] for m in await c.wait_for("kpi:update", count=10)] for c in both
    ]
    assert sequences[0] == sequences[1] == [f"q{n}" for n in range(10)]


async def test_a_broadcast_never_overtakes_a_packet_already_queued_for_the_socket(
    server: ReferenceServer, authed: ClientFactory
) -> None:
    (client,) = await _kpi_subscribers(authed, 1)
    sio = server.app.sio
    sid = client.sio.get_sid()
    eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
    socket = sio.eio.sockets[eio_sid]
    before = _direct_writes(server)
    # Queued for the socket's writer task, which has not run yet when the broadcast goes
    # out (no await in between): a direct write now would arrive first.
    marker = '2["system:notification",{"marker":true}]'
    socket.queue.put_nowait(eio_packet.Packet(eio_packet.MESSAGE, marker))
    request = BroadcastRequest.model_validate({"event": "kpi:update", "data": kpi()})
    await server.app.publisher.publish(request)
    await client.wait_for("kpi:update")
    names = [name for name, _ in client.events if name in ("system:notification", "kpi:update")]
    assert names == ["system:notification", "kpi:update"]
    assert _direct_writes(server) == before  # it went the queued way


async def test_over_the_threshold_a_deflate_socket_gets_it_compressed(
    server: ReferenceServer, api: Any
) -> None:
    factory = RecordingDeflateFactory()
    raw = await RawEngineIO.open(server.url, extensions=[factory], compression=None)
    try:
        answer = await raw.connect({"user_id": "user_1", "organization_id": "org_a"})
        assert answer.startswith("40"), answer
        assert (await raw.call(1, "subscribe", {"channels": ["kpi"]}))["success"] is True
        before = _direct_writes(server)
        seen = len(factory.compressed)
        await api.post("/api/ws/broadcast/kpi", json=kpi(note="x" * 2000))
        await api.post("/api/ws/broadcast/kpi", json=kpi())
        envelopes = []
        while len(envelopes) < 2:
            frame = await raw.recv()
            if frame.startswith('42["kpi:update"'):
                envelopes.append(json.loads(frame[2:])[1])
        assert envelopes[0]["data"]["note"] == "x" * 2000
        assert "note" not in envelopes[1]["data"]
        # Frames after the subscribe: the big message deflated, the small one plain.
        kpi_frames = factory.compressed[seen:][-2:]
        assert kpi_frames == [True, False]
        assert _direct_writes(server) - before == 2  # both: the big one compressed once
    finally:
        await raw.close()


def test_a_deflated_frame_decodes_on_every_connection_without_history() -> None:
    from websockets.extensions.permessage_deflate import PerMessageDeflate
    from websockets.frames import Opcode

    server_side = ThresholdDeflate(False, True, 12, 12, {"memLevel": 5}, threshold=1024)
    for text in (b"a" * 3000, b"b" * 5000):  # two messages: neither relies on the other
        frames = MessageFrames(text)
        frame = frame_for(frames, [server_side])
        assert frame is not None
        assert frame[0] == 0xC1  # FIN, RSV1 (compressed), text
        assert frame is frame_for(frames, [server_side])  # made once
        client = PerMessageDeflate(True, False, 12, 12)  # a fresh client each time
        header = 4 if frame[1] == 126 else 2
        decoded = client.decode(Frame(Opcode.TEXT, frame[header:], rsv1=True))
        assert decoded.data == text
    small = MessageFrames(b"c" * 100)
    assert frame_for(small, [server_side]) == small.plain()
    light = MessageFrames(b"e" * 3000, weight=700)  # a batch of messages under the threshold
    assert frame_for(light, [server_side]) == light.plain()
    remembering = ThresholdDeflate(False, False, 12, 12, {}, threshold=1024)
    assert frame_for(MessageFrames(b"d" * 3000), [remembering]) is None  # its own encoder


async def _batched_frames(
    server: ReferenceServer, notes: list[int]
) -> tuple[list[str], list[tuple[bool, int]]]:
    """Publish kpi messages with notes of these sizes to a batch socket that negotiated deflate.

    What arrived (queue names, in order) and, for each ``batch`` frame, whether it
    came compressed and its size once decoded.
    """
    factory = RecordingDeflateFactory()
    raw = await RawEngineIO.open(server.url, extensions=[factory], compression=None)
    try:
        auth = {"user_id": "user_1", "organization_id": "org_a", "capabilities": ["batch"]}
        assert (await raw.connect(auth)).startswith("40")
        assert (await raw.call(1, "subscribe", {"channels": ["kpi"]}))["success"] is True
        seen = len(factory.compressed)
        for n, note in enumerate(notes):  # in-process, without yielding: all behind the first
            data = kpi(queue=f"q{n}", note="x" * note)
            request = BroadcastRequest.model_validate({"event": "kpi:update", "data": data})
            await server.app.publisher.publish(request)
        queues: list[str] = []
        kinds: list[str] = []
        while len(queues) < len(notes):
            frame = await raw.recv()
            if frame.startswith('42["batch"'):
                queues += [m["data"]["queue_name"] for m in json.loads(frame[2:])[1]["messages"]]
                kinds.append("batch")
            elif frame.startswith('42["kpi:update"'):  # nothing was in flight: it went at once
                queues.append(json.loads(frame[2:])[1]["data"]["queue_name"])
                kinds.append("single")
        frames = list(zip(factory.compressed, factory.sizes, strict=True))[seen:]
        # Only kpi frames arrived after the subscribe: they pair up with what was parsed.
        assert len(frames) == len(kinds)
        return queues, [f for f, kind in zip(frames, kinds, strict=True) if kind == "batch"]
    finally:
        await raw.close()


async def test_a_batch_of_messages_under_the_threshold_goes_plain_even_over_it(
    server: ReferenceServer,
) -> None:
    # Each message (about 700 bytes) would go plain alone; so does their batch,
    # although it is well over 1 KiB: batching changes the framing, not the
    # compression (a compressed frame costs a Node.js client an inflate on its
    # thread pool, about ten times the parse of a small batch).
    queues, batched = await _batched_frames(server, [300] * 5)
    assert queues == [f"q{n}" for n in range(5)]
    assert batched
    assert all(size >= 1024 for _, size in batched), batched
    assert not any(rsv1 for rsv1, _ in batched), batched


async def test_a_batch_holding_a_message_over_the_threshold_goes_compressed(
    server: ReferenceServer,
) -> None:
    queues, batched = await _batched_frames(server, [300, 300, 2000, 300])
    assert queues == [f"q{n}" for n in range(4)]
    assert [rsv1 for rsv1, _ in batched] == [True] * len(batched), batched
