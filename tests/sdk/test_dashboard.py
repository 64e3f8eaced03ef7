"""The rich dashboard: its state fed with real messages, its rendering, and ``make demo``."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from client_sdk import AuthenticationError, ConnectionState, IntradayClient, Message
from client_sdk.dashboard import DashboardState, render, run_dashboard
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
