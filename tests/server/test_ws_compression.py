"""WebSocket compression by threshold: small messages plain, large ones deflated.

A real ``websockets`` client negotiates permessage-deflate and records, for
every frame it receives, whether it came compressed (RSV1). Envelopes under
``compression_threshold_bytes`` (1 KiB) come plain, larger ones compressed,
and both decode to what was sent.
"""

from __future__ import annotations

import json
from typing import Any

from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.frames import Frame

from client_sdk.testing import running_server
from tests.conftest import kpi


class _Recording(PerMessageDeflate):
    compressed: list[bool]
    sizes: list[int]

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        self.compressed.append(frame.rsv1)
        decoded = super().decode(frame, max_size=max_size)
        self.sizes.append(len(decoded.data))
        return decoded


class RecordingDeflateFactory(ClientPerMessageDeflateFactory):
    """The client's permessage-deflate, noting whether each received frame was compressed.

    ``compressed[i]`` and ``sizes[i]`` (its size once decoded) are of the same frame.
    """

    def __init__(self) -> None:
        super().__init__()
        self.compressed: list[bool] = []
        self.sizes: list[int] = []

    def process_response_params(self, params: Any, accepted_extensions: Any) -> PerMessageDeflate:
        negotiated = super().process_response_params(params, accepted_extensions)
        negotiated.__class__ = _Recording
        negotiated.compressed = self.compressed  # type: ignore[attr-defined]
        negotiated.sizes = self.sizes  # type: ignore[attr-defined]
        return negotiated


async def test_small_messages_go_plain_and_large_ones_compressed() -> None:
    async with running_server() as server, server.admin() as admin:
        factory = RecordingDeflateFactory()
        url = f"ws://127.0.0.1:{server.port}{server.path}"
        async with connect(url, extensions=[factory], compression=None) as ws:
            assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
            frame = {"event": "authenticate", "id": 1}
            frame["data"] = {"user_id": "u", "organization_id": "org_a"}
            await ws.send(json.dumps(frame))
            assert json.loads(await ws.recv())["data"]["success"] is True
            subscribe = {"event": "subscribe", "id": 2, "data": {"channels": ["kpi"]}}
            await ws.send(json.dumps(subscribe))
            await ws.recv()  # the ack
            await ws.recv()  # client:subscribe
            assert factory.compressed == [False, False, False]  # all under 1 KiB

            await admin.publish_kpi(kpi(note="x" * 2000))  # an envelope over 2 KiB
            big = json.loads(await ws.recv())
            assert big["data"]["data"]["note"] == "x" * 2000
            await admin.publish_kpi(kpi())  # about 400 bytes
            small = json.loads(await ws.recv())
            assert small["data"]["data"]["health_score"] == 90
            assert factory.compressed[3:] == [True, False]


async def test_without_compression_nothing_is_negotiated() -> None:
    async with running_server(compression_enabled=False) as server:
        url = f"ws://127.0.0.1:{server.port}{server.path}"
        async with connect(url, compression="deflate") as ws:
            assert "Sec-WebSocket-Extensions" not in ws.response.headers


def test_the_codecs_are_made_on_first_use_only() -> None:
    from websockets.frames import Opcode

    from reference_server.transport.uvicorn_server import ThresholdDeflate

    server = ThresholdDeflate(False, False, 12, 12, {"memLevel": 5}, threshold=1024)
    client = PerMessageDeflate(False, False, 12, 12)
    assert "encoder" not in vars(server)
    assert "decoder" not in vars(server)  # an idle connection holds neither
    small = server.encode(Frame(Opcode.TEXT, b"x" * 100))
    assert not small.rsv1
    assert "encoder" not in vars(server)
    for size in (2000, 3000):  # context takeover across messages still decodes
        big = server.encode(Frame(Opcode.TEXT, b"y" * size))
        assert big.rsv1
        assert client.decode(big).data == b"y" * size
    assert "decoder" not in vars(server)
    upstream = client.encode(Frame(Opcode.TEXT, b"z" * 5000))
    assert server.decode(upstream).data == b"z" * 5000
