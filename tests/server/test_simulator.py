"""The simulated intraday feed: valid payloads, coherent stories, reproducible runs.

Pure tier: the simulator is stepped directly with a fixed seed and an
injected clock; nothing touches the network and nothing sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from client_sdk.protocol import (
    EVENT_PAYLOADS,
    BroadcastRequest,
    Priority,
    ServerEvent,
    is_identifier,
)
from reference_server.simulator import IntradaySimulator

SEED = 20261125
STEPS = 300
START = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)

Ticks = list[list[BroadcastRequest]]


def ticking_clock() -> Callable[[], datetime]:
    """A clock that moves one second per reading."""
    counter = itertools.count()
    return lambda: START + timedelta(seconds=next(counter))


async def discard(request: BroadcastRequest) -> None:
    """A publish that drops everything (for simulators that are only stepped)."""


def simulate(steps: int, *, seed: int = SEED) -> Ticks:
    sim = IntradaySimulator(discard, seed=seed, clock=ticking_clock())
    return [sim.step() for _ in range(steps)]


@pytest.fixture(scope="module")
def ticks() -> Ticks:
    return simulate(STEPS)


def flat(ticks: Ticks) -> Iterator[BroadcastRequest]:
    return itertools.chain.from_iterable(ticks)


def of(ticks: Ticks, event: ServerEvent) -> list[dict[str, Any]]:
    return [request.data for request in flat(ticks) if request.event is event]


def strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def test_every_payload_validates_and_targets_its_own_scope(ticks: Ticks) -> None:
    for request in flat(ticks):
        EVENT_PAYLOADS[request.event].model_validate(request.data)
        assert request.target is not None
        assert request.target.organization_id == request.data["organization_id"]
        assert request.target.department_id == request.data.get("department_id")
        assert request.target.queue_name == request.data.get("queue_name")
        assert request.target.socket_ids is None


def test_volume_suits_a_live_demo(ticks: Ticks) -> None:
    sizes = [len(tick) for tick in ticks]
    assert max(sizes) <= 60
    assert min(sizes) >= 20
    assert 20 <= sum(sizes) / len(sizes) <= 40


def test_organizations_stay_apart(ticks: Ticks) -> None:
    organizations = ("acme", "globex")
    seen = Counter(request.data["organization_id"] for request in flat(ticks))
    assert set(seen) == set(organizations)
    for request in flat(ticks):
        others = [org for org in organizations if org != request.data["organization_id"]]
        for text in strings(request.data):
            assert not any(other in text for other in others), (request.event, text)


def test_every_alert_lives_in_order(ticks: Ticks) -> None:
    alert_events = {
        ServerEvent.ALERT_TRIGGERED,
        ServerEvent.ALERT_ESCALATED,
        ServerEvent.ALERT_ACKNOWLEDGED,
        ServerEvent.ALERT_RESOLVED,
    }
    lives: dict[str, list[BroadcastRequest]] = defaultdict(list)
    for request in flat(ticks):
        if request.event in alert_events:
            lives[request.data["alert_id"]].append(request)
    assert {r.event for life in lives.values() for r in life} == alert_events
    for alert_id, life in lives.items():
        events = [r.event for r in life]
        assert events[0] is ServerEvent.ALERT_TRIGGERED, alert_id
        assert events.count(ServerEvent.ALERT_TRIGGERED) == 1
        assert events.count(ServerEvent.ALERT_ACKNOWLEDGED) <= 1
        assert events.count(ServerEvent.ALERT_RESOLVED) <= 1
        if ServerEvent.ALERT_RESOLVED in events:
            assert events[-1] is ServerEvent.ALERT_RESOLVED
            assert life[-1].data["resolution"]
        if ServerEvent.ALERT_ACKNOWLEDGED in events:
            acked = events.index(ServerEvent.ALERT_ACKNOWLEDGED)
            assert ServerEvent.ALERT_ESCALATED not in events[acked:]
            assert life[acked].data["acknowledged_by"]
            assert life[acked].data["acknowledged_at"]
        levels = [r.data["escalation_level"] for r in life]
        assert levels[0] == 0
        assert levels == sorted(levels)
        assert {(r.data["organization_id"], r.data["rule_name"]) for r in life} == {
            (life[0].data["organization_id"], life[0].data["rule_name"])
        }


def test_escalations_count_up_one_at_a_time(ticks: Ticks) -> None:
    level: dict[str, int] = {}
    for request in flat(ticks):
        if request.event is ServerEvent.ALERT_TRIGGERED:
            level[request.data["alert_id"]] = 0
        elif request.event is ServerEvent.ALERT_ESCALATED:
            alert_id = request.data["alert_id"]
            assert request.data["escalation_level"] == level[alert_id] + 1
            level[alert_id] += 1


def test_alert_priorities_follow_severity(ticks: Ticks) -> None:
    raised = {ServerEvent.ALERT_TRIGGERED, ServerEvent.ALERT_ESCALATED}
    for request in flat(ticks):
        if request.event in raised:
            critical = request.data["severity"] == "critical"
            assert request.priority is (Priority.URGENT if critical else Priority.HIGH)
            assert request.requires_ack is critical


def test_each_trigger_comes_with_a_metric_alert(ticks: Ticks) -> None:
    metric_events = {
        ServerEvent.KPI_ALERT,
        ServerEvent.BACKLOG_ALERT,
        ServerEvent.ATTENDANCE_ALERT,
    }
    for tick in ticks:
        for first, second in itertools.pairwise(tick):
            if first.event is ServerEvent.ALERT_TRIGGERED:
                assert second.event in metric_events
                assert second.data["metric"] == first.data["metric"]
                assert second.data["severity"] == first.data["severity"]
                assert second.target == first.target
    assert of(ticks, ServerEvent.KPI_ALERT)
    assert of(ticks, ServerEvent.BACKLOG_ALERT)


def test_check_ins_and_check_outs_alternate(ticks: Ticks) -> None:
    present: dict[tuple[str, str], bool] = defaultdict(bool)
    counts = Counter[ServerEvent]()
    for request in flat(ticks):
        key = (request.data["organization_id"], request.data.get("employee_id", ""))
        if request.event is ServerEvent.ATTENDANCE_CHECKIN:
            assert not present[key], key
            present[key] = True
        elif request.event is ServerEvent.ATTENDANCE_CHECKOUT:
            assert present[key], key
            present[key] = False
        else:
            continue
        counts[request.event] += 1
        assert request.data["employee_name"]
        assert request.data["check_time"] == request.data["timestamp"]
    assert counts[ServerEvent.ATTENDANCE_CHECKIN] > 0
    assert counts[ServerEvent.ATTENDANCE_CHECKOUT] > 0


def test_attendance_counts_add_up(ticks: Ticks) -> None:
    updates = of(ticks, ServerEvent.ATTENDANCE_UPDATE)
    assert len(updates) == 4 * STEPS
    for data in updates:
        assert data["present"] + data["absent"] == data["scheduled"]
        assert data["on_break"] <= data["present"]
        assert data["late"] <= data["present"]
    assert len({data["present"] for data in updates}) > 3


def test_kpis_stay_in_range_and_move(ticks: Ticks) -> None:
    by_queue: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for data in of(ticks, ServerEvent.KPI_UPDATE):
        by_queue[data["organization_id"], data["queue_name"]].append(data)
    assert len(by_queue) == 10
    for series in by_queue.values():
        assert len(series) == STEPS
        for data in series:
            for percent in (
                data["utilization"]["current_utilization"],
                data["utilization"]["occupancy"],
                data["service_level"]["current"],
                data["health_score"],
                data["sla_risk"]["score"],
            ):
                assert 0 <= percent <= 100
            assert data["average_handle_time_seconds"] > 0
            assert data["contacts_handled"] <= data["contacts_offered"]
            gap = data["headcount_gap"]
            assert gap["gap"] == pytest.approx(gap["required"] - gap["scheduled"], abs=0.11)
        for metric in ("utilization", "service_level", "average_handle_time_seconds"):
            assert len({str(data[metric]) for data in series}) > 5, metric
        assert len({data["health_score"] for data in series}) > 5
        offered = [data["contacts_offered"] for data in series]
        assert offered == sorted(offered)
        assert offered[-1] > offered[0]


def test_kpi_changes_are_deltas_of_the_previous_update(ticks: Ticks) -> None:
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for data in of(ticks, ServerEvent.KPI_UPDATE):
        key = (data["organization_id"], data["queue_name"])
        changes = data["changes"]
        previous = last.get(key)
        if previous is None:
            assert changes == {}
        else:
            assert changes["health_score"] == pytest.approx(
                data["health_score"] - previous["health_score"], abs=0.11
            )
            assert changes["contacts_offered"] == pytest.approx(
                data["contacts_offered"] - previous["contacts_offered"]
            )
        last[key] = data


def test_departments_get_computed_aggregates(ticks: Ticks) -> None:
    computed = of(ticks, ServerEvent.KPI_COMPUTED)
    departments = {(d["organization_id"], d["department_id"]) for d in computed}
    assert len(departments) == 4
    assert all(d["queue_name"] is None for d in computed)
    assert len(computed) < len(of(ticks, ServerEvent.KPI_UPDATE)) / 5


def test_backlogs_grow_and_clear(ticks: Ticks) -> None:
    series: dict[tuple[str, str], list[int]] = defaultdict(list)
    for data in of(ticks, ServerEvent.BACKLOG_UPDATE):
        assert sum(data["items_by_priority"].values()) == data["total_items"]
        assert data["sla_breaches"] <= data["total_items"]
        series[data["organization_id"], data["queue_name"]].append(data["total_items"])
    steps = [b - a for sizes in series.values() for a, b in itertools.pairwise(sizes)]
    assert any(step > 0 for step in steps)
    assert any(step < 0 for step in steps)
    assert max(max(sizes) for sizes in series.values()) >= 10


def test_snapshots_are_bounded_lists(ticks: Ticks) -> None:
    snapshots = of(ticks, ServerEvent.BACKLOG_SNAPSHOT)
    assert len(snapshots) == STEPS  # each of the 10 queues every 10 ticks
    assert any(data["items"] for data in snapshots)
    for data in snapshots:
        assert len(data["items"]) == min(data["total_items"], 20)
        for item in data["items"]:
            assert item["sla_breached"] == (item["sla_due_at"] < data["timestamp"])


def test_system_notifications_are_rare(ticks: Ticks) -> None:
    notifications = of(ticks, ServerEvent.SYSTEM_NOTIFICATION)
    assert 0 < len(notifications) < STEPS / 10
    assert all(data["message"] for data in notifications)


def test_same_seed_same_feed_other_seed_other_feed() -> None:
    def dump(ticks: Ticks) -> list[list[dict[str, Any]]]:
        return [[request.model_dump(mode="json") for request in tick] for tick in ticks]

    first = dump(simulate(25))
    assert first == dump(simulate(25))
    assert first != dump(simulate(25, seed=SEED + 1))


def test_describe_lists_what_to_subscribe_to() -> None:
    sim = IntradaySimulator(discard, organizations=("acme", "globex", "initech"), seed=1)
    assert sim.organizations == ("acme", "globex", "initech")
    described = sim.describe()
    assert list(described) == ["acme", "globex", "initech"]
    for departments in described.values():
        assert len(departments) == 2
        for department, queues in departments.items():
            assert is_identifier(department)
            assert 2 <= len(queues) <= 3
            assert all(is_identifier(queue) for queue in queues)


@pytest.mark.parametrize("organizations", [(), ("acme", "acme"), ("a:b",), ("",)])
def test_bad_organizations_are_refused(organizations: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="organizations"):
        IntradaySimulator(discard, organizations=organizations)


async def test_run_publishes_every_request_of_every_tick() -> None:
    published: list[BroadcastRequest] = []

    async def publish(request: BroadcastRequest) -> None:
        published.append(request)

    sim = IntradaySimulator(publish, seed=SEED, tick_seconds=0, clock=ticking_clock())
    await sim.run(ticks=3)
    assert sim.ticks == 3
    assert published == list(flat(simulate(3)))


async def test_run_keeps_going_when_a_publish_fails(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def publish(request: BroadcastRequest) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("server busy")

    sim = IntradaySimulator(publish, seed=SEED, tick_seconds=0, clock=ticking_clock())
    with caplog.at_level(logging.WARNING):
        await sim.run(ticks=2)
    assert calls == len(list(flat(simulate(2))))
    assert "1 of this tick's publishes failed" in caplog.text


async def test_run_stops_when_cancelled() -> None:
    enough = asyncio.Event()
    published: list[BroadcastRequest] = []

    async def publish(request: BroadcastRequest) -> None:
        published.append(request)
        if len(published) >= 100:
            enough.set()

    sim = IntradaySimulator(publish, seed=SEED, tick_seconds=0, clock=ticking_clock())
    task = asyncio.create_task(sim.run())
    await asyncio.wait_for(enough.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    count = len(published)
    await asyncio.sleep(0)
    assert len(published) == count
    assert published == list(flat(simulate(sim.ticks)))[:count]
