"""BlockingClient against the real reference server, and the async client in a running loop.

The reference server runs in the test's event loop; the blocking facade runs
its own loop in its own thread, so every blocking call here goes through
``asyncio.to_thread`` (a direct call would block the server's loop too).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import client_sdk
from client_sdk import (
    AuthenticationError,
    ClientClosedError,
    ConnectionLostError,
    ConnectionState,
    IntradayClient,
    Message,
    ReconnectFailedError,
    RequestTimeoutError,
)
from client_sdk.blocking import BlockingClient
from client_sdk.protocol import KpiPayload
from client_sdk.testing import running_server
from reference_server.app import ReferenceServer
from tests.conftest import ServerFactory, kpi
from tests.sdk.conftest import fast_config

WAIT = 10.0


@pytest.fixture
async def blocking(server: ReferenceServer) -> Any:
    """A connected BlockingClient of ``server``, closed after the test."""
    client = BlockingClient(fast_config(server.url))
    await asyncio.to_thread(client.__enter__)
    yield client
    await asyncio.to_thread(client.close)


async def test_connects_subscribes_and_iterates_messages(
    blocking: BlockingClient, api: httpx.AsyncClient
) -> None:
    assert blocking.state is ConnectionState.AUTHENTICATED
    assert blocking.identity is not None
    assert blocking.identity.organization_id == "org_a"
    support = await asyncio.to_thread(
        blocking.messages, ["kpi"], queue_name="support", timeout=WAIT
    )
    billing = await asyncio.to_thread(
        blocking.messages, ["kpi"], queue_name="billing", timeout=WAIT
    )
    assert support.subscription is not None
    assert support.subscription.rooms == ("kpi:org:org_a:queue:support",)
    # billing first: the support stream must skip it (same client, other filter)
    await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", "billing", health_score=40))
    sent = (await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", "support"))).json()
    message = await asyncio.to_thread(next, support, None)
    assert message is not None
    assert message.id == sent["message_id"]
    assert isinstance(message.payload, KpiPayload)
    assert message.payload.health_score == 90
    other = await asyncio.to_thread(next, billing, None)
    assert other is not None
    assert other.target.queue_name == "billing"
    assert await asyncio.to_thread(blocking.ping) > 0
    assert blocking.statistics().messages_received == 2

    await asyncio.to_thread(support.close)
    info = (await api.get(f"/api/ws/connections/{blocking.socket_id}")).json()["connection"]
    assert info["subscriptions"] == ["kpi:org:org_a:queue:billing"]
    with pytest.raises(StopIteration):
        next(support)  # a closed stream ends at once


async def test_a_quiet_stream_raises_by_default_and_stays_usable(
    blocking: BlockingClient, api: httpx.AsyncClient
) -> None:
    stream = await asyncio.to_thread(blocking.messages, ["kpi"], queue_name="support", timeout=0.05)
    with pytest.raises(RequestTimeoutError, match="no message within"):
        await asyncio.to_thread(next, stream)
    assert not stream.timed_out
    await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", "support"))

    def next_after_quiet_spells() -> Any:
        # What a script does: catch the quiet spell, keep reading the same stream.
        for _ in range(int(WAIT / 0.05)):
            with contextlib.suppress(RequestTimeoutError):
                return next(stream)
        raise AssertionError("the message never came")

    message = await asyncio.to_thread(next_after_quiet_spells)
    assert message.target.queue_name == "support"
    await asyncio.to_thread(stream.close)


async def test_a_stream_can_choose_to_end_on_its_timeout(blocking: BlockingClient) -> None:
    stream = await asyncio.to_thread(blocking.messages, ["alerts"], timeout=0.05, on_timeout="stop")
    assert await asyncio.to_thread(list, stream) == []
    assert stream.timed_out


async def test_subscription_handle_unsubscribes(
    blocking: BlockingClient, api: httpx.AsyncClient
) -> None:
    subscription = await asyncio.to_thread(blocking.subscribe, ["backlog"], department_id="d1")
    assert subscription.rooms == ("backlog:org:org_a:dept:d1",)
    url = f"/api/ws/connections/{blocking.socket_id}"
    assert (await api.get(url)).json()["connection"]["subscriptions"] == [
        "backlog:org:org_a:dept:d1"
    ]
    await asyncio.to_thread(subscription.close)
    assert subscription.closed
    assert (await api.get(url)).json()["connection"]["subscriptions"] == []


async def test_handlers_run_in_the_loop_thread_and_may_not_block_on_it(
    blocking: BlockingClient, api: httpx.AsyncClient
) -> None:
    seen: queue.Queue[tuple[str, str, BaseException | None]] = queue.Queue()

    def on_kpi(message: Message[KpiPayload]) -> None:
        try:
            blocking.ping()
        except RuntimeError as exc:
            seen.put((threading.current_thread().name, message.event, exc))
        else:
            seen.put((threading.current_thread().name, message.event, None))

    remove = blocking.on(on_kpi_update=on_kpi)
    await asyncio.to_thread(blocking.subscribe, ["kpi"])
    await api.post("/api/ws/broadcast/kpi", json=kpi("org_a"))
    thread, event, error = await asyncio.to_thread(seen.get, timeout=WAIT)
    assert thread == "intraday-client"
    assert thread != threading.current_thread().name
    assert event == "kpi:update"
    assert isinstance(error, RuntimeError)
    assert "deadlock" in str(error)
    remove()


async def test_close_stops_the_thread_and_ends_streams(
    server: ReferenceServer,
) -> None:
    client = BlockingClient(fast_config(server.url))
    await asyncio.to_thread(client.connect)
    stream = await asyncio.to_thread(client.messages, ["kpi"])
    reader = asyncio.create_task(asyncio.to_thread(list, stream))  # blocks: no timeout
    await asyncio.to_thread(client.close)
    assert await asyncio.wait_for(reader, WAIT) == []
    assert client.closed
    assert client.state is ConnectionState.DISCONNECTED
    assert not any(t.name == "intraday-client" for t in threading.enumerate())
    with pytest.raises(ClientClosedError):
        client.ping()
    with pytest.raises(ClientClosedError):
        client.connect()
    client.close()  # idempotent
    stream.close()  # so is closing the stream after its client


async def test_rejected_credentials_raise_the_sdk_error(make_server: ServerFactory) -> None:
    server = await make_server(auth_mode="jwt", jwt_secret="s" * 32)
    client = BlockingClient(fast_config(server.url))
    with pytest.raises(AuthenticationError) as caught:
        await asyncio.to_thread(client.__enter__)
    assert caught.value.retryable is False
    assert client.failure is caught.value
    assert client.closed  # __enter__ cleaned up after itself
    assert not any(t.name == "intraday-client" for t in threading.enumerate())


async def test_exhausted_reconnects_raise_reconnect_failed() -> None:
    async with running_server() as srv:
        url = srv.url  # a port that is closed once the server stopped
    client = BlockingClient(fast_config(url, reconnection_attempts=2))
    try:
        with pytest.raises(ReconnectFailedError):
            await asyncio.to_thread(client.connect)
        assert client.state is ConnectionState.FAILED
    finally:
        await asyncio.to_thread(client.close)


async def test_a_call_past_its_timeout_raises_request_timeout() -> None:
    async with running_server() as srv:
        url = srv.url
    client = BlockingClient(fast_config(url, reconnection_attempts=None))
    try:
        with pytest.raises(RequestTimeoutError) as caught:
            await asyncio.to_thread(client.connect, 0.2)
        assert isinstance(caught.value, TimeoutError)
    finally:
        await asyncio.to_thread(client.close)


async def test_a_stream_raises_the_failure_when_reconnection_gives_up(
    make_server: ServerFactory,
) -> None:
    server = await make_server()
    client = BlockingClient(fast_config(server.url, reconnection_attempts=2))
    await asyncio.to_thread(client.connect)
    try:
        stream = await asyncio.to_thread(client.messages, ["kpi"], timeout=30)
        await server.stop()
        with pytest.raises(ReconnectFailedError):
            await asyncio.to_thread(next, stream, None)
    finally:
        await asyncio.to_thread(client.close)


def test_streams_and_subscriptions_need_a_connection() -> None:
    client = BlockingClient(url="http://127.0.0.1:1")
    try:
        with pytest.raises(ConnectionLostError):
            client.messages(["kpi"])
        with pytest.raises(ConnectionLostError):
            client.subscribe(["kpi"])
        assert client.statistics().subscriptions == 0
    finally:
        client.close()


def test_building_a_blocking_client_starts_no_thread() -> None:
    before = set(threading.enumerate())
    client = BlockingClient(url="http://127.0.0.1:1")
    assert set(threading.enumerate()) == before
    client.close()  # never started: nothing to stop
    with pytest.raises(ClientClosedError):
        client.ping()


# -- the async client inside an already running loop (Jupyter) -----------------------


@contextlib.contextmanager
def server_in_thread() -> Iterator[str]:
    """A reference server on its own loop in another thread; yields its URL."""
    urls: queue.Queue[str | BaseException] = queue.Queue()
    stop = threading.Event()

    async def serve() -> None:
        try:
            async with running_server() as srv:
                urls.put(srv.url)
                await asyncio.to_thread(stop.wait)
        except BaseException as exc:
            urls.put(exc)
            raise

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="test-server")
    thread.start()
    try:
        url = urls.get(timeout=30)
        if isinstance(url, BaseException):
            raise url
        yield url
    finally:
        stop.set()
        thread.join(30)


_LOOP_BOUND = (
    asyncio.AbstractEventLoop,
    asyncio.Future,
    asyncio.Event,
    asyncio.Queue,
    asyncio.Lock,
    asyncio.Condition,
    asyncio.Semaphore,
)


def test_client_built_outside_a_loop_works_in_a_loop_busy_with_other_tasks() -> None:
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # really outside any loop
    with server_in_thread() as url:
        client = IntradayClient(fast_config(url))
        assert not [name for name, v in vars(client).items() if isinstance(v, _LOOP_BOUND)]

        async def notebook() -> float:
            # The notebook's loop is already busy with a long task of its own.
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            busy = asyncio.create_task(ticker())

            async def cell() -> float:
                received: asyncio.Queue[Message[KpiPayload]] = asyncio.Queue()
                async with client:
                    client.on(on_kpi_update=received.put_nowait)
                    await client.subscribe(["kpi"], queue_name="support")
                    async with httpx.AsyncClient(base_url=url) as api:
                        await api.post("/api/ws/broadcast/kpi", json=kpi("org_a"))
                    message = await asyncio.wait_for(received.get(), WAIT)
                    assert message.payload.health_score == 90
                    return await client.ping()

            try:
                return await asyncio.create_task(cell())
            finally:
                busy.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await busy
                assert ticks > 0

        assert asyncio.run(notebook()) > 0
        assert client.state is ConnectionState.DISCONNECTED


async def test_client_built_in_a_thread_without_a_loop_works_in_this_loop(
    server: ReferenceServer,
) -> None:
    client = await asyncio.to_thread(IntradayClient, fast_config(server.url))
    async with client:
        assert client.state is ConnectionState.AUTHENTICATED
        assert await client.ping() > 0


def _loop_calls(path: Path) -> list[str]:
    """``asyncio.run``, ``get_event_loop``, ``run_until_complete``... called in ``path``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in {
            "run",
            "get_event_loop",
            "new_event_loop",
            "run_until_complete",
            "run_forever",
        }:
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in {"asyncio", "loop"}:
                found.append(f"{owner.id}.{node.attr}")
    return found


def test_the_sdk_never_runs_or_fetches_an_event_loop_of_its_own() -> None:
    package = Path(client_sdk.__file__).parent
    found = {
        path.relative_to(package).as_posix(): calls
        for path in sorted(package.rglob("*.py"))
        # The contract kit is a test runner: its entry points run their own loops;
        # so do the load tool's command and its worker processes.
        if path.relative_to(package).parts[0] not in ("contract", "load")
        and (calls := _loop_calls(path))
    }
    # The console scripts (and `verify`'s) are process entry points; the blocking facade runs a
    # private loop in its own thread. Nothing else may touch the loop policy.
    assert set(found) <= {"cli.py", "blocking.py", "verify/cli.py"}, found
    assert set(found.get("cli.py", [])) == {"asyncio.run"}
    assert set(found.get("verify/cli.py", [])) <= {"asyncio.run"}
    assert "asyncio.run" not in found.get("blocking.py", [])
    assert "asyncio.get_event_loop" not in found.get("blocking.py", [])
