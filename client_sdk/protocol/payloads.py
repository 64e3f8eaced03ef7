"""Payload models of the seventeen server events (protocol section 5).

The protocol fixes only a few fields; the rest is what an intraday console
shows, defined here and published as JSON Schema under ``docs/schema/``.
Required: ``organization_id`` and ``timestamp`` for kpi, backlog and
attendance events; those plus ``alert_id``, ``rule_name`` and ``severity`` for
alert events; ``message`` for system events. Every other field is optional
but typed, and unknown fields are kept (forward compatibility).

Percentages are numbers from 0 to 100; durations are seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, Strict

from .events import ServerEvent
from .identifiers import Identifier
from .ranked import RankedStrEnum
from .timestamps import Timestamp

__all__ = [
    "EVENT_PAYLOADS",
    "AlertPayload",
    "AlertStatus",
    "AttendanceCheckPayload",
    "AttendancePayload",
    "BacklogItem",
    "BacklogPayload",
    "BacklogSnapshotPayload",
    "HeadcountGap",
    "KpiPayload",
    "MaintenanceWindow",
    "MetricAlertPayload",
    "Payload",
    "ScopedPayload",
    "ServiceLevel",
    "Severity",
    "SlaRisk",
    "SystemLevel",
    "SystemPayload",
    "Utilization",
    "parse_payload",
]

# Numbers and flags are strict: "85" or true is not a number here, as in the
# published JSON Schema (a lax model would accept what the schema rejects).
Number = Annotated[float, Strict()]
Percent = Annotated[float, Strict(), Field(ge=0, le=100)]
Count = Annotated[int, Strict(), Field(ge=0)]
NonNegative = Annotated[float, Strict(), Field(ge=0)]
Seconds = NonNegative
Flag = Annotated[bool, Strict()]
ShortText = Annotated[str, Field(min_length=1, max_length=256)]
LongText = Annotated[str, Field(max_length=8192)]


class Severity(RankedStrEnum):
    """How bad an alert is, in increasing order."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class AlertStatus(StrEnum):
    """Where an alert is in its life."""

    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


class SystemLevel(StrEnum):
    """The level of a system message."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class Payload(_Part):
    """Base of every payload: frozen, unknown fields kept."""


class ScopedPayload(Payload):
    """A payload about an organization, optionally one department and queue."""

    organization_id: Identifier
    department_id: Identifier | None = None
    queue_name: Identifier | None = None
    timestamp: Timestamp


# --- kpi -------------------------------------------------------------------


class Utilization(_Part):
    """Agent utilization and occupancy, in percent."""

    current_utilization: Percent
    target_utilization: Percent | None = None
    occupancy: Percent | None = None


class ServiceLevel(_Part):
    """Share of contacts answered within ``threshold_seconds``, against its target."""

    current: Percent
    target: Percent | None = None
    threshold_seconds: Seconds | None = None


class HeadcountGap(_Part):
    """Agents required by the forecast against agents scheduled; ``gap`` may be negative."""

    required: NonNegative
    scheduled: NonNegative
    gap: Number | None = None


class SlaRisk(_Part):
    """The risk of missing the service-level agreement."""

    level: Severity
    score: Percent | None = None


class KpiPayload(ScopedPayload):
    """``kpi:update`` and ``kpi:computed``: the KPIs of a queue (or wider scope)."""

    utilization: Utilization | None = None
    service_level: ServiceLevel | None = None
    average_handle_time_seconds: Seconds | None = None
    contacts_offered: Count | None = None
    contacts_handled: Count | None = None
    headcount_gap: HeadcountGap | None = None
    sla_risk: SlaRisk | None = None
    health_score: Percent | None = None
    changes: dict[str, Number] | None = None
    """Change of each metric since the previous update, by metric name."""


class MetricAlertPayload(ScopedPayload):
    """``kpi:alert``, ``backlog:alert``, ``attendance:alert``: a metric crossed a threshold."""

    metric: ShortText | None = None
    value: Number | None = None
    threshold: Number | None = None
    severity: Severity | None = None
    message: LongText | None = None


# --- backlog ---------------------------------------------------------------


class BacklogPayload(ScopedPayload):
    """``backlog:update``: the size and age of the work waiting."""

    total_items: Count | None = None
    items_by_priority: dict[str, Count] | None = None
    oldest_item_age_seconds: Seconds | None = None
    sla_breaches: Count | None = None
    projected_clear_time: Timestamp | None = None


class BacklogItem(_Part):
    """One waiting work item in a backlog snapshot."""

    item_id: ShortText
    priority: ShortText | None = None
    created_at: Timestamp | None = None
    age_seconds: Seconds | None = None
    sla_due_at: Timestamp | None = None
    sla_breached: Flag | None = None


class BacklogSnapshotPayload(BacklogPayload):
    """``backlog:snapshot``: the summary plus the full list of items."""

    items: list[BacklogItem] | None = None


# --- attendance ------------------------------------------------------------


class AttendancePayload(ScopedPayload):
    """``attendance:update``: who is here against who is scheduled."""

    scheduled: Count | None = None
    present: Count | None = None
    absent: Count | None = None
    late: Count | None = None
    on_break: Count | None = None
    adherence: Percent | None = None


class AttendanceCheckPayload(ScopedPayload):
    """``attendance:checkin`` and ``attendance:checkout``: one employee, one moment."""

    employee_id: Identifier | None = None
    employee_name: ShortText | None = None
    check_time: Timestamp | None = None


# --- alerts ----------------------------------------------------------------


class AlertPayload(ScopedPayload):
    """The four ``alert:*`` events: one alert at one step of its life."""

    alert_id: ShortText
    rule_name: ShortText
    severity: Severity
    status: AlertStatus | None = None
    metric: ShortText | None = None
    value: Number | None = None
    threshold: Number | None = None
    message: LongText | None = None
    escalation_level: Count | None = None
    acknowledged_by: Identifier | None = None
    acknowledged_at: Timestamp | None = None
    resolution: LongText | None = None
    resolved_at: Timestamp | None = None


# --- system ----------------------------------------------------------------


class MaintenanceWindow(_Part):
    """When the service will be unavailable."""

    starts_at: Timestamp
    ends_at: Timestamp | None = None


class SystemPayload(Payload):
    """``system:notification``, ``system:broadcast``, ``system:maintenance``."""

    message: LongText
    title: ShortText | None = None
    body: LongText | None = None
    level: SystemLevel | None = None
    maintenance_window: MaintenanceWindow | None = None
    organization_id: Identifier | None = None
    timestamp: Timestamp | None = None


EVENT_PAYLOADS: Final[Mapping[ServerEvent, type[Payload]]] = MappingProxyType(
    {
        ServerEvent.KPI_UPDATE: KpiPayload,
        ServerEvent.KPI_COMPUTED: KpiPayload,
        ServerEvent.KPI_ALERT: MetricAlertPayload,
        ServerEvent.BACKLOG_UPDATE: BacklogPayload,
        ServerEvent.BACKLOG_SNAPSHOT: BacklogSnapshotPayload,
        ServerEvent.BACKLOG_ALERT: MetricAlertPayload,
        ServerEvent.ATTENDANCE_UPDATE: AttendancePayload,
        ServerEvent.ATTENDANCE_CHECKIN: AttendanceCheckPayload,
        ServerEvent.ATTENDANCE_CHECKOUT: AttendanceCheckPayload,
        ServerEvent.ATTENDANCE_ALERT: MetricAlertPayload,
        ServerEvent.ALERT_TRIGGERED: AlertPayload,
        ServerEvent.ALERT_ACKNOWLEDGED: AlertPayload,
        ServerEvent.ALERT_RESOLVED: AlertPayload,
        ServerEvent.ALERT_ESCALATED: AlertPayload,
        ServerEvent.SYSTEM_NOTIFICATION: SystemPayload,
        ServerEvent.SYSTEM_BROADCAST: SystemPayload,
        ServerEvent.SYSTEM_MAINTENANCE: SystemPayload,
    }
)
"""The payload model of every server event."""


def parse_payload(event: ServerEvent | str, data: Mapping[str, Any]) -> Payload:
    """Validate ``data`` as the payload of ``event``.

    Raises:
        ValueError: ``event`` is not a server event.
        pydantic.ValidationError: ``data`` does not follow the event's schema.
    """
    # An event already validated (the SDK's envelope, per message) skips the conversion.
    key = event if isinstance(event, ServerEvent) else ServerEvent(event)
    return EVENT_PAYLOADS[key].model_validate(data)
