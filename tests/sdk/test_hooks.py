"""The live hooks against the real reference server.

Each test starts a reference server in this event loop and a real
``IntradayClient``; the server's management API shows which rooms a socket
holds, so mounting and unmounting hooks is checked where it matters, on the
server. Every wait is on a condition with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import reactivex.operators as ops

from client_sdk import (
    Channel,
    ClientClosedError,
    ConnectionState,
    IntradayClient,
    Message,
    Scope,
    ServerEvent,
    UnauthorizedError,
)
from client_sdk import hooks as hooks_module
from client_sdk.admin import AdminClient
from client_sdk.hooks import (
    BUFFER,
    KEEP_LATEST,
    UNBOUNDED,
    AlertHook,
    Backpressure,
    ConnectionHealth,
    ConnectionStatusHook,
    HealthHook,
    LiveHooks,
    MessageHook,
    PolicyQueue,
    alert_notifications,
    attendance_updates,
    backlog_updates,
    connection_status,
    events,
    health,
    kpi_updates,
    subscription,
)
from client_sdk.protocol import KpiPayload
from client_sdk.testing import RunningServer, running_server
from tests.conftest import WAIT, eventually, kpi
from tests.sdk.conftest import ClientFactory, Recorder

SUPPORT_KPI_ROOM = "kpi:org:org_a:queue:support"
TIMESTAMP = "2026-11-25T10:30:00Z"


@pytest.fixture
async def client(make_client: ClientFactory) -> IntradayClient:
    """A client of ``srv``, connected."""
    client = make_client()
    await client.connect()
    return client


async def rooms_of(admin: AdminClient, client: IntradayClient) -> set[str]:
    assert client.socket_id is not None
    return set((await admin.connection(client.socket_id)).subscriptions)


async def wait_rooms(admin: AdminClient, client: IntradayClient, expected: set[str]) -> None:
    async def reached() -> bool:
        return await rooms_of(admin, client) == expected

    await eventually(reached, timeout=WAIT)


def alert(**extra: Any) -> dict[str, Any]:
    return {
        "organization_id": "org_a",
        "queue_name": "support",
        "timestamp": TIMESTAMP,
        "alert_id": "alert_1",
        "rule_name": "sla_risk",
        "severity": "high",
        **extra,
    }


def scoped(**extra: Any) -> dict[str, Any]:
    return {"organization_id": "org_a", "queue_name": "support", "timestamp": TIMESTAMP, **extra}


# -- mounting and unmounting --------------------------------------------------------


async def test_first_observer_subscribes_last_one_unsubscribes(
    client: IntradayClient, admin: AdminClient
) -> None:
    hook = kpi_updates(client, queue_name="support")
    assert await rooms_of(admin, client) == set()
    assert not hook.active
    assert not hook.subscribed

    first = hook.subscribe(Recorder[Message[KpiPayload]]())
    await hook.wait_subscribed(WAIT)
    assert await rooms_of(admin, client) == {SUPPORT_KPI_ROOM}

    second = hook.subscribe(Recorder[Message[KpiPayload]]())
    assert hook.observer_count == 2
    rooms = {room.name: room.member_count for room in (await admin.rooms("org_a")).rooms}
    assert rooms[SUPPORT_KPI_ROOM] == 1
    assert client.statistics().subscriptions == 1

    first.dispose()
    assert hook.active
    assert await rooms_of(admin, client) == {SUPPORT_KPI_ROOM}

    second.dispose()
    assert not hook.active
    await wait_rooms(admin, client, set())
    assert client.statistics().subscriptions == 0

    # Mounting again subscribes again.
    again = hook.subscribe(Recorder[Message[KpiPayload]]())
    await hook.wait_subscribed(WAIT)
    assert await rooms_of(admin, client) == {SUPPORT_KPI_ROOM}
    again.dispose()
    await wait_rooms(admin, client, set())


async def test_observers_share_messages_and_latest(
    client: IntradayClient, admin: AdminClient
) -> None:
    hook = kpi_updates(client, queue_name="support")
    assert hook.latest is None
    a, b = Recorder[Message[KpiPayload]](), Recorder[Message[KpiPayload]]()
    scores: Recorder[float | None] = Recorder()
    disposables = [
        hook.subscribe(a),
        hook.subscribe(b),
        hook.pipe(ops.map(lambda m: m.payload.health_score)).subscribe(scores),
    ]
    await hook.wait_subscribed(WAIT)

    await admin.publish_kpi(kpi(health_score=70))
    await admin.publish_kpi(kpi(health_score=71), event=ServerEvent.KPI_COMPUTED)
    await admin.publish_kpi(scoped(metric="aht", value=1.0), event=ServerEvent.KPI_ALERT)
    await admin.publish_kpi(kpi(health_score=72))
    await a.until(lambda: len(a.values) == 3)

    assert [m.event for m in a.values] == [
        ServerEvent.KPI_UPDATE,
        ServerEvent.KPI_COMPUTED,
        ServerEvent.KPI_UPDATE,
    ]
    assert all(isinstance(m.payload, KpiPayload) for m in a.values)
    assert b.values == a.values
    assert scores.values == [70, 71, 72]
    assert hook.latest is a.values[-1]
    for disposable in disposables:
        disposable.dispose()
    assert hook.latest is a.values[-1]  # kept after unmounting


async def test_filters_route_each_queue_to_its_hook(
    client: IntradayClient, admin: AdminClient
) -> None:
    queue_a = kpi_updates(client, queue_name="queue_a")
    queue_b = kpi_updates(client, Scope(queue_name="queue_b"))
    whole_org = kpi_updates(client)
    got_a, got_b, got_org = (Recorder[Message[KpiPayload]]() for _ in range(3))
    queue_a.subscribe(got_a)
    queue_b.subscribe(got_b)
    whole_org.subscribe(got_org)
    for hook in (queue_a, queue_b, whole_org):
        await hook.wait_subscribed(WAIT)
    assert await rooms_of(admin, client) == {
        "kpi:org:org_a:queue:queue_a",
        "kpi:org:org_a:queue:queue_b",
        "kpi:org:org_a",
    }

    for queue, score in (("queue_a", 1), ("queue_b", 2), ("queue_a", 3)):
        await admin.publish_kpi(kpi(queue=queue, health_score=score))
    await got_org.until(lambda: len(got_org.values) == 3)

    def scores(recorder: Recorder[Message[KpiPayload]]) -> list[float | None]:
        return [m.payload.health_score for m in recorder.values]

    assert scores(got_a) == [1, 3]
    assert scores(got_b) == [2]
    assert scores(got_org) == [1, 2, 3]
    assert client.statistics().messages_received == 3  # one delivery per message


HookCase = tuple[
    Callable[[IntradayClient], MessageHook[Any]],
    set[str],
    Callable[[AdminClient], Awaitable[Any]],
    ServerEvent,
]

CASES: dict[str, HookCase] = {
    "backlog_updates": (
        lambda c: backlog_updates(c, queue_name="support"),
        {"backlog:org:org_a:queue:support"},
        lambda admin: admin.publish_backlog(scoped(total_items=3)),
        ServerEvent.BACKLOG_UPDATE,
    ),
    "attendance_updates": (
        lambda c: attendance_updates(c, queue_name="support"),
        {"attendance:org:org_a:queue:support"},
        lambda admin: admin.publish_attendance(
            scoped(employee_id="emp_1"), event=ServerEvent.ATTENDANCE_CHECKIN
        ),
        ServerEvent.ATTENDANCE_CHECKIN,
    ),
    "alert_notifications": (
        lambda c: alert_notifications(c, queue_name="support"),
        {"alerts:org:org_a:queue:support"},
        lambda admin: admin.publish_alert(alert()),
        ServerEvent.ALERT_TRIGGERED,
    ),
    "subscription": (
        lambda c: subscription(c, ["kpi", Channel.ALERTS], queue_name="support"),
        {SUPPORT_KPI_ROOM, "alerts:org:org_a:queue:support"},
        lambda admin: admin.publish_kpi(kpi()),
        ServerEvent.KPI_UPDATE,
    ),
    "events_by_name": (
        lambda c: events(c, "system:notification"),
        {"notifications:org:org_a"},
        lambda admin: admin.broadcast(
            ServerEvent.SYSTEM_NOTIFICATION,
            {"message": "hello", "organization_id": "org_a"},
            target={"organization_id": "org_a"},
        ),
        ServerEvent.SYSTEM_NOTIFICATION,
    ),
    "events_by_channel": (
        lambda c: events(c, Channel.BACKLOG, queue_name="support"),
        {"backlog:org:org_a:queue:support"},
        lambda admin: admin.publish_backlog(scoped(), event=ServerEvent.BACKLOG_SNAPSHOT),
        ServerEvent.BACKLOG_SNAPSHOT,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_each_hook_subscribes_its_room_and_emits_its_events(
    client: IntradayClient, admin: AdminClient, case: HookCase
) -> None:
    make_hook, rooms, publish, event = case
    hook = make_hook(client)
    got = Recorder[Message[Any]]()
    disposable = hook.subscribe(got)
    await hook.wait_subscribed(WAIT)
    assert await rooms_of(admin, client) == rooms

    await publish(admin)
    await got.until(lambda: bool(got.values))
    assert [m.event for m in got.values] == [event]
    assert hook.latest is got.values[0]

    disposable.dispose()
    await wait_rooms(admin, client, set())


async def test_star_listens_to_everything_without_subscribing(
    client: IntradayClient, admin: AdminClient
) -> None:
    everything = events(client, "*")
    got = Recorder[Message[Any]]()
    everything.subscribe(got)
    await everything.wait_subscribed(WAIT)
    assert await rooms_of(admin, client) == set()

    kpis = kpi_updates(client, queue_name="support")
    kpis.subscribe(Recorder[Message[KpiPayload]]())
    await kpis.wait_subscribed(WAIT)
    await admin.publish_kpi(kpi())
    await got.until(lambda: bool(got.values))
    assert got.values[0].event is ServerEvent.KPI_UPDATE


async def test_a_hook_observed_before_connecting_subscribes_once_authenticated(
    make_client: ClientFactory, admin: AdminClient
) -> None:
    client = make_client()
    hook = kpi_updates(client, queue_name="support")
    hook.subscribe(Recorder[Message[KpiPayload]]())
    assert hook.active
    assert not hook.subscribed

    await client.connect()
    await hook.wait_subscribed(WAIT)
    assert await rooms_of(admin, client) == {SUPPORT_KPI_ROOM}


async def test_refused_subscription_errors_observers_and_streams(client: IntradayClient) -> None:
    hook = kpi_updates(client, organization_id="org_b")
    got = Recorder[Message[KpiPayload]]()
    hook.subscribe(got)
    await got.until(lambda: bool(got.errors))
    assert isinstance(got.errors[0], UnauthorizedError)
    assert hook.error is got.errors[0]
    assert not hook.active

    with pytest.raises(UnauthorizedError):
        await hook.wait_subscribed(WAIT)
    with pytest.raises(UnauthorizedError):
        async with hook.stream():
            pass
    assert not hook.active


async def test_an_observer_that_raises_is_reported_and_isolated(
    client: IntradayClient, admin: AdminClient
) -> None:
    hook = kpi_updates(client, queue_name="support")
    errors = Recorder[Exception]()
    client.errors.subscribe(errors)

    def broken(message: Message[KpiPayload]) -> None:
        raise RuntimeError("observer bug")

    good = Recorder[Message[KpiPayload]]()
    hook.subscribe(broken)
    hook.subscribe(good)
    await hook.wait_subscribed(WAIT)
    await admin.publish_kpi(kpi(health_score=1))
    await admin.publish_kpi(kpi(health_score=2))
    await good.until(lambda: len(good.values) == 2)
    await errors.until(lambda: len(errors.values) == 2)
    assert "observer bug" in str(errors.values[0])
    assert client.statistics().handler_errors == 2


# -- alerts ---------------------------------------------------------------------------


async def test_alert_notifications_count_and_clear(
    client: IntradayClient, admin: AdminClient
) -> None:
    alerts = alert_notifications(client, keep=2)
    assert isinstance(alerts, AlertHook)
    got = Recorder[Message[Any]]()
    alerts.subscribe(got)
    await alerts.wait_subscribed(WAIT)
    assert alerts.alert_count == 0

    for event in (ServerEvent.ALERT_TRIGGERED, ServerEvent.ALERT_ACKNOWLEDGED):
        await admin.publish_alert(alert(), event=event)
    await admin.publish_alert(alert(alert_id="alert_2", severity="critical"))
    await got.until(lambda: len(got.values) == 3)
    assert alerts.alert_count == 3
    assert [m.payload.alert_id for m in alerts.recent] == ["alert_1", "alert_2"]

    alerts.clear_count()
    assert alerts.alert_count == 0
    await admin.publish_alert(alert(), event=ServerEvent.ALERT_RESOLVED)
    await got.until(lambda: len(got.values) == 4)
    assert alerts.alert_count == 1
    assert alerts.latest is not None
    assert alerts.latest.event is ServerEvent.ALERT_RESOLVED


# -- connection status and health -----------------------------------------------------


async def test_connection_status_through_a_server_side_disconnect(
    make_client: ClientFactory, admin: AdminClient
) -> None:
    # A kick is terminal by default; this application asks for it to be retried.
    client = make_client(reconnect_after_kick=True)
    await client.connect()
    status = connection_status(client)
    assert isinstance(status, ConnectionStatusHook)
    states = Recorder[ConnectionState]()
    status.subscribe(states)
    assert states.values == [ConnectionState.AUTHENTICATED]
    assert status.latest is ConnectionState.AUTHENTICATED

    kpis = kpi_updates(client, queue_name="support")
    got = Recorder[Message[KpiPayload]]()
    kpis.subscribe(got)
    await kpis.wait_subscribed(WAIT)
    old_sid = client.socket_id
    assert old_sid is not None

    await admin.disconnect(old_sid)
    await states.until(lambda: len(states.values) == 4)
    assert states.values == [
        ConnectionState.AUTHENTICATED,
        ConnectionState.RECONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.AUTHENTICATED,
    ]
    assert client.socket_id not in (None, old_sid)

    late = Recorder[ConnectionState]()
    status.subscribe(late)
    assert late.values == [ConnectionState.AUTHENTICATED]  # the current state at once

    await wait_rooms(admin, client, {SUPPORT_KPI_ROOM})  # restored on the new socket
    assert kpis.subscribed
    await admin.publish_kpi(kpi(health_score=55))
    await got.until(lambda: bool(got.values))
    assert got.values[0].payload.health_score == 55


async def test_health_reports_round_trips_then_missed_pongs_when_the_server_stops(
    srv: RunningServer, client: IntradayClient
) -> None:
    checks = health(client, 0.05, timeout=2.0, unhealthy_after=2)
    assert isinstance(checks, HealthHook)
    got = Recorder[ConnectionHealth]()
    checks.subscribe(got)
    await got.until(lambda: len(got.values) >= 3)
    first = got.values[0]
    assert first.healthy
    assert first.state is ConnectionState.AUTHENTICATED
    assert first.missed_pongs == 0
    assert first.last_pong_at is not None
    assert first.round_trip_seconds is not None
    assert 0 < first.round_trip_seconds < 2.0
    assert checks.latest is got.values[-1]

    late = Recorder[ConnectionHealth]()
    checks.subscribe(late)
    assert late.values == [checks.latest]  # the last health at once

    await srv.server.stop()
    await got.until(lambda: got.values[-1].missed_pongs >= 3)
    last = got.values[-1]
    assert not last.healthy
    assert last.state is not ConnectionState.AUTHENTICATED
    assert last.round_trip_seconds is not None  # the last good round trip is kept
    assert any(not h.healthy and h.missed_pongs == 2 for h in got.values)


async def test_health_pings_only_while_observed(
    make_client: ClientFactory, admin: AdminClient
) -> None:
    idle = make_client()
    await idle.connect()
    assert idle.socket_id is not None
    checks = health(idle, 0.05, timeout=2.0)
    got = Recorder[ConnectionHealth]()
    disposable = checks.subscribe(got)
    await got.until(lambda: len(got.values) >= 2)
    disposable.dispose()
    assert not checks.active

    # Another client's pings measure time: several intervals pass without
    # any activity of the unobserved one reaching the server.
    busy = make_client(user_id="user_2")
    await busy.connect()
    ticks = Recorder[ConnectionHealth]()
    health(busy, 0.05, timeout=2.0).subscribe(ticks)
    await ticks.until(lambda: len(ticks.values) >= 2)
    before = (await admin.connection(idle.socket_id)).last_activity_at
    await ticks.until(lambda: len(ticks.values) >= 5)
    assert (await admin.connection(idle.socket_id)).last_activity_at == before

    again = Recorder[ConnectionHealth]()
    checks.subscribe(again)  # mounting again restarts the pings
    await again.until(lambda: any(h.round_trip_seconds for h in again.values))
    assert (await admin.connection(idle.socket_id)).last_activity_at > before


# -- pulling with async for -----------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "expected", "dropped"),
    [
        (KEEP_LATEST, [49], 49),
        (BUFFER(5), [45, 46, 47, 48, 49], 45),
        (UNBOUNDED, list(range(50)), 0),
    ],
    ids=["keep_latest", "buffer_5", "unbounded"],
)
async def test_slow_consumer_under_each_policy(
    client: IntradayClient,
    admin: AdminClient,
    policy: Backpressure,
    expected: list[int],
    dropped: int,
) -> None:
    hook = kpi_updates(client, queue_name="support")
    every = Recorder[Message[KpiPayload]]()  # a synchronous observer sees every message
    hook.subscribe(every)
    gate = asyncio.Event()
    got: list[int | None] = []

    async with hook.stream(policy=policy) as stream:

        async def consume() -> None:
            await gate.wait()
            async for message in stream:
                got.append(message.payload.contacts_offered)
                if not len(stream):
                    return

        consumer = asyncio.create_task(consume())
        for n in range(50):
            await admin.publish_kpi(kpi(contacts_offered=n))
        await every.until(lambda: len(every.values) == 50)
        assert len(stream) == len(expected)
        assert stream.dropped == dropped
        gate.set()
        await asyncio.wait_for(consumer, WAIT)

    assert got == expected
    assert [m.payload.contacts_offered for m in every.values] == list(range(50))
    assert hook.dropped == dropped
    assert client.statistics().messages_dropped == dropped


async def test_async_for_on_the_hook_mounts_and_unmounts(
    client: IntradayClient, admin: AdminClient
) -> None:
    hook = kpi_updates(client, queue_name="support")

    async def first() -> Message[KpiPayload]:
        async with contextlib.aclosing(aiter(hook)) as messages:
            async for message in messages:
                return message
        raise AssertionError("the stream ended")

    reader = asyncio.create_task(first())
    await hook.wait_subscribed(WAIT)
    await admin.publish_kpi(kpi(health_score=42))
    message = await asyncio.wait_for(reader, WAIT)
    assert message.payload.health_score == 42
    assert not hook.active
    await wait_rooms(admin, client, set())


async def test_closing_the_client_completes_hooks_and_streams(
    client: IntradayClient,
) -> None:
    hook = kpi_updates(client, queue_name="support")
    got = Recorder[Message[KpiPayload]]()
    hook.subscribe(got)
    states = Recorder[ConnectionState]()
    connection_status(client).subscribe(states)
    await hook.wait_subscribed(WAIT)

    async with hook.stream() as stream:
        reader = asyncio.create_task(anext(stream, None))
        await client.close()
        assert await asyncio.wait_for(reader, WAIT) is None

    assert got.completed
    assert states.completed
    assert states.values[-1] is ConnectionState.DISCONNECTED
    late = Recorder[Message[KpiPayload]]()
    hook.subscribe(late)
    assert late.completed
    with pytest.raises(ClientClosedError):
        await hook.wait_subscribed(WAIT)
    async with hook.stream() as ended:
        assert [m async for m in ended] == []


# -- pure parts -----------------------------------------------------------------------


async def test_policy_queue_obeys_its_policy() -> None:
    assert (repr(KEEP_LATEST), repr(BUFFER(3)), repr(UNBOUNDED)) == (
        "KEEP_LATEST",
        "BUFFER(3)",
        "UNBOUNDED",
    )
    with pytest.raises(ValueError, match="at least 1"):
        BUFFER(0)
    with pytest.raises(ValueError, match="exactly one"):
        Backpressure("keep_latest", 2)
    with pytest.raises(ValueError, match="capacity"):
        Backpressure("unbounded", 3)

    drops: list[int] = []
    queue: PolicyQueue[int] = PolicyQueue(BUFFER(3), drops.append)
    for n in range(5):
        queue.put_nowait(n)
    assert (len(queue), queue.dropped, drops) == (3, 2, [1, 1])
    queue.close(RuntimeError("boom"))
    queue.put_nowait(99)  # ignored once closed
    received = [await anext(queue) for _ in range(3)]
    assert received == [2, 3, 4]
    with pytest.raises(RuntimeError, match="boom"):
        await anext(queue)
    assert [n async for n in queue] == []

    waiting: PolicyQueue[str] = PolicyQueue(UNBOUNDED)
    reader = asyncio.create_task(anext(waiting))
    await asyncio.sleep(0)
    waiting.put_nowait("hello")
    assert await asyncio.wait_for(reader, WAIT) == "hello"


async def test_live_hooks_and_factories_build_the_right_hooks() -> None:
    client = IntradayClient(url="http://127.0.0.1:9", auto_connect=False)
    live = LiveHooks(client)
    kpis = live.kpi_updates(queue_name="q")
    assert kpis.subscription_filter == Scope(queue_name="q")
    assert kpis.channels == (Channel.KPI,)
    assert kpis.event_names == {ServerEvent.KPI_UPDATE, ServerEvent.KPI_COMPUTED}
    assert kpis.policy is KEEP_LATEST
    assert live.backlog_updates(department_id="d").subscription_filter == Scope(None, "d")
    assert live.attendance_updates().policy == BUFFER(1000)
    assert live.alert_notifications(policy=UNBOUNDED).policy is UNBOUNDED
    assert live.subscription(["all"]).channels == tuple(c for c in Channel if c is not Channel.ALL)
    assert live.events("kpi:alert").channels == (Channel.KPI,)
    assert live.events("*").channels == ()
    assert live.connection_status().latest is ConnectionState.DISCONNECTED
    assert live.health(0.5).interval == 0.5
    assert live.client is client

    with pytest.raises(TypeError, match="not both"):
        kpi_updates(client, Scope(queue_name="a"), queue_name="b")
    with pytest.raises(ValueError, match="not an event"):
        events(client, "kpi:nope")
    with pytest.raises(ValueError, match="interval"):
        health(client, 0)
    with pytest.raises(ValueError, match="unhealthy_after"):
        health(client, 1, unhealthy_after=0)


def test_public_names_are_pinned() -> None:
    assert set(hooks_module.__all__) == {
        "BUFFER",
        "DEFAULT_BUFFER",
        "KEEP_LATEST",
        "UNBOUNDED",
        "AlertHook",
        "Backpressure",
        "ConnectionStatusHook",
        "ConnectionHealth",
        "HealthHook",
        "Hook",
        "HookOptions",
        "LiveHooks",
        "MessageHook",
        "PolicyQueue",
        "alert_notifications",
        "attendance_updates",
        "backlog_updates",
        "connection_status",
        "events",
        "health",
        "kpi_updates",
        "subscription",
    }
    for name in hooks_module.__all__:
        assert getattr(hooks_module, name).__doc__, name


async def test_a_retryable_refusal_is_retried_on_the_client_policy() -> None:
    """ROOM_FULL passes with time: the hook tries again on the client's backoff (injected time)."""
    async with running_server(room_max_size=1) as server:
        holder = IntradayClient(url=server.url, user_id="holder", organization_id="org_a")
        async with holder:
            held = await holder.subscribe(["kpi"], queue_name="support")
            delays: list[float] = []

            async def sleep(seconds: float) -> None:
                delays.append(seconds)
                if len(delays) == 3:
                    await held.close()  # the room frees up during the third wait
                await asyncio.sleep(0)

            config = {"user_id": "user_1", "organization_id": "org_a", "retry_sleep": sleep}
            async with IntradayClient(url=server.url, **config) as client:
                hook = kpi_updates(client, queue_name="support")
                hook.subscribe(Recorder[Message[KpiPayload]]())
                await hook.wait_subscribed(timeout=WAIT)
                assert delays == [1.0, 2.0, 4.0]  # reconnection_delay doubling, as on reconnect
                assert hook.error is None
