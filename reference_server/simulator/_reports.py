"""What a queue reports: KPI and backlog payloads, built as plain dicts.

KPIs are first read into a flat ``Metrics`` mapping (one number per metric),
so that ``changes`` is a simple difference between two readings and a
department's ``kpi:computed`` is an aggregate of its queues' readings. The
SLA risk and the health score are derived from the other metrics.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from client_sdk.protocol import Severity, format_timestamp

from ._queue import (
    ITEM_PRIORITIES,
    SERVICE_LEVEL_TARGET,
    SERVICE_LEVEL_THRESHOLD_SECONDS,
    SLA_SECONDS,
    QueueState,
    clamp,
)
from ._world import PLANNED_OCCUPANCY, SIM_SECONDS_PER_TICK

__all__ = [
    "SNAPSHOT_MAX_ITEMS",
    "Metrics",
    "backlog_payload",
    "department_metrics",
    "kpi_payload",
    "queue_metrics",
    "scope_fields",
]

Metrics = dict[str, float]
"""One reading of a scope's KPIs, flat, by metric name."""

SNAPSHOT_MAX_ITEMS: Final = 20
_TARGET_UTILIZATION: Final = 100.0 * PLANNED_OCCUPANCY
_MAX_CLEAR_SECONDS: Final = 12 * 3600.0

_stamp = functools.lru_cache(maxsize=1)(format_timestamp)
"""A tick stamps the same moment on every payload: format it once."""


def scope_fields(
    organization_id: str, department_id: str | None, queue_name: str | None, now: datetime
) -> dict[str, Any]:
    """The fields every scoped payload starts with."""
    return {
        "organization_id": organization_id,
        "department_id": department_id,
        "queue_name": queue_name,
        "timestamp": _stamp(now),
    }


def queue_metrics(queue: QueueState) -> Metrics:
    """Read a queue's KPIs."""
    metrics = {
        "utilization": queue.utilization,
        "occupancy": queue.occupancy,
        "service_level": queue.service_level,
        "average_handle_time_seconds": queue.handle_seconds,
        "contacts_offered": float(queue.offered),
        "contacts_handled": float(queue.handled),
        "headcount_required": queue.required_staff,
        "headcount_scheduled": float(round(queue.staff)),
    }
    return _derive(metrics)


def department_metrics(readings: Sequence[Metrics]) -> Metrics:
    """Aggregate queue readings: sums for counts, weighted means for rates."""
    staff = sum(r["headcount_scheduled"] for r in readings) or 1.0
    handled = sum(r["contacts_handled"] for r in readings)

    def by_staff(name: str) -> float:
        return sum(r[name] * r["headcount_scheduled"] for r in readings) / staff

    def by_handled(name: str) -> float:
        if handled == 0:
            return sum(r[name] for r in readings) / len(readings)
        return sum(r[name] * r["contacts_handled"] for r in readings) / handled

    metrics = {
        "utilization": by_staff("utilization"),
        "occupancy": by_staff("occupancy"),
        "service_level": by_handled("service_level"),
        "average_handle_time_seconds": by_handled("average_handle_time_seconds"),
        "contacts_offered": sum(r["contacts_offered"] for r in readings),
        "contacts_handled": handled,
        "headcount_required": sum(r["headcount_required"] for r in readings),
        "headcount_scheduled": sum(r["headcount_scheduled"] for r in readings),
    }
    return _derive(metrics)


def _derive(metrics: Metrics) -> Metrics:
    rounded = {name: round(value, 1) for name, value in metrics.items()}
    rounded["headcount_gap"] = round(
        rounded["headcount_required"] - rounded["headcount_scheduled"], 1
    )
    margin = rounded["service_level"] - SERVICE_LEVEL_TARGET
    risk = clamp(50.0 - 4.0 * margin, 0.0, 100.0)
    staffing = min(rounded["headcount_scheduled"] / max(rounded["headcount_required"], 0.1), 1.0)
    health = (
        0.45 * min(rounded["service_level"] / SERVICE_LEVEL_TARGET, 1.0) * 100
        + 0.20 * (100 - min(100.0, abs(rounded["occupancy"] - _TARGET_UTILIZATION) * 2))
        + 0.20 * staffing * 100
        + 0.15 * (100 - risk)
    )
    rounded["sla_risk_score"] = round(risk, 1)
    rounded["health_score"] = round(clamp(health, 0.0, 100.0), 1)
    return rounded


def _risk_level(score: float) -> Severity:
    if score >= 75:
        return Severity.CRITICAL
    if score >= 50:
        return Severity.HIGH
    if score >= 25:
        return Severity.MEDIUM
    return Severity.LOW


def kpi_payload(
    scope: dict[str, Any], metrics: Metrics, previous: Mapping[str, float] | None
) -> dict[str, Any]:
    """A ``kpi:update`` or ``kpi:computed`` payload; ``changes`` against ``previous``.

    ``headcount_gap.gap`` is required minus scheduled: positive means short-staffed.
    ``changes`` is empty in a scope's first update.
    """
    changes = (
        {}
        if previous is None
        else {name: round(value - previous[name], 1) for name, value in metrics.items()}
    )
    return {
        **scope,
        "utilization": {
            "current_utilization": metrics["utilization"],
            "target_utilization": _TARGET_UTILIZATION,
            "occupancy": metrics["occupancy"],
        },
        "service_level": {
            "current": metrics["service_level"],
            "target": SERVICE_LEVEL_TARGET,
            "threshold_seconds": SERVICE_LEVEL_THRESHOLD_SECONDS,
        },
        "average_handle_time_seconds": metrics["average_handle_time_seconds"],
        "contacts_offered": int(metrics["contacts_offered"]),
        "contacts_handled": int(metrics["contacts_handled"]),
        "headcount_gap": {
            "required": metrics["headcount_required"],
            "scheduled": metrics["headcount_scheduled"],
            "gap": metrics["headcount_gap"],
        },
        "sla_risk": {
            "level": _risk_level(metrics["sla_risk_score"]).value,
            "score": metrics["sla_risk_score"],
        },
        "health_score": metrics["health_score"],
        "changes": changes,
    }


def backlog_payload(
    queue: QueueState, now: datetime, *, with_items: bool = False
) -> dict[str, Any]:
    """A ``backlog:update`` payload, or ``backlog:snapshot`` with ``with_items``.

    The snapshot lists at most :data:`SNAPSHOT_MAX_ITEMS`
    items, in handling order, while the counts cover the whole backlog.
    """
    ordered = queue.waiting_in_order()
    by_priority = dict.fromkeys(ITEM_PRIORITIES, 0)
    for item in ordered:
        by_priority[item.priority] += 1
    payload: dict[str, Any] = {
        **scope_fields(queue.organization_id, queue.department_id, queue.queue_name, now),
        "total_items": len(ordered),
        "items_by_priority": by_priority,
        "oldest_item_age_seconds": round(queue.oldest_age, 1),
        "sla_breaches": sum(1 for item in ordered if item.breached),
    }
    clearing = queue.capacity_per_tick - queue.arrival_rate
    if not ordered:
        payload["projected_clear_time"] = format_timestamp(now)
    elif clearing > 0:
        seconds = min(len(ordered) / clearing * SIM_SECONDS_PER_TICK, _MAX_CLEAR_SECONDS)
        payload["projected_clear_time"] = format_timestamp(now + timedelta(seconds=seconds))
    if with_items:
        payload["items"] = [
            {
                "item_id": item.item_id,
                "priority": item.priority,
                "created_at": format_timestamp(now - timedelta(seconds=item.age)),
                "age_seconds": round(item.age, 1),
                "sla_due_at": format_timestamp(
                    now + timedelta(seconds=SLA_SECONDS[item.priority] - item.age)
                ),
                "sla_breached": item.breached,
            }
            for item in ordered[:SNAPSHOT_MAX_ITEMS]
        ]
    return payload
