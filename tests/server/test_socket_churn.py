"""The server holds no socket of a connection that is gone, however it went.

Clients come and go in every way a network allows: a clean Socket.IO
disconnect, a WebSocket dropped without a close frame, a TCP connection
reset in the middle of its HTTP request. Once they are gone the server
process holds no more file descriptors than before them: a leak of one
socket per connection would exhaust the file limit of a long-running server.

The server runs as a subprocess, so its descriptors are counted alone
(``/proc/PID/fd``), apart from this test process's clients.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from pathlib import Path

import pytest
import socketio
from websockets.asyncio.client import connect

from tests.conftest import WAIT, eventually
from tests.processes import ServerProcess, free_port

ROUNDS = 10
PER_ROUND = 4
ORG_A = {"user_id": "user_1", "organization_id": "org_a"}

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")


def _descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class _Gone:
    """Three clients, connected; each then goes in its own way."""

    async def open(self, url: str, port: int) -> None:
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        await self.sio.connect(url, socketio_path="ws", transports=["websocket"], wait_timeout=WAIT)
        assert (await self.sio.call("authenticate", ORG_A, timeout=WAIT))["success"] is True
        assert (await self.sio.call("subscribe", {"channels": ["kpi"]}, timeout=WAIT))["success"]

        ws_url = url.replace("http://", "ws://") + "/ws/?EIO=4&transport=websocket"
        self.ws = await connect(ws_url)
        assert str(await asyncio.wait_for(self.ws.recv(), WAIT)).startswith("0")  # Engine.IO open
        await self.ws.send('40{"user_id":"user_1","organization_id":"org_a"}')
        assert str(await asyncio.wait_for(self.ws.recv(), WAIT)).startswith("40")

        _, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer.write(b"GET /ws/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        await self.writer.drain()

    async def go(self) -> None:
        await self.sio.disconnect()  # clean: Socket.IO DISCONNECT, then the close handshake
        for transport in (self.ws.transport, self.writer.transport):
            # RST instead of FIN: SO_LINGER 0, then abort (no close frame, no TCP goodbye).
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()


@pytest.mark.timeout(120)
async def test_connections_gone_in_every_way_leave_no_descriptor_behind(tmp_path: Path) -> None:
    async with ServerProcess(free_port(), log=tmp_path / "server.log") as server:
        assert server.process is not None
        pid = server.process.pid
        # A round first: whatever the server opens once, on first use, is not a leak.
        warm_up = _Gone()
        await warm_up.open(server.url, server.port)
        await warm_up.go()
        baseline = await _settled(pid)

        peak = baseline
        for _ in range(ROUNDS):
            clients = [_Gone() for _ in range(PER_ROUND)]
            await asyncio.gather(*(c.open(server.url, server.port) for c in clients))
            peak = max(peak, _descriptors(pid))
            await asyncio.gather(*(c.go() for c in clients))
        # The churn reached the server: it held the sockets of a round's connected clients at
        # once (the half-sent requests may still wait in the kernel's accept queue).
        assert peak >= baseline + 2 * PER_ROUND

        async def released() -> bool:
            return _descriptors(pid) <= baseline

        await eventually(released, timeout=20, interval=0.1)


async def _settled(pid: int) -> int:
    """The server's descriptor count once it stops falling (the warm-up's sockets closed)."""
    counts = [_descriptors(pid)]

    async def steady() -> bool:
        counts.append(_descriptors(pid))
        return len(counts) >= 5 and len(set(counts[-5:])) == 1

    await eventually(steady, timeout=20, interval=0.1)
    return counts[-1]
