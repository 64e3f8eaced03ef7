"""``intraday-live``: failures that explain themselves, as a new user meets them.

Each test runs the real command in a subprocess (against a real server on a
free port, or against nothing) and checks its exit status, the one line that
names the cause, and that stderr holds no traceback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from client_sdk import ClientConfig, IntradayClient, ReconnectFailedError
from reference_server.app import ReferenceServer
from tests.conftest import ServerFactory, kpi

ROOT = Path(__file__).resolve().parents[2]
PROCESS_TIMEOUT = 40.0  # a subprocess imports pydantic, socketio... on a busy 2-core machine


def _environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INTRADAY_")}
    return {**environment, "PYTHONUNBUFFERED": "1", **extra}


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``intraday-live ARGS`` to its end (``python -m client_sdk.cli``)."""
    return subprocess.run(
        [sys.executable, "-m", "client_sdk.cli", *args],
        cwd=ROOT,
        env=_environment(**env),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )


def assert_one_line_cause(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    [line] = [line for line in result.stderr.splitlines() if "never connected" in line]
    for word in words:
        assert word in line, line
    return line


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A port nothing listens on (bound, never listening, so no one else takes it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def _run_async(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run, *args, **env)


def test_a_dead_port_exits_1_naming_refused_and_logs_each_attempt(dead_port: int) -> None:
    result = run(
        "listen",
        "--url",
        f"http://127.0.0.1:{dead_port}",
        "--org",
        "acme",
        "--connect-timeout",
        "2",
    )
    assert_one_line_cause(result, "connection refused")
    assert "connection attempt 1 failed" in result.stderr
    assert "retrying in" in result.stderr


def test_a_duration_shorter_than_the_connect_timeout_still_exits_1(dead_port: int) -> None:
    url = f"http://127.0.0.1:{dead_port}"
    assert_one_line_cause(
        run("listen", "--url", url, "--org", "acme", "--duration", "2"), "refused"
    )


def test_the_dashboard_never_connecting_exits_1_naming_the_cause(dead_port: int) -> None:
    url = f"http://127.0.0.1:{dead_port}"
    result = run("dashboard", "--url", url, "--org", "acme", "--connect-timeout", "2")
    assert_one_line_cause(result, "connection refused")


async def test_a_wrong_path_is_named_as_an_http_status_not_a_connection_error(
    server: ReferenceServer,
) -> None:
    result = await _run_async(
        "listen", "--url", server.url, "--path", "/nope", "--org", "acme", "--connect-timeout", "2"
    )
    assert_one_line_cause(result, "HTTP 40", "path /nope", "check the path")


async def test_https_to_an_http_server_is_named_a_tls_mismatch(server: ReferenceServer) -> None:
    url = server.url.replace("http://", "https://")
    result = await _run_async("listen", "--url", url, "--org", "acme", "--connect-timeout", "2")
    assert_one_line_cause(result, "TLS", "https://")


async def test_a_refused_token_is_printed_once(make_server: ServerFactory) -> None:
    server = await make_server(auth_mode="jwt", jwt_secret="s" * 32)
    result = await _run_async("listen", "--url", server.url, "--org", "org_a", "--token", "x.y.z")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if "AUTH_FAILED" in line]) == 1


async def test_url_org_and_token_come_from_the_environment(server: ReferenceServer) -> None:
    result = await _run_async(
        "listen", "--duration", "2", INTRADAY_URL=server.url, INTRADAY_ORG="org_a"
    )
    assert result.returncode == 0, result.stderr
    assert "subscribed to all" in result.stderr


def test_version_prints_the_package_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == "intraday-live 0.1.0"


async def test_a_closed_pipe_ends_listen_quietly_with_0(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    """``intraday-live listen | head -1``: the reader leaves, the listener exits 0, no traceback."""
    pipeline = (
        'python -m client_sdk.cli listen --url "$0" --org org_a | head -1; exit ${PIPESTATUS[0]}'
    )
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", pipeline, server.url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        env={**_environment(), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )  # fmt: skip

    async def publish_until_exit() -> None:
        while process.returncode is None:
            await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", "support"))
            await asyncio.sleep(0.05)

    publisher = asyncio.create_task(publish_until_exit())
    try:
        out, errors = await asyncio.wait_for(process.communicate(), PROCESS_TIMEOUT)
    finally:
        publisher.cancel()
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert b"kpi:update" in out
    assert process.returncode == 0, errors
    assert b"Traceback" not in errors
    assert b"BrokenPipeError" not in errors


async def test_the_sdk_logs_each_retry_with_its_cause_and_delay(
    dead_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    config = ClientConfig(
        url=f"http://127.0.0.1:{dead_port}",
        reconnection_attempts=3,
        reconnection_delay=0.01,
        reconnection_delay_max=0.01,
    )
    caplog.set_level(logging.INFO, logger="client_sdk")
    client = IntradayClient(config)
    with pytest.raises(ReconnectFailedError, match="connection refused"):
        await client.connect()
    assert client.statistics().last_error is not None
    await client.close()
    attempts = [r for r in caplog.records if r.levelno == logging.INFO and "attempt" in r.message]
    assert len(attempts) == 2  # the third is the last: it fails the connect instead
    assert all("connection refused" in r.message for r in attempts)
    assert all("retrying in 0.0 s" in r.message for r in attempts)


def test_the_sdk_logger_has_a_null_handler() -> None:
    import client_sdk

    handlers = logging.getLogger(client_sdk.__name__).handlers
    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)


async def test_a_server_closing_the_websocket_at_once_is_a_lost_connection_retried() -> None:
    """uvicorn accepts a WebSocket and closes it at once (1012) while it shuts down:
    python-engineio then fails on the close frame with a TypeError. The SDK retries it
    as a lost connection and gives up as it would for any other."""
    from websockets.asyncio.server import ServerConnection, serve

    accepted = 0

    async def close_at_once(connection: ServerConnection) -> None:
        nonlocal accepted
        accepted += 1
        await connection.close(1012, "service restart")

    async with serve(close_at_once, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        config = ClientConfig(
            url=f"http://127.0.0.1:{port}",
            transports=("websocket",),
            reconnection_attempts=2,
            reconnection_delay=0.01,
            reconnection_delay_max=0.01,
        )
        client = IntradayClient(config)
        with pytest.raises(ReconnectFailedError):
            await client.connect()
        await client.close()
    assert accepted == 2
