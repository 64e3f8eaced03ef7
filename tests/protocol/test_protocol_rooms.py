"""Room names, their parsing and the delivery rule (protocol section 4)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client_sdk.protocol import (
    CONCRETE_CHANNELS,
    Channel,
    Room,
    RoomType,
    Scope,
    delivery_rooms,
    org_room,
    parse_room,
    subscription_room,
)

ORG, DEPT, QUEUE = "org_123", "dept_456", "support"

LEVELS = [
    (Scope(ORG), "org:org_123", RoomType.ORG),
    (Scope(ORG, department_id=DEPT), "org:org_123:dept:dept_456", RoomType.DEPT),
    (Scope(ORG, queue_name=QUEUE), "org:org_123:queue:support", RoomType.QUEUE),
    (Scope(ORG, DEPT, QUEUE), "org:org_123:dept:dept_456:queue:support", RoomType.QUEUE),
]


@pytest.mark.parametrize("channel", CONCRETE_CHANNELS)
@pytest.mark.parametrize(("scope", "suffix", "room_type"), LEVELS)
def test_subscription_room_names(
    channel: Channel, scope: Scope, suffix: str, room_type: RoomType
) -> None:
    assert subscription_room(channel, scope) == f"{channel.value}:{suffix}"


def test_subscription_room_literal_names() -> None:
    assert subscription_room(Channel.KPI, Scope(ORG)) == "kpi:org:org_123"
    assert (
        subscription_room(Channel.ALERTS, Scope(ORG, DEPT, QUEUE))
        == "alerts:org:org_123:dept:dept_456:queue:support"
    )


def test_all_has_no_room() -> None:
    with pytest.raises(ValueError, match="all"):
        subscription_room(Channel.ALL, Scope(ORG))
    with pytest.raises(ValueError, match="all"):
        delivery_rooms(Channel.ALL, Scope(ORG))


@pytest.mark.parametrize("channel", CONCRETE_CHANNELS)
@pytest.mark.parametrize(("scope", "suffix", "room_type"), LEVELS)
def test_parse_room_round_trip(
    channel: Channel, scope: Scope, suffix: str, room_type: RoomType
) -> None:
    name = subscription_room(channel, scope)
    room = parse_room(name)
    assert room == Room(channel, scope)
    assert room.name == name
    assert room.type is room_type


def test_org_room() -> None:
    assert org_room(ORG) == "org:org_123"
    room = parse_room("org:org_123")
    assert room == Room(None, Scope(ORG))
    assert room.name == "org:org_123"
    assert room.type is RoomType.ORG


@pytest.mark.parametrize(
    "name",
    [
        "",
        "org",
        "org:",
        "org:a:b",
        "org:a b",
        "kpi",
        "kpi:",
        "kpi:org",
        "kpi:org:",
        "KPI:org:a",
        "all:org:a",
        "bogus:org:a",
        "kpi:organization:a",
        "kpi:dept:d",
        "kpi:org:a:dept",
        "kpi:org:a:dept:",
        "kpi:org:a:queue",
        "kpi:org:a:queue:",
        "kpi:org:a:queue:q:dept:d",
        "kpi:org:a:dept:d:dept:e",
        "kpi:org:a:queue:q:queue:r",
        "kpi:org:a:team:t",
        "kpi:org:a:dept:d:queue:q:extra",
        "kpi:org:a:dept:d:queue:q:x:y",
        "kpi:org:\u00e9",
        ":org:a",
    ],
)
def test_parse_room_rejects_malformed(name: str) -> None:
    with pytest.raises(ValueError, match=r"room name|identifier"):
        parse_room(name)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (Scope(ORG), {"kpi:org:org_123"}),
        (
            Scope(ORG, department_id=DEPT),
            {"kpi:org:org_123", "kpi:org:org_123:dept:dept_456"},
        ),
        (
            Scope(ORG, queue_name=QUEUE),
            {"kpi:org:org_123", "kpi:org:org_123:queue:support"},
        ),
        (
            Scope(ORG, DEPT, QUEUE),
            {
                "kpi:org:org_123",
                "kpi:org:org_123:dept:dept_456",
                "kpi:org:org_123:queue:support",
                "kpi:org:org_123:dept:dept_456:queue:support",
            },
        ),
    ],
)
def test_delivery_rooms_union(target: Scope, expected: set[str]) -> None:
    rooms = delivery_rooms(Channel.KPI, target)
    assert set(rooms) == expected
    assert len(rooms) == len(expected), "a room listed twice would deliver twice"


def _matches(filter_: Scope, target: Scope) -> bool:
    """The protocol's words: every field of the filter equals the target's."""
    return (
        filter_.organization_id == target.organization_id
        and filter_.department_id in (None, target.department_id)
        and filter_.queue_name in (None, target.queue_name)
    )


# A small alphabet makes equal values (and so matches) frequent.
_small_ids = st.sampled_from(["a", "b", "a.b", "A", "x-1"])
_full_ids = st.from_regex(r"\A[A-Za-z0-9_.@-]{1,128}\Z")
_channels = st.sampled_from(CONCRETE_CHANNELS)


def _scopes(ids: st.SearchStrategy[str]) -> st.SearchStrategy[Scope]:
    return st.builds(Scope, ids, st.none() | ids, st.none() | ids)


@settings(database=None, max_examples=300)
@given(channel=_channels, filter_=_scopes(_small_ids), target=_scopes(_small_ids))
def test_filter_covers_target_iff_its_room_is_a_delivery_room(
    channel: Channel, filter_: Scope, target: Scope
) -> None:
    """The server's face of the rule (rooms) and the client's (covers) agree."""
    room = subscription_room(channel, filter_)
    assert (room in delivery_rooms(channel, target)) is filter_.covers(target)
    assert filter_.covers(target) is _matches(filter_, target)


@settings(database=None, max_examples=200)
@given(filter_=_scopes(_small_ids), target=_scopes(_small_ids))
def test_a_filter_without_organization_covers_as_the_authenticated_one(
    filter_: Scope, target: Scope
) -> None:
    unscoped = Scope(None, filter_.department_id, filter_.queue_name)
    assert target.organization_id is not None
    assert unscoped.covers(target) is unscoped.within(target.organization_id).covers(target)


@settings(database=None, max_examples=100)
@given(filter_=_scopes(_small_ids))
def test_a_target_of_no_organization_is_covered_by_every_filter(filter_: Scope) -> None:
    assert filter_.covers(Scope())
    assert Scope().covers(Scope())


def test_rooms_need_an_organization() -> None:
    with pytest.raises(ValueError, match="organization"):
        subscription_room(Channel.KPI, Scope(queue_name=QUEUE))
    with pytest.raises(ValueError, match="organization"):
        delivery_rooms(Channel.KPI, Scope())


def test_scope_fields_and_within() -> None:
    assert Scope(queue_name=QUEUE).fields() == {"queue_name": QUEUE}
    assert Scope(queue_name=QUEUE).within(ORG) == Scope(ORG, queue_name=QUEUE)
    assert Scope("other").within(ORG) == Scope("other")
    assert str(Scope(ORG, queue_name=QUEUE)) == f"organization_id={ORG} queue_name={QUEUE}"
    with pytest.raises(TypeError):
        Scope(ORG, queue=QUEUE)  # type: ignore[call-arg]


@settings(database=None, max_examples=100)
@given(channel=_channels, filter_=_scopes(_full_ids), target=_scopes(_full_ids))
def test_delivery_rule_with_any_identifiers(
    channel: Channel, filter_: Scope, target: Scope
) -> None:
    room = subscription_room(channel, filter_)
    assert parse_room(room) == Room(channel, filter_)
    assert (room in delivery_rooms(channel, target)) is filter_.covers(target)


@settings(database=None, max_examples=200)
@given(
    channel=_channels,
    target=_scopes(_small_ids),
    other=_scopes(_small_ids),
    other_channel=_channels,
)
def test_no_cross_organization_or_cross_channel_delivery(
    channel: Channel, target: Scope, other: Scope, other_channel: Channel
) -> None:
    rooms = delivery_rooms(channel, target)
    for name in rooms:
        room = parse_room(name)
        assert room.channel is channel
        assert room.scope.organization_id == target.organization_id
    if other.organization_id != target.organization_id or other_channel is not channel:
        assert subscription_room(other_channel, other) not in rooms
    assert org_room(target.organization_id) not in rooms
