"""The rich dashboard: its state fed with real messages, its rendering, and ``make demo``."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from client_sdk import AuthenticationError, ConnectionState, IntradayClient, Message
from client_sdk.dashboard import (
    AlertRow,
    BacklogRow,
    DashboardState,
    KpiRow,
    render,
    run_dashboard,
)
from client_sdk.gaps import Gap, GapReason
from client_sdk.protocol import AlertStatus, Payload, Severity
from reference_server.app import ReferenceServer
from tests.conftest import ServerFactory, eventually, kpi
from tests.sdk.conftest import fast_config

ROOT = Path(__file__).resolve().parents[2]


def full_kpi(queue: str, **extra: Any) -> dict[str, Any]:
    return kpi(
        "org_a",
        queue,
        department_id="care",
        service_level={"current": 78.5, "target": 80},
        headcount_gap={"required": 12, "scheduled": 9.5, "gap": -2.5},
        sla_risk={"level": "high", "score": 71},
        **extra,
    )


def backlog(queue: str, **extra: Any) -> dict[str, Any]:
    return {
        "organization_id": "org_a",
        "department_id": "care",
        "queue_name": queue,
        "timestamp": "2026-11-25T10:30:00Z",
        "total_items": 42,
        "oldest_item_age_seconds": 754.0,
        "sla_breaches": 3,
        **extra,
    }


def alert(alert_id: str, severity: str, rule: str, **extra: Any) -> dict[str, Any]:
    return {
        "organization_id": "org_a",
        "department_id": "care",
        "queue_name": "support",
        "timestamp": "2026-11-25T10:31:00Z",
        "alert_id": alert_id,
        "rule_name": rule,
        "severity": severity,
        **extra,
    }


def unsubscribed(client: IntradayClient) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return client.statistics().subscriptions == 0

    return check


def text_of(state: DashboardState, width: int = 120) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(render(state))
    return console.export_text()


async def feed(server: ReferenceServer, api: httpx.AsyncClient) -> DashboardState:
    """A DashboardState fed by a real client with what the API broadcasts."""
    state = DashboardState(organization_id="org_a", url=server.url)
    applied = asyncio.Condition()

    async def apply(message: Message[Payload]) -> None:
        async with applied:
            state.apply(message)
            applied.notify_all()

    async with IntradayClient(fast_config(server.url, user_id="viewer")) as client:
        client.state_changes.subscribe(state.set_connection)
        client.add_listener("*", apply)
        await client.subscribe(["all"])
        posts = [
            ("kpi", full_kpi("support")),
            ("kpi", kpi("org_a", "billing", department_id="care", health_score=55)),
            ("backlog", backlog("support")),
            ("alert", alert("a-1", "critical", "service_level_breach")),
            ("alert", alert("a-2", "medium", "long_wait")),
            ("alert?event=alert:resolved", alert("a-2", "medium", "long_wait")),
        ]
        for route, body in posts:
            response = await api.post(f"/api/ws/broadcast/{route}", json=body)
            assert response.status_code == 200, response.text
        async with applied:
            await asyncio.wait_for(applied.wait_for(lambda: state.messages == len(posts)), 5)
        state.round_trip = await client.ping()
        assert state.connection is ConnectionState.AUTHENTICATED
    return state


async def test_state_fed_with_real_messages_holds_queues_kpis_and_alerts(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    state = await feed(server, api)
    support = state.kpis["care/support"]
    assert (support.utilization, support.service_level, support.health_score) == (85, 78.5, 90)
    assert support.headcount_gap == -2.5
    assert support.sla_risk is Severity.HIGH
    assert state.kpis["care/billing"].health_score == 55
    row = state.backlogs["care/support"]
    assert (row.total_items, row.oldest_item_age_seconds, row.sla_breaches) == (42, 754, 3)
    assert state.alert_events == 3
    assert state.open_alerts == 1
    latest = state.latest_alerts()
    assert [(a.alert_id, a.status) for a in latest] == [
        ("a-2", AlertStatus.RESOLVED),
        ("a-1", AlertStatus.TRIGGERED),
    ]
    assert state.connection is ConnectionState.DISCONNECTED  # the client closed


async def test_render_shows_queues_kpis_backlog_and_the_alert_count(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    state = await feed(server, api)
    text = text_of(state)
    lines = text.splitlines()
    assert "intraday-live · org_a" in text
    assert "disconnected" in text
    assert "round trip -" in text  # unknown once disconnected
    kpi_line = next(line for line in lines if "care/support" in line and "78.5" in line)
    for cell in ("85.0", "78.5", "90", "-2.5", "high"):
        assert cell in kpi_line
    billing = next(line for line in lines if "care/billing" in line and "55" in line)
    assert "85.0" in billing
    assert "12m34s" in text
    assert "42" in text
    assert "Alerts: 3 events, 1 open" in text
    alert_lines = [line for line in lines if "long_wait" in line or "service_level_br" in line]
    assert len(alert_lines) == 2
    assert "resolved" in alert_lines[0]
    assert "critical" in alert_lines[1]
    # 120 columns: KPIs and backlog side by side; 80: one under the other
    assert any("KPIs by queue" in line and "Backlog by queue" in line for line in lines)
    narrow = text_of(state, width=80).splitlines()
    assert not any("KPIs by queue" in line and "Backlog by queue" in line for line in narrow)


def test_render_shows_the_connection_and_its_round_trip() -> None:
    state = DashboardState(organization_id="acme", url="http://example.test:5000")
    state.set_connection(ConnectionState.AUTHENTICATED)
    state.round_trip = 0.0123
    text = text_of(state)
    assert "authenticated" in text
    assert "round trip 12.3 ms" in text
    assert "http://example.test:5000" in text
    state.set_connection(ConnectionState.RECONNECTING)
    text = text_of(state)
    assert "reconnecting" in text
    assert "round trip -" in text
    assert "reconnects 1" in text


def test_render_of_an_empty_state_says_what_it_waits_for() -> None:
    text = text_of(DashboardState(organization_id="acme"))
    assert "waiting for kpi:update" in text
    assert "waiting for backlog:update" in text
    assert "Alerts: 0 events, 0 open" in text
    assert "no alerts yet" in text


async def test_run_dashboard_connects_subscribes_and_draws_live_messages(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    console = Console(record=True, width=120, file=io.StringIO())
    client = IntradayClient(fast_config(server.url, user_id="viewer"))
    seen = asyncio.Event()
    client.on(on_kpi_update=lambda message: seen.set())
    board = asyncio.create_task(
        run_dashboard(client, organization_id="org_a", console=console, ping_interval=0.05)
    )
    try:

        async def subscribed() -> bool:
            return "kpi:org:org_a" in client.statistics().rooms

        await eventually(subscribed)
        await api.post("/api/ws/broadcast/kpi", json=full_kpi("support"))
        await asyncio.wait_for(seen.wait(), 5)
    finally:
        board.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await board
    text = console.export_text()
    assert "authenticated" in text
    assert any("care/support" in line and "78.5" in line for line in text.splitlines())
    assert client.state is ConnectionState.AUTHENTICATED  # the caller's client stays open
    await eventually(unsubscribed(client))  # ... without the dashboard's subscriptions
    await client.close()


async def test_run_dashboard_stops_after_its_duration(server: ReferenceServer) -> None:
    console = Console(record=True, width=120, file=io.StringIO())
    async with IntradayClient(fast_config(server.url, user_id="viewer")) as client:
        state = await run_dashboard(client, organization_id="org_a", duration=0.2, console=console)
        assert state.connection is ConnectionState.AUTHENTICATED
        await eventually(unsubscribed(client))
    assert "intraday-live · org_a" in console.export_text()


async def test_run_dashboard_raises_rejected_credentials(make_server: ServerFactory) -> None:
    server = await make_server(auth_mode="jwt", jwt_secret="s" * 32)
    client = IntradayClient(fast_config(server.url, user_id="viewer"))
    console = Console(record=True, width=120, file=io.StringIO())
    with pytest.raises(AuthenticationError):
        await run_dashboard(client, organization_id="org_a", duration=30, console=console)
    assert "failed" in console.export_text()
    await client.close()


async def test_the_dashboard_command_exits_2_on_rejected_credentials(
    make_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    from client_sdk.cli import main

    server = await make_server(auth_mode="jwt", jwt_secret="s" * 32)
    argv = ["dashboard", "--url", server.url, "--org", "org_a", "--duration", "30"]
    assert await asyncio.to_thread(main, argv) == 2
    assert "AUTH_FAILED" in capsys.readouterr().err


async def test_demo_runs_the_dashboard_and_stops_by_itself() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reference_server.cli",
        "demo",
        "--port",
        "0",
        "--duration",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "120"},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 40)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = out.decode()
    assert process.returncode == 0, err.decode()[-2000:]
    assert "KPIs by queue" in text
    assert "customer_care/support" in text  # a KPI row of the simulated acme
    assert "authenticated" in text
    assert "Traceback" not in err.decode()


def test_the_header_shows_the_age_of_the_data() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    state = DashboardState(organization_id="acme")
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(render(state, now=now))
    assert "no data yet" in console.export_text()
    state.received_at = now - timedelta(seconds=12)
    console.print(render(state, now=now))
    assert "updated 12s ago" in console.export_text()


def test_the_header_shows_the_last_error_while_not_connected() -> None:
    state = DashboardState(organization_id="acme", connection=ConnectionState.CONNECTING)
    state.last_error = "connect to http://x:1: connection refused: is the server running?"
    assert "last error: connect to http://x:1: connection refused" in text_of(state)


@pytest.mark.parametrize("width", [80, 100, 120, 160])
async def test_no_cell_is_cut_at_common_widths(
    server: ReferenceServer, api: httpx.AsyncClient, width: int
) -> None:
    state = await feed(server, api)
    text = text_of(state, width=width)
    assert "…" not in text, text
    assert "Oldest" in text
    assert "service_level_breach" in text


async def test_run_dashboard_shows_why_it_cannot_connect() -> None:
    with contextlib.closing(__import__("socket").socket()) as dead:
        dead.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{dead.getsockname()[1]}"
        client = IntradayClient(
            url=url, user_id="u", organization_id="acme", reconnection_delay=0.05,
            reconnection_delay_max=0.05, reconnection_attempts=None,
        )  # fmt: skip
        console = Console(record=True, width=120, file=io.StringIO())
        try:
            await run_dashboard(client, organization_id="acme", duration=1.0, console=console)
        finally:
            await client.close()
    text = console.export_text()
    assert "last error: connect to" in text
    assert "connection refused" in text


def test_a_gap_is_a_banner_in_the_header() -> None:
    state = DashboardState(organization_id="acme", connection=ConnectionState.AUTHENTICATED)
    assert "gap:" not in text_of(state)
    gap = Gap("kpi:acme", 41, "e1", GapReason.EPOCH_CHANGED)
    state.record_gap(gap, now=datetime(2026, 11, 25, 10, 30, tzinfo=UTC))
    assert "gap: 10:30:00 messages of kpi:acme may be missing (epoch_changed)" in text_of(state)


def _busy_state(queues: int = 4, alerts: int = 10) -> DashboardState:
    state = DashboardState(organization_id="acme", connection=ConnectionState.AUTHENTICATED)
    for n in range(queues):
        state.kpis[f"care/queue_{n}"] = KpiRow(utilization=80 + n, health_score=90)
        state.backlogs[f"care/queue_{n}"] = BacklogRow(total_items=10 + n)
    stamp = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    for n in range(alerts):
        state.alerts[f"a-{n}"] = AlertRow(
            f"a-{n}", Severity.CRITICAL, f"rule_{n}", "care/queue_0", AlertStatus.TRIGGERED, stamp
        )
    return state


@pytest.mark.parametrize(("width", "height"), [(80, 24), (100, 30), (120, 24)])
def test_a_short_terminal_still_shows_the_latest_alerts(width: int, height: int) -> None:
    # Issue 21 item 11: at 80x24 the frame was taller than the terminal and
    # rich cut its bottom, the alerts table.
    state = _busy_state()
    console = Console(record=True, width=width, height=height, file=io.StringIO())
    console.print(render(state, height=height))
    lines = console.export_text().splitlines()
    assert len(lines) <= height, "\n".join(lines)
    text = "\n".join(lines)
    assert "Alerts: 0 events, 10 open" in text
    for latest in ("rule_9", "rule_8", "rule_7"):  # latest first, at least three
        assert latest in text, text
    assert "…" not in text, text


def test_without_a_height_everything_is_drawn() -> None:
    text = text_of(_busy_state(queues=12), width=80)
    assert all(f"queue_{n}" in text for n in range(12))
    assert "more" not in text


async def test_an_operators_disconnect_ends_the_dashboard_command_with_status_3(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    # Issue 21 item 4: after a kick the dashboard showed "disconnected" for ever.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client_sdk.cli", "dashboard", "--url", server.url,
        "--org", "org_a", "--duration", "60",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "COLUMNS": "120"},
    )  # fmt: skip
    try:

        async def connected() -> bool:
            return bool((await api.get("/api/ws/connections")).json()["connections"])

        await eventually(connected, timeout=30)
        [connection] = (await api.get("/api/ws/connections")).json()["connections"]
        await api.delete(f"/api/ws/connections/{connection['socket_id']}")
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 3, err.decode()
    assert "the server ended the connection" in err.decode()
    assert "Traceback" not in err.decode()
