"""Delivery against the real server (protocol sections 4 and 5).

The delivery rule over every filter shape, at-most-once delivery, the
organization boundary, the ``system:*`` special cases, the envelope and the
ordering on one socket.

Absence is checked after a marker: each socket does a ``client:ping`` round
trip (or receives a later broadcast) after the message under test was
published; one connection delivers in order, so anything that was going to
arrive has arrived by then.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.conftest import SioClient

TIMESTAMP_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ORG, DEPT, QUEUE = "org_a", "dept_1", "queue_1"
OTHER_DEPT, OTHER_QUEUE = "dept_2", "queue_2"
ALERT_FIELDS = {"alert_id": "alert_1", "rule_name": "utilization_high", "severity": "high"}

FILTERS: dict[str, dict[str, str]] = {
    "O": {},
    "O,D": {"department_id": DEPT},
    "O,Q": {"queue_name": QUEUE},
    "O,D,Q": {"department_id": DEPT, "queue_name": QUEUE},
    "O,D'": {"department_id": OTHER_DEPT},
    "O,Q'": {"queue_name": OTHER_QUEUE},
    "O,D',Q": {"department_id": OTHER_DEPT, "queue_name": QUEUE},
    "O,D,Q'": {"department_id": DEPT, "queue_name": OTHER_QUEUE},
}


def kpi_payload(
    org: str, dept: str | None = None, queue: str | None = None, **extra: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {"organization_id": org, "timestamp": "2026-11-25T10:30:00Z"}
    if dept is not None:
        payload["department_id"] = dept
    if queue is not None:
        payload["queue_name"] = queue
    return {**payload, **extra}


def ids_of(client: SioClient, event: str) -> list[str]:
    return [envelope["id"] for envelope in client.received(event)]


async def settle(*clients: SioClient) -> None:
    """A ``client:ping`` round trip on each socket: everything sent before it has arrived."""
    for client in clients:
        before = len(client.received("client:pong"))
        await client.emit("client:ping", {})
        await client.wait_for("client:pong", count=before + 1)


async def post(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(f"/api/ws{path}", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def subscribed(authed, org: str, channels: list[str], **fields: str) -> SioClient:
    client: SioClient = await authed(f"user_{org}", org)
    ack = await client.call("subscribe", {"channels": channels, **fields})
    assert ack["success"] is True, ack
    return client


# -- the delivery rule ---------------------------------------------------------------------


def matches(filter_: dict[str, str], target: dict[str, str | None]) -> bool:
    """The rule itself: every field of the filter equals the target's."""
    return all(target.get(name) == value for name, value in filter_.items())


TARGETS = {
    "O,D,Q": {"department_id": DEPT, "queue_name": QUEUE},
    "O,D": {"department_id": DEPT, "queue_name": None},
    "O,Q": {"department_id": None, "queue_name": QUEUE},
    "O": {"department_id": None, "queue_name": None},
}

EXPECTED = {
    "O,D,Q": {"O", "O,D", "O,Q", "O,D,Q"},
    "O,D": {"O", "O,D"},
    "O,Q": {"O", "O,Q"},
    "O": {"O"},
}


def test_expected_table_is_the_rule() -> None:
    """The hand-written table below and the rule agree (so neither hides a typo)."""
    for target_name, target in TARGETS.items():
        chosen = {name for name, f in FILTERS.items() if matches(f, target)}
        assert chosen == EXPECTED[target_name]


@pytest.mark.parametrize("target_name", list(TARGETS))
async def test_delivery_rule(authed, api, target_name) -> None:
    target = TARGETS[target_name]
    clients = {name: await subscribed(authed, ORG, ["kpi"], **f) for name, f in FILTERS.items()}
    # A bystander on another channel with the widest filter.
    bystander = await subscribed(authed, ORG, ["backlog", "alerts", "attendance"])
    payload = kpi_payload(ORG, target["department_id"], target["queue_name"])
    result = await post(api, "/broadcast/kpi", payload)
    expected = EXPECTED[target_name]
    assert result["recipients"] == len(expected)
    for name in expected:
        [envelope] = await clients[name].wait_for("kpi:update")
        assert envelope["id"] == result["message_id"]
        assert envelope["target"] == {"organization_id": ORG, **target}
    await settle(*clients.values(), bystander)
    got = {name for name, client in clients.items() if client.received("kpi:update")}
    assert got == expected
    for client in clients.values():
        assert len(client.received("kpi:update")) <= 1
    assert bystander.received("kpi:update") == []


@pytest.mark.parametrize(
    ("path", "event", "channel", "extra"),
    [
        ("/broadcast/backlog", "backlog:update", "backlog", {"total_items": 3}),
        ("/broadcast/attendance", "attendance:update", "attendance", {"present": 4}),
        ("/broadcast/alert", "alert:triggered", "alerts", ALERT_FIELDS),
    ],
)
async def test_delivery_rule_holds_on_every_channel(authed, api, path, event, channel, extra):
    matching = await subscribed(authed, ORG, [channel], queue_name=QUEUE)
    other_queue = await subscribed(authed, ORG, [channel], queue_name=OTHER_QUEUE)
    other_channel = await subscribed(authed, ORG, ["kpi"], queue_name=QUEUE)
    result = await post(api, path, kpi_payload(ORG, DEPT, QUEUE, **extra))
    assert result["recipients"] == 1
    [envelope] = await matching.wait_for(event)
    assert (envelope["event"], envelope["channel"]) == (event, channel)
    await settle(other_queue, other_channel)
    assert other_queue.received(event) == []
    assert other_channel.received(event) == []


async def test_subscription_to_all_receives_every_channel(authed, api) -> None:
    client = await subscribed(authed, ORG, ["all"], department_id=DEPT)
    await post(api, "/broadcast/kpi", kpi_payload(ORG, DEPT, QUEUE))
    await post(api, "/broadcast/backlog", kpi_payload(ORG, DEPT))
    notice = {"event": "system:notification", "data": {"message": "hi"}}
    target = {"organization_id": ORG, "department_id": DEPT}
    await post(api, "/broadcast", {**notice, "target": target})
    await client.wait_for("kpi:update")
    await client.wait_for("backlog:update")
    await client.wait_for("system:notification")


async def test_each_message_arrives_once_however_many_rooms_match(authed, api) -> None:
    client: SioClient = await authed("user_1", ORG)
    for fields in ({}, {"department_id": DEPT}, {"queue_name": QUEUE}, FILTERS["O,D,Q"]):
        await client.call("subscribe", {"channels": ["kpi"], **fields})
    await client.call("subscribe", {"channels": ["all"]})
    assert len((await client.call("subscribe", {"channels": ["kpi"]}))["subscriptions"]) == 8
    sent = []
    for i in range(5):
        result = await post(api, "/broadcast/kpi", kpi_payload(ORG, DEPT, QUEUE, n=i))
        assert result["recipients"] == 1
        sent.append(result["message_id"])
    await client.wait_for("kpi:update", count=5)
    await settle(client)
    counts = Counter(ids_of(client, "kpi:update"))
    assert counts == Counter(dict.fromkeys(sent, 1))


# -- organizations ---------------------------------------------------------------------------


async def test_other_organization_never_receives(authed, api) -> None:
    a_subs = [await subscribed(authed, "org_a", ["all"], **f) for f in FILTERS.values()]
    b_subs = [await subscribed(authed, "org_b", ["all"], **f) for f in FILTERS.values()]
    a_events = [
        ("/broadcast/kpi", "kpi:update", {}),
        ("/broadcast/backlog", "backlog:update", {}),
        ("/broadcast/attendance", "attendance:update", {}),
        ("/broadcast/alert", "alert:triggered", ALERT_FIELDS),
    ]
    for path, _, extra in a_events:
        for dept, queue in ((DEPT, QUEUE), (DEPT, None), (None, QUEUE), (None, None)):
            await post(api, path, kpi_payload("org_a", dept, queue, **extra))
    # Org B's own message with the same department and queue names, then a round trip.
    own = await post(api, "/broadcast/kpi", kpi_payload("org_b", DEPT, QUEUE))
    await settle(*b_subs)
    data_events = {"kpi:update", "backlog:update", "attendance:update", "alert:triggered"}
    for name, client in zip(FILTERS, b_subs, strict=True):
        received = [data for event, data in client.events if event in data_events]
        expected = [own["message_id"]] if name in EXPECTED["O,D,Q"] else []
        assert [e["id"] for e in received] == expected, name
    # Org A's own subscribers did get them (the test could tell).
    await a_subs[0].wait_for("alert:triggered", count=4)


async def test_mismatched_target_is_refused_and_reaches_nobody(authed, api) -> None:
    a_sub = await subscribed(authed, "org_a", ["kpi"])
    b_sub = await subscribed(authed, "org_b", ["kpi"])
    crafted = [
        {"organization_id": "org_b"},
        {"organization_id": "org_a", "department_id": OTHER_DEPT},
        {"organization_id": "org_a", "queue_name": OTHER_QUEUE},
    ]
    for target in crafted:
        body = {"event": "kpi:update", "data": kpi_payload("org_a", DEPT, QUEUE), "target": target}
        response = await api.post("/api/ws/broadcast", json=body)
        assert response.status_code == 400, (target, response.text)
        error = response.json()
        assert error["success"] is False
        assert error["error"]["code"] == "INVALID_MESSAGE"
    await settle(a_sub, b_sub)
    assert a_sub.received("kpi:update") == []
    assert b_sub.received("kpi:update") == []
    stats = (await api.get("/api/ws/stats")).json()
    assert stats["total_messages"] == 0


async def test_target_fills_in_what_the_payload_omits(authed, api) -> None:
    dept_sub = await subscribed(authed, "org_a", ["kpi"], department_id=DEPT)
    body = {
        "event": "kpi:update",
        "data": kpi_payload("org_a", queue=QUEUE),
        "target": {"organization_id": "org_a", "department_id": DEPT},
    }
    result = await post(api, "/broadcast", body)
    assert result["recipients"] == 1
    [envelope] = await dept_sub.wait_for("kpi:update")
    assert envelope["target"] == {
        "organization_id": "org_a",
        "department_id": DEPT,
        "queue_name": QUEUE,
    }


async def test_socket_ids_of_another_organization_get_nothing(authed, api) -> None:
    a_sub = await subscribed(authed, "org_a", ["kpi"])
    a_other = await subscribed(authed, "org_a", ["kpi"])
    b_sub = await subscribed(authed, "org_b", ["kpi"])
    body = {
        "event": "kpi:update",
        "data": kpi_payload("org_a"),
        "target": {"socket_ids": [b_sub.sio.get_sid(), a_sub.sio.get_sid()]},
    }
    result = await post(api, "/broadcast", body)
    assert result["recipients"] == 1
    [envelope] = await a_sub.wait_for("kpi:update")
    assert envelope["id"] == result["message_id"]
    only_b = {**body, "target": {"organization_id": "org_a", "socket_ids": [b_sub.sio.get_sid()]}}
    assert (await post(api, "/broadcast", only_b))["recipients"] == 0
    await settle(b_sub, a_other)
    assert b_sub.received("kpi:update") == []
    # socket_ids restricts: the unnamed subscriber of org A got nothing either.
    assert a_other.received("kpi:update") == []


async def test_system_notification_without_target_spans_organizations(authed, api) -> None:
    a_sub = await subscribed(authed, "org_a", ["notifications"])
    b_sub = await subscribed(authed, "org_b", ["notifications"], queue_name=QUEUE)
    a_kpi = await subscribed(authed, "org_a", ["kpi"])
    b_plain: SioClient = await authed("user_b2", "org_b")
    body = {"event": "system:notification", "data": {"message": "Hello everyone"}}
    result = await post(api, "/broadcast", body)
    assert result["recipients"] == 2
    for client in (a_sub, b_sub):
        [envelope] = await client.wait_for("system:notification")
        assert envelope["id"] == result["message_id"]
        assert envelope["data"] == {"message": "Hello everyone"}
        assert envelope["target"]["organization_id"] is None
    await settle(a_kpi, b_plain)
    assert a_kpi.received("system:notification") == []
    assert b_plain.received("system:notification") == []


async def test_system_notification_with_target_stays_in_its_organization(authed, api) -> None:
    a_sub = await subscribed(authed, "org_a", ["notifications"])
    b_sub = await subscribed(authed, "org_b", ["notifications"])
    body = {
        "event": "system:notification",
        "data": {"message": "Only A"},
        "target": {"organization_id": "org_a"},
    }
    result = await post(api, "/broadcast", body)
    assert result["recipients"] == 1
    await a_sub.wait_for("system:notification")
    await settle(b_sub)
    assert b_sub.received("system:notification") == []


async def test_a_target_without_organization_but_with_a_queue_is_refused(authed, api) -> None:
    # Only a broadcast with no target at all may span organizations; a partial
    # target must not be read as "everyone".
    a_sub = await subscribed(authed, "org_a", ["notifications"], department_id="sales")
    b_sub = await subscribed(authed, "org_b", ["notifications"], department_id="sales")
    for target in ({"department_id": "sales"}, {"queue_name": "support"}):
        body = {"event": "system:notification", "data": {"message": "x"}, "target": target}
        response = await api.post("/api/ws/broadcast", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "INVALID_MESSAGE"
    await settle(a_sub, b_sub)
    assert a_sub.received("system:notification") == []
    assert b_sub.received("system:notification") == []


async def test_system_maintenance_reaches_every_socket_of_its_organization(authed, api) -> None:
    a_notifications = await subscribed(authed, "org_a", ["notifications"])
    a_kpi = await subscribed(authed, "org_a", ["kpi"], queue_name=QUEUE)
    a_plain: SioClient = await authed("user_a3", "org_a")
    b_notifications = await subscribed(authed, "org_b", ["notifications"])
    b_plain: SioClient = await authed("user_b2", "org_b")
    body = {
        "event": "system:maintenance",
        "data": {"message": "System maintenance in 10 minutes"},
        "target": {"organization_id": "org_a"},
    }
    result = await post(api, "/broadcast", body)
    assert result["recipients"] == 3
    for client in (a_notifications, a_kpi, a_plain):
        [envelope] = await client.wait_for("system:maintenance")
        assert envelope["id"] == result["message_id"]
        assert envelope["channel"] == "notifications"
    await settle(b_notifications, b_plain, a_notifications)
    assert b_notifications.received("system:maintenance") == []
    assert b_plain.received("system:maintenance") == []
    # Subscribed and in the organization room: still once.
    assert len(a_notifications.received("system:maintenance")) == 1


async def test_system_maintenance_skips_unauthenticated_sockets(server, make_client, api):
    member = make_client(server)
    await member.connect(auth={"user_id": "u1", "organization_id": "org_a"})
    stranger = make_client(server)
    await stranger.connect()
    body = {
        "event": "system:maintenance",
        "data": {"message": "System maintenance in 10 minutes"},
        "target": {"organization_id": "org_a"},
    }
    result = await post(api, "/broadcast", body)
    assert result["recipients"] == 1
    await member.wait_for("system:maintenance")
    await settle(stranger)
    assert stranger.received("system:maintenance") == []


# -- the envelope and ordering -----------------------------------------------------------------


async def test_envelope_fields(authed, api) -> None:
    client = await subscribed(authed, ORG, ["kpi"])
    payload = kpi_payload(
        ORG,
        queue=QUEUE,
        utilization={"current_utilization": 85},
        health_score=90,
        future_field={"kept": True},
    )
    result = await post(api, "/broadcast/kpi", payload)
    [envelope] = await client.wait_for("kpi:update")
    assert envelope["id"] == result["message_id"]
    assert isinstance(envelope["id"], str)
    assert envelope["id"]
    assert envelope["event"] == "kpi:update"
    assert envelope["channel"] == "kpi"
    assert TIMESTAMP_MS_Z.match(envelope["timestamp"]), envelope["timestamp"]
    assert envelope["priority"] == "medium"
    assert envelope["requires_ack"] is False
    assert envelope["target"] == {
        "organization_id": ORG,
        "department_id": None,
        "queue_name": QUEUE,
    }
    assert envelope["data"]["organization_id"] == ORG
    assert envelope["data"]["queue_name"] == QUEUE
    assert envelope["data"]["utilization"] == {"current_utilization": 85}
    assert envelope["data"]["health_score"] == 90
    assert envelope["data"]["future_field"] == {"kept": True}
    assert envelope["data"]["timestamp"].startswith("2026-11-25T10:30:00")
    assert set(envelope) <= {
        "id",
        "event",
        "channel",
        "timestamp",
        "priority",
        "requires_ack",
        "seq",
        "epoch",
        "target",
        "data",
    }
    # The memory store (the default) numbers each stream's messages (section 6).
    assert envelope["seq"] >= 1
    assert isinstance(envelope["epoch"], str)


async def test_envelope_priority_and_unique_ids(authed, api) -> None:
    client = await subscribed(authed, ORG, ["kpi", "notifications"])
    first = await post(
        api, "/broadcast", {"event": "kpi:computed", "data": kpi_payload(ORG), "priority": "urgent"}
    )
    second = await post(api, "/broadcast/kpi?priority=low", kpi_payload(ORG))
    [computed] = await client.wait_for("kpi:computed")
    [update] = await client.wait_for("kpi:update")
    assert computed["priority"] == "urgent"
    assert update["priority"] == "low"
    assert computed["id"] != update["id"]
    assert (computed["id"], update["id"]) == (first["message_id"], second["message_id"])


async def test_messages_arrive_in_publish_order(authed, api) -> None:
    client = await subscribed(authed, ORG, ["kpi", "backlog", "alerts"])
    sent: list[str] = []
    for i in range(30):
        if i % 3 == 0:
            result = await post(api, "/broadcast/kpi", kpi_payload(ORG, n=i))
        elif i % 3 == 1:
            result = await post(api, "/broadcast/backlog", kpi_payload(ORG, total_items=i))
        else:
            alert = {"alert_id": f"a{i}", "rule_name": "r", "severity": "medium"}
            result = await post(api, "/broadcast/alert", kpi_payload(ORG, **alert))
        sent.append(result["message_id"])
    await client.wait_for("alert:triggered", count=10)
    await settle(client)
    data_events = {"kpi:update", "backlog:update", "alert:triggered"}
    arrived = [data["id"] for name, data in client.events if name in data_events]
    assert arrived == sent
