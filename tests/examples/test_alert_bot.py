"""``examples/alert_bot.py`` against a reference server subprocess that is killed and restarted."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from client_sdk import AdminClient, AuthenticationError
from client_sdk.protocol import ServerEvent
from client_sdk.testing import running_server
from tests.examples._support import (
    EXAMPLES,
    ROOT,
    WAIT,
    WebhookRecorder,
    eventually,
    load_example,
    read_jsonl,
    subscribed,
)
from tests.processes import ServerProcess, free_port

bot = load_example("alert_bot.py")

ORG = "org_a"
TOKEN = "alert-bot-test-token"


def alert(alert_id: str, queue: str, severity: str, org: str = ORG) -> dict[str, Any]:
    return {
        "organization_id": org,
        "queue_name": queue,
        "timestamp": "2026-11-25T10:30:00Z",
        "alert_id": alert_id,
        "rule_name": "sla_risk",
        "severity": severity,
        "message": f"{alert_id} on {queue}",
    }


def ids(lines: list[dict[str, Any]], kind: str) -> list[str]:
    return [line["alert_id"] for line in lines if line["kind"] == kind]


@pytest.mark.timeout(120)  # two server subprocess starts on a shared 2-core machine
async def test_alert_bot_filters_throttles_posts_and_survives_a_restart(tmp_path: Path) -> None:
    log = tmp_path / "incidents.jsonl"
    server = ServerProcess(free_port(), args=["--admin-token", TOKEN], log=tmp_path / "server.log")
    async with WebhookRecorder.running() as webhook, server:
        options = bot.parse_args(
            ["--url", server.url, "--org", ORG, "--webhook", webhook.url, "--log", str(log),
             "--throttle", "60", "--max-retry-delay", "0.5", "--duration", "100"]
        )  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(bot.run_bot(options, stop))

        def notified(alert_id: str) -> bool:
            return alert_id in ids(read_jsonl(log), "notified")

        try:
            async with AdminClient(server.url, token=TOKEN) as admin:
                await eventually(
                    lambda: subscribed(admin, f"alerts:org:{ORG}"),
                    what="the bot subscribed",
                    unless_done=task,
                )
                await admin.publish_alert(alert("a1", "support", "high"))  # posted
                await admin.publish_alert(alert("a2", "support", "critical"))  # throttled
                await admin.publish_alert(alert("l1", "billing", "low"))  # not serious
                await admin.publish_alert(alert("m1", "billing", "medium"))  # not serious
                await admin.publish_alert(alert("b1", "billing", "critical"))  # posted
                await admin.publish_alert(  # not news
                    alert("r1", "returns", "high"), event=ServerEvent.ALERT_RESOLVED
                )
                await admin.publish_alert(  # posted: escalations count
                    alert("e1", "returns", "critical"), event=ServerEvent.ALERT_ESCALATED
                )
                await admin.publish_alert(alert("x1", "tier1", "critical", org="org_b"))  # not ours
                await admin.publish_alert(alert("s1", "tier1", "high"))  # posted, the last
                await eventually(lambda: notified("s1"), what="s1 posted", unless_done=task)

            # Messages arrive in order, so everything before s1 has been handled.
            assert [post["alert"]["alert_id"] for post in webhook.posts] == ["a1", "b1", "e1", "s1"]
            first = webhook.posts[0]
            assert first["text"] == "[HIGH] sla_risk on support: a1 on support"
            assert first["alert"]["severity"] == "high"
            assert first["alert"]["event"] == "alert:triggered"
            lines = read_jsonl(log)
            assert ids(lines, "alert") == ["a1", "a2", "b1", "e1", "s1"]
            assert ids(lines, "notified") == ["a1", "b1", "e1", "s1"]
            assert {line["status"] for line in lines if line["kind"] == "notified"} == {200}
            assert not [line for line in lines if line["kind"] == "outage"]

            # An outage: the server dies and comes back on the same port.
            await server.kill()
            await server.start()
            outage = await eventually(
                lambda: [line for line in read_jsonl(log) if line["kind"] == "outage"],
                what="the outage logged",
                unless_done=task,
            )
            assert len(outage) == 1
            assert outage[0]["disconnected_at"] <= outage[0]["reconnected_at"]
            assert "replayed" in outage[0]["note"]
            # The server kept its log in memory: what it lost is a real gap, said once.
            gaps = await eventually(
                lambda: [line for line in read_jsonl(log) if line["kind"] == "gap"],
                what="the gap logged",
                unless_done=task,
            )
            assert [gap["reason"] for gap in gaps] == ["epoch_changed"], gaps

            async with AdminClient(server.url, token=TOKEN) as admin:
                await eventually(
                    lambda: subscribed(admin, f"alerts:org:{ORG}"),
                    what="the subscription restored on the new server",
                    unless_done=task,
                )
                await admin.publish_alert(alert("n1", "after_restart", "critical"))
                await eventually(lambda: notified("n1"), what="n1 posted", unless_done=task)
            assert webhook.posts[-1]["alert"]["alert_id"] == "n1"
            assert not task.done()
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)


async def test_as_a_script_without_webhook_it_prints_and_stops_on_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "incidents.jsonl"
    async with running_server(admin_token=TOKEN) as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLES / "alert_bot.py"), "--duration", "60",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "INTRADAY_URL": server.url,
                 "INTRADAY_ORG": ORG, "ALERT_BOT_LOG": str(log)},
        )  # fmt: skip
        try:
            assert "watching org_a's alerts" in await read_line_with(process, "watching")
            async with server.admin() as admin:
                await admin.publish_alert(alert("c1", "support", "critical"))
            line = await read_line_with(process, "[CRITICAL]")
            assert line.strip() == "[CRITICAL] sla_risk on support: c1 on support"
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), WAIT) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    lines = read_jsonl(log)
    assert ids(lines, "alert") == ["c1"]
    assert [line.get("via") for line in lines if line["kind"] == "notified"] == ["stdout"]


async def test_duration_ends_the_run(tmp_path: Path) -> None:
    async with running_server() as server:
        options = bot.parse_args(
            ["--url", server.url, "--org", ORG, "--log", str(tmp_path / "log.jsonl"),
             "--duration", "0.5"]
        )  # fmt: skip
        await asyncio.wait_for(bot.run_bot(options), WAIT)  # returns by itself


async def read_line_with(process: asyncio.subprocess.Process, text: str) -> str:
    """The first stdout line of ``process`` containing ``text`` (bounded wait)."""
    assert process.stdout is not None
    stdout = process.stdout

    async def read() -> str:
        seen: list[str] = []
        while True:
            raw = await stdout.readline()
            if not raw:
                assert process.stderr is not None
                error = (await process.stderr.read()).decode()
                raise AssertionError(f"no line with {text!r} in {seen}; stderr: {error}")
            line = raw.decode()
            if text in line:
                return line
            seen.append(line)

    return await asyncio.wait_for(read(), WAIT)


async def test_refused_credentials_end_the_run_with_the_error(tmp_path: Path) -> None:
    # A jwt-mode server refuses the bot (it has no token): retrying cannot fix that.
    async with running_server(auth_mode="jwt", jwt_secret="s" * 32) as server:
        options = bot.parse_args(
            ["--url", server.url, "--org", ORG, "--log", str(tmp_path / "log.jsonl")]
        )
        with pytest.raises(AuthenticationError):
            await asyncio.wait_for(bot.run_bot(options), WAIT)


@contextlib.asynccontextmanager
async def bot_running(options: Any, admin: AdminClient) -> AsyncIterator[asyncio.Task[None]]:
    """The bot as a task, subscribed on entry, stopped cleanly on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(bot.run_bot(options, stop))
    try:
        await eventually(
            lambda: subscribed(admin, f"alerts:org:{ORG}"), what="subscribed", unless_done=task
        )
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)


async def test_a_restarted_bot_gets_what_it_missed_and_repeats_nothing(tmp_path: Path) -> None:
    # Issue 21 item 3: the bot said "the server does not replay" while it was
    # being replayed to, and re-notified every open alert of the snapshot.
    log = tmp_path / "incidents.jsonl"
    async with (
        WebhookRecorder.running() as webhook,
        running_server(admin_token=TOKEN) as server,
        server.admin() as admin,
    ):
        options = bot.parse_args(
            ["--url", server.url, "--org", ORG, "--webhook", webhook.url, "--log", str(log),
             "--throttle", "0"]
        )  # fmt: skip
        assert options.state == tmp_path / "incidents.jsonl.resume"
        async with bot_running(options, admin) as task:
            await admin.publish_alert(alert("a1", "support", "critical"))
            await eventually(
                lambda: "a1" in ids(read_jsonl(log), "notified"), what="a1", unless_done=task
            )
        # While the bot is away: one more on the same queue, one elsewhere.
        await admin.publish_alert(alert("a2", "support", "critical"))
        await admin.publish_alert(alert("b1", "billing", "high"))
        async with bot_running(options, admin) as task:
            await eventually(
                lambda: {"a2", "b1"} <= set(ids(read_jsonl(log), "notified")),
                what="the missed alerts posted",
                unless_done=task,
            )
    lines = read_jsonl(log)
    assert [post["alert"]["alert_id"] for post in webhook.posts] == ["a1", "a2", "b1"]
    assert ids(lines, "alert") == ["a1", "a2", "b1"]
    assert [line["replayed"] for line in lines if line["kind"] == "alert"] == [False, True, True]
    assert not [line for line in lines if line["kind"] in {"gap", "outage"}], lines


async def test_throttle_0_posts_every_alert(tmp_path: Path) -> None:
    # throttle_first refuses a window of 0 with an error: every alert was dropped.
    log = tmp_path / "incidents.jsonl"
    async with running_server(admin_token=TOKEN) as server, server.admin() as admin:
        options = bot.parse_args(
            ["--url", server.url, "--org", ORG, "--log", str(log), "--throttle", "0"]
        )
        async with bot_running(options, admin) as task:
            for n in range(3):
                await admin.publish_alert(alert(f"t{n}", "support", "critical"))
            await eventually(
                lambda: len(ids(read_jsonl(log), "notified")) == 3,
                what="three posts",
                unless_done=task,
            )
    assert ids(read_jsonl(log), "notified") == ["t0", "t1", "t2"]


async def test_an_operators_disconnect_ends_the_bot_saying_so(tmp_path: Path) -> None:
    # Issue 21 item 4: a kicked bot idled for ever in silence.
    log = tmp_path / "incidents.jsonl"
    async with running_server(admin_token=TOKEN) as server, server.admin() as admin:
        options = bot.parse_args(["--url", server.url, "--org", ORG, "--log", str(log)])
        task = asyncio.create_task(bot.run_bot(options))
        await eventually(
            lambda: subscribed(admin, f"alerts:org:{ORG}"), what="subscribed", unless_done=task
        )
        [connection] = (await admin.connections()).connections
        await admin.disconnect(connection.socket_id)
        with pytest.raises(bot.ServerEndedConnection, match="server ended the connection"):
            await asyncio.wait_for(task, WAIT)
    [ended] = [line for line in read_jsonl(log) if line["kind"] == "ended_by_server"]
    assert ended["reason"] == "server disconnect"
