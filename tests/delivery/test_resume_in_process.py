"""Nothing lost across a cut connection: replay from the last message seen (section 6).

A reference server with the memory store, a TCP proxy between it and the
SDK, and a numbered sequence published straight to the server while the
proxy resets, black-holes or refuses the client's connection: the client's
handlers see every number once, in order, and the ones published while it
was away are marked replayed.
"""

from __future__ import annotations

from typing import Any

import pytest

from client_sdk import ConnectionState, IntradayClient
from client_sdk.admin import AdminClient
from client_sdk.hooks import kpi_updates
from client_sdk.testing import RunningServer, running_server
from client_sdk.verify.proxy import TcpProxy
from tests.delivery.sequence import ORG, TIMESTAMP, Handled, publish
from tests.sdk.conftest import Recorder, fast_config


async def _fault(proxy: TcpProxy, client: IntradayClient, kind: str) -> None:
    if kind == "reset":
        await proxy.cut()
    elif kind == "blackhole":
        proxy.blackhole()
        await client.wait_for_state(ConnectionState.RECONNECTING, timeout=10)
    else:
        proxy.refuse()
        await proxy.cut()
        await client.wait_for_state(ConnectionState.RECONNECTING, timeout=10)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", ["reset", "blackhole", "refusal"])
async def test_a_cut_connection_loses_doubles_and_reorders_nothing(
    admin: AdminClient, proxy: TcpProxy, kind: str
) -> None:
    async with IntradayClient(fast_config(proxy.url, reconnection_attempts=None)) as client:
        handled = Handled(client)
        await client.subscribe(["kpi", "alerts"], queue_name="support")
        n = 0
        for _ in range(3):
            for _ in range(10):
                n += 1
                await publish(admin, n)  # some arrive live, some wait in the outage
            await _fault(proxy, client, kind)
            outage = range(n + 1, n + 21)
            for n in outage:
                await publish(admin, n)
            proxy.restore()
            await handled.until(n)
        handled.assert_exactly(range(1, n + 1))
        if kind != "reset":  # after a reset the client may be back before the outage ends
            assert set(handled.replayed) >= set(outage)  # the last outage's, at least
        assert handled.gaps == []
        # The replay comes before the subscribe's answer: the reconnect may still be finishing.
        await client.wait_for_state(ConnectionState.AUTHENTICATED, timeout=10)
        stats = client.statistics()
        assert (stats.duplicates_dropped, stats.gaps) == (0, 0)
        assert stats.reconnects == 3


async def test_a_stream_is_resumed_even_when_nothing_arrived_before_the_cut(
    admin: AdminClient, proxy: TcpProxy
) -> None:
    """A subscribe learns its streams' positions up front (a probe): the first outage is safe."""
    async with IntradayClient(fast_config(proxy.url, reconnection_attempts=None)) as client:
        handled = Handled(client)
        await client.subscribe(["alerts"])
        proxy.refuse()
        await proxy.cut()
        await client.wait_for_state(ConnectionState.RECONNECTING, timeout=10)
        for n in range(1, 12, 2):  # alerts only
            await publish(admin, n)
        proxy.restore()
        await handled.until(6)
        assert handled.numbers == [1, 3, 5, 7, 9, 11]
        assert handled.replayed == handled.numbers
        assert handled.gaps == []


async def test_a_server_restart_without_durable_store_is_a_gap_not_silence(
    proxy: TcpProxy, srv: RunningServer
) -> None:
    """The memory store's epoch changes with its process: the resume says complete: false."""
    async with IntradayClient(fast_config(proxy.url, reconnection_attempts=None)) as client:
        handled = Handled(client)
        await client.subscribe(["kpi"])
        async with srv.admin() as admin:
            await publish(admin, 2)
        await handled.until(1)
        position = handled.numbers[:]
        # What a restart of the server's process does to its log: a new epoch.
        store = srv.server.app.store
        assert store is not None
        store.epoch = "after-restart"  # type: ignore[attr-defined]
        await proxy.cut()
        await client.wait_for_state(ConnectionState.AUTHENTICATED, timeout=10)
        await handled.until_gaps(1)
        (gap,) = handled.gaps
        assert gap.stream == f"kpi:{ORG}"
        assert gap.reason == "epoch_changed"
        assert gap.last_seq == 1
        assert gap.server is not None
        assert gap.server.complete is False
        assert client.statistics().gaps == 1
        assert handled.numbers == position


async def test_a_hook_starts_full_from_the_snapshot(admin: AdminClient, srv: RunningServer) -> None:
    for queue, score in (("q1", 10), ("q2", 20), ("q1", 30)):
        await admin.publish_kpi(
            {
                "organization_id": ORG,
                "queue_name": queue,
                "timestamp": TIMESTAMP,
                "health_score": score,
            }
        )
    async with IntradayClient(fast_config(srv.url)) as client:
        kpis = kpi_updates(client)
        got: Recorder[Any] = Recorder()
        kpis.subscribe(got)
        await kpis.wait_subscribed(timeout=5)
        await got.until(lambda: len(got.values) >= 2)
        by_queue = {m.target.queue_name: m.payload.health_score for m in got.values}
        assert by_queue == {"q1": 30, "q2": 20}  # the latest of each queue, once each
        assert all(m.snapshot for m in got.values)
        assert kpis.latest is not None
        assert kpis.latest.snapshot


async def test_after_a_gap_a_state_hook_is_refreshed_from_the_snapshot() -> None:
    """The log kept only 3 messages: q1's latest fell out of it, so the snapshot brings it back."""
    async with (
        running_server(store_max_messages=3) as server,
        server.admin() as admin,
        TcpProxy("127.0.0.1", server.port) as tcp,
        IntradayClient(fast_config(tcp.url, reconnection_attempts=None)) as client,
    ):
        kpis = kpi_updates(client)
        got: Recorder[Any] = Recorder()
        kpis.subscribe(got)
        await kpis.wait_subscribed(timeout=5)
        tcp.refuse()
        await tcp.cut()
        await client.wait_for_state(ConnectionState.RECONNECTING, timeout=10)
        for score in range(1, 11):  # q1 gets 1 and 2, q2 the rest; the log keeps 8, 9, 10
            queue = "q1" if score <= 2 else "q2"
            payload = {"organization_id": ORG, "queue_name": queue, "timestamp": TIMESTAMP}
            await admin.publish_kpi({**payload, "health_score": score})
        tcp.restore()
        await got.until(lambda: any(m.snapshot for m in got.values))
        assert client.statistics().gaps == 1
        [refreshed] = [m for m in got.values if m.snapshot]
        assert (refreshed.target.queue_name, refreshed.payload.health_score) == ("q1", 2)
        replayed = [m.payload.health_score for m in got.values if m.replayed]
        assert replayed == [8, 9, 10]
