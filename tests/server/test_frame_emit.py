"""Room emits written as one WebSocket frame per socket (``reference_server/frame_emit.py``).

The direct write must be taken where it can (healthy WebSocket subscribers),
must never overtake a packet already queued for the socket, must leave
messages over the compression threshold to the connection's compressor,
and must deliver to polling and WebSocket subscribers alike.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from engineio import packet as eio_packet
from websockets.frames import Frame

from client_sdk.protocol import BroadcastRequest
from reference_server.app import ReferenceServer
from reference_server.frame_emit import FrameWritingManager, text_frame
from tests.conftest import ClientFactory, kpi
from tests.server.raw_eio import RawEngineIO
from tests.server.test_ws_compression import RecordingDeflateFactory


def _manager(server: ReferenceServer) -> FrameWritingManager:
    manager = server.app.sio.manager
    assert isinstance(manager, FrameWritingManager)
    return manager


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
    clients = [await authed(f"user_{i}", "org_a") for i in range(3)]
    for client in clients:
        assert (await client.call("subscribe", {"channels": ["kpi"]}))["success"] is True
    before = _manager(server).direct_writes
    for n in range(20):
        answer = await api.post("/api/ws/broadcast/kpi", json=kpi(queue=f"q{n}"))
        assert answer.status_code == 200
    for client in clients:
        got = await client.wait_for("kpi:update", count=20)
        assert [m["data"]["queue_name"] for m in got] == [f"q{n}" for n in range(20)]
    assert _manager(server).direct_writes - before == 60


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
    client = await authed("user_1", "org_a")
    assert (await client.call("subscribe", {"channels": ["kpi"]}))["success"] is True
    sio = server.app.sio
    sid = client.sio.get_sid()
    eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
    socket = sio.eio.sockets[eio_sid]
    before = _manager(server).direct_writes
    # Queued for the socket's writer task, which has not run yet when the broadcast goes
    # out (no await in between): a direct write now would arrive first.
    marker = '2["system:notification",{"marker":true}]'
    socket.queue.put_nowait(eio_packet.Packet(eio_packet.MESSAGE, marker))
    request = BroadcastRequest.model_validate({"event": "kpi:update", "data": kpi()})
    await server.app.publisher.publish(request)
    await client.wait_for("kpi:update")
    names = [name for name, _ in client.events if name in ("system:notification", "kpi:update")]
    assert names == ["system:notification", "kpi:update"]
    assert _manager(server).direct_writes == before  # it went the queued way


async def test_over_the_threshold_a_deflate_socket_gets_it_compressed(
    server: ReferenceServer, api: Any
) -> None:
    factory = RecordingDeflateFactory()
    raw = await RawEngineIO.open(server.url, extensions=[factory], compression=None)
    try:
        answer = await raw.connect({"user_id": "user_1", "organization_id": "org_a"})
        assert answer.startswith("40"), answer
        assert (await raw.call(1, "subscribe", {"channels": ["kpi"]}))["success"] is True
        before = _manager(server).direct_writes
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
        assert _manager(server).direct_writes - before == 1  # the small one only
    finally:
        await raw.close()
