"""The HTTP management API (protocol section 9) against a real server and real clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from reference_server.app import ReferenceServer
from tests.conftest import SAMPLE_PAYLOADS, SioClient, kpi

WAIT = 5.0
TOKEN = "s3cret-admin-token"
BASE = "/api/ws"


PAYLOADS = SAMPLE_PAYLOADS


def assert_failure(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The protocol's failure shape, with the status and code expected, and no traceback."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str)
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    return body


def channel_events(client: SioClient) -> list[str]:
    """The channel events a client received (not acks, errors or control events)."""
    return [name for name, _ in client.events if ":" in name and not name.startswith("client:")]


@pytest.fixture
async def admin_server(make_server) -> ReferenceServer:
    return await make_server(admin_token=TOKEN)


@pytest.fixture
async def admin_http(admin_server: ReferenceServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of ``admin_server`` that sends no Authorization header by itself."""
    async with httpx.AsyncClient(base_url=admin_server.url, timeout=WAIT) as client:
        yield client


@pytest.fixture
async def subscriber(authed) -> SioClient:
    """An ``org_a`` client subscribed to every channel of its organization."""
    client: SioClient = await authed("watcher", "org_a")
    ack = await client.call("subscribe", {"channels": ["all"]})
    assert ack["success"] is True, ack
    return client


async def send_marker(api: httpx.AsyncClient, client: SioClient) -> None:
    """Publish a marker that ``client`` must receive; anything sent before it arrived first."""
    response = await api.post(f"{BASE}/broadcast/kpi", json=kpi(queue="marker"))
    assert response.status_code == 200, response.text
    envelopes = await client.wait_for("kpi:update")
    assert envelopes[-1]["data"]["queue_name"] == "marker"


# -- the admin token -----------------------------------------------------------

PROTECTED: list[tuple[str, str, Any]] = [
    ("GET", "/stats", None),
    ("GET", "/connections", None),
    ("GET", "/connections/unknown-socket", None),
    ("DELETE", "/connections/unknown-socket", None),
    ("GET", "/rooms", None),
    ("POST", "/broadcast", {"event": "kpi:update", "data": kpi()}),
    ("POST", "/broadcast/kpi", PAYLOADS["kpi"]),
    ("POST", "/broadcast/backlog", PAYLOADS["backlog"]),
    ("POST", "/broadcast/attendance", PAYLOADS["attendance"]),
    ("POST", "/broadcast/alert", PAYLOADS["alert"]),
]


async def test_protected_routes_need_the_admin_token(
    admin_http: httpx.AsyncClient, subtests: pytest.Subtests
) -> None:
    refused_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": TOKEN},
    ]
    for method, route, body in PROTECTED:
        with subtests.test(msg=f"{method} {route}"):
            url = BASE + route
            for headers in refused_headers:
                refused = await admin_http.request(method, url, json=body, headers=headers)
                failure = assert_failure(refused, 401, "AUTH_FAILED")
                assert TOKEN not in json.dumps(failure)
            allowed = await admin_http.request(
                method, url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            if "unknown-socket" in route:
                assert_failure(allowed, 404, allowed.json()["error"]["code"])
            else:
                assert allowed.status_code == 200, allowed.text
                assert allowed.json()["success"] is True


async def test_health_needs_no_token(admin_http: httpx.AsyncClient) -> None:
    response = await admin_http.get(f"{BASE}/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["status"] == "ok"
    assert body["auth_mode"] == "trust"
    assert "trust" in body["warning"]
    assert body["connections"] == 0
    assert body["uptime_seconds"] >= 0


async def test_refused_broadcast_reaches_nobody(
    admin_server: ReferenceServer, admin_http: httpx.AsyncClient, make_client
) -> None:
    client: SioClient = make_client(admin_server)
    await client.connect()
    assert (await client.authenticate("watcher", "org_a"))["success"] is True
    await client.call("subscribe", {"channels": ["kpi"]})
    refused = await admin_http.post(f"{BASE}/broadcast/kpi", json=kpi(queue="forged"))
    assert_failure(refused, 401, "AUTH_FAILED")
    marker = await admin_http.post(
        f"{BASE}/broadcast/kpi",
        json=kpi(queue="marker"),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert marker.status_code == 200, marker.text
    [envelope] = await client.wait_for("kpi:update")
    assert envelope["data"]["queue_name"] == "marker"


# -- reading the server's state -----------------------------------------------


async def test_health_counts_connections(server, api: httpx.AsyncClient, authed) -> None:
    await authed("user_1", "org_a")
    await authed("user_2", "org_b")
    body = (await api.get(f"{BASE}/health")).json()
    assert body["connections"] == 2
    assert body["protocol"] == 1


async def test_stats_report_connections_rooms_messages_and_latency(
    server, api: httpx.AsyncClient, authed
) -> None:
    a1: SioClient = await authed("user_1", "org_a")
    a2: SioClient = await authed("user_2", "org_a")
    await authed("user_3", "org_b")
    assert (await a1.call("subscribe", {"channels": ["kpi"]}))["success"] is True
    dept_ack = await a1.call("subscribe", {"channels": ["kpi"], "department_id": "sales"})
    assert dept_ack["success"] is True
    queue_ack = await a2.call("subscribe", {"channels": ["kpi"], "queue_name": "support"})
    assert queue_ack["success"] is True
    refused = await a2.call("subscribe", {"channels": ["kpi"], "organization_id": "org_b"})
    assert refused["success"] is False

    first = await api.post(f"{BASE}/broadcast/kpi", json=kpi())
    assert first.json()["recipients"] == 2
    acked = await api.post(f"{BASE}/broadcast/kpi", params={"requires_ack": "true"}, json=kpi())
    assert acked.status_code == 200, acked.text
    await a1.wait_for("kpi:update", count=2)
    await a2.wait_for("kpi:update", count=2)
    # Round trips after the acks: the server has handled both clients' acks by now.
    await a1.call("client:ping", {})
    await a2.call("client:ping", {})

    response = await api.get(f"{BASE}/stats")
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["success"] is True
    assert stats["active_connections"] == 3
    assert stats["connections_by_org"] == {"org_a": 2, "org_b": 1}
    # org:org_a, org:org_b, kpi:org:org_a | kpi:org:org_a:dept:sales | kpi:org:org_a:queue:support
    assert stats["rooms_by_type"] == {"org": 3, "dept": 1, "queue": 1}
    assert stats["active_rooms"] == 5
    assert stats["total_messages"] == 2
    assert stats["messages_by_event"] == {"kpi:update": 2}
    assert stats["messages_per_second"] > 0
    assert stats["average_latency_ms"] is not None
    assert stats["max_latency_ms"] >= stats["average_latency_ms"] >= 0
    assert stats["error_count"] >= 1
    assert stats["uptime_seconds"] > 0


async def test_stats_latency_is_null_before_any_ack(server, api: httpx.AsyncClient) -> None:
    stats = (await api.get(f"{BASE}/stats")).json()
    assert stats["average_latency_ms"] is None
    assert stats["max_latency_ms"] is None
    assert stats["total_messages"] == 0
    assert stats["active_connections"] == 0


async def test_connections_are_listed_and_filtered_by_organization(
    server, api: httpx.AsyncClient, authed, make_client
) -> None:
    a1: SioClient = await authed("user_1", "org_a")
    await authed("user_2", "org_a")
    await authed("user_3", "org_b")
    anonymous: SioClient = make_client(server)
    await anonymous.connect()
    await a1.call("subscribe", {"channels": ["kpi"], "queue_name": "support"})

    everyone = (await api.get(f"{BASE}/connections")).json()
    assert everyone["success"] is True
    assert everyone["total_count"] == 4 == len(everyone["connections"])
    statuses = sorted(c["status"] for c in everyone["connections"])
    assert statuses == ["authenticated"] * 3 + ["connected"]

    response = await api.get(f"{BASE}/connections", params={"organization_id": "org_a"})
    assert response.status_code == 200, response.text
    listed = response.json()
    assert listed["total_count"] == 2
    assert sorted(c["user_id"] for c in listed["connections"]) == ["user_1", "user_2"]
    [info] = [c for c in listed["connections"] if c["user_id"] == "user_1"]
    assert info["socket_id"] == a1.sio.get_sid()
    assert info["organization_id"] == "org_a"
    assert info["status"] == "authenticated"
    assert info["subscriptions"] == ["kpi:org:org_a:queue:support"]
    assert info["transport"] == "websocket"
    assert info["connected_at"] <= info["last_activity_at"]

    nobody = (await api.get(f"{BASE}/connections", params={"organization_id": "org_z"})).json()
    assert nobody["connections"] == []
    assert nobody["total_count"] == 0
    bad = await api.get(f"{BASE}/connections", params={"organization_id": "org:a"})
    assert_failure(bad, 400, "INVALID_MESSAGE")


async def test_one_connection_or_404(server, api: httpx.AsyncClient, authed) -> None:
    client: SioClient = await authed("user_1", "org_a")
    sid = client.sio.get_sid()
    response = await api.get(f"{BASE}/connections/{sid}")
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    body = response.json()["connection"]  # section 9: the connection under "connection"
    assert body["socket_id"] == sid
    assert body["user_id"] == "user_1"
    assert body["organization_id"] == "org_a"

    missing = await api.get(f"{BASE}/connections/no-such-socket")
    body = assert_failure(missing, 404, missing.json()["error"]["code"])
    assert "no-such-socket" in body["error"]["message"]


async def test_delete_disconnects_the_client(server, api: httpx.AsyncClient, authed) -> None:
    doomed: SioClient = await authed("user_1", "org_a")
    survivor: SioClient = await authed("user_2", "org_a")
    sid = doomed.sio.get_sid()
    response = await api.delete(f"{BASE}/connections/{sid}")
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "socket_id": sid}
    await asyncio.wait_for(doomed.disconnected.wait(), WAIT)

    assert (await api.get(f"{BASE}/connections/{sid}")).status_code == 404
    listed = (await api.get(f"{BASE}/connections")).json()
    assert [c["socket_id"] for c in listed["connections"]] == [survivor.sio.get_sid()]
    again = await api.delete(f"{BASE}/connections/{sid}")
    assert again.status_code == 404
    assert not survivor.disconnected.is_set()


async def test_rooms_are_listed_and_filtered_by_organization(
    server, api: httpx.AsyncClient, authed
) -> None:
    a1: SioClient = await authed("user_1", "org_a")
    a2: SioClient = await authed("user_2", "org_a")
    b1: SioClient = await authed("user_3", "org_b")
    await a1.call("subscribe", {"channels": ["kpi"], "department_id": "sales"})
    await a2.call("subscribe", {"channels": ["kpi"], "department_id": "sales"})
    await a2.call("subscribe", {"channels": ["backlog"], "queue_name": "support"})
    await b1.call("subscribe", {"channels": ["kpi"]})

    response = await api.get(f"{BASE}/rooms", params={"organization_id": "org_a"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    rooms = {r["name"]: (r["type"], r["member_count"]) for r in body["rooms"]}
    assert rooms == {
        "org:org_a": ("org", 2),
        "kpi:org:org_a:dept:sales": ("dept", 2),
        "backlog:org:org_a:queue:support": ("queue", 1),
    }
    everything = (await api.get(f"{BASE}/rooms")).json()
    names = {r["name"] for r in everything["rooms"]}
    assert names == set(rooms) | {"org:org_b", "kpi:org:org_b"}


# -- broadcasting --------------------------------------------------------------


async def test_broadcast_with_target_priority_and_ack(
    server, api: httpx.AsyncClient, subscriber: SioClient, authed
) -> None:
    other_queue: SioClient = await authed("user_2", "org_a")
    await other_queue.call("subscribe", {"channels": ["alerts"], "queue_name": "billing"})
    body = {
        "event": "alert:escalated",
        "data": {**PAYLOADS["alert"], "escalation_level": 2},
        "target": {"organization_id": "org_a", "queue_name": "support"},
        "priority": "urgent",
        "requires_ack": True,
    }
    response = await api.post(f"{BASE}/broadcast", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["success"] is True
    assert result["recipients"] == 1
    [envelope] = await subscriber.wait_for("alert:escalated")
    assert envelope["id"] == result["message_id"]
    assert envelope["event"] == "alert:escalated"
    assert envelope["channel"] == "alerts"
    assert envelope["priority"] == "urgent"
    assert envelope["requires_ack"] is True
    assert envelope["target"] == {
        "organization_id": "org_a",
        "department_id": None,
        "queue_name": "support",
    }
    assert envelope["data"]["escalation_level"] == 2
    await other_queue.call("client:ping", {})
    assert channel_events(other_queue) == []


CHANNEL_EVENT: dict[str, tuple[str, str]] = {
    # kind: (default event, another event of the same channel)
    "kpi": ("kpi:update", "kpi:computed"),
    "backlog": ("backlog:update", "backlog:snapshot"),
    "attendance": ("attendance:update", "attendance:checkin"),
    "alert": ("alert:triggered", "alert:resolved"),
}


@pytest.mark.parametrize("kind", sorted(CHANNEL_EVENT))
async def test_channel_shortcut_uses_its_default_event_or_the_chosen_one(
    server, api: httpx.AsyncClient, subscriber: SioClient, kind: str
) -> None:
    default, other = CHANNEL_EVENT[kind]
    plain = await api.post(f"{BASE}/broadcast/{kind}", json=PAYLOADS[kind])
    assert plain.status_code == 200, plain.text
    assert plain.json()["recipients"] == 1
    chosen = await api.post(
        f"{BASE}/broadcast/{kind}", params={"event": other}, json=PAYLOADS[kind]
    )
    assert chosen.status_code == 200, chosen.text
    [first] = await subscriber.wait_for(default)
    [second] = await subscriber.wait_for(other)
    assert first["id"] == plain.json()["message_id"]
    assert second["id"] == chosen.json()["message_id"]
    assert second["target"]["queue_name"] == "support"
    assert channel_events(subscriber) == [default, other]


@pytest.mark.parametrize(
    ("kind", "foreign_event"),
    [
        ("kpi", "backlog:update"),
        ("backlog", "kpi:update"),
        ("attendance", "alert:triggered"),
        ("alert", "system:maintenance"),
    ],
)
async def test_channel_shortcut_refuses_an_event_of_another_channel(
    server, api: httpx.AsyncClient, subscriber: SioClient, kind: str, foreign_event: str
) -> None:
    response = await api.post(
        f"{BASE}/broadcast/{kind}", params={"event": foreign_event}, json=PAYLOADS[kind]
    )
    assert_failure(response, 400, "INVALID_MESSAGE")
    await send_marker(api, subscriber)
    assert channel_events(subscriber) == ["kpi:update"]


BAD_BODIES: list[tuple[str, str, Any]] = [
    # (id, route, body: dict for JSON or str/bytes sent as is)
    ("invalid-json", "/broadcast", '{"event": "kpi:update", "data": {'),
    ("invalid-json-shortcut", "/broadcast/kpi", "{not json"),
    ("not-an-object", "/broadcast/kpi", "[1, 2, 3]"),
    ("missing-timestamp", "/broadcast/kpi", {"organization_id": "org_a"}),
    ("missing-organization", "/broadcast", {"event": "kpi:update", "data": {"timestamp": "x"}}),
    ("alert-severity-null", "/broadcast/alert", {**PAYLOADS["alert"], "severity": None}),
    (
        "alert-missing-rule-name",
        "/broadcast/alert",
        {k: v for k, v in PAYLOADS["alert"].items() if k != "rule_name"},
    ),
    ("health-score-150", "/broadcast/kpi", kpi(health_score=150)),
    ("utilization-as-string", "/broadcast/kpi", kpi(utilization={"current_utilization": "85"})),
    ("negative-count", "/broadcast/backlog", {**PAYLOADS["backlog"], "total_items": -1}),
    ("bad-severity", "/broadcast/alert", {**PAYLOADS["alert"], "severity": "apocalyptic"}),
    ("bad-timestamp", "/broadcast/kpi", kpi(timestamp="yesterday")),
    ("bad-identifier", "/broadcast/kpi", kpi(queue="a:b")),
    ("unknown-event", "/broadcast", {"event": "kpi:explode", "data": kpi()}),
    ("unknown-top-level-field", "/broadcast", {"event": "kpi:update", "data": kpi(), "x": 1}),
    (
        "unknown-target-field",
        "/broadcast",
        {"event": "kpi:update", "data": kpi(), "target": {"x": 1}},
    ),
    ("bad-priority", "/broadcast", {"event": "kpi:update", "data": kpi(), "priority": "now"}),
    ("data-not-object", "/broadcast", {"event": "kpi:update", "data": [kpi()]}),
    (
        "target-disagrees-with-payload",
        "/broadcast",
        {"event": "kpi:update", "data": kpi(), "target": {"organization_id": "org_b"}},
    ),
    ("system-without-message", "/broadcast", {"event": "system:broadcast", "data": {}}),
]


async def test_bad_broadcasts_are_400_and_reach_nobody(
    server, api: httpx.AsyncClient, subscriber: SioClient, subtests: pytest.Subtests
) -> None:
    for name, route, body in BAD_BODIES:
        with subtests.test(msg=name):
            if isinstance(body, str):
                response = await api.post(
                    BASE + route, content=body, headers={"Content-Type": "application/json"}
                )
            else:
                response = await api.post(BASE + route, json=body)
            assert_failure(response, 400, "INVALID_MESSAGE")
    # One marker after all of them: had any bad broadcast gone out, it would have arrived first.
    await send_marker(api, subscriber)
    assert channel_events(subscriber) == ["kpi:update"]
    stats = (await api.get(f"{BASE}/stats")).json()
    assert stats["total_messages"] == 1
    assert stats["error_count"] >= len(BAD_BODIES)


async def test_seed_examples_are_accepted(
    server, api: httpx.AsyncClient, subscriber: SioClient
) -> None:
    maintenance = {
        "event": "system:maintenance",
        "data": {"message": "System maintenance in 10 minutes"},
    }
    response = await api.post(f"{BASE}/broadcast", json=maintenance)
    assert response.status_code == 200, response.text
    [envelope] = await subscriber.wait_for("system:maintenance")
    assert envelope["data"] == {"message": "System maintenance in 10 minutes"}
    extra = await api.post(f"{BASE}/broadcast/kpi", json=kpi(future_field={"kept": True}))
    assert extra.status_code == 200, extra.text
    [update] = await subscriber.wait_for("kpi:update")
    assert update["data"]["future_field"] == {"kept": True}


async def test_oversized_body_is_413(make_server, make_client) -> None:
    server = await make_server(max_message_size_bytes=1024)
    client: SioClient = make_client(server)
    await client.connect()
    await client.authenticate("watcher", "org_a")
    await client.call("subscribe", {"channels": ["kpi"]})
    big = kpi(padding="x" * 2000)
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        declared = await http.post(f"{BASE}/broadcast/kpi", json=big)
        assert_failure(declared, 413, "MESSAGE_TOO_LARGE")

        async def chunks() -> AsyncIterator[bytes]:
            encoded = json.dumps(big).encode()
            for start in range(0, len(encoded), 512):
                yield encoded[start : start + 512]

        streamed = await http.post(
            f"{BASE}/broadcast",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert "content-length" not in streamed.request.headers
        assert_failure(streamed, 413, "MESSAGE_TOO_LARGE")

        fits = await http.post(f"{BASE}/broadcast/kpi", json=kpi(queue="marker"))
        assert fits.status_code == 200, fits.text
    [envelope] = await client.wait_for("kpi:update")
    assert envelope["data"]["queue_name"] == "marker"


async def test_openapi_description_lists_the_routes(server, api: httpx.AsyncClient) -> None:
    response = await api.get(f"{BASE}/openapi.json")
    assert response.status_code == 200, response.text
    paths = response.json()["paths"]
    for route in (
        "/health",
        "/stats",
        "/connections",
        "/connections/{socket_id}",
        "/rooms",
        "/broadcast",
        # /broadcast/{kind}: described one path per kind, each with its own payload.
        "/broadcast/kpi",
        "/broadcast/backlog",
        "/broadcast/attendance",
        "/broadcast/alert",
    ):
        assert BASE + route in paths, sorted(paths)
    assert "delete" in paths[f"{BASE}/connections/{{socket_id}}"]
    assert "post" in paths[f"{BASE}/broadcast"]


async def test_unknown_route_and_method_have_the_failure_shape(
    server, api: httpx.AsyncClient
) -> None:
    missing = await api.get(f"{BASE}/nope")
    assert_failure(missing, 404, missing.json()["error"]["code"])
    wrong_method = await api.put(f"{BASE}/stats")
    assert_failure(wrong_method, 405, wrong_method.json()["error"]["code"])
