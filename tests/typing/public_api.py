"""The public API's types, proven by mypy (``make typecheck``), never run.

Each ``assert_type`` pins what a user's type checker sees; an unused
``type: ignore`` is an error under ``--strict``, so each ignored line proves
that a mistake there is caught.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import assert_type

import reactivex

from client_sdk import (
    AdminClient,
    BlockingClient,
    ClientConfig,
    ClientStatistics,
    ConnectionState,
    IntradayClient,
    IntradayError,
    Message,
    Scope,
    ServerError,
    Subscription,
)
from client_sdk.blocking import MessageStream
from client_sdk.hooks import (
    AlertHook,
    ConnectionHealth,
    ConnectionStatusHook,
    HealthHook,
    LiveHooks,
    MessageHook,
    alert_notifications,
    attendance_updates,
    backlog_updates,
    connection_status,
    events,
    health,
    kpi_updates,
)
from client_sdk.protocol import (
    AlertPayload,
    AttendanceCheckPayload,
    AttendancePayload,
    BacklogPayload,
    BroadcastResult,
    ConnectionList,
    Health,
    KpiPayload,
    Payload,
    Stats,
)
from client_sdk.testing import RunningServer, running_server


async def client_api(config: ClientConfig) -> None:
    client = IntradayClient(config, url="http://localhost:5000", reconnection_attempts=None)
    assert_type(client, IntradayClient)
    IntradayClient(urll="http://localhost:5000")  # type: ignore[call-arg]
    IntradayClient(reconnection_attempts="5")  # type: ignore[arg-type]
    assert_type(config.replace(jitter=0.5), ClientConfig)
    config.replace(jiter=0.5)  # type: ignore[call-arg]

    assert_type(client.state, ConnectionState)
    assert_type(client.state_changes, reactivex.Observable[ConnectionState])
    assert_type(client.errors, reactivex.Observable[IntradayError])
    assert_type(client.failure, IntradayError | None)
    assert_type(client.statistics(), ClientStatistics)
    assert_type(await client.wait_for_state(ConnectionState.AUTHENTICATED), ConnectionState)
    assert_type(await client.ping(), float)

    subscription = await client.subscribe(["kpi"], queue_name="support")
    assert_type(subscription, Subscription)
    assert_type(subscription.filter, Scope)
    await subscription.close()

    def on_kpi(message: Message[KpiPayload]) -> None:
        assert_type(message.payload.health_score, float | None)
        assert_type(message.target, Scope)

    assert_type(client.on(on_kpi_update=on_kpi), Callable[[], None])
    client.on(on_kpi_updat=on_kpi)  # type: ignore[call-arg]

    def on_alert(message: Message[AlertPayload]) -> None: ...

    client.on(on_kpi_update=on_alert)  # type: ignore[arg-type]
    assert_type(Message.from_wire("kpi:update", {}), Message[Payload])
    await client.close()


async def hooks_api(client: IntradayClient) -> None:
    assert_type(kpi_updates(client), MessageHook[KpiPayload])
    assert_type(kpi_updates(client).latest, Message[KpiPayload] | None)
    assert_type(
        kpi_updates(client).by_queue, Mapping[tuple[str | None, str | None], Message[KpiPayload]]
    )
    assert_type(backlog_updates(client), MessageHook[BacklogPayload])
    assert_type(attendance_updates(client), MessageHook[AttendancePayload | AttendanceCheckPayload])
    assert_type(alert_notifications(client), AlertHook)
    assert_type(alert_notifications(client).latest, Message[AlertPayload] | None)
    assert_type(alert_notifications(client).alert_count, int)
    assert_type(events(client, "system:maintenance"), MessageHook[Payload])
    assert_type(connection_status(client), ConnectionStatusHook)
    assert_type(connection_status(client).latest, ConnectionState)
    assert_type(health(client, 5.0), HealthHook)
    assert_type(health(client).latest, ConnectionHealth | None)
    kpi_updates(client, queue="support")  # type: ignore[call-arg]
    live = LiveHooks(client)  # the same factories, the client filled in
    assert_type(live.kpi_updates(queue_name="support"), MessageHook[KpiPayload])
    assert_type(live.alert_notifications(keep=5), AlertHook)
    assert_type(live.health(5.0), HealthHook)
    live.kpi_updates(queue="support")  # type: ignore[call-arg]
    async with kpi_updates(client).stream() as updates:
        async for message in updates:
            assert_type(message, Message[KpiPayload])


def blocking_api() -> None:
    with BlockingClient(url="http://localhost:5000") as client:
        assert_type(client.ping(), float)
        stream = client.messages(["alerts"], timeout=5)
        assert_type(stream, MessageStream)
        assert_type(next(stream), Message[Payload])


async def admin_api(server: RunningServer) -> None:
    async with AdminClient(server.url, token="t") as admin:
        assert_type(await admin.health(), Health)
        assert_type(await admin.stats(), Stats)
        assert_type(await admin.connections("org_a"), ConnectionList)
        assert_type(await admin.publish_kpi({"organization_id": "a"}), BroadcastResult)
    try:
        await admin.stats()
    except ServerError as exc:
        assert_type(exc.retryable, bool)
    async with running_server(admin_token="t") as live:
        assert_type(live, RunningServer)
