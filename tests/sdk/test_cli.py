"""``intraday-live listen``: as a subprocess against a server in the test's loop, and in-process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from client_sdk import Channel, ClientConfig
from client_sdk.cli import listen, main
from client_sdk.protocol import Scope
from reference_server.app import ReferenceServer
from tests.conftest import ServerFactory, kpi

WAIT = 10.0  # a subprocess imports pydantic, socketio... on a busy 2-core machine
ROOT = Path(__file__).resolve().parents[2]


class Listener:
    """``python -m client_sdk.cli listen ...`` with its output read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.errors: list[str] = []

    async def stderr_until(self, text: str) -> list[str]:
        """Read stderr lines until one contains ``text``."""
        assert self.process.stderr is not None

        async def read() -> None:
            assert self.process.stderr is not None
            while not any(text in line for line in self.errors):
                line = await self.process.stderr.readline()
                if not line:
                    raise AssertionError(f"{text!r} never came; stderr: {self.errors}")
                self.errors.append(line.decode())

        await asyncio.wait_for(read(), WAIT)
        return self.errors

    async def stdout_line(self) -> str:
        assert self.process.stdout is not None
        return (await asyncio.wait_for(self.process.stdout.readline(), WAIT)).decode()

    async def exit_status(self) -> int:
        """The exit status, stderr read meanwhile: a process blocked writing to a full
        pipe that nobody reads would never exit."""
        assert self.process.stderr is not None
        stderr = self.process.stderr

        async def drain() -> None:
            while line := await stderr.readline():
                self.errors.append(line.decode())

        try:
            await asyncio.wait_for(asyncio.gather(drain(), self.process.wait()), WAIT)
        except TimeoutError:
            raise AssertionError(f"still running {WAIT} s later; stderr: {self.errors}") from None
        assert self.process.returncode is not None
        return self.process.returncode

    async def rest_of_stderr(self) -> str:
        assert self.process.stderr is not None
        rest = await asyncio.wait_for(self.process.stderr.read(), WAIT)
        return "".join(self.errors) + rest.decode()


@contextlib.asynccontextmanager
async def run_listen(*args: str) -> AsyncIterator[Listener]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "client_sdk.cli",
        "listen",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield Listener(process)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_listen_prints_each_envelope_as_one_json_line_and_exits_0_on_ctrl_c(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    async with run_listen(
        "--url", server.url, "--org", "org_a", "--channels", "kpi,alerts",
        "--queue", "support", "--json", "--duration", "60",
    ) as listener:  # fmt: skip
        await listener.stderr_until("subscribed to kpi,alerts")
        await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", "billing"))  # filtered out
        sent = (await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", "support"))).json()
        envelope = json.loads(await listener.stdout_line())
        assert envelope["id"] == sent["message_id"]
        assert envelope["event"] == "kpi:update"
        assert envelope["channel"] == "kpi"
        assert envelope["target"]["queue_name"] == "support"
        assert envelope["data"]["health_score"] == 90
        listener.process.send_signal(signal.SIGINT)
        assert await listener.exit_status() == 0
        assert "Traceback" not in await listener.rest_of_stderr()


async def test_listen_stops_by_itself_after_its_duration(server: ReferenceServer) -> None:
    async with run_listen("--url", server.url, "--org", "org_a", "--duration", "2") as listener:
        assert await listener.exit_status() == 0
        assert "Traceback" not in await listener.rest_of_stderr()


async def test_rejected_credentials_exit_2_with_the_servers_reason(
    make_server: ServerFactory,
) -> None:
    server = await make_server(auth_mode="jwt", jwt_secret="s" * 32)
    async with run_listen("--url", server.url, "--org", "org_a", "--duration", "60") as listener:
        assert await listener.exit_status() == 2
        errors = await listener.rest_of_stderr()
        assert "AUTH_FAILED" in errors
        assert "Traceback" not in errors


@pytest.mark.parametrize(
    "argv",
    [
        ["listen", "--org", "org_a"],  # no --url
        ["listen", "--url", "http://127.0.0.1:1"],  # no --org
        ["listen", "--url", "http://127.0.0.1:1", "--org", "org_a", "--channels", "nope"],
        ["listen", "--url", "http://127.0.0.1:1", "--org", "org:a"],
        ["listen", "--url", "http://127.0.0.1:1", "--org", "org_a", "--queue", "a b"],
        ["listen", "--url", "ftp://127.0.0.1:1", "--org", "org_a"],
        ["listen", "--url", "http://127.0.0.1:1", "--org", "org_a", "--duration", "-1"],
        ["shout"],
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        status = main(argv)
    except SystemExit as exit:  # argparse's own errors
        status = exit.code  # type: ignore[assignment]
    assert status == 2
    assert "error:" in capsys.readouterr().err


class Output(io.StringIO):
    """A text stream that wakes waiters on every write."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        self.changed.set()
        return written

    async def wait_for(self, text: str) -> str:
        async def until() -> None:
            while text not in self.getvalue():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), 5)
        return self.getvalue()


async def test_listen_prints_one_readable_line_per_event(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    out, err = Output(), Output()
    config = ClientConfig(url=server.url, user_id="listener", organization_id="org_a")
    task = asyncio.create_task(
        listen(config, (Channel.KPI,), Scope(queue_name="support"), out=out, err=err)
    )
    try:
        await err.wait_for("subscribed to kpi")
        await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", "support"))
        line = (await out.wait_for("\n")).splitlines()[0]
        assert "kpi:update" in line
        assert "org_a/support" in line
        assert "util=85.0%" in line
        assert "health=90" in line
        assert "authenticated" in err.getvalue()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_listen_since_last_resumes_where_the_last_run_stopped(
    server: ReferenceServer, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """What was published between two runs comes first, marked (replayed)."""
    resume = str(tmp_path / "listen.resume")
    args = ("--url", server.url, "--org", "org_a", "--channels", "kpi", "--since-last", resume)
    async with run_listen(*args) as first:
        await first.stderr_until("subscribed to kpi")
        await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", health_score=11))
        live = await first.stdout_line()
        assert "11" in live, live
        assert "(replayed)" not in live, live
        first.process.send_signal(signal.SIGINT)
        assert await first.exit_status() == 0
    for score in (22, 33):  # while nobody listens
        await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", health_score=score))
    async with run_listen(*args) as again:
        lines = [await again.stdout_line(), await again.stdout_line()]
        assert all(line.rstrip().endswith("(replayed)") for line in lines), lines
        assert ["22" in lines[0], "33" in lines[1]] == [True, True], lines
        again.process.send_signal(signal.SIGINT)
        assert await again.exit_status() == 0
        assert "Traceback" not in await again.rest_of_stderr()


async def test_an_operators_disconnect_ends_listen_saying_so_with_status_3(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    # Issue 21 item 4: a kicked listen printed "disconnected" and idled for ever.
    async with run_listen("--url", server.url, "--org", "org_a", "--duration", "60") as listener:
        await listener.stderr_until("subscribed to")
        [connection] = (await api.get("/api/ws/connections")).json()["connections"]
        response = await api.delete(f"/api/ws/connections/{connection['socket_id']}")
        assert response.status_code == 200
        assert await listener.exit_status() == 3
        errors = await listener.rest_of_stderr()
        [line] = [line for line in errors.splitlines() if "ended the connection" in line]
        assert "the server" in line, line
        assert "not reconnecting" in line, line
        assert "Traceback" not in errors


async def test_sigterm_stops_listen_cleanly_and_keeps_its_resume_file(
    server: ReferenceServer, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    # Without a handler SIGTERM exited 143 before the client closed.
    resume = tmp_path / "listen.resume"
    args = ("--url", server.url, "--org", "org_a", "--channels", "kpi", "--since-last", str(resume))
    async with run_listen(*args) as listener:
        await listener.stderr_until("subscribed to kpi")
        await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", health_score=11))
        assert "11" in await listener.stdout_line()
        listener.process.send_signal(signal.SIGTERM)
        assert await listener.exit_status() == 0
        errors = await listener.rest_of_stderr()
        assert "stopped by SIGTERM" in errors
        assert "Traceback" not in errors
    assert resume.stat().st_size > 0
