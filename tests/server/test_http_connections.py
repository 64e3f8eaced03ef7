"""The management API's TCP connections: prompt on a kept-alive connection.

A publisher keeps one connection open and posts on it; each request must
take milliseconds, not the 40 ms of a delayed ACK that Nagle's algorithm
waits for when a response leaves in two writes.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from reference_server.app import ReferenceServer
from tests.conftest import ServerFactory

NAGLE_DELAY_S = 0.040
"""Linux's shortest delayed ACK: what every request waited for without TCP_NODELAY."""


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length: its status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def kept_alive_request_times(server: ReferenceServer, count: int) -> list[float]:
    """Seconds each of ``count`` GET /health took, one after another on one connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    request = b"GET /api/ws/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    times = []
    try:
        for _ in range(count + 1):
            started = time.perf_counter()
            writer.write(request)
            status, _ = await asyncio.wait_for(read_response(reader), 10)
            assert status == 200
            times.append(time.perf_counter() - started)
    finally:
        writer.close()
    return times[1:]  # the first one pays for the connection


@pytest.mark.timeout(60)
async def test_requests_on_a_kept_alive_connection_do_not_wait_for_a_delayed_ack(
    make_server: ServerFactory,
) -> None:
    server = await make_server()
    times = await kept_alive_request_times(server, 20)
    # Without TCP_NODELAY every one took 44 ms; a loaded machine slows some, not most.
    assert statistics.median(times) < NAGLE_DELAY_S / 2, [round(t * 1000, 1) for t in times]


async def raw_request(server: ReferenceServer, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` as it is on a new connection; the response's status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        body = await asyncio.wait_for(reader.read(4096), 10) if b"content-length" in head else b""
    finally:
        writer.close()
    return int(head.split()[1]), body


def get(path: str, host: str, *extra: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *extra, "Connection: close", "", ""]
    return "\r\n".join(lines).encode()


WEBSOCKET_UPGRADE = (
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
)


@pytest.mark.timeout(60)
async def test_without_an_admin_token_only_this_machines_host_names_are_answered(
    make_server: ServerFactory,
) -> None:
    """DNS rebinding: a page of evil.example re-pointed at 127.0.0.1 is refused."""
    server = await make_server()
    port = server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "127.0.0.2"):
        status, _ = await raw_request(server, get("/api/ws/health", host))
        assert status == 200, host
    for host in (f"evil.example:{port}", "127.0.0.1.evil.example", "evil.example"):
        status, body = await raw_request(server, get("/api/ws/health", host))
        assert status == 403, host
        assert b'"UNAUTHORIZED"' in body
        assert b"admin_token" in body  # says what to do
        # The plain-WebSocket bridge too: a page could read any organization through it.
        status, _ = await raw_request(server, get("/ws", host, *WEBSOCKET_UPGRADE))
        assert status == 403, host


@pytest.mark.timeout(60)
async def test_with_an_admin_token_any_host_name_is_answered(make_server: ServerFactory) -> None:
    server = await make_server(admin_token="t")
    status, _ = await raw_request(server, get("/api/ws/health", "intraday.example.com"))
    assert status == 200
