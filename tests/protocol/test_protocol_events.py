"""Channels and the seventeen server events (protocol sections 4 and 5)."""

from __future__ import annotations

import pytest

from client_sdk.protocol import (
    CHANNEL_EVENTS,
    CONCRETE_CHANNELS,
    EVENT_CHANNEL,
    Channel,
    ClientEvent,
    ServerEvent,
    expand_channels,
)

# The table of section 5, copied from the protocol text.
PROTOCOL_TABLE = {
    "kpi": ["kpi:update", "kpi:computed", "kpi:alert"],
    "backlog": ["backlog:update", "backlog:snapshot", "backlog:alert"],
    "attendance": [
        "attendance:update",
        "attendance:checkin",
        "attendance:checkout",
        "attendance:alert",
    ],
    "alerts": ["alert:triggered", "alert:acknowledged", "alert:resolved", "alert:escalated"],
    "notifications": ["system:notification", "system:broadcast", "system:maintenance"],
}

FIVE = ["kpi", "backlog", "attendance", "alerts", "notifications"]


def test_seventeen_server_events() -> None:
    assert len(ServerEvent) == 17
    assert {e.value for e in ServerEvent} == {e for es in PROTOCOL_TABLE.values() for e in es}


def test_every_event_in_exactly_one_channel() -> None:
    assert set(EVENT_CHANNEL) == set(ServerEvent)
    for event in ServerEvent:
        owners = [c for c, events in CHANNEL_EVENTS.items() if event in events]
        assert owners == [EVENT_CHANNEL[event]], event


def test_table_equals_the_protocol() -> None:
    assert {c.value: [e.value for e in es] for c, es in CHANNEL_EVENTS.items()} == PROTOCOL_TABLE
    assert {e.value: c.value for e, c in EVENT_CHANNEL.items()} == {
        e: c for c, es in PROTOCOL_TABLE.items() for e in es
    }


def test_channels() -> None:
    assert [c.value for c in Channel] == [*FIVE, "all"]
    assert [c.value for c in CONCRETE_CHANNELS] == FIVE


def test_client_events() -> None:
    assert {e.value for e in ClientEvent} == {
        "authenticate",
        "subscribe",
        "unsubscribe",
        "client:ping",
    }


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["all"], FIVE),
        ([Channel.ALL], FIVE),
        (["kpi", "all"], FIVE),
        (["notifications", "kpi", "kpi"], ["kpi", "notifications"]),
        ([Channel.ALERTS], ["alerts"]),
        ([], []),
    ],
)
def test_expand_channels(given: list[str], expected: list[str]) -> None:
    assert [c.value for c in expand_channels(given)] == expected


@pytest.mark.parametrize("bad", ["bogus", "KPI", "alert", "", "kpi:update"])
def test_expand_channels_rejects_unknown(bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid Channel"):
        expand_channels(["kpi", bad])
