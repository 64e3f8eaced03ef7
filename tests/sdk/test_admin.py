"""AdminClient against the real reference server, and against a scripted one for broken answers.

Every method is checked for the models it returns and their values, with
python-socketio clients providing the connections, subscriptions and
deliveries. Faults the real server cannot produce (silence, an HTML page, a
body of the wrong shape) come from a few lines of raw asyncio HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from client_sdk.admin import AdminClient
from client_sdk.exceptions import (
    ClientClosedError,
    ConnectionLostError,
    IntradayError,
    RequestTimeoutError,
    ServerError,
)
from client_sdk.protocol import (
    PROTOCOL_VERSION,
    AlertPayload,
    BroadcastResult,
    BroadcastTarget,
    ConnectionInfo,
    ConnectionList,
    DisconnectResult,
    ErrorCode,
    ErrorInfo,
    Health,
    KpiPayload,
    Priority,
    RoomInfo,
    RoomList,
    RoomType,
    ServerEvent,
    Stats,
    SystemPayload,
    Utilization,
)
from client_sdk.testing import RunningServer, running_server
from tests.conftest import SAMPLE_PAYLOADS, SioClient, eventually, kpi

TOKEN = "s3cret-admin-token"

PAYLOADS = {k: v for k, v in SAMPLE_PAYLOADS.items() if k != "kpi"}


def exception_type_for(code: ErrorCode) -> type[ServerError]:
    """The ServerError subclass the SDK uses for ``code``."""
    return type(ServerError.from_error(ErrorInfo(code=code, message="probe")))


@pytest.fixture
async def clients(srv: RunningServer) -> AsyncIterator[list[SioClient]]:
    created: list[SioClient] = []
    yield created
    for client in created:
        await client.close()


async def connect(
    srv: RunningServer,
    clients: list[SioClient],
    user_id: str = "user_1",
    organization_id: str = "org_a",
    **subscription: Any,
) -> SioClient:
    """An authenticated python-socketio client, subscribed when ``channels`` is given."""
    client = SioClient(srv.url, srv.path)
    clients.append(client)
    await client.connect()
    ack = await client.authenticate(user_id, organization_id)
    assert ack["success"] is True, ack
    if subscription:
        ack = await client.call("subscribe", subscription)
        assert ack["success"] is True, ack
    return client


# -- reading the server's state ---------------------------------------------------------


async def test_health(admin: AdminClient, srv: RunningServer, clients: list[SioClient]) -> None:
    health = await admin.health()
    assert isinstance(health, Health)
    assert health.status == "ok"
    assert health.connections == 0
    assert health.auth_mode == "trust"
    assert health.protocol == PROTOCOL_VERSION
    assert health.uptime_seconds >= 0
    await connect(srv, clients)
    assert (await admin.health()).connections == 1


async def test_stats(admin: AdminClient, srv: RunningServer, clients: list[SioClient]) -> None:
    client = await connect(srv, clients, channels=["kpi"], queue_name="support")
    await admin.publish_kpi(kpi())
    await client.wait_for("kpi:update")
    stats = await admin.stats()
    assert isinstance(stats, Stats)
    assert stats.active_connections == 1
    assert stats.connections_by_org == {"org_a": 1}
    assert stats.total_messages == 1
    assert stats.messages_by_event == {"kpi:update": 1}
    assert stats.rooms_by_type[RoomType.QUEUE] == 1
    rooms = await admin.rooms()
    assert stats.active_rooms == rooms.total_count
    assert stats.error_count == 0


async def test_connections_list_an_authenticated_subscriber(
    admin: AdminClient, srv: RunningServer, clients: list[SioClient]
) -> None:
    client = await connect(srv, clients, "user_7", "org_a", channels=["kpi", "alerts"])
    sid = client.sio.get_sid()

    listed = await admin.connections()
    assert isinstance(listed, ConnectionList)
    assert listed.total_count == 1
    [info] = listed.connections
    assert isinstance(info, ConnectionInfo)
    assert info.socket_id == sid
    assert (info.user_id, info.organization_id, info.status) == ("user_7", "org_a", "authenticated")
    assert sorted(info.subscriptions) == ["alerts:org:org_a", "kpi:org:org_a"]
    assert info.connected_at.tzinfo is not None
    assert info.last_activity_at >= info.connected_at

    assert [c.socket_id for c in (await admin.connections("org_a")).connections] == [sid]
    assert await admin.connections(organization_id="org_b") == ConnectionList(
        connections=[], total_count=0
    )

    one = await admin.connection(sid)
    assert isinstance(one, ConnectionInfo)
    assert (one.socket_id, one.user_id, one.subscriptions) == (sid, "user_7", info.subscriptions)


async def test_rooms_show_the_subscriptions(
    admin: AdminClient, srv: RunningServer, clients: list[SioClient]
) -> None:
    await connect(srv, clients, "user_1", "org_a", channels=["kpi"], queue_name="support")
    await connect(srv, clients, "user_2", "org_a", channels=["kpi"], queue_name="support")
    await connect(srv, clients, "user_3", "org_b", channels=["backlog"], department_id="sales")

    rooms = await admin.rooms()
    assert isinstance(rooms, RoomList)
    assert rooms.total_count == len(rooms.rooms)
    by_name = {room.name: room for room in rooms.rooms}
    assert by_name["kpi:org:org_a:queue:support"] == RoomInfo(
        name="kpi:org:org_a:queue:support", type=RoomType.QUEUE, member_count=2
    )
    assert by_name["backlog:org:org_b:dept:sales"].type is RoomType.DEPT
    assert by_name["backlog:org:org_b:dept:sales"].member_count == 1

    org_b = await admin.rooms("org_b")
    assert org_b.rooms
    assert all(":org_b" in room.name for room in org_b.rooms)
    assert "kpi:org:org_a:queue:support" not in {room.name for room in org_b.rooms}


async def test_disconnect(admin: AdminClient, srv: RunningServer, clients: list[SioClient]) -> None:
    doomed = await connect(srv, clients, "user_1")
    survivor = await connect(srv, clients, "user_2")
    sid = doomed.sio.get_sid()

    result = await admin.disconnect(sid)
    assert result == DisconnectResult(socket_id=sid)
    await asyncio.wait_for(doomed.disconnected.wait(), 5)

    async def only_the_survivor() -> bool:
        listed = await admin.connections()
        return [c.socket_id for c in listed.connections] == [survivor.sio.get_sid()]

    await eventually(only_the_survivor)


# -- publishing ---------------------------------------------------------------------------


async def test_publish_kpi_model_reaches_a_subscriber(
    admin: AdminClient, srv: RunningServer, clients: list[SioClient]
) -> None:
    client = await connect(srv, clients, channels=["kpi"])
    await connect(srv, clients, "user_2", "org_b", channels=["kpi"])  # another organization
    payload = KpiPayload(
        organization_id="org_a",
        queue_name="support",
        timestamp=datetime(2026, 11, 25, 10, 30, tzinfo=UTC),
        utilization=Utilization(current_utilization=85),
    )

    result = await admin.publish_kpi(payload, priority=Priority.HIGH, requires_ack=True)
    assert isinstance(result, BroadcastResult)
    assert result.recipients == 1
    [envelope] = await client.wait_for("kpi:update")
    assert envelope["id"] == result.message_id
    assert envelope["priority"] == "high"
    assert envelope["requires_ack"] is True
    # Only the fields that were set travel: no nulls for the unset ones.
    assert envelope["data"] == {
        "organization_id": "org_a",
        "queue_name": "support",
        "timestamp": "2026-11-25T10:30:00.000Z",
        "utilization": {"current_utilization": 85.0},
    }


async def test_publish_accepts_mappings_with_python_values(
    admin: AdminClient, srv: RunningServer, clients: list[SioClient]
) -> None:
    client = await connect(srv, clients, channels=["kpi"])
    moment = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    result = await admin.publish_kpi(
        {"organization_id": "org_a", "timestamp": moment}, event=ServerEvent.KPI_COMPUTED
    )
    assert result.recipients == 1
    [envelope] = await client.wait_for("kpi:computed")
    assert envelope["data"]["timestamp"].startswith("2026-11-25T10:30:00")
    assert envelope["priority"] == "medium"
    assert envelope["requires_ack"] is False


@pytest.mark.parametrize(
    ("kind", "event"),
    [
        ("backlog", "backlog:update"),
        ("attendance", "attendance:update"),
        ("alert", "alert:triggered"),
    ],
)
async def test_publish_each_channel(
    admin: AdminClient, srv: RunningServer, clients: list[SioClient], kind: str, event: str
) -> None:
    client = await connect(srv, clients, channels=["all"])
    publish = getattr(admin, f"publish_{kind}")
    result: BroadcastResult = await publish(PAYLOADS[kind])
    assert result.recipients == 1
    [envelope] = await client.wait_for(event)
    assert envelope["id"] == result.message_id
    assert envelope["data"]["organization_id"] == "org_a"


async def test_publish_alert_model_with_another_event(
    admin: AdminClient, srv: RunningServer, clients: list[SioClient]
) -> None:
    client = await connect(srv, clients, channels=["alerts"])
    payload = AlertPayload.model_validate(PAYLOADS["alert"])
    result = await admin.publish_alert(payload, event=ServerEvent.ALERT_ESCALATED)
    assert result.recipients == 1
    [envelope] = await client.wait_for("alert:escalated")
    assert envelope["data"]["alert_id"] == "alert_1"


async def test_broadcast_system_event_without_target(
    admin: AdminClient, srv: RunningServer, clients: list[SioClient]
) -> None:
    a = await connect(srv, clients, "user_1", "org_a", channels=["notifications"])
    b = await connect(srv, clients, "user_2", "org_b", channels=["notifications"])
    result = await admin.broadcast(
        ServerEvent.SYSTEM_BROADCAST, SystemPayload(message="hello everyone")
    )
    assert isinstance(result, BroadcastResult)
    assert result.recipients == 2
    for client in (a, b):
        [envelope] = await client.wait_for("system:broadcast")
        assert envelope["data"] == {"message": "hello everyone"}
        assert envelope["id"] == result.message_id


@pytest.mark.parametrize("as_model", [True, False])
async def test_broadcast_to_socket_ids(
    admin: AdminClient, srv: RunningServer, clients: list[SioClient], as_model: bool
) -> None:
    chosen = await connect(srv, clients, "user_1")
    other = await connect(srv, clients, "user_2", channels=["kpi"])
    ids = [chosen.sio.get_sid()]
    target = BroadcastTarget(socket_ids=tuple(ids)) if as_model else {"socket_ids": ids}
    result = await admin.broadcast("kpi:update", kpi(), target=target, priority=Priority.URGENT)
    assert result.recipients == 1
    [envelope] = await chosen.wait_for("kpi:update")
    assert envelope["priority"] == "urgent"
    await admin.publish_kpi(kpi(queue="marker"))
    [marker] = await other.wait_for("kpi:update")
    assert marker["data"]["queue_name"] == "marker"


# -- errors from the server ---------------------------------------------------------------


async def test_wrong_token_is_an_authentication_error() -> None:
    async with running_server(admin_token=TOKEN) as live:
        async with live.admin(token="wrong-token") as wrong:
            with pytest.raises(ServerError) as caught:
                await wrong.stats()
            error = caught.value
            assert type(error) is exception_type_for(ErrorCode.AUTH_FAILED)
            assert type(error) is not ServerError
            assert error.code is ErrorCode.AUTH_FAILED
            assert error.http_status == 401
            assert error.retryable is False
            assert TOKEN not in str(error)
            # health needs no token
            assert (await wrong.health()).status == "ok"
        async with live.admin(token=None) as anonymous:
            with pytest.raises(exception_type_for(ErrorCode.AUTH_FAILED)):
                await anonymous.publish_kpi(kpi())
        async with live.admin() as right:
            assert (await right.stats()).active_connections == 0


async def test_bad_payload_is_invalid_message_and_reaches_nobody(
    admin: AdminClient, srv: RunningServer, clients: list[SioClient]
) -> None:
    client = await connect(srv, clients, channels=["kpi"])
    with pytest.raises(exception_type_for(ErrorCode.INVALID_MESSAGE)) as caught:
        await admin.publish_kpi({"organization_id": "org_a", "health_score": 250})
    error = caught.value
    assert error.code is ErrorCode.INVALID_MESSAGE
    assert error.http_status == 400
    assert error.retryable is False
    assert error.details  # which fields were wrong

    with pytest.raises(exception_type_for(ErrorCode.INVALID_MESSAGE)):
        await admin.broadcast("no:such-event", {"message": "x"})
    with pytest.raises(exception_type_for(ErrorCode.INVALID_MESSAGE)):
        await admin.publish_kpi(kpi(), event=ServerEvent.ALERT_TRIGGERED)

    await admin.publish_kpi(kpi(queue="marker"))
    [envelope] = await client.wait_for("kpi:update")
    assert envelope["data"]["queue_name"] == "marker"


@pytest.mark.parametrize("socket_id", ["no-such-socket", "with/slash", "odd id?#"])
async def test_unknown_socket_is_404(admin: AdminClient, socket_id: str) -> None:
    with pytest.raises(ServerError) as looked_up:
        await admin.connection(socket_id)
    assert looked_up.value.http_status == 404
    with pytest.raises(ServerError) as disconnected:
        await admin.disconnect(socket_id)
    assert disconnected.value.http_status == 404


async def test_empty_socket_id_is_refused_locally(admin: AdminClient) -> None:
    with pytest.raises(ValueError, match="socket_id"):
        await admin.connection("")


# -- errors on the way ----------------------------------------------------------------------


async def test_stopped_server_is_connection_lost() -> None:
    async with running_server() as live:
        url = live.url
    async with AdminClient(url, timeout=2) as admin:
        with pytest.raises(ConnectionLostError) as caught:
            await admin.health()
    assert isinstance(caught.value, IntradayError)
    assert not isinstance(caught.value, httpx.HTTPError)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


@contextlib.asynccontextmanager
async def scripted_http(answer: bytes | None) -> AsyncIterator[str]:
    """A raw HTTP server that answers every request with ``answer``, or never (``None``)."""
    release = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            if answer is None:
                await release.wait()
            else:
                writer.write(answer)
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        release.set()
        server.close()
        await server.wait_closed()


def http_answer(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def test_silent_server_is_a_timeout() -> None:
    async with scripted_http(None) as url, AdminClient(url, timeout=0.2) as admin:
        with pytest.raises(RequestTimeoutError) as caught:
            await admin.health()
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, IntradayError)
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)


UNREADABLE: list[tuple[bytes, int]] = [
    (http_answer("502 Bad Gateway", b"<html>bad gateway</html>", "text/html"), 502),
    (http_answer("200 OK", b"not json at all", "text/plain"), 200),
    (http_answer("200 OK", b"[1, 2, 3]"), 200),
    (http_answer("200 OK", b'{"success": true}'), 200),
    (http_answer("200 OK", b'{"status": "ok"}'), 200),
    (http_answer("500 Internal Server Error", b'{"success": true, "status": "ok"}'), 500),
    (http_answer("400 Bad Request", b'{"success": false, "error": "nope"}'), 400),
    (http_answer("400 Bad Request", b'{"success": false, "error": {"code": "NEW"}}'), 400),
]


@pytest.mark.parametrize(("answer", "status"), UNREADABLE)
async def test_unreadable_answer_is_an_internal_error(answer: bytes, status: int) -> None:
    async with scripted_http(answer) as url, AdminClient(url) as admin:
        with pytest.raises(ServerError) as caught:
            await admin.health()
    error = caught.value
    assert type(error) is exception_type_for(ErrorCode.INTERNAL_ERROR)
    assert error.code is ErrorCode.INTERNAL_ERROR
    assert error.http_status == status
    assert "body" in error.details


async def test_error_body_from_anywhere_keeps_its_code_and_retryable() -> None:
    body = {"success": False, "error": {"code": "RATE_LIMIT_EXCEEDED", "message": "slow down"}}
    answer = http_answer("429 Too Many Requests", json.dumps(body).encode())
    async with scripted_http(answer) as url, AdminClient(url) as admin:
        with pytest.raises(exception_type_for(ErrorCode.RATE_LIMIT_EXCEEDED)) as caught:
            await admin.stats()
    assert caught.value.http_status == 429
    assert caught.value.retryable is True  # the code's default, as none was given


# -- the client itself ----------------------------------------------------------------------


async def test_closed_client_refuses_to_work(srv: RunningServer) -> None:
    admin = AdminClient(srv.url)
    assert (await admin.health()).status == "ok"  # created lazily, without async with
    await admin.close()
    await admin.close()  # idempotent
    assert admin.closed
    with pytest.raises(ClientClosedError):
        await admin.health()
    with pytest.raises(ClientClosedError):
        async with admin:
            pass


def test_constructor_binds_nothing_and_hides_the_token() -> None:
    admin = AdminClient("http://127.0.0.1:5000/", token=TOKEN)
    assert admin.api_url == "http://127.0.0.1:5000/api/ws"
    assert TOKEN not in repr(admin)
    assert AdminClient("http://h:1/api/ws/").api_url == "http://h:1/api/ws"
    assert AdminClient("https://h/prefix").api_url == "https://h/prefix/api/ws"


@pytest.mark.parametrize("url", ["", "not a url", "ftp://host", "/api/ws", "http://"])
def test_constructor_refuses_bad_urls(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        AdminClient(url)


async def test_custom_transport_is_used(srv: RunningServer) -> None:
    transport = httpx.ASGITransport(app=srv.server.app)
    async with AdminClient("http://in-process", transport=transport) as admin:
        health = await admin.health()
    assert health.status == "ok"
