"""A live web dashboard in NiceGUI, fed by the SDK's hooks: KPI tiles, the backlog, the alert bell.

NiceGUI runs on asyncio (FastAPI and uvicorn underneath), so the SDK's client
and its hooks live in the dashboard's own event loop: no thread, no queue in
between. The page redraws itself from the hooks' keyed views twice a second.

It says what it is missing: until connected, why the last attempt failed
(``statistics().last_error``: refused, HTTP 404, TLS...); when the server
goes away, the tiles turn grey and the header gives the age of the data; if
the server ends the connection on purpose (an operator's disconnect), a line
says so, as the client does not come back by itself.

::

    pip install -e '.[server,web]'            # from a checkout
    intraday-live-server serve --simulate     # a server with a simulated feed, on port 5000
    python examples/web_dashboard.py          # then open http://127.0.0.1:8080

Environment: ``INTRADAY_URL`` (default http://127.0.0.1:5000), ``INTRADAY_ORG``
(acme), ``PORT`` (8080).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from nicegui import app, ui

from client_sdk import ConnectionState, IntradayClient
from client_sdk.hooks import alert_notifications, backlog_updates, kpi_updates
from client_sdk.protocol import BacklogPayload, KpiPayload

URL = os.environ.get("INTRADAY_URL", "http://127.0.0.1:5000")
ORG = os.environ.get("INTRADAY_ORG", "acme")
PORT = int(os.environ.get("PORT", "8080"))

client = IntradayClient(
    url=URL, user_id="web-dashboard", organization_id=ORG, reconnection_attempts=None
)
kpis = kpi_updates(client, organization_id=ORG)
backlogs = backlog_updates(client, organization_id=ORG)
alerts = alert_notifications(client, organization_id=ORG)
observing: list[Any] = []
connecting: list[asyncio.Task[None]] = []
ended: list[str] = []
"""Why the server ended the connection for good, once it has."""


def _on_disconnect(reason: str) -> None:
    if client.state is ConnectionState.DISCONNECTED:  # not retried: the server's decision
        ended.append(f"the server ended the connection ({reason}); not reconnecting")
        print(f"web_dashboard: {ended[-1]}", file=sys.stderr, flush=True)


async def _connect() -> None:
    try:
        await client.connect()  # retries for ever; the page shows each failure's cause
    except Exception as exc:  # refused credentials: said on the page
        print(f"web_dashboard: {exc}", file=sys.stderr, flush=True)


async def start() -> None:
    """Observe the hooks (each one subscribes on the server once connected) and connect.

    The connection is made in the background: the page serves (and says why
    it is not connected) while the server cannot be reached.
    """
    client.on(on_disconnect=_on_disconnect)
    for hook in (kpis, backlogs, alerts):
        observing.append(hook.subscribe(lambda _: None))
    connecting.append(asyncio.create_task(_connect()))


async def stop() -> None:
    for task in connecting:
        task.cancel()
    for observer in observing:
        observer.dispose()
    await client.close()


app.on_startup(start)
app.on_shutdown(stop)


def _queue(key: tuple[str | None, str | None]) -> str:
    return "/".join(part for part in key if part) or ORG


def _health_color(score: float | None) -> str:
    if score is None:
        return "grey"
    return "positive" if score >= 80 else "warning" if score >= 60 else "negative"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "no data yet"
    return f"data {seconds:.0f} s old" if seconds >= 1 else "data live"


def _problem() -> str:
    """What keeps the page from being live, in one line ("" when it is live)."""
    if ended:
        return ended[-1]
    if client.failure is not None:
        return f"failed: {client.failure}"
    if client.state is ConnectionState.AUTHENTICATED:
        return ""
    last_error = client.statistics().last_error
    return f"last error: {last_error}" if last_error is not None else ""


@ui.page("/")
def index() -> None:
    """The dashboard page: one per browser tab, all fed by the same hooks."""
    with ui.row().classes("items-center w-full"):
        ui.label(f"intraday-live · {ORG}").classes("text-h5")
        state = ui.label().props("data-testid=state")
        age = ui.label().props("data-testid=age").classes("text-grey")
        ui.space()
        with ui.button(icon="notifications").props("flat round data-testid=bell"):
            bell = ui.badge("0", color="red").props("floating data-testid=alert-count")
    problem = ui.label().props("data-testid=problem").classes("text-negative")
    tiles = ui.row().classes("w-full")
    columns = [
        {"name": "queue", "label": "Queue", "field": "queue", "align": "left"},
        {"name": "items", "label": "Items", "field": "items"},
        {"name": "oldest", "label": "Oldest (s)", "field": "oldest"},
        {"name": "breaches", "label": "SLA breaches", "field": "breaches"},
    ]
    ui.label("Backlog").classes("text-h6")
    backlog = ui.table(columns=columns, rows=[], row_key="queue").props("data-testid=backlog")
    latest_alert = ui.label().props("data-testid=latest-alert")

    def refresh() -> None:
        live = client.state is ConnectionState.AUTHENTICATED
        state.text = f"● {client.state}"
        age.text = _age(client.statistics().last_event_age_seconds)
        problem.text = _problem()
        bell.text = str(alerts.alert_count)
        tiles.clear()
        with tiles:
            for key, message in sorted(kpis.by_queue.items(), key=lambda item: str(item[0])):
                kpi = message.payload
                if not isinstance(kpi, KpiPayload):
                    continue
                # Not live: the figures are the last ones known, greyed out and marked.
                card = ui.card().props(f"data-testid=kpi-tile data-stale={str(not live).lower()}")
                with card.classes("w-56" if live else "w-56 opacity-50 grayscale"):
                    ui.label(_queue(key)).classes("text-subtitle1")
                    health = "-" if kpi.health_score is None else f"{kpi.health_score:.0f}"
                    color = _health_color(kpi.health_score if live else None)
                    ui.label(f"health {health}").classes(f"text-h4 text-{color}")
                    if kpi.utilization is not None:
                        ui.label(f"utilization {kpi.utilization.current_utilization:.1f}%")
                    if kpi.service_level is not None:
                        ui.label(f"service level {kpi.service_level.current:.1f}%")
        rows: list[dict[str, Any]] = []
        for key, entry in sorted(backlogs.by_queue.items(), key=lambda item: str(item[0])):
            payload = entry.payload
            if isinstance(payload, BacklogPayload):
                rows.append(
                    {
                        "queue": _queue(key),
                        "items": payload.total_items,
                        "oldest": payload.oldest_item_age_seconds,
                        "breaches": payload.sla_breaches,
                    }
                )
        backlog.rows = rows
        backlog.update()
        if alerts.recent:
            alert = alerts.recent[-1].payload
            latest_alert.text = f"latest alert: [{alert.severity}] {alert.rule_name}"

    refresh()
    ui.timer(0.5, refresh)


if __name__ in {"__main__", "__mp_main__"}:
    ui.run(
        host="127.0.0.1", port=PORT, title=f"intraday-live · {ORG}", reload=False, show=False,
        show_welcome_message=False,
    )  # fmt: skip
