"""The receive path keeps its promises when events are dispatched in the transport's task.

An event that finds nothing waiting is dispatched where it arrives; the
ones arriving meanwhile queue behind it (issue 11). Against the real
reference server: handlers still run one at a time, in arrival order, and
closing the client still cuts off a handler that is running.
"""

from __future__ import annotations

import asyncio
from typing import Any

import engineio.json
import engineio.packet
import httpx
import pytest
import socketio.packet

from client_sdk import ClientConfig, IntradayClient, Message
from client_sdk.blocking import BlockingClient
from client_sdk.hooks import UNBOUNDED, kpi_updates
from client_sdk.protocol import BroadcastRequest, KpiPayload, Payload, Scope
from reference_server.app import ReferenceServer
from tests.conftest import WAIT, ServerFactory, eventually, kpi
from tests.sdk.conftest import fast_config


def config_for(server: ReferenceServer) -> ClientConfig:
    return ClientConfig(
        url=server.url,
        user_id="user_1",
        organization_id="org_a",
        handler_backpressure=UNBOUNDED,
    )


def number(message: Message[KpiPayload]) -> int:
    return int(message.payload.model_extra["n"])  # type: ignore[index]


async def test_async_handlers_run_one_at_a_time_in_arrival_order(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    gate = asyncio.Event()
    log: list[tuple[str, int]] = []
    count = 12
    all_done = asyncio.Event()

    async def handler(message: Message[KpiPayload]) -> None:
        n = number(message)
        log.append(("start", n))
        if n == 0:
            await gate.wait()  # the first one holds the path while the rest arrive
        else:
            await asyncio.sleep(0)  # every handler suspends at least once
        log.append(("end", n))
        if n == count - 1:
            all_done.set()

    async with IntradayClient(config_for(server)) as client:
        client.on(on_kpi_update=handler)
        await client.subscribe(["kpi"], queue_name="support")
        for n in range(count):
            response = await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", n=n))
            assert response.status_code == 200

        async def rest_queued() -> bool:
            return client.statistics().dispatch_queue_depth == count - 1

        await eventually(rest_queued)
        assert log == [("start", 0)]
        gate.set()
        async with asyncio.timeout(WAIT):
            await all_done.wait()
    assert log == [(step, n) for n in range(count) for step in ("start", "end")]


async def test_closing_cancels_a_handler_that_is_still_running(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck(_: Message[KpiPayload]) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    client = IntradayClient(config_for(server))
    await client.connect()
    client.on(on_kpi_update=stuck)
    await client.subscribe(["kpi"], queue_name="support")
    response = await api.post("/api/ws/broadcast/kpi", json=kpi("org_a"))
    assert response.status_code == 200
    async with asyncio.timeout(WAIT):
        await started.wait()
    await client.close()
    async with asyncio.timeout(WAIT):
        await cancelled.wait()


async def test_the_clients_json_leaves_other_socketio_users_alone(
    server: ReferenceServer, api: httpx.AsyncClient
) -> None:
    # The SDK decodes with orjson through a Packet subclass of its own; the
    # shared classes (used by the in-process server and any other client)
    # keep python-socketio's JSON module.
    got: list[Message[KpiPayload]] = []
    arrived = asyncio.Event()

    def on_kpi(message: Message[KpiPayload]) -> None:
        got.append(message)
        arrived.set()

    async with IntradayClient(config_for(server)) as client:
        client.on(on_kpi_update=on_kpi)
        await client.subscribe(["kpi"], queue_name="support")
        response = await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", n=7, note="é ✓"))
        assert response.status_code == 200
        async with asyncio.timeout(WAIT):
            await arrived.wait()
    assert socketio.packet.Packet.json is engineio.json
    assert engineio.packet.Packet.json is engineio.json
    assert number(got[0]) == 7
    assert got[0].payload.model_extra == {"n": 7, "note": "é ✓"}


async def test_a_batch_is_not_overtaken_by_a_later_event_while_a_handler_waits(
    make_server: ServerFactory,
) -> None:
    # The first message of a batch holds an async handler until the next batch
    # has arrived and queued: the rest of the first batch must still come first.
    server = await make_server(batch_window_ms=20, batch_max_messages=8)
    gate = asyncio.Event()
    seen: list[int] = []
    all_seen = asyncio.Event()

    async def handler(message: Message[KpiPayload]) -> None:
        seen.append(number(message))
        if len(seen) == 1:
            await gate.wait()
        if len(seen) == 10:
            all_seen.set()

    async def publish(numbers: range) -> None:
        for n in numbers:
            body = {"event": "kpi:update", "data": kpi("org_a", n=n)}
            await server.publisher.publish(BroadcastRequest.model_validate(body))

    async with IntradayClient(fast_config(server.url, batch=True)) as client:
        client.on(on_kpi_update=handler)
        await client.subscribe(["kpi"], queue_name="support")
        await publish(range(5))

        async def first_held() -> bool:
            return seen == [0] and client.statistics().dispatch_queue_depth == 4

        await eventually(first_held)
        await publish(range(5, 10))

        async def second_queued() -> bool:
            return client.statistics().dispatch_queue_depth == 9

        await eventually(second_queued)
        gate.set()
        async with asyncio.timeout(WAIT):
            await all_seen.wait()
    assert seen == list(range(10))


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[Scope]:
    """Every subscription filter whose ``Scope.covers`` is called, in call order."""
    calls: list[Scope] = []
    covers = Scope.covers

    def counting(self: Scope, target: Scope) -> bool:
        calls.append(self)
        return covers(self, target)

    monkeypatch.setattr(Scope, "covers", counting)
    return calls


async def test_a_message_is_filtered_once_per_subscription_however_many_read_it(
    server: ReferenceServer, api: httpx.AsyncClient, checked: list[Scope]
) -> None:
    """Routing checks a subscription's filter once per message; its readers never again."""
    async with IntradayClient(config_for(server)) as client:
        subscription = await client.subscribe(["kpi"], queue_name="support")
        handled = asyncio.Event()
        client.on(on_kpi_update=lambda _message: handled.set())
        loops = [subscription.messages(), subscription.messages(), subscription.messages()]
        checked.clear()
        response = await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", n=1))
        assert response.status_code == 200
        firsts = await asyncio.wait_for(asyncio.gather(*(anext(loop) for loop in loops)), WAIT)
        await asyncio.wait_for(handled.wait(), WAIT)
        assert [number(message) for message in firsts] == [1, 1, 1]
        assert sum(1 for scope in checked if scope is subscription.filter) == 1


async def test_no_reader_of_any_kind_filters_a_message_again(
    server: ReferenceServer, api: httpx.AsyncClient, checked: list[Scope]
) -> None:
    """Issue 23: every reader a subscription can have shares its one filter check.

    Three subscriptions cover the message, each read by every kind of reader
    it can have: the application's (``on_message`` and two ``messages()``
    loops), a hook's (two observers and a stream) and a blocking client's
    stream. A fourth, of another channel, is never looked at. A reader that
    filtered again, or a subscription checked twice, adds a check: exactly
    one per subscription that covers the message.
    """
    blocking = BlockingClient(config_for(server))
    await asyncio.to_thread(blocking.connect, WAIT)
    try:
        stream = await asyncio.to_thread(
            blocking.messages, ["kpi"], queue_name="support", timeout=WAIT
        )
        async with IntradayClient(config_for(server)) as client:
            called: list[Message[Payload]] = []
            subscription = await client.subscribe(
                ["kpi"], queue_name="support", on_message=called.append
            )
            elsewhere = await client.subscribe(["alerts"])
            loops = [subscription.messages(), subscription.messages()]
            hook = kpi_updates(client, queue_name="support")
            observed: list[Message[KpiPayload]] = []
            hook.subscribe(observed.append)
            hook.subscribe(observed.append)
            async with hook.stream() as hook_stream:
                assert stream.subscription is not None
                filters = [subscription.filter, hook.subscription_filter]
                filters.append(stream.subscription.filter)
                checked.clear()
                response = await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", n=1))
                assert response.status_code == 200
                async with asyncio.timeout(WAIT):
                    firsts = [await anext(loop) for loop in loops]
                    firsts.append(await anext(hook_stream))
                blocked = await asyncio.to_thread(next, stream, None)
            assert blocked is not None
            received: list[Message[Any]] = [*firsts, *called, *observed, blocked]
            assert [number(message) for message in received] == [1] * 7
            # One check per subscription that covers the message, by value: a
            # reader re-checking with a copy of the filter counts too.
            assert sum(1 for scope in checked if scope in filters) == len(filters), checked
            assert elsewhere.filter not in filters
            assert elsewhere.filter not in checked
    finally:
        await asyncio.to_thread(blocking.close)
