"""The plain-WebSocket bridge (protocol section 1) with a real ``websockets`` client.

A WebSocket upgrade on ``/ws`` without ``EIO`` speaks JSON text frames
``{"event", "data", "id"?}``; it obeys the same rules, limits and rooms as a
Socket.IO socket, and both kinds of socket share one registry and one fan-out.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from reference_server.app import ReferenceServer
from tests.conftest import SioClient, kpi

WAIT = 5.0
SEED_AUTHENTICATE = (
    '{"event":"authenticate","data":{"user_id":"user_123","organization_id":"org_123"}}'
)


class BridgeClient:
    """A bridge socket that records every frame it receives."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self._changed = asyncio.Condition()
        self._next_id = 0
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                frame = json.loads(text)
                async with self._changed:
                    self.frames.append(frame)
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            async with self._changed:
                self._changed.notify_all()

    async def send_text(self, text: str) -> None:
        await self.ws.send(text)

    async def send(self, event: str, data: Any = None, frame_id: int | None = None) -> None:
        frame: dict[str, Any] = {"event": event}
        if data is not None:
            frame["data"] = data
        if frame_id is not None:
            frame["id"] = frame_id
        await self.ws.send(json.dumps(frame))

    async def call(self, event: str, data: Any = None) -> Any:
        """Send a frame with an ``id`` and return the ``data`` of its ack frame."""
        self._next_id += 1
        frame_id = self._next_id
        await self.send(event, data, frame_id)
        [ack] = await self.wait_frames(
            lambda f: f.get("event") == "ack" and f.get("id") == frame_id
        )
        return ack["data"]

    def received(self, event: str) -> list[Any]:
        return [f["data"] for f in self.frames if f.get("event") == event]

    async def wait_frames(
        self, match: Callable[[dict[str, Any]], bool], count: int = 1, within: float = WAIT
    ) -> list[dict[str, Any]]:
        def found() -> list[dict[str, Any]]:
            return [f for f in self.frames if match(f)]

        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(found()) >= count or self.closed.is_set())

        await asyncio.wait_for(enough(), within)
        assert len(found()) >= count, f"connection closed; frames: {self.frames}"
        return found()

    async def wait_for(self, event: str, count: int = 1, within: float = WAIT) -> list[Any]:
        frames = await self.wait_frames(lambda f: f.get("event") == event, count, within)
        return [f["data"] for f in frames]

    async def authenticate(self, user_id: str = "user_1", organization_id: str = "org_a") -> Any:
        ack = await self.call(
            "authenticate", {"user_id": user_id, "organization_id": organization_id}
        )
        assert ack["success"] is True, ack
        return ack

    async def ping(self) -> None:
        """A ``client:ping`` round trip: proves the connection is up and drains earlier frames."""
        ack = await self.call("client:ping", {"timestamp": 1})
        assert ack["success"] is True, ack

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


BridgeFactory = Callable[[ReferenceServer], Awaitable[BridgeClient]]


def bridge_url(server: ReferenceServer) -> str:
    return f"ws://127.0.0.1:{server.port}{server.settings.path}"


@pytest.fixture
async def make_bridge() -> AsyncIterator[BridgeFactory]:
    """Open bridge sockets to a server; all closed after the test."""
    clients: list[BridgeClient] = []

    async def open_bridge(server: ReferenceServer) -> BridgeClient:
        ws = await connect(bridge_url(server), open_timeout=WAIT, compression=None)
        client = BridgeClient(ws)
        clients.append(client)
        return client

    yield open_bridge
    for client in clients:
        await client.close()


def server_events(frames: list[dict[str, Any]]) -> list[str]:
    """The names of the channel events among ``frames`` (not acks, errors or control events)."""
    return [
        f["event"] for f in frames if ":" in f["event"] and not f["event"].startswith("client:")
    ]


# -- the seed's session and the frame format ---------------------------------


async def test_seed_wscat_session_works_as_written(server, make_bridge) -> None:
    bridge: BridgeClient = await make_bridge(server)
    await bridge.send_text(SEED_AUTHENTICATE)
    [body] = await bridge.wait_for("authenticated")
    assert body["success"] is True
    assert body["user_id"] == "user_123"
    assert body["organization_id"] == "org_123"
    assert body["server"]["protocol"] == 1
    frame = bridge.frames[0]
    assert set(frame) == {"event", "data"}


async def test_frame_with_id_is_answered_by_an_ack_frame(server, make_bridge) -> None:
    bridge: BridgeClient = await make_bridge(server)
    await bridge.send("authenticate", {"user_id": "user_123", "organization_id": "org_123"}, 41)
    [ack] = await bridge.wait_frames(lambda f: f["event"] == "ack")
    assert set(ack) == {"event", "id", "data"}
    assert ack["id"] == 41
    assert ack["data"]["success"] is True
    assert ack["data"]["organization_id"] == "org_123"
    # The ack replaces the ``authenticated`` event: a later round trip shows none came.
    pong = await bridge.call("client:ping", {"timestamp": 1234})
    assert pong["success"] is True
    assert pong["timestamp"] == 1234
    [event] = await bridge.wait_for("client:pong")
    assert event["timestamp"] == 1234
    assert bridge.received("authenticated") == []


async def test_subscriber_receives_a_broadcast_as_an_event_frame(
    server, make_bridge, api: httpx.AsyncClient
) -> None:
    bridge: BridgeClient = await make_bridge(server)
    await bridge.authenticate("user_1", "org_a")
    ack = await bridge.call("subscribe", {"channels": ["kpi"], "queue_name": "support"})
    assert ack == {"success": True, "subscriptions": ["kpi:org:org_a:queue:support"]}
    [added] = await bridge.wait_for("client:subscribe")
    assert added == {"rooms": ["kpi:org:org_a:queue:support"]}

    response = await api.post("/api/ws/broadcast/kpi", json=kpi("org_a"))
    assert response.status_code == 200, response.text
    assert response.json()["recipients"] == 1
    [frame] = await bridge.wait_frames(lambda f: f["event"] == "kpi:update")
    assert set(frame) == {"event", "data"}
    envelope = frame["data"]
    assert envelope["id"] == response.json()["message_id"]
    assert envelope["event"] == "kpi:update"
    assert envelope["channel"] == "kpi"
    assert envelope["target"]["organization_id"] == "org_a"
    assert envelope["data"]["health_score"] == 90


# -- the same rules as Socket.IO ---------------------------------------------


async def test_unknown_event_is_invalid_message(server, make_bridge) -> None:
    bridge: BridgeClient = await make_bridge(server)
    await bridge.authenticate()
    ack = await bridge.call("kpi:hack", {})
    assert ack["success"] is False
    assert ack["error"]["code"] == "INVALID_MESSAGE"
    await bridge.send("no_such_event", {})
    [error] = await bridge.wait_for("error")
    assert error["code"] == "INVALID_MESSAGE"
    assert error["retryable"] is False


async def test_invalid_json_is_answered_and_the_connection_stays_open(server, make_bridge) -> None:
    bridge: BridgeClient = await make_bridge(server)
    await bridge.send_text('{"event": "authenticate", "data": ')
    [error] = await bridge.wait_for("error")
    assert error["code"] == "INVALID_MESSAGE"
    assert "Traceback" not in json.dumps(error)
    await bridge.send_text("[1, 2]")  # JSON, but not a frame
    await bridge.wait_for("error", count=2)
    await bridge.ws.send(b"\x00\x01binary")
    errors = await bridge.wait_for("error", count=3)
    assert [e["code"] for e in errors] == ["INVALID_MESSAGE"] * 3
    assert not bridge.closed.is_set()
    await bridge.authenticate()
    await bridge.ping()


async def test_oversized_frame_is_refused_and_the_connection_stays_open(
    make_server, make_bridge
) -> None:
    server = await make_server(max_message_size_bytes=1024)
    bridge: BridgeClient = await make_bridge(server)
    await bridge.authenticate()
    big = {"timestamp": 1, "padding": "x" * 2000}
    await bridge.send("client:ping", big)
    [error] = await bridge.wait_for("error")
    assert error["code"] == "MESSAGE_TOO_LARGE"
    assert error["details"]["limit"] == 1024
    await bridge.ping()
    assert not bridge.closed.is_set()


async def test_rate_limit_refuses_the_event_over_the_limit(make_server, make_bridge) -> None:
    server = await make_server(rate_limit_messages_per_second=10, rate_limit_strikes=3)
    bridge: BridgeClient = await make_bridge(server)
    for frame_id in range(1, 12):  # eleven events, well inside one second
        await bridge.send("client:ping", {"timestamp": frame_id}, frame_id)
    acks = await bridge.wait_frames(lambda f: f["event"] == "ack", count=11)
    by_id = {a["id"]: a["data"] for a in acks}
    assert all(by_id[i]["success"] is True for i in range(1, 11)), by_id
    assert by_id[11]["success"] is False
    assert by_id[11]["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert by_id[11]["error"]["retryable"] is True
    assert not bridge.closed.is_set()


async def test_client_that_keeps_exceeding_the_rate_is_disconnected(
    make_server, make_bridge
) -> None:
    server = await make_server(rate_limit_messages_per_second=5, rate_limit_strikes=1)
    bridge: BridgeClient = await make_bridge(server)
    for n in range(6):
        await bridge.send("client:ping", {"timestamp": n})
    [error] = await bridge.wait_for("error")
    assert error["code"] == "RATE_LIMIT_EXCEEDED"
    await asyncio.wait_for(bridge.closed.wait(), WAIT)


async def test_unauthenticated_bridge_socket_is_closed_after_the_auth_timeout(
    make_server, make_bridge
) -> None:
    server = await make_server(auth_timeout_ms=300)
    bridge: BridgeClient = await make_bridge(server)
    [error] = await bridge.wait_for("error")
    assert error["code"] == "AUTH_FAILED"
    assert error["message"] == "authentication timeout"
    await asyncio.wait_for(bridge.closed.wait(), WAIT)
    assert len(server.hub.registry) == 0


async def test_subscribe_before_authenticate_is_unauthorized(server, make_bridge) -> None:
    bridge: BridgeClient = await make_bridge(server)
    ack = await bridge.call("subscribe", {"channels": ["kpi"]})
    assert ack["success"] is False
    assert ack["error"]["code"] == "UNAUTHORIZED"


async def test_organizations_are_isolated_on_the_bridge(
    server, make_bridge, api: httpx.AsyncClient
) -> None:
    bridge: BridgeClient = await make_bridge(server)
    await bridge.authenticate("user_b", "org_b")
    foreign = await bridge.call("subscribe", {"channels": ["kpi"], "organization_id": "org_a"})
    assert foreign["success"] is False
    assert foreign["error"]["code"] == "UNAUTHORIZED"
    ack = await bridge.call("subscribe", {"channels": ["all"]})
    assert ack["success"] is True

    leaked = await api.post("/api/ws/broadcast/kpi", json=kpi("org_a"))
    assert leaked.json()["recipients"] == 0
    maintenance = {
        "event": "system:maintenance",
        "data": {"message": "org_a only"},
        "target": {"organization_id": "org_a"},
    }
    assert (await api.post("/api/ws/broadcast", json=maintenance)).json()["recipients"] == 0
    marker = await api.post("/api/ws/broadcast/kpi", json=kpi("org_b", marker=True))
    assert marker.json()["recipients"] == 1
    [envelope] = await bridge.wait_for("kpi:update")
    assert envelope["data"]["organization_id"] == "org_b"
    assert server_events(bridge.frames) == ["kpi:update"]


async def test_bridge_and_socketio_sockets_each_receive_a_broadcast_once(
    server, make_bridge, authed, api: httpx.AsyncClient
) -> None:
    bridge: BridgeClient = await make_bridge(server)
    await bridge.authenticate("user_bridge", "org_a")
    # Overlapping rooms on both sockets: the delivery rule still sends each message once.
    filters = [{"channels": ["kpi"]}, {"channels": ["kpi"], "queue_name": "support"}]
    for f in filters:
        assert (await bridge.call("subscribe", f))["success"] is True
    sio: SioClient = await authed("user_sio", "org_a")
    for f in filters:
        assert (await sio.call("subscribe", f))["success"] is True

    first = await api.post("/api/ws/broadcast/kpi", json=kpi("org_a"))
    assert first.status_code == 200, first.text
    assert first.json()["recipients"] == 2
    marker = await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", queue="other"))
    assert marker.json()["recipients"] == 2

    bridge_envelopes = await bridge.wait_for("kpi:update", count=2)
    sio_envelopes = await sio.wait_for("kpi:update", count=2)
    expected = [first.json()["message_id"], marker.json()["message_id"]]
    assert [e["id"] for e in bridge_envelopes] == expected
    assert [e["id"] for e in sio_envelopes] == expected
    assert bridge_envelopes[0] == sio_envelopes[0]


async def test_bridge_socket_is_listed_and_can_be_disconnected_by_the_api(
    server, make_bridge, api: httpx.AsyncClient
) -> None:
    bridge: BridgeClient = await make_bridge(server)
    auth = await bridge.authenticate("user_bridge", "org_a")
    await bridge.call("subscribe", {"channels": ["alerts"]})
    listed = (await api.get("/api/ws/connections", params={"organization_id": "org_a"})).json()
    [info] = listed["connections"]
    assert info["socket_id"] == auth["socket_id"]
    assert info["transport"] == "bridge"
    assert info["user_id"] == "user_bridge"
    assert info["status"] == "authenticated"
    assert info["subscriptions"] == ["alerts:org:org_a"]

    response = await api.delete(f"/api/ws/connections/{auth['socket_id']}")
    assert response.status_code == 200, response.text
    await asyncio.wait_for(bridge.closed.wait(), WAIT)
    gone = await api.get(f"/api/ws/connections/{auth['socket_id']}")
    assert gone.status_code == 404


# -- replay and snapshot (section 6) -------------------------------------------


async def test_the_bridge_resumes_with_since_and_starts_full_with_snapshot(
    server, make_bridge, api: httpx.AsyncClient
) -> None:
    """A wscat user resumes too: ``since`` replays in order before the ack; ``snapshot`` first."""
    first: BridgeClient = await make_bridge(server)
    await first.authenticate()
    await first.call("subscribe", {"channels": ["kpi"], "queue_name": "support"})
    for score in (10, 20):
        await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", health_score=score))
    seen = await first.wait_for("kpi:update", count=2)
    last = seen[-1]
    await first.close()
    for score in (30, 40):  # while nobody listens
        await api.post("/api/ws/broadcast/kpi", json=kpi("org_a", health_score=score))

    again: BridgeClient = await make_bridge(server)
    await again.authenticate()
    since = {"kpi:org_a": {"seq": last["seq"], "epoch": last["epoch"]}}
    ack = await again.call(
        "subscribe",
        {"channels": ["kpi"], "queue_name": "support", "since": since, "snapshot": True},
    )
    assert ack["replay"]["kpi:org_a"] == {
        "replayed": 2,
        "complete": True,
        "epoch": last["epoch"],
        "seq": last["seq"] + 2,
    }
    ack_at = next(
        i for i, f in enumerate(again.frames) if f.get("event") == "ack" and "replay" in f["data"]
    )
    before = [f["data"] for f in again.frames[:ack_at] if f["event"] == "kpi:update"]
    # The queue's latest (40) is part of the replay, so no snapshot copy of it: never twice.
    assert [e["data"]["health_score"] for e in before] == [30, 40]
    assert not any(e.get("snapshot") for e in before)
