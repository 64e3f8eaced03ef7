"""One readable line per message: what ``intraday-live listen`` prints without ``--json``."""

from __future__ import annotations

from ._messages import Message
from .protocol import (
    AlertPayload,
    AttendanceCheckPayload,
    AttendancePayload,
    BacklogPayload,
    KpiPayload,
    MetricAlertPayload,
    Payload,
    SystemPayload,
)

__all__ = ["describe"]


def describe(message: Message[Payload]) -> str:
    """One readable line for a message: time, event, target and the payload's main figures."""
    target = message.target
    where = "/".join(
        v for v in (target.organization_id, target.department_id, target.queue_name) if v
    )
    stamp = message.timestamp.strftime("%H:%M:%S.%f")[:-3]
    line = f"{stamp} {message.event:<22} {where or '*':<30} {' '.join(_details(message.payload))}"
    if message.replayed:
        line += "  (replayed)"
    elif message.snapshot:
        line += "  (snapshot)"
    return line.rstrip()


def _details(payload: Payload) -> list[str]:
    details: list[str] = []
    if isinstance(payload, KpiPayload):
        if payload.utilization is not None:
            details.append(f"util={payload.utilization.current_utilization:.1f}%")
        if payload.service_level is not None:
            details.append(f"sl={payload.service_level.current:.1f}%")
        if payload.health_score is not None:
            details.append(f"health={payload.health_score:.0f}")
        if payload.headcount_gap is not None and payload.headcount_gap.gap is not None:
            details.append(f"gap={payload.headcount_gap.gap:+.1f}")
        if payload.sla_risk is not None:
            details.append(f"risk={payload.sla_risk.level}")
    elif isinstance(payload, BacklogPayload):
        if payload.total_items is not None:
            details.append(f"items={payload.total_items}")
        if payload.oldest_item_age_seconds is not None:
            details.append(f"oldest={payload.oldest_item_age_seconds:.0f}s")
        if payload.sla_breaches is not None:
            details.append(f"breaches={payload.sla_breaches}")
    elif isinstance(payload, AttendancePayload):
        if payload.present is not None:
            details.append(f"present={payload.present}/{payload.scheduled or '?'}")
        if payload.adherence is not None:
            details.append(f"adherence={payload.adherence:.1f}%")
    elif isinstance(payload, AttendanceCheckPayload):
        details.append(f"employee={payload.employee_name or payload.employee_id or '?'}")
    elif isinstance(payload, AlertPayload):
        details.append(f"[{payload.severity}] {payload.rule_name} ({payload.alert_id})")
        if payload.status is not None:
            details.append(f"status={payload.status}")
    elif isinstance(payload, MetricAlertPayload):
        if payload.severity is not None:
            details.append(f"[{payload.severity}]")
        if payload.metric is not None:
            details.append(f"{payload.metric}={payload.value} (threshold {payload.threshold})")
        if payload.message:
            details.append(payload.message)
    elif isinstance(payload, SystemPayload):
        details.append(payload.message)
    return details
