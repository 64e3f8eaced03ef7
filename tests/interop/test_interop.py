"""Interoperability: the official JavaScript socket.io-client and real wscat.

These run Node.js programs from ``tests/interop/node_modules`` (``npm ci``
there; ``make test`` does it) against a reference server in this process.
Without those packages the tests skip, except when ``CI`` is set: a CI run
that silently skipped its interoperability tier would prove nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from reference_server.app import ReferenceServer
from tests.conftest import kpi

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
JS_CLIENT = HERE / "js_client.mjs"
WSCAT = NODE_MODULES / ".bin" / "wscat"
WAIT = 10.0
SEED_AUTHENTICATE = (
    '{"event":"authenticate","data":{"user_id":"user_123","organization_id":"org_123"}}'
)


@pytest.fixture
def node() -> str:
    """The ``node`` executable, with the npm packages installed; else skip (or fail on CI)."""
    missing = []
    node_path = shutil.which("node")
    if node_path is None:
        missing.append("the node executable")
    for needed in (NODE_MODULES / "socket.io-client" / "package.json", WSCAT):
        if not needed.exists():
            missing.append(str(needed.relative_to(HERE.parents[1])))
    if missing:
        reason = f"interop tier needs {', '.join(missing)}: run `npm ci` in tests/interop"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {reason}")
        pytest.skip(reason)
    assert node_path is not None
    return node_path


class NodeProcess:
    """A Node.js subprocess whose stdout lines are collected as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def next_line(self, within: float = WAIT) -> str:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), within)
        if not raw:
            stderr = await self.stderr()
            raise AssertionError(f"process ended; stdout {self.lines}; stderr {stderr}")
        line = raw.decode().rstrip("\r\n")
        self.lines.append(line)
        return line

    async def read_until(self, match: Callable[[str], bool], within: float = WAIT) -> str:
        async def scan() -> str:
            while True:
                line = await self.next_line(within)
                if match(line):
                    return line

        try:
            return await asyncio.wait_for(scan(), within)
        except TimeoutError:
            raise AssertionError(
                f"not seen within {within} s; stdout so far: {self.lines}"
            ) from None

    async def stderr(self) -> str:
        if self.process.stderr is None:
            return ""
        with contextlib.suppress(TimeoutError):
            data = await asyncio.wait_for(self.process.stderr.read(), 2)
            return data.decode(errors="replace")
        return "<unread>"

    async def wait(self, within: float = WAIT) -> int:
        return await asyncio.wait_for(self.process.wait(), within)


@pytest.fixture
async def spawn() -> AsyncIterator[Callable[..., Any]]:
    """Start subprocesses; any still running after the test is killed."""
    started: list[NodeProcess] = []

    async def start(*argv: str, stdin: bool = False) -> NodeProcess:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=HERE,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        wrapped = NodeProcess(process)
        started.append(wrapped)
        return wrapped

    yield start
    for wrapped in started:
        if wrapped.process.returncode is None:
            wrapped.process.kill()
            await wrapped.process.wait()


def js_line(line: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def of_type(kind: str) -> Callable[[str], bool]:
    return lambda line: js_line(line).get("type") in (kind, "connect_error", "timeout")


# -- the official socket.io-client ---------------------------------------------


@pytest.mark.parametrize("transports", ["polling,websocket", "websocket", "polling"])
async def test_official_js_client_authenticates_subscribes_and_receives(
    node: str, make_server, spawn, transports: str
) -> None:
    server: ReferenceServer = await make_server()
    client = await spawn(node, str(JS_CLIENT), server.url, "org_js", "--transports", transports)
    authenticated = js_line(await client.read_until(of_type("authenticated")))
    assert authenticated["type"] == "authenticated", client.lines
    body = authenticated["data"]
    assert body["success"] is True
    assert body["user_id"] == "js_user"
    assert body["organization_id"] == "org_js"

    subscribed = js_line(await client.read_until(of_type("subscribed")))
    assert subscribed["ack"] == {"success": True, "subscriptions": ["kpi:org:org_js"]}

    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as api:
        [info] = (await api.get("/api/ws/connections")).json()["connections"]
        assert info["user_id"] == "js_user"
        assert info["subscriptions"] == ["kpi:org:org_js"]
        response = await api.post("/api/ws/broadcast/kpi", json=kpi("org_js"))
        assert response.status_code == 200, response.text
        assert response.json()["recipients"] == 1

    line = await client.read_until(lambda s: js_line(s).get("event") == "kpi:update")
    envelope = js_line(line)["data"]
    assert envelope["id"] == response.json()["message_id"]
    assert envelope["event"] == "kpi:update"
    assert envelope["channel"] == "kpi"
    assert envelope["target"]["organization_id"] == "org_js"
    assert envelope["data"]["utilization"] == {"current_utilization": 85}
    assert await client.wait() == 0, client.lines


@pytest.mark.parametrize(
    ("settings", "auth", "code"),
    [
        ({}, {"user_id": "bad:user", "organization_id": "org_js"}, "INVALID_MESSAGE"),
        ({}, {"user_id": "js_user", "organization_id": "org_js", "extra": 1}, "INVALID_MESSAGE"),
        (
            {"auth_mode": "jwt", "jwt_secret": "interop-secret-of-at-least-32-bytes!"},
            {"user_id": "js_user", "organization_id": "org_js"},
            "AUTH_FAILED",
        ),
        (
            {"auth_mode": "jwt", "jwt_secret": "interop-secret-of-at-least-32-bytes!"},
            {"user_id": "js_user", "organization_id": "org_js", "token": "not.a.jwt"},
            "AUTH_FAILED",
        ),
    ],
    ids=["bad-identifier", "unknown-field", "jwt-without-token", "jwt-garbage-token"],
)
async def test_refused_handshake_reaches_connect_error_as_the_error_object(
    node: str, make_server, spawn, settings: dict[str, Any], auth: dict[str, Any], code: str
) -> None:
    server: ReferenceServer = await make_server(**settings)
    client = await spawn(node, str(JS_CLIENT), server.url, "org_js", "--auth", json.dumps(auth))
    line = js_line(await client.read_until(of_type("connect_error")))
    assert line["type"] == "connect_error", client.lines
    error = line["data"]
    assert error is not None, line
    assert error["code"] == code
    assert error["retryable"] is False
    assert line["message"] == error["message"]
    assert "Traceback" not in json.dumps(line)
    assert await client.wait() == 3
    assert len(server.hub.registry) == 0


# -- wscat -----------------------------------------------------------------------


def wscat_frame(line: str) -> dict[str, Any] | None:
    """The frame on a line of wscat's output, or ``None`` for any other line.

    wscat prints a received frame after ``< `` on a terminal and bare on a pipe,
    where its readline prompt ``> `` may still precede it.
    """
    start = line.find("{")
    if start < 0 or line[:start].strip(" <>"):
        return None
    try:
        parsed: dict[str, Any] = json.loads(line[start:])
    except ValueError:
        return None
    return parsed


def frame_of(line: str) -> dict[str, Any]:
    frame = wscat_frame(line)
    assert frame is not None, line
    return frame


def frame_named(event: str, frame_id: int | None = None) -> Callable[[str], bool]:
    def match(line: str) -> bool:
        frame = wscat_frame(line)
        if frame is None:
            return False
        return frame.get("event") == event and (frame_id is None or frame.get("id") == frame_id)

    return match


async def test_wscat_interactive_session(node: str, make_server, spawn) -> None:
    server: ReferenceServer = await make_server()
    url = f"ws://127.0.0.1:{server.port}/ws"
    wscat = await spawn(node, str(WSCAT), "-c", url, stdin=True)
    stdin = wscat.process.stdin
    assert stdin is not None

    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as api:
        # wscat prints no "Connected" line on a pipe: wait until the server has the socket.
        for _ in range(200):
            connections = (await api.get("/api/ws/connections")).json()["connections"]
            if connections:
                break
            await asyncio.sleep(0.025)
        [info] = connections
        assert info["transport"] == "bridge"

        # Typed lines only reach the socket once wscat's own "open" handler ran, which
        # may trail the server's view by a moment; re-typing the line is idempotent.
        authenticated = None
        for _ in range(3):
            stdin.write(SEED_AUTHENTICATE.encode() + b"\n")
            await stdin.drain()
            with contextlib.suppress(AssertionError):
                authenticated = await wscat.read_until(frame_named("authenticated"), within=2)
                break
        assert authenticated is not None, wscat.lines
        body = frame_of(authenticated)["data"]
        assert body["success"] is True
        assert body["user_id"] == "user_123"
        assert body["organization_id"] == "org_123"

        stdin.write(b'{"event":"subscribe","data":{"channels":["kpi"]},"id":1}\n')
        await stdin.drain()
        ack = frame_of(await wscat.read_until(frame_named("ack", 1)))
        assert ack["data"] == {"success": True, "subscriptions": ["kpi:org:org_123"]}

        response = await api.post("/api/ws/broadcast/kpi", json=kpi("org_123"))
        assert response.status_code == 200, response.text
        assert response.json()["recipients"] == 1

    update = frame_of(await wscat.read_until(frame_named("kpi:update")))
    assert update["data"]["id"] == response.json()["message_id"]
    assert update["data"]["target"]["organization_id"] == "org_123"

    stdin.close()  # end of input: wscat closes the socket and exits
    assert await wscat.wait() == 0, wscat.lines


async def test_wscat_execute_runs_the_seed_line(node: str, make_server, spawn) -> None:
    server: ReferenceServer = await make_server()
    url = f"ws://127.0.0.1:{server.port}/ws"
    # stdin stays open: wscat quits at the end of its input, even with --execute.
    wscat = await spawn(
        node, str(WSCAT), "-c", url, "-x", SEED_AUTHENTICATE, "-w", "0.5", stdin=True
    )
    line = await wscat.read_until(frame_named("authenticated"))
    body = frame_of(line)["data"]
    assert body["success"] is True
    assert body["organization_id"] == "org_123"
    assert await wscat.wait() == 0, wscat.lines
