"""A live web dashboard in NiceGUI, fed by the SDK's hooks: KPI tiles, the backlog, the alert bell.

NiceGUI runs on asyncio (FastAPI and uvicorn underneath), so the SDK's client
and its hooks live in the dashboard's own event loop: no thread, no queue in
between. The page redraws itself from the hooks' keyed views twice a second.

::

    pip install -e '.[server,web]'            # from a checkout
    intraday-live-server serve --simulate     # a server with a simulated feed, on port 5000
    python examples/web_dashboard.py          # then open http://127.0.0.1:8080

Environment: ``INTRADAY_URL`` (default http://127.0.0.1:5000), ``INTRADAY_ORG``
(acme), ``PORT`` (8080).
"""

from __future__ import annotations

import os
from typing import Any

from nicegui import app, ui

from client_sdk import IntradayClient
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


async def start() -> None:
    """Connect and observe the hooks (each one subscribes on the server)."""
    await client.connect()
    for hook in (kpis, backlogs, alerts):
        observing.append(hook.subscribe(lambda _: None))


async def stop() -> None:
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


@ui.page("/")
def index() -> None:
    """The dashboard page: one per browser tab, all fed by the same hooks."""
    with ui.row().classes("items-center w-full"):
        ui.label(f"intraday-live · {ORG}").classes("text-h5")
        state = ui.label().props("data-testid=state")
        ui.space()
        with ui.button(icon="notifications").props("flat round data-testid=bell"):
            bell = ui.badge("0", color="red").props("floating data-testid=alert-count")
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
        state.text = f"● {client.state}"
        bell.text = str(alerts.alert_count)
        tiles.clear()
        with tiles:
            for key, message in sorted(kpis.by_queue.items(), key=lambda item: str(item[0])):
                kpi = message.payload
                if not isinstance(kpi, KpiPayload):
                    continue
                with ui.card().props("data-testid=kpi-tile").classes("w-56"):
                    ui.label(_queue(key)).classes("text-subtitle1")
                    health = "-" if kpi.health_score is None else f"{kpi.health_score:.0f}"
                    ui.label(f"health {health}").classes(
                        f"text-h4 text-{_health_color(kpi.health_score)}"
                    )
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
