"""Payload schemas of the seventeen server events (protocol section 5)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from client_sdk.protocol import (
    EVENT_CHANNEL,
    EVENT_PAYLOADS,
    AlertPayload,
    Channel,
    KpiPayload,
    ServerEvent,
    Severity,
    SystemPayload,
    parse_payload,
)

TS = "2026-11-25T10:30:00.123Z"

SCOPED_REQUIRED = {"organization_id": "org_123", "timestamp": TS}
ALERT_REQUIRED = {
    **SCOPED_REQUIRED,
    "alert_id": "alert_1",
    "rule_name": "utilization_high",
    "severity": "high",
}
SYSTEM_REQUIRED = {"message": "System maintenance in 10 minutes"}
SYSTEM_EVENTS = [e for e, c in EVENT_CHANNEL.items() if c is Channel.NOTIFICATIONS]


def _required(event: ServerEvent) -> dict[str, Any]:
    channel = EVENT_CHANNEL[event]
    if channel is Channel.ALERTS:
        return ALERT_REQUIRED
    if channel is Channel.NOTIFICATIONS:
        return SYSTEM_REQUIRED
    return SCOPED_REQUIRED


def test_every_event_has_a_payload_model() -> None:
    assert set(EVENT_PAYLOADS) == set(ServerEvent)


@pytest.mark.parametrize("event", list(ServerEvent))
def test_required_fields_suffice(event: ServerEvent) -> None:
    payload = parse_payload(event, _required(event))
    assert isinstance(payload, EVENT_PAYLOADS[event])


@pytest.mark.parametrize(
    ("event", "field"),
    [(e, f) for e in ServerEvent for f in sorted(_required(e))],
)
def test_each_required_field_is_required(event: ServerEvent, field: str) -> None:
    data = {k: v for k, v in _required(event).items() if k != field}
    with pytest.raises(ValidationError) as caught:
        parse_payload(event, data)
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


def test_required_sets_match_the_protocol() -> None:
    def required(model: type[Any]) -> set[str]:
        return {n for n, f in model.model_fields.items() if f.is_required()}

    for event, model in EVENT_PAYLOADS.items():
        assert required(model) == set(_required(event)), event


def test_seed_kpi_update() -> None:
    data = {
        "organization_id": "org_123",
        "queue_name": "support",
        "timestamp": TS,
        "utilization": {"current_utilization": 85},
        "health_score": 92,
    }
    payload = parse_payload("kpi:update", data)
    assert isinstance(payload, KpiPayload)
    assert payload.utilization is not None
    assert payload.utilization.current_utilization == 85
    assert payload.health_score == 92
    assert payload.timestamp == datetime(2026, 11, 25, 10, 30, 0, 123000, tzinfo=UTC)
    assert payload.model_dump(mode="json", exclude_none=True) == data


@pytest.mark.parametrize("event", SYSTEM_EVENTS)
def test_seed_system_message(event: ServerEvent) -> None:
    payload = parse_payload(event, {"message": "System maintenance in 10 minutes"})
    assert isinstance(payload, SystemPayload)
    assert payload.message == "System maintenance in 10 minutes"


def test_three_system_events() -> None:
    assert {e.value for e in SYSTEM_EVENTS} == {
        "system:notification",
        "system:broadcast",
        "system:maintenance",
    }


def test_full_kpi_payload() -> None:
    data = {
        **SCOPED_REQUIRED,
        "department_id": "dept_456",
        "queue_name": "support",
        "utilization": {"current_utilization": 85.5, "target_utilization": 80, "occupancy": 90},
        "service_level": {"current": 78, "target": 80, "threshold_seconds": 20},
        "average_handle_time_seconds": 312.5,
        "contacts_offered": 120,
        "contacts_handled": 118,
        "headcount_gap": {"required": 12.5, "scheduled": 10, "gap": -2.5},
        "sla_risk": {"level": "high", "score": 70},
        "health_score": 64,
        "changes": {"utilization": -1.5, "health_score": 3},
    }
    payload = KpiPayload.model_validate(data)
    assert payload.sla_risk is not None
    assert payload.sla_risk.level is Severity.HIGH
    assert payload.model_dump(mode="json", exclude_none=True) == data


@pytest.mark.parametrize(
    ("event", "extra"),
    [
        ("kpi:update", {"health_score": 150}),
        ("kpi:update", {"health_score": -0.1}),
        ("kpi:update", {"health_score": "85"}),
        ("kpi:update", {"health_score": True}),
        ("kpi:update", {"utilization": {"current_utilization": 101}}),
        ("kpi:update", {"utilization": {}}),
        ("kpi:update", {"utilization": 85}),
        ("kpi:update", {"contacts_offered": -1}),
        ("kpi:update", {"contacts_offered": 1.5}),
        ("kpi:update", {"contacts_offered": "5"}),
        ("kpi:update", {"contacts_offered": True}),
        ("kpi:update", {"sla_risk": {"level": "bogus"}}),
        ("kpi:update", {"headcount_gap": {"required": -1, "scheduled": 3}}),
        ("kpi:update", {"changes": {"utilization": "up"}}),
        ("kpi:update", {"timestamp": "not a time"}),
        ("kpi:update", {"organization_id": "org:123"}),
        ("kpi:update", {"queue_name": ""}),
        ("kpi:computed", {"average_handle_time_seconds": -5}),
        ("kpi:alert", {"severity": "bogus"}),
        ("kpi:alert", {"value": "high"}),
        ("backlog:update", {"total_items": -3}),
        ("backlog:update", {"items_by_priority": {"high": -1}}),
        ("backlog:snapshot", {"items": [{"priority": "high"}]}),
        ("backlog:snapshot", {"items": [{"item_id": "i1", "sla_breached": "yes"}]}),
        ("attendance:update", {"present": -1}),
        ("attendance:update", {"adherence": 100.5}),
        ("attendance:checkin", {"employee_id": "emp 1"}),
        ("alert:triggered", {"severity": "bogus"}),
        ("alert:triggered", {"severity": "HIGH"}),
        ("alert:escalated", {"escalation_level": -1}),
        ("alert:resolved", {"status": "gone"}),
        ("alert:acknowledged", {"alert_id": ""}),
        ("system:maintenance", {"level": "bogus"}),
        ("system:maintenance", {"maintenance_window": {"ends_at": TS}}),
        ("system:notification", {"message": 42}),
    ],
)
def test_wrong_types_and_ranges_rejected(event: ServerEvent, extra: dict[str, Any]) -> None:
    data = {**_required(ServerEvent(event)), **extra}
    with pytest.raises(ValidationError):
        parse_payload(event, data)


@pytest.mark.parametrize("severity", ["low", "medium", "high", "critical"])
def test_alert_severities(severity: str) -> None:
    payload = parse_payload("alert:triggered", {**ALERT_REQUIRED, "severity": severity})
    assert isinstance(payload, AlertPayload)
    assert payload.severity.value == severity


def test_severity_rank() -> None:
    assert [s.rank for s in Severity] == [0, 1, 2, 3]
    assert Severity.CRITICAL.rank > Severity.HIGH.rank


def test_integers_are_numbers() -> None:
    payload = parse_payload("kpi:update", {**SCOPED_REQUIRED, "health_score": 85})
    assert isinstance(payload, KpiPayload)
    assert payload.health_score == 85.0


@pytest.mark.parametrize("event", list(ServerEvent))
def test_unknown_fields_kept(event: ServerEvent) -> None:
    extra = {"future_field": {"nested": [1, 2]}, "another": "x"}
    payload = parse_payload(event, {**_required(event), **extra})
    assert payload.model_extra == extra
    dumped = payload.model_dump(mode="json")
    assert dumped["future_field"] == {"nested": [1, 2]}
    assert dumped["another"] == "x"


def test_unknown_fields_kept_in_nested_parts() -> None:
    data = {**SCOPED_REQUIRED, "utilization": {"current_utilization": 50, "shrinkage": 30}}
    dumped = parse_payload("kpi:update", data).model_dump(mode="json", exclude_none=True)
    assert dumped["utilization"] == {"current_utilization": 50, "shrinkage": 30}


def test_timestamps_dump_in_wire_format() -> None:
    payload = parse_payload(
        "kpi:update", {"organization_id": "o", "timestamp": "2026-11-25T12:30:00.5+02:00"}
    )
    assert payload.model_dump(mode="json")["timestamp"] == "2026-11-25T10:30:00.500Z"


def test_payloads_are_frozen() -> None:
    payload = parse_payload("system:broadcast", SYSTEM_REQUIRED)
    assert isinstance(payload, SystemPayload)
    with pytest.raises(ValidationError):
        payload.message = "changed"  # type: ignore[misc]


@pytest.mark.parametrize("event", ["kpi:bogus", "authenticate", "kpi"])
def test_parse_payload_rejects_unknown_event(event: str) -> None:
    with pytest.raises(ValueError, match="not a valid ServerEvent"):
        parse_payload(event, SCOPED_REQUIRED)


def test_severities_compare_by_rank_not_by_spelling() -> None:
    assert Severity.CRITICAL >= Severity.HIGH
    assert Severity.CRITICAL > Severity.HIGH > Severity.MEDIUM > Severity.LOW
    assert not Severity.LOW >= Severity.HIGH
    assert Severity.HIGH <= Severity.HIGH
    assert max(Severity) is Severity.CRITICAL
    assert sorted([Severity.HIGH, Severity.LOW, Severity.CRITICAL, Severity.MEDIUM]) == list(
        Severity
    )
    assert Severity.HIGH >= "medium"  # a wire string is taken as the member it names
    assert Severity.LOW == "low"  # equality and hashing stay the string's
    assert {"low": 1}[Severity.LOW] == 1


def test_priorities_compare_by_rank() -> None:
    from client_sdk.protocol import Priority

    assert Priority.URGENT > Priority.HIGH > Priority.MEDIUM > Priority.LOW
    assert not Priority.LOW >= Priority.HIGH
    assert [p.rank for p in Priority] == [0, 1, 2, 3]


def test_a_severity_and_an_unknown_string_do_not_compare() -> None:
    with pytest.raises(TypeError):
        _ = Severity.LOW < "loudest"
