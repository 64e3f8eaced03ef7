"""A raw Engine.IO v4 WebSocket client: the frames exactly as a hostile client sends them.

python-socketio's client is well behaved (it never sends CONNECT twice, it
closes when told to); the hardening tests need one that is not.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

WAIT = 5.0


def small_socket(url: str, receive_buffer: int = 16_384) -> socket.socket:
    """A connected TCP socket with a small fixed receive buffer.

    Linux grows a socket's buffers up to ``tcp_rmem`` (32 MiB here) by
    itself, which would swallow what a test of a client that stops reading
    publishes; a fixed ``SO_RCVBUF`` turns that growth off.
    """
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
    sock.setblocking(False)
    return sock


class RawEngineIO:
    """One Engine.IO session over a WebSocket, frame by frame."""

    def __init__(self, ws: ClientConnection, open_packet: dict[str, Any]) -> None:
        self.ws = ws
        self.open_packet = open_packet

    @classmethod
    async def open(cls, base_url: str, path: str = "/ws", **kwargs: Any) -> RawEngineIO:
        url = base_url.replace("http://", "ws://") + f"{path}/?EIO=4&transport=websocket"
        ws = await connect(url, **kwargs)
        first = await asyncio.wait_for(ws.recv(), WAIT)
        assert isinstance(first, str)
        assert first.startswith("0"), first
        return cls(ws, json.loads(first[1:]))

    async def send(self, frame: str) -> None:
        await self.ws.send(frame)

    async def recv(self, timeout: float = WAIT) -> str:
        """The next frame other than an Engine.IO ping (answered)."""
        while True:
            frame = await asyncio.wait_for(self.ws.recv(), timeout)
            assert isinstance(frame, str)
            if frame == "2":
                await self.ws.send("3")
                continue
            return frame

    async def connect(self, auth: dict[str, Any] | None = None) -> str:
        """Send a Socket.IO CONNECT; the answer frame (``40{...}`` or ``44{...}``)."""
        await self.send("40" + (json.dumps(auth) if auth is not None else ""))
        return await self.recv()

    async def call(self, ack_id: int, event: str, data: Any) -> Any:
        """Emit with an ack id and return the ack's data, skipping other frames."""
        await self.send(f"42{ack_id}" + json.dumps([event, data]))
        prefix = f"43{ack_id}"
        while True:
            frame = await self.recv()
            if frame.startswith(prefix):
                return json.loads(frame[len(prefix) :])[0]

    async def wait_closed(self, timeout: float = WAIT) -> list[str]:
        """Read until the server closes the WebSocket; the frames received before."""
        frames: list[str] = []
        async with asyncio.timeout(timeout):
            try:
                while True:
                    frames.append(await self.recv(timeout))
            except ConnectionClosed:
                return frames

    async def close(self) -> None:
        await self.ws.close()


def connect_error(frame: str) -> dict[str, Any]:
    """The protocol ERROR of a ``44`` CONNECT_ERROR frame."""
    assert frame.startswith("44"), frame
    body = json.loads(frame[frame.index("{") :])
    assert isinstance(body, dict)
    data = body.get("data")
    assert isinstance(data, dict), body
    return data
