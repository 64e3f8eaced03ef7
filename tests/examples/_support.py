"""Helpers of the example tests: load an example by path, wait on conditions, and the
outside world the examples talk to (a webhook endpoint, a reference server subprocess)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from aiohttp import web

from client_sdk import AdminClient

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
WAIT = 20.0
"""Bound of every wait: subprocesses import pydantic, socketio... on a busy 2-core machine."""


def load_example(relative: str) -> ModuleType:
    """Import ``examples/<relative>`` (the examples are scripts, not a package)."""
    path = EXAMPLES / relative
    name = "example_" + path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


async def eventually(
    condition: Callable[[], Any],
    *,
    timeout: float = WAIT,
    what: str = "",
    unless_done: asyncio.Task[Any] | None = None,
) -> Any:
    """Poll ``condition`` (sync or async) until truthy; fail after ``timeout`` seconds.

    ``unless_done``: the example's task; if it ends first, its error is raised
    instead of waiting out the timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if unless_done is not None and unless_done.done():
            unless_done.result()  # raises the example's error, if any
            raise AssertionError(f"the example stopped before {what or condition}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or condition}")
        await asyncio.sleep(0.05)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a JSON-lines file (nothing if it does not exist yet)."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n")]


async def subscribed(admin: AdminClient, room_prefix: str) -> bool:
    """Whether some connection of the server holds a room starting with ``room_prefix``."""
    connections = await admin.connections()
    return any(
        room.startswith(room_prefix)
        for connection in connections.connections
        for room in connection.subscriptions
    )


class WebhookRecorder:
    """A local HTTP endpoint that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.url = ""

    async def _receive(self, request: web.Request) -> web.Response:
        self.posts.append(await request.json())
        return web.json_response({"ok": True})

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls) -> AsyncIterator[WebhookRecorder]:
        recorder = cls()
        app = web.Application()
        app.router.add_post("/hook", recorder._receive)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        recorder.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
        try:
            await web.SockSite(runner, sock).start()
            yield recorder
        finally:
            await runner.cleanup()
            sock.close()
