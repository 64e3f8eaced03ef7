"""IntradayClient surviving the network: faults at the TCP level, a server restart, backoff.

The client talks to the real reference server through :class:`TcpProxy`,
which cuts, black-holes or refuses connections on demand. After each outage
the client must go ``reconnecting`` then ``authenticated`` with exactly its
previous rooms on the new socket (as the server reports them) and receive
broadcasts again. Backoff runs in injected time (``retry_sleep``), so the
delays are checked exactly without waiting for them.

Reconnect cycles run by this file: 4 (one per fault) + 1 (server restart)
+ 20 (leak check) = 25; the backoff tests only fail attempts.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from client_sdk import IntradayClient
from client_sdk.admin import AdminClient
from client_sdk.exceptions import ReconnectFailedError
from client_sdk.protocol import ConnectionState
from client_sdk.verify.proxy import TcpProxy
from tests.conftest import WAIT, eventually, kpi
from tests.processes import ServerProcess, free_port
from tests.sdk.conftest import ClientFactory, Watcher

ROOT = Path(__file__).resolve().parents[2]

# Engine.IO advertises pingInterval as int(seconds) * 1000 (python-engineio
# 4.x truncates), so a sub-second interval reaches python-socketio clients as
# 0 and they drop every connection after ping_timeout. 1 s + 0.5 s is the
# fastest heartbeat that works: a black hole is noticed within 1.5 s.
HEARTBEAT = {"ping_interval_ms": 1000, "ping_timeout_ms": 500}


@pytest.fixture
def server_settings() -> dict[str, Any]:
    """``srv`` with the fast heartbeat."""
    return HEARTBEAT


async def server_rooms(admin: AdminClient, socket_id: str | None) -> list[str]:
    assert socket_id is not None
    return sorted((await admin.connection(socket_id)).subscriptions)


async def subscribe_several(client: IntradayClient) -> None:
    """Subscriptions of every shape, two sharing a room, one closed again."""
    await client.subscribe(["kpi"], queue_name="support")
    await client.subscribe(["kpi", "alerts"], queue_name="support")  # shares kpi:...:support
    await client.subscribe(["backlog"], department_id="dept_1", queue_name="support")
    await client.subscribe(["attendance"])
    closed = await client.subscribe(["notifications"], department_id="dept_2")
    await closed.close()


async def received_again(admin: AdminClient, watcher: Watcher) -> None:
    """A broadcast published now reaches the client."""
    result = await admin.publish_kpi(kpi(health_score=77))
    assert result.recipients == 1
    await watcher.until(lambda: any(m.id == result.message_id for m in watcher.kpis))


# -- TCP faults ------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["rst", "fin", "blackhole", "refuse"])
async def test_client_recovers_from_a_tcp_fault(
    fault: str,
    admin: AdminClient,
    proxy: TcpProxy,
    make_client: ClientFactory,
) -> None:
    client = make_client(proxy.url, reconnection_attempts=None)
    watcher = Watcher(client)
    await client.connect()
    await subscribe_several(client)
    old_sid = client.socket_id
    rooms = await server_rooms(admin, old_sid)
    assert rooms == [
        "alerts:org:org_a:queue:support",
        "attendance:org:org_a",
        "backlog:org:org_a:dept:dept_1:queue:support",
        "kpi:org:org_a:queue:support",
    ]
    assert list(client.statistics().rooms) == rooms
    await received_again(admin, watcher)
    seen = len(watcher.states)

    if fault in ("rst", "fin"):
        await proxy.cut(reset=fault == "rst")
    elif fault == "blackhole":
        proxy.blackhole()
        # Only the missing Engine.IO pings can tell: nothing is closed.
        await watcher.until(lambda: ConnectionState.RECONNECTING in watcher.states[seen:])
        proxy.restore()
    else:
        accepted = proxy.accepted
        proxy.refuse(True, status=503)
        await proxy.cut()
        await proxy.wait_accepted(accepted + 3)  # three refused attempts
        proxy.restore()

    await watcher.until(lambda: ConnectionState.RECONNECTING in watcher.states[seen:])
    await client.wait_for_state(ConnectionState.AUTHENTICATED, timeout=WAIT)
    # "authenticated" again means the rooms are back already.
    assert await server_rooms(admin, client.socket_id) == rooms
    await watcher.until_reconnects(1)
    after = watcher.states[seen:]
    assert after[0] is ConnectionState.RECONNECTING
    assert after[-1] is ConnectionState.AUTHENTICATED
    assert ConnectionState.FAILED not in after
    assert len(watcher.disconnects) == 1
    assert client.socket_id != old_sid
    assert client.statistics().reconnects == 1
    await received_again(admin, watcher)


# -- server restart --------------------------------------------------------------


@pytest.fixture
async def server_process() -> AsyncIterator[ServerProcess]:
    server = ServerProcess(free_port())
    try:
        yield server
    finally:
        await server.kill()


@pytest.mark.timeout(30)
async def test_client_comes_back_after_the_server_is_killed_and_restarted(
    server_process: ServerProcess, make_client: ClientFactory
) -> None:
    await server_process.start()
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)
        await asyncio.sleep(seconds)

    client = make_client(server_process.url, reconnection_attempts=None, retry_sleep=sleep)
    watcher = Watcher(client)
    await client.connect()
    await client.subscribe(["kpi"], queue_name="support")
    rooms = ["kpi:org:org_a:queue:support"]

    await server_process.kill()
    await watcher.until_disconnects(1)
    await watcher.until(lambda: client.state is ConnectionState.RECONNECTING)
    await server_process.start()  # same port; the client keeps trying meanwhile
    await watcher.until_reconnects(1, timeout=10)
    assert client.state is ConnectionState.AUTHENTICATED
    async with AdminClient(server_process.url) as admin:
        assert await server_rooms(admin, client.socket_id) == rooms
        await received_again(admin, watcher)
    # Many attempts failed while the server was down (capped at 0.2 s apart), yet
    # on_disconnect and on_reconnect fired once each for the outage.
    assert len(waited) >= 2
    assert max(waited) <= 0.2
    assert len(watcher.disconnects) == 1
    assert watcher.reconnects == 1
    assert watcher.connects == 2
    assert client.statistics().reconnects == 1


# -- twenty cycles leave nothing behind ------------------------------------------------


async def test_twenty_reconnects_leave_no_task_handler_or_room_behind(
    admin: AdminClient,
    proxy: TcpProxy,
    make_client: ClientFactory,
) -> None:
    # Kicks are terminal by default; this application asks for them to be retried.
    client = make_client(proxy.url, reconnect_after_kick=True)
    watcher = Watcher(client)
    await client.connect()
    await subscribe_several(client)
    rooms = await server_rooms(admin, client.socket_id)
    await received_again(admin, watcher)
    baseline = task_kinds()

    # Generous, but a fixed second per reconnect (as AsyncClient.wait() sleeps) fails it.
    async with asyncio.timeout(15):
        for cycle in range(1, 21):
            sid = client.socket_id
            assert sid is not None
            if cycle % 2:
                await admin.disconnect(sid)  # the server drops the socket
            else:
                await proxy.cut()  # the network drops it
            await watcher.until_reconnects(cycle)
            assert client.socket_id != sid

    stats = client.statistics()
    assert stats.reconnects == 20
    assert len(watcher.disconnects) == 20
    assert list(stats.rooms) == rooms
    current = await server_rooms(admin, client.socket_id)
    assert current == rooms  # each room once
    # The server forgot every old socket; each room holds just the new one.
    assert (await eventually(lambda: _only_connection(admin))) == client.socket_id
    listed = {room.name: room.member_count for room in (await admin.rooms("org_a")).rooms}
    assert all(listed[room] == 1 for room in rooms)

    # One broadcast, handled once; the second one is a barrier (dispatch is ordered).
    before = len(watcher.kpis)
    first = (await admin.publish_kpi(kpi(health_score=1))).message_id
    second = (await admin.publish_kpi(kpi(health_score=2))).message_id
    await watcher.until(lambda: any(m.id == second for m in watcher.kpis))
    assert [m.id for m in watcher.kpis[before:]] == [first, second]
    assert client.statistics().duplicates_dropped == 0

    # Every task of the old connections ended (the proxy's and the server's too).
    # (Compared by coroutine, so a task that happened to be finishing when the
    # baseline was taken cannot hide a leak: twenty cycles would add twenty.)
    await eventually(lambda: _no_more_tasks_than(baseline))
    assert not task_kinds() - baseline
    assert len(asyncio.all_tasks()) <= baseline.total()


async def _only_connection(admin: AdminClient) -> str | None:
    listed = (await admin.connections("org_a")).connections
    return listed[0].socket_id if len(listed) == 1 else None


def task_kinds() -> Counter[str]:
    """The running tasks, counted by coroutine (the test's own task included)."""
    return Counter(getattr(t.get_coro(), "__qualname__", "?") for t in asyncio.all_tasks())


async def _no_more_tasks_than(baseline: Counter[str]) -> bool:
    return not task_kinds() - baseline


# -- backoff in injected time ------------------------------------------------------------


class SleepRecorder:
    """A ``retry_sleep`` that records the requested delays and does not wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


async def test_backoff_doubles_and_gives_up_after_the_configured_attempts(
    proxy: TcpProxy, make_client: ClientFactory
) -> None:
    sleep = SleepRecorder()
    client = make_client(
        proxy.url,
        reconnection_delay=1.0,
        reconnection_delay_max=30.0,
        reconnection_attempts=5,
        retry_sleep=sleep,
    )
    watcher = Watcher(client)
    proxy.refuse(True, status=503)
    with pytest.raises(ReconnectFailedError) as raised:
        await client.connect()
    # The first attempt is immediate; then 1, 2, 4, 8 seconds.
    assert sleep.delays == [1.0, 2.0, 4.0, 8.0]
    assert proxy.accepted == 5
    assert client.state is ConnectionState.FAILED
    assert client.failure is raised.value
    assert watcher.states[-1] is ConnectionState.FAILED
    assert any(isinstance(e, ReconnectFailedError) for e in watcher.errors)


async def test_backoff_is_capped_by_the_maximum_delay(
    proxy: TcpProxy, make_client: ClientFactory
) -> None:
    sleep = SleepRecorder()
    client = make_client(
        proxy.url,
        reconnection_delay=1.0,
        reconnection_delay_max=3.0,
        reconnection_attempts=7,
        retry_sleep=sleep,
    )
    proxy.refuse(True, status=503)
    with pytest.raises(ReconnectFailedError):
        await client.connect()
    assert sleep.delays == [1.0, 2.0, 3.0, 3.0, 3.0, 3.0]
    assert proxy.accepted == 7


async def test_jitter_adds_at_most_its_fraction_of_the_first_delay(
    proxy: TcpProxy, make_client: ClientFactory
) -> None:
    sleep = SleepRecorder()
    client = make_client(
        proxy.url,
        reconnection_delay=1.0,
        reconnection_delay_max=4.0,
        reconnection_attempts=9,
        jitter=0.5,
        retry_sleep=sleep,
    )
    proxy.refuse(True, status=503)
    with pytest.raises(ReconnectFailedError):
        await client.connect()
    base = [1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert len(sleep.delays) == len(base)
    for delay, low in zip(sleep.delays, base, strict=True):
        assert low <= delay <= low + 0.5 * 1.0
    assert sleep.delays != base  # it is random, not a constant offset of 0


async def test_reconnect_gives_up_after_the_configured_attempts_per_outage(
    proxy: TcpProxy, make_client: ClientFactory
) -> None:
    sleep = SleepRecorder()
    client = make_client(proxy.url, reconnection_attempts=3, retry_sleep=sleep)
    watcher = Watcher(client)
    await client.connect()
    assert sleep.delays == []  # the first connection needed no retry
    accepted = proxy.accepted

    proxy.refuse(True, status=503)
    await proxy.cut()
    await watcher.until(lambda: client.state is ConnectionState.FAILED)
    assert sleep.delays == [0.05, 0.1]
    assert proxy.accepted - accepted == 3
    assert isinstance(client.failure, ReconnectFailedError)
    assert watcher.reconnects == 0
    assert len(watcher.disconnects) == 1
    await watcher.until(lambda: bool(watcher.on_errors))
    assert watcher.on_errors == [client.failure]
    with pytest.raises(ReconnectFailedError):
        await client.wait_for_state(ConnectionState.AUTHENTICATED, timeout=1)
