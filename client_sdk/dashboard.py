"""A live terminal dashboard of one organization, with rich (the ``dashboard`` extra).

The Python twin of the console's LiveDashboard: the connection and its
round trip, a KPI table per queue, the backlog per queue, and the latest
alerts with their count. It is built in two halves so that it can be tested
without a terminal:

- :class:`DashboardState` is plain data, updated by :meth:`DashboardState.apply`
  with each :class:`~client_sdk.Message` and by the connection state;
- :func:`render` is a pure function of that state to a rich renderable.

:func:`run_dashboard` wires them to a client with the live hooks of
:mod:`client_sdk.hooks`, as the console's dashboard uses its React hooks:
``kpi_updates``, ``backlog_updates``, ``alert_notifications`` and the
``notifications`` channel feed the state, ``connection_status`` and
``health`` (a ping every few seconds) the header; a ``rich.live.Live`` is
redrawn from the event loop, so no refresh thread touches the state. Run it
with ``intraday-live dashboard``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.live import Live
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ._client import IntradayClient
from ._messages import Message
from .exceptions import ConnectionLostError, IntradayError
from .gaps import Gap
from .hooks import (
    ConnectionHealth,
    MessageHook,
    alert_notifications,
    backlog_updates,
    connection_status,
    events,
    health,
    kpi_updates,
)
from .protocol import (
    AlertPayload,
    AlertStatus,
    BacklogPayload,
    Channel,
    ConnectionState,
    KpiPayload,
    Payload,
    ServerEvent,
    Severity,
    SystemPayload,
)

__all__ = [
    "AlertRow",
    "BacklogRow",
    "DashboardState",
    "KpiRow",
    "render",
    "run_dashboard",
]

ALERT_ROWS: Final = 8
"""How many alerts the dashboard shows (latest first)."""
WIDE: Final = 120
"""Below this console width the KPI and backlog tables never stand side by side.

From it on they do when both fit at their natural width; otherwise they
are stacked, so that a cell is cut (``Olde…``) only when even one table
alone is wider than the console.
"""

ENDED_BY_SERVER: Final = (
    "the server ended the connection (server disconnect): "
    "an operator's disconnect or its limits; not reconnecting"
)
"""What :func:`run_dashboard` says when the server disconnected the client for good."""

_EVENT_STATUS: Final = {
    ServerEvent.ALERT_TRIGGERED: AlertStatus.TRIGGERED,
    ServerEvent.ALERT_ACKNOWLEDGED: AlertStatus.ACKNOWLEDGED,
    ServerEvent.ALERT_ESCALATED: AlertStatus.ESCALATED,
    ServerEvent.ALERT_RESOLVED: AlertStatus.RESOLVED,
}
_SEVERITY_STYLE: Final = {
    Severity.LOW: "green",
    Severity.MEDIUM: "yellow",
    Severity.HIGH: "bold red",
    Severity.CRITICAL: "bold white on red",
}
_STATE_STYLE: Final = {
    ConnectionState.AUTHENTICATED: "bold green",
    ConnectionState.CONNECTED: "green",
    ConnectionState.CONNECTING: "yellow",
    ConnectionState.RECONNECTING: "bold yellow",
    ConnectionState.DISCONNECTED: "dim",
    ConnectionState.FAILED: "bold red",
}


@dataclass(slots=True)
class KpiRow:
    """The latest KPIs of one queue."""

    utilization: float | None = None
    service_level: float | None = None
    service_level_target: float | None = None
    health_score: float | None = None
    headcount_gap: float | None = None
    sla_risk: Severity | None = None
    updated_at: datetime | None = None


@dataclass(slots=True)
class BacklogRow:
    """The latest backlog figures of one queue."""

    total_items: int | None = None
    oldest_item_age_seconds: float | None = None
    sla_breaches: int | None = None
    updated_at: datetime | None = None


@dataclass(slots=True)
class AlertRow:
    """One alert, at the latest step of its life the dashboard saw."""

    alert_id: str
    severity: Severity
    rule_name: str
    queue: str
    status: AlertStatus
    updated_at: datetime


def _queue_key(department_id: str | None, queue_name: str) -> str:
    return f"{department_id}/{queue_name}" if department_id else queue_name


@dataclass
class DashboardState:
    """Everything the dashboard shows; :func:`render` draws it.

    Attributes:
        organization_id: the organization watched.
        url: the server, for the header.
        connection: the client's connection state.
        round_trip: the last ping's round trip in seconds (``None``: unknown).
        messages: messages applied.
        alert_events: ``alert:*`` events received (the alert count).
        kpis: the latest KPIs by queue (``department/queue``).
        backlogs: the latest backlog by queue.
        alerts: every alert seen, least recently changed first.
        notice: the latest system message.
        received_at: when the latest message arrived (this machine's clock).
        last_error: why the latest connection attempt failed, if one did.
        gap: the latest gap (messages that may be missing), as the banner says it.
    """

    organization_id: str
    url: str = ""
    connection: ConnectionState = ConnectionState.DISCONNECTED
    round_trip: float | None = None
    reconnects: int = 0
    messages: int = 0
    alert_events: int = 0
    last_event_at: datetime | None = None
    kpis: dict[str, KpiRow] = field(default_factory=dict)
    backlogs: dict[str, BacklogRow] = field(default_factory=dict)
    alerts: OrderedDict[str, AlertRow] = field(default_factory=OrderedDict)
    notice: str | None = None
    max_alerts: int = 200
    received_at: datetime | None = None
    last_error: str | None = None
    gap: str | None = None

    def record_gap(self, gap: Gap, now: datetime | None = None) -> None:
        """Show a banner: messages of ``gap.stream`` may be missing (never hidden)."""
        at = (now or datetime.now(UTC)).strftime("%H:%M:%S")
        self.gap = f"{at} messages of {gap.stream} may be missing ({gap.reason})"

    @property
    def open_alerts(self) -> int:
        """Alerts seen and not resolved."""
        return sum(1 for row in self.alerts.values() if row.status is not AlertStatus.RESOLVED)

    def latest_alerts(self, count: int = ALERT_ROWS) -> list[AlertRow]:
        """The ``count`` most recently changed alerts, latest first."""
        return list(reversed(self.alerts.values()))[:count]

    def set_connection(self, state: ConnectionState) -> None:
        """Record a connection state (counting reconnects)."""
        if state is ConnectionState.RECONNECTING and self.connection is not state:
            self.reconnects += 1
        if state not in (ConnectionState.AUTHENTICATED, ConnectionState.CONNECTED):
            self.round_trip = None
        self.connection = state

    def apply(self, message: Message[Payload]) -> None:
        """Update the state with one message (messages of other events are counted only)."""
        self.messages += 1
        self.last_event_at = message.timestamp
        self.received_at = datetime.now(UTC)
        payload = message.payload
        if isinstance(payload, KpiPayload) and message.event is ServerEvent.KPI_UPDATE:
            self._apply_kpi(payload)
        elif isinstance(payload, BacklogPayload) and message.channel is Channel.BACKLOG:
            self._apply_backlog(payload)
        elif isinstance(payload, AlertPayload):
            self._apply_alert(message.event, payload)
        elif isinstance(payload, SystemPayload):
            self.notice = payload.message

    def _apply_kpi(self, payload: KpiPayload) -> None:
        if payload.queue_name is None:
            return  # department and organization figures are not queue rows
        row = self.kpis.setdefault(_queue_key(payload.department_id, payload.queue_name), KpiRow())
        if payload.utilization is not None:
            row.utilization = payload.utilization.current_utilization
        if payload.service_level is not None:
            row.service_level = payload.service_level.current
            row.service_level_target = payload.service_level.target
        if payload.health_score is not None:
            row.health_score = payload.health_score
        if payload.headcount_gap is not None:
            gap = payload.headcount_gap
            row.headcount_gap = gap.gap if gap.gap is not None else gap.scheduled - gap.required
        if payload.sla_risk is not None:
            row.sla_risk = payload.sla_risk.level
        row.updated_at = payload.timestamp

    def _apply_backlog(self, payload: BacklogPayload) -> None:
        if payload.queue_name is None:
            return
        key = _queue_key(payload.department_id, payload.queue_name)
        row = self.backlogs.setdefault(key, BacklogRow())
        if payload.total_items is not None:
            row.total_items = payload.total_items
        if payload.oldest_item_age_seconds is not None:
            row.oldest_item_age_seconds = payload.oldest_item_age_seconds
        if payload.sla_breaches is not None:
            row.sla_breaches = payload.sla_breaches
        row.updated_at = payload.timestamp

    def _apply_alert(self, event: ServerEvent, payload: AlertPayload) -> None:
        self.alert_events += 1
        queue = (
            _queue_key(payload.department_id, payload.queue_name)
            if payload.queue_name
            else payload.department_id or payload.organization_id
        )
        self.alerts[payload.alert_id] = AlertRow(
            alert_id=payload.alert_id,
            severity=payload.severity,
            rule_name=payload.rule_name,
            queue=queue,
            status=payload.status or _EVENT_STATUS.get(event, AlertStatus.TRIGGERED),
            updated_at=payload.timestamp,
        )
        self.alerts.move_to_end(payload.alert_id)
        while len(self.alerts) > self.max_alerts:
            self.alerts.popitem(last=False)


# -- rendering -------------------------------------------------------------------


def _number(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _health(score: float | None) -> Text:
    if score is None:
        return Text("-")
    style = "green" if score >= 80 else "yellow" if score >= 60 else "bold red"
    return Text(f"{score:.0f}", style=style)


def _severity(level: Severity | None) -> Text:
    return Text("-") if level is None else Text(str(level), style=_SEVERITY_STYLE[level])


def _header(state: DashboardState, now: datetime) -> Panel:
    rtt = "-" if state.round_trip is None else f"{state.round_trip * 1000:.1f} ms"
    if state.received_at is None:
        updated = "no data yet"
    else:
        updated = f"updated {_age(max(0.0, (now - state.received_at).total_seconds()))} ago"
    line = Text.assemble(
        ("● ", _STATE_STYLE[state.connection]),
        (str(state.connection), _STATE_STYLE[state.connection]),
        f"   round trip {rtt}",
        f"   messages {state.messages}",
        f"   reconnects {state.reconnects}",
        f"   {updated}",
    )
    if state.last_error and state.connection is not ConnectionState.AUTHENTICATED:
        line.append(f"\nlast error: {state.last_error}", style="bold red")
    elif state.last_error:
        line.append(f"\nlast error (recovered): {state.last_error}", style="dim")
    if state.gap:
        line.append(f"\ngap: {state.gap}", style="bold yellow")
    if state.notice:
        line.append(f"\n{state.notice}", style="italic")
    title = f"intraday-live · {state.organization_id}"
    return Panel(line, title=title, subtitle=state.url or None, title_align="left")


def _fit(table: Table) -> Table:
    """Never cut a header: each column is at least as wide as its title."""
    for column in table.columns:
        column.min_width = max(column.min_width or 0, len(str(column.header)))
    return table


_Row = TypeVar("_Row")


@dataclass(frozen=True)
class _Fit:
    """How much of each table a frame shows: all of it, or what a short terminal holds."""

    compact: bool = False
    queue_rows: int | None = None
    alert_rows: int = ALERT_ROWS


def _table(title: str, fit: _Fit) -> Table:
    # Compact: no outer edge (two lines fewer per table), for short terminals.
    return Table(title=title, title_justify="left", expand=True, show_edge=not fit.compact)


def _rows(rows: list[tuple[str, _Row]], fit: _Fit) -> tuple[list[tuple[str, _Row]], int]:
    """The rows a frame shows, and how many it leaves out."""
    if fit.queue_rows is None or len(rows) <= fit.queue_rows:
        return rows, 0
    shown = max(fit.queue_rows - 1, 0)  # one row says how many more there are
    return rows[:shown], len(rows) - shown


def _kpi_table(state: DashboardState, fit: _Fit = _Fit()) -> Table:
    table = _table("KPIs by queue", fit)
    table.add_column("Queue", no_wrap=True)
    table.add_column("Util %", justify="right")
    table.add_column("SL %", justify="right")
    table.add_column("Health", justify="right")
    table.add_column("HC gap", justify="right")
    table.add_column("SLA risk")
    rows, hidden = _rows(sorted(state.kpis.items()), fit)
    for queue, row in rows:
        table.add_row(
            queue,
            _number(row.utilization),
            _number(row.service_level),
            _health(row.health_score),
            _number(row.headcount_gap, "{:+.1f}"),
            _severity(row.sla_risk),
        )
    if hidden:
        table.add_row(Text(f"+{hidden} more", style="dim"), "", "", "", "", "")
    if not state.kpis:
        table.add_row("waiting for kpi:update", "", "", "", "", "")
    return _fit(table)


def _backlog_table(state: DashboardState, fit: _Fit = _Fit()) -> Table:
    table = _table("Backlog by queue", fit)
    table.add_column("Queue", no_wrap=True)
    table.add_column("Items", justify="right")
    table.add_column("Oldest", justify="right")
    table.add_column("Breaches", justify="right")
    rows, hidden = _rows(sorted(state.backlogs.items()), fit)
    for queue, row in rows:
        breaches = Text(
            _number(row.sla_breaches, "{}"),
            style="bold red" if row.sla_breaches else "",
        )
        table.add_row(
            queue,
            _number(row.total_items, "{}"),
            _age(row.oldest_item_age_seconds),
            breaches,
        )
    if hidden:
        table.add_row(Text(f"+{hidden} more", style="dim"), "", "", "")
    if not state.backlogs:
        table.add_row("waiting for backlog:update", "", "", "")
    return _fit(table)


def _alert_table(state: DashboardState, fit: _Fit = _Fit()) -> Table:
    title = f"Alerts: {state.alert_events} events, {state.open_alerts} open"
    table = _table(title, fit)
    table.add_column("Time", no_wrap=True)
    table.add_column("Severity")
    table.add_column("Rule")
    table.add_column("Queue", no_wrap=True)
    table.add_column("Status")
    for row in state.latest_alerts(fit.alert_rows):
        table.add_row(
            row.updated_at.strftime("%H:%M:%S"),
            _severity(row.severity),
            row.rule_name,
            row.queue,
            Text(str(row.status), style="dim" if row.status is AlertStatus.RESOLVED else ""),
        )
    if not state.alerts:
        table.add_row("", "", "no alerts yet", "", "")
    return _fit(table)


_MIN_ALERT_ROWS: Final = 3
"""A short terminal still shows this many alerts; queue rows give way first."""


@dataclass(frozen=True)
class _Dashboard:
    """The drawn dashboard: the tables side by side when the console is wide enough.

    Given a ``height`` (a terminal's), the frame is made to fit it, so that
    the bottom of the screen (the alerts) is never cut: the tables lose their
    outer edges first, then alert rows down to three, then queue rows (a
    "+N more" row says how many are left out).
    """

    state: DashboardState
    now: datetime
    height: int | None = None

    def _parts(self, fit: _Fit) -> tuple[Table, Table, Table]:
        state = self.state
        return _kpi_table(state, fit), _backlog_table(state, fit), _alert_table(state, fit)

    def _lines(self, console: Console, options: ConsoleOptions, fit: _Fit) -> list[RenderableType]:
        kpis, backlog, alerts = self._parts(fit)
        natural = sum(Measurement.get(console, options, table).maximum for table in (kpis, backlog))
        if options.max_width >= WIDE and natural + 1 <= options.max_width:
            grid = Table.grid(expand=True, padding=(0, 1))
            grid.add_column(ratio=3)
            grid.add_column(ratio=2)
            grid.add_row(kpis, backlog)
            return [_header(state=self.state, now=self.now), grid, alerts]
        return [_header(state=self.state, now=self.now), kpis, backlog, alerts]

    def _fits(self, console: Console, options: ConsoleOptions, fit: _Fit) -> bool:
        assert self.height is not None
        height = sum(
            len(console.render_lines(part, options, pad=False))
            for part in self._lines(console, options, fit)
        )
        return height <= self.height

    def _fit(self, console: Console, options: ConsoleOptions) -> _Fit:
        if self.height is None or self._fits(console, options, _Fit()):
            return _Fit()
        queues = max(len(self.state.kpis), len(self.state.backlogs), 1)
        for alert_rows in range(ALERT_ROWS, _MIN_ALERT_ROWS - 1, -1):
            fit = _Fit(compact=True, alert_rows=alert_rows)
            if self._fits(console, options, fit):
                return fit
        for queue_rows in range(queues, 0, -1):
            fit = _Fit(compact=True, alert_rows=_MIN_ALERT_ROWS, queue_rows=queue_rows)
            if self._fits(console, options, fit):
                return fit
        return _Fit(compact=True, alert_rows=_MIN_ALERT_ROWS, queue_rows=1)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self._lines(console, options, self._fit(console, options))


def render(
    state: DashboardState, now: datetime | None = None, *, height: int | None = None
) -> RenderableType:
    """The dashboard for ``state`` at ``now``: a pure function, printable on any rich console.

    Args:
        state: what to draw.
        now: the time the data's age is measured against (default: now).
        height: fit the frame into this many lines (a terminal's height), the
            alerts kept in view; ``None``: draw everything.
    """
    return _Dashboard(state, now or datetime.now(UTC), height)


# -- running it ------------------------------------------------------------------


async def _connected(client: IntradayClient) -> None:
    """Connect the client unless it is connected (or on its way) already."""
    if client.state in (ConnectionState.DISCONNECTED, ConnectionState.FAILED):
        await client.connect()
    else:
        await client.wait_for_state(ConnectionState.AUTHENTICATED)


async def run_dashboard(
    client: IntradayClient,
    *,
    organization_id: str,
    duration: float | None = None,
    console: Console | None = None,
    ping_interval: float = 5.0,
    refresh_per_second: float = 4.0,
) -> DashboardState:
    """Show the live dashboard of ``organization_id`` until ``duration`` seconds pass.

    Connects ``client`` if it is not connected, observes the organization's
    hooks (their subscriptions end with the dashboard; the client stays
    open) and, once connected, pings every ``ping_interval`` seconds. The
    screen is redrawn ``refresh_per_second`` times a second from this task;
    on a console that is not a terminal, rich prints the last frame when the
    dashboard stops.

    Cancelling it is safe; it then stops as after ``duration``.

    Returns:
        The final state.

    Raises:
        ServerError: the server refused the credentials or a subscription.
        ReconnectFailedError: the client gave up reconnecting.
        ConnectionLostError: the server ended the connection for good (an
            operator's disconnect: the client does not come back by itself).
    """
    state = DashboardState(organization_id=organization_id, url=client.config.url)
    problems: list[Exception] = []
    feeds: list[MessageHook[Any]] = [
        kpi_updates(client, organization_id=organization_id),
        backlog_updates(client, organization_id=organization_id),
        alert_notifications(client, organization_id=organization_id),
        events(client, Channel.NOTIFICATIONS, organization_id=organization_id),
    ]
    observing = [feed.subscribe(state.apply, problems.append) for feed in feeds]
    observing.append(connection_status(client).subscribe(state.set_connection))
    observing.append(client.gaps.subscribe(state.record_gap))

    def on_health(reading: ConnectionHealth) -> None:
        state.round_trip = reading.round_trip_seconds if reading.healthy else None

    connecting: asyncio.Task[None] | None = asyncio.create_task(_connected(client))
    period = 1 / refresh_per_second
    try:
        with Live(render(state), console=console, auto_refresh=False) as live:

            def frame() -> RenderableType:
                # A terminal's frame fits its height (rich would cut the bottom: the alerts).
                terminal = live.console.is_terminal
                return render(state, height=live.console.size.height if terminal else None)

            try:
                async with asyncio.timeout(duration):
                    while True:
                        if connecting is not None and connecting.done():
                            finished, connecting = connecting, None
                            finished.result()  # a refused connect ends the dashboard
                            observing.append(health(client, ping_interval).subscribe(on_health))
                        if problems:
                            raise problems[0]
                        if client.state is ConnectionState.FAILED:
                            raise client.failure or ConnectionLostError("connection failed")
                        if connecting is None and client.state is ConnectionState.DISCONNECTED:
                            raise ConnectionLostError(ENDED_BY_SERVER)
                        last_error = client.statistics().last_error
                        state.last_error = None if last_error is None else str(last_error)
                        live.update(frame(), refresh=True)
                        if connecting is None:
                            await asyncio.sleep(period)
                        else:
                            await asyncio.wait({connecting}, timeout=period)
            except TimeoutError:
                pass  # the duration is over
            finally:
                live.update(frame(), refresh=True)
            if not live.console.is_terminal:
                live.console.line()  # rich leaves the last frame's line open
    finally:
        if connecting is not None:
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, IntradayError):
                await connecting
        for observer in observing:
            observer.dispose()
    return state
