"""A valid payload for each of the seventeen events, aimed at a given scope.

Every sample sets most of its event's optional fields (so a server that
mangles one is caught when the delivered payload is validated) and carries
``contract_probe``, an unknown field by which a check recognises its own
message; unknown fields must be kept (protocol section 5).
"""

from __future__ import annotations

from typing import Any, Final

from ..protocol import ServerEvent

__all__ = ["SEED_KPI_UPDATE", "SEED_SYSTEM_MESSAGE", "TIMESTAMP", "sample_payload", "scope_fields"]

TIMESTAMP: Final = "2026-11-25T10:30:00.000Z"

SEED_KPI_UPDATE: Final[dict[str, Any]] = {
    "organization_id": "org_123",
    "queue_name": "support",
    "timestamp": "2026-11-25T10:30:00Z",
    "utilization": {"current_utilization": 85},
    "health_score": 90,
}
"""The protocol's minimal KPI update (its organization is replaced before use)."""

SEED_SYSTEM_MESSAGE: Final[dict[str, Any]] = {"message": "System maintenance in 10 minutes"}
"""The protocol's minimal system message."""


def scope_fields(
    organization_id: str, department_id: str | None = None, queue_name: str | None = None
) -> dict[str, str]:
    """The scope as payload (and target) fields, absent ones left out."""
    fields = {"organization_id": organization_id}
    if department_id is not None:
        fields["department_id"] = department_id
    if queue_name is not None:
        fields["queue_name"] = queue_name
    return fields


def _kpi() -> dict[str, Any]:
    return {
        "utilization": {"current_utilization": 84.5, "target_utilization": 85, "occupancy": 79},
        "service_level": {"current": 81.2, "target": 80, "threshold_seconds": 20},
        "average_handle_time_seconds": 312.5,
        "contacts_offered": 140,
        "contacts_handled": 131,
        "headcount_gap": {"required": 12, "scheduled": 10, "gap": -2},
        "sla_risk": {"level": "medium", "score": 42},
        "health_score": 77,
        "changes": {"health_score": -3, "utilization": 1.5},
    }


def _metric_alert() -> dict[str, Any]:
    return {
        "metric": "service_level",
        "value": 71.5,
        "threshold": 80,
        "severity": "high",
        "message": "service level below target",
    }


def _backlog() -> dict[str, Any]:
    return {
        "total_items": 42,
        "items_by_priority": {"high": 5, "normal": 37},
        "oldest_item_age_seconds": 5400,
        "sla_breaches": 3,
        "projected_clear_time": "2026-11-25T13:00:00.000Z",
    }


def _attendance() -> dict[str, Any]:
    return {
        "scheduled": 20,
        "present": 17,
        "absent": 2,
        "late": 1,
        "on_break": 3,
        "adherence": 91.5,
    }


def _check(event: ServerEvent) -> dict[str, Any]:
    time_field = (
        "2026-11-25T09:00:00.000Z" if event is ServerEvent.ATTENDANCE_CHECKIN else TIMESTAMP
    )
    return {
        "employee_id": "contract-employee",
        "employee_name": "Contract Check",
        "check_time": time_field,
    }


def _alert(event: ServerEvent) -> dict[str, Any]:
    status = event.value.split(":", 1)[1]
    alert: dict[str, Any] = {
        "alert_id": "contract-alert-1",
        "rule_name": "service level below target",
        "severity": "high",
        "status": status,
        "metric": "service_level",
        "value": 71.5,
        "threshold": 80,
        "message": "service level below target",
    }
    if event is ServerEvent.ALERT_ESCALATED:
        alert["escalation_level"] = 2
    if event is ServerEvent.ALERT_ACKNOWLEDGED:
        alert["acknowledged_at"] = TIMESTAMP
    if event is ServerEvent.ALERT_RESOLVED:
        alert["resolution"] = "staff added"
        alert["resolved_at"] = TIMESTAMP
    return alert


def _system(event: ServerEvent) -> dict[str, Any]:
    system: dict[str, Any] = {
        "message": "contract check message",
        "title": "Contract check",
        "body": "Sent by the protocol conformance suite.",
        "level": "info",
        "timestamp": TIMESTAMP,
    }
    if event is ServerEvent.SYSTEM_MAINTENANCE:
        system["maintenance_window"] = {
            "starts_at": "2026-11-25T22:00:00.000Z",
            "ends_at": "2026-11-25T23:00:00.000Z",
        }
    return system


def sample_payload(
    event: ServerEvent,
    probe: str,
    organization_id: str,
    department_id: str | None = None,
    queue_name: str | None = None,
) -> dict[str, Any]:
    """A valid payload of ``event`` for the scope, marked with ``contract_probe = probe``."""
    family = event.value.split(":", 1)[0]
    body: dict[str, Any]
    if event in (ServerEvent.KPI_UPDATE, ServerEvent.KPI_COMPUTED):
        body = _kpi()
    elif event.value.endswith(":alert"):
        body = _metric_alert()
    elif family == "backlog":
        body = _backlog()
        if event is ServerEvent.BACKLOG_SNAPSHOT:
            body["items"] = [
                {"item_id": "contract-item-1", "priority": "high", "age_seconds": 5400},
                {"item_id": "contract-item-2", "created_at": TIMESTAMP, "sla_breached": False},
            ]
    elif event is ServerEvent.ATTENDANCE_UPDATE:
        body = _attendance()
    elif family == "attendance":
        body = _check(event)
    elif family == "alert":
        body = _alert(event)
    else:
        body = _system(event)
    if family == "system":
        # System payloads name an organization at most; a narrower scope is the target's.
        fields = scope_fields(organization_id)
    else:
        fields = scope_fields(organization_id, department_id, queue_name)
        body["timestamp"] = TIMESTAMP
    return {**fields, **body, "contract_probe": probe}
