"""The envelope and wire timestamps (protocol section 5)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from client_sdk.protocol import (
    EVENT_CHANNEL,
    Envelope,
    Priority,
    Scope,
    ServerEvent,
    build_envelope,
    format_timestamp,
    utc_now,
)

WIRE_TIME = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\Z")

# The example of section 5, verbatim.
PROTOCOL_EXAMPLE: dict[str, Any] = {
    "id": "01JD...",
    "event": "kpi:update",
    "channel": "kpi",
    "timestamp": "2026-11-25T10:30:00.123Z",
    "priority": "medium",
    "requires_ack": False,
    "seq": 1042,
    "target": {"organization_id": "org_123", "department_id": None, "queue_name": "support"},
    "data": {"...": "the event's payload"},
}

BASE_KEYS = {"id", "event", "channel", "timestamp", "priority", "requires_ack", "target", "data"}


def test_protocol_example_parses() -> None:
    envelope = Envelope.model_validate(PROTOCOL_EXAMPLE)
    assert envelope.event is ServerEvent.KPI_UPDATE
    assert envelope.priority is Priority.MEDIUM
    assert envelope.seq == 1042
    assert envelope.timestamp == datetime(2026, 11, 25, 10, 30, 0, 123000, tzinfo=UTC)
    assert envelope.target.queue_name == "support"
    assert envelope.to_wire() == PROTOCOL_EXAMPLE


def _build(**kwargs: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "message_id": "m-1",
        "event": ServerEvent.ALERT_TRIGGERED,
        "timestamp": format_timestamp(datetime(2026, 11, 25, 10, 30, tzinfo=UTC)),
        "target": Scope(organization_id="org_123", department_id="dept_456"),
        "data": {"alert_id": "a1"},
    }
    return build_envelope(**{**defaults, **kwargs})


def test_build_envelope_key_set_without_seq() -> None:
    wire = _build()
    assert set(wire) == BASE_KEYS
    assert "seq" not in wire
    assert wire == {
        "id": "m-1",
        "event": "alert:triggered",
        "channel": "alerts",
        "timestamp": "2026-11-25T10:30:00.000Z",
        "priority": "medium",
        "requires_ack": False,
        "target": {"organization_id": "org_123", "department_id": "dept_456", "queue_name": None},
        "data": {"alert_id": "a1"},
    }


def test_build_envelope_with_seq_and_options() -> None:
    wire = _build(seq=7, priority=Priority.URGENT, requires_ack=True)
    assert set(wire) == {*BASE_KEYS, "seq"}
    assert (wire["seq"], wire["priority"], wire["requires_ack"]) == (7, "urgent", True)


@pytest.mark.parametrize("event", list(ServerEvent))
def test_build_envelope_parses_back(event: ServerEvent) -> None:
    wire = _build(event=event, seq=3)
    envelope = Envelope.model_validate(wire)
    assert envelope.event is event
    assert envelope.channel is EVENT_CHANNEL[event]
    assert envelope.to_wire() == wire


def test_seq_and_snapshot_absent_unless_set() -> None:
    envelope = Envelope.model_validate(_build())
    assert envelope.seq is None
    assert envelope.snapshot is None
    assert set(envelope.to_wire()) == BASE_KEYS
    marked = Envelope.model_validate({**_build(), "snapshot": True})
    assert marked.to_wire()["snapshot"] is True


def test_envelope_defaults() -> None:
    wire = _build()
    del wire["priority"], wire["requires_ack"]
    envelope = Envelope.model_validate(wire)
    assert envelope.priority is Priority.MEDIUM
    assert envelope.requires_ack is False


@pytest.mark.parametrize(
    "change",
    [
        {"event": "kpi:bogus"},
        {"channel": "all-of-them"},
        {"priority": "critical"},
        {"timestamp": "yesterday"},
        {"data": "not an object"},
        {"target": {"organization_id": "org:1"}},
    ],
)
def test_envelope_rejects(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Envelope.model_validate({**PROTOCOL_EXAMPLE, **change})


@pytest.mark.parametrize("missing", sorted(BASE_KEYS - {"priority", "requires_ack"}))
def test_envelope_requires(missing: str) -> None:
    wire = {k: v for k, v in PROTOCOL_EXAMPLE.items() if k != missing}
    with pytest.raises(ValidationError):
        Envelope.model_validate(wire)


def test_envelope_keeps_unknown_fields() -> None:
    envelope = Envelope.model_validate({**PROTOCOL_EXAMPLE, "trace": "t-1"})
    assert envelope.to_wire()["trace"] == "t-1"


def test_target_is_a_scope_and_tolerates_fields_it_does_not_know() -> None:
    target = {"organization_id": "o", "department_id": None, "queue_name": "q", "region": "eu"}
    envelope = Envelope.model_validate({**PROTOCOL_EXAMPLE, "target": target})
    assert envelope.target == Scope("o", queue_name="q")


def test_target_without_organization_is_every_organization() -> None:
    envelope = Envelope.model_validate({**PROTOCOL_EXAMPLE, "target": {}})
    assert envelope.target == Scope()
    assert Scope("org_a", "dept", "queue").covers(envelope.target)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 11, 25, 10, 30, 0, 123456, tzinfo=UTC), "2026-11-25T10:30:00.123Z"),
        (datetime(2026, 11, 25, 10, 30, 0, 999999, tzinfo=UTC), "2026-11-25T10:30:00.999Z"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000Z"),
        # naive means UTC
        (datetime(2026, 11, 25, 10, 30, 0, 123000), "2026-11-25T10:30:00.123Z"),
        # other offsets are converted
        (
            datetime(2026, 11, 25, 12, 30, 0, 5000, tzinfo=timezone(timedelta(hours=2))),
            "2026-11-25T10:30:00.005Z",
        ),
        (
            datetime(2026, 11, 25, 23, 30, tzinfo=timezone(timedelta(hours=-5))),
            "2026-11-26T04:30:00.000Z",
        ),
    ],
)
def test_format_timestamp(moment: datetime, expected: str) -> None:
    assert format_timestamp(moment) == expected
    assert WIRE_TIME.fullmatch(expected)


def test_utc_now_is_aware_and_formats() -> None:
    now = utc_now()
    assert now.utcoffset() == timedelta(0)
    assert WIRE_TIME.fullmatch(format_timestamp(now))


def test_naive_wire_timestamps_are_utc() -> None:
    envelope = Envelope.model_validate({**PROTOCOL_EXAMPLE, "timestamp": "2026-11-25T10:30:00.123"})
    assert envelope.timestamp == datetime(2026, 11, 25, 10, 30, 0, 123000, tzinfo=UTC)
    assert envelope.to_wire()["timestamp"] == "2026-11-25T10:30:00.123Z"


def test_offset_wire_timestamps_are_normalised() -> None:
    envelope = Envelope.model_validate(
        {**PROTOCOL_EXAMPLE, "timestamp": "2026-11-25T11:30:00.123+01:00"}
    )
    assert envelope.to_wire()["timestamp"] == "2026-11-25T10:30:00.123Z"
