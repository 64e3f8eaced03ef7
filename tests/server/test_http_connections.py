"""The server's TCP connections: prompt, answered only under this machine's names, bounded.

A publisher keeps one connection open and posts on it; each request must
take milliseconds, not the 40 ms of a delayed ACK that Nagle's algorithm
waits for when a response leaves in two writes. Without an admin token only
``localhost`` and loopback addresses are answered (DNS rebinding). Idle or
half-sent connections are closed after the header deadline and never use
up the file limit: a legitimate request is answered whatever their number.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import os
import resource
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reference_server.app import ReferenceServer
from reference_server.transport.http_guard import ACCEPT_FAILURE, quiet_accept_failures
from tests.conftest import ServerFactory
from tests.processes import ROOT, free_port

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
    return await raw_request_to(server.port, request)


async def raw_request_to(port: int, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` as it is on a new connection to ``port``; the status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
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


# -- idle and half-sent connections ---------------------------------------------


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the server closes the connection within ``within`` seconds."""
    try:
        while await asyncio.wait_for(reader.read(4096), within):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


@pytest.mark.timeout(60)
async def test_connections_without_a_request_under_way_are_closed_after_the_header_deadline(
    make_server: ServerFactory, make_client: Any
) -> None:
    server = await make_server(http_header_timeout_seconds=0.5)
    port = server.port
    idle = await asyncio.open_connection("127.0.0.1", port)
    half_sent = await asyncio.open_connection("127.0.0.1", port)
    half_sent[1].write(b"GET /api/ws/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    kept_alive = await asyncio.open_connection("127.0.0.1", port)
    kept_alive[1].write(get("/api/ws/health", "127.0.0.1").replace(b"close", b"keep-alive"))
    assert (await read_response(kept_alive[0]))[0] == 200
    kept_alive[1].write(b"GET /api/ws/health HTTP/1.1\r\n")  # the second request, half-sent
    # A Socket.IO client has requests under way (a WebSocket, or long polls): it stays.
    client = make_client(server)
    await client.connect()
    connected_at = time.monotonic()
    results = await asyncio.gather(
        *(closed_by_server(reader, 10) for reader, _ in (idle, half_sent, kept_alive))
    )
    assert results == [True, True, True]  # uvicorn kept all three open for ever
    # Past two deadlines of its own, the client's connection is still there.
    await asyncio.sleep(max(0.0, connected_at + 1.0 - time.monotonic()))
    assert (await client.authenticate())["success"] is True
    for _, writer in (idle, half_sent, kept_alive):
        writer.close()


@pytest.mark.timeout(120)
async def test_idle_and_half_sent_connections_beyond_the_file_limit_do_not_starve_a_request(
    tmp_path: Path,
) -> None:
    """1,100 such connections under a 1,024 file limit, scaled down: 250 under 160."""
    port = free_port()
    log = tmp_path / "server.log"
    async with limited_server(port, log, soft=160, hard=160):
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(200)]
        half_sent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
        for _, writer in half_sent:
            writer.write(b"POST /api/ws/broadcast/kpi HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        status, _ = await asyncio.wait_for(
            raw_request_to(port, get("/api/ws/health", "127.0.0.1")), 10
        )
        assert status == 200  # was a timeout: no descriptor left to accept it
        assert time.monotonic() - started < 5
        closed = await asyncio.gather(
            *(closed_by_server(reader, 15) for reader, _ in idle + half_sent)
        )
        assert all(closed), closed.count(False)  # were still open after 25 s
        for _, writer in idle + half_sent:
            writer.close()
    text = text_of(log)
    assert "Traceback" not in text  # was one per failed accept: 33 MiB in 7 s
    assert len(text) < 20_000, len(text)


@pytest.mark.timeout(60)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/limits")
async def test_the_soft_file_limit_is_raised_to_the_hard_one_at_start_up(tmp_path: Path) -> None:
    port = free_port()
    async with limited_server(port, tmp_path / "server.log", soft=200, hard=400) as process:
        text = text_of(Path(f"/proc/{process.pid}/limits"))
    (line,) = [line for line in text.splitlines() if line.startswith("Max open files")]
    assert line.split()[3:5] == ["400", "400"], line  # was 200 (soft), 400 (hard)


def text_of(path: Path) -> str:
    return path.read_text(errors="replace")


@contextlib.asynccontextmanager
async def limited_server(
    port: int, log: Path, *, soft: int, hard: int
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``serve`` in a process whose open-file limit is ``soft``/``hard``, header deadline 2 s."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    env = {k: v for k, v in os.environ.items() if not k.startswith("INTRADAY_")}
    env["INTRADAY_HTTP_HEADER_TIMEOUT_SECONDS"] = "2"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "reference_server.cli", "serve", "--port", str(port),
            "--log-level", "warning", cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=stderr, preexec_fn=limit,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.returncode is None, text_of(log)
            try:
                status, _ = await raw_request_to(port, get("/api/ws/health", "127.0.0.1"))
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            await asyncio.sleep(0.1)
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_failed_accepts_are_logged_once_per_interval_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # asyncio's own words for it, which the guard matches: fails if upstream rewords them.
    assert ACCEPT_FAILURE in inspect.getsource(asyncio.selector_events)
    loop = asyncio.new_event_loop()
    try:
        quiet_accept_failures(loop, interval=60)
        for _ in range(1000):
            error = OSError(errno.EMFILE, "Too many open files")
            loop.call_exception_handler({"message": ACCEPT_FAILURE, "exception": error})
    finally:
        loop.close()
    records = [r for r in caplog.records if "accept failed" in r.getMessage()]
    assert len(records) == 1  # was a traceback for each of the 1,000
    assert records[0].exc_info is None


UVLOOP_SERVER = """
import httpx, uvloop
from reference_server.app import ReferenceServer
from reference_server.config import load_settings

async def main():
    server = ReferenceServer(load_settings(port=0), install_signal_handlers=False)
    await server.start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            print((await http.get(server.url + "/api/ws/health")).status_code)
    finally:
        await server.stop()

uvloop.run(main())  # asyncio.run has no loop_factory before 3.12
"""


async def test_the_server_answers_when_embedded_on_uvloop() -> None:
    """uvicorn users run on uvloop, whose TCP transport is no ``asyncio.Transport`` subclass."""
    pytest.importorskip("uvloop")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", UVLOOP_SERVER, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()[-2000:]
    assert out.decode().strip() == "200", err.decode()[-2000:]
