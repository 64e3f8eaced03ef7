"""Subscriptions against the real server (protocol section 4).

Room names per filter shape, ``all``, the acks and the ``client:subscribe`` /
``client:unsubscribe`` notices, the organization rules, request validation,
what the management API shows, and the same over HTTP long-polling.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import SioClient

ALL_CHANNELS = ["kpi", "backlog", "attendance", "alerts", "notifications"]


def kpi_payload(org: str, dept: str | None = None, queue: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"organization_id": org, "timestamp": "2026-11-25T10:30:00Z"}
    if dept is not None:
        payload["department_id"] = dept
    if queue is not None:
        payload["queue_name"] = queue
    return payload


def assert_error(ack: Any, code: str) -> dict[str, Any]:
    assert ack["success"] is False, ack
    assert ack["error"]["code"] == code, ack
    assert ack["error"]["retryable"] is False
    return ack["error"]


async def subscriptions_of(api: httpx.AsyncClient, client: SioClient) -> list[str]:
    """The socket's subscriptions as the management API reports them."""
    response = await api.get(f"/api/ws/connections/{client.sio.get_sid()}")
    assert response.status_code == 200, response.text
    subscriptions: list[str] = response.json()["connection"]["subscriptions"]
    return subscriptions


async def round_trip(client: SioClient) -> None:
    """A ping whose pong arrives after everything the server sent before it."""
    before = len(client.received("client:pong"))
    await client.emit("client:ping", {})
    await client.wait_for("client:pong", count=before + 1)


# -- room names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "room"),
    [
        ({}, "kpi:org:org_a"),
        ({"department_id": "dept_456"}, "kpi:org:org_a:dept:dept_456"),
        ({"queue_name": "support"}, "kpi:org:org_a:queue:support"),
        (
            {"department_id": "dept_456", "queue_name": "support"},
            "kpi:org:org_a:dept:dept_456:queue:support",
        ),
    ],
    ids=["org", "dept", "queue", "dept+queue"],
)
async def test_filter_shape_joins_its_room(authed, api, fields, room) -> None:
    client = await authed("user_1", "org_a")
    ack = await client.call("subscribe", {"channels": ["kpi"], **fields})
    assert ack == {"success": True, "subscriptions": [room]}
    [notice] = await client.wait_for("client:subscribe")
    assert notice == {"rooms": [room]}
    assert await subscriptions_of(api, client) == [room]


async def test_all_expands_to_the_five_channels(authed, api) -> None:
    client = await authed("user_1", "org_a")
    ack = await client.call("subscribe", {"channels": ["all"], "queue_name": "support"})
    rooms = {f"{c}:org:org_a:queue:support" for c in ALL_CHANNELS}
    assert ack["success"] is True
    assert len(ack["subscriptions"]) == 5
    assert set(ack["subscriptions"]) == rooms
    [notice] = await client.wait_for("client:subscribe")
    assert sorted(notice["rooms"]) == sorted(rooms)
    assert set(await subscriptions_of(api, client)) == rooms


async def test_ack_lists_every_room_held_and_notice_only_the_new(authed, api) -> None:
    client = await authed("user_1", "org_a")
    first = await client.call("subscribe", {"channels": ["kpi"]})
    assert first["subscriptions"] == ["kpi:org:org_a"]
    second = await client.call("subscribe", {"channels": ["kpi", "backlog"], "department_id": "d1"})
    held = {"kpi:org:org_a", "kpi:org:org_a:dept:d1", "backlog:org:org_a:dept:d1"}
    assert set(second["subscriptions"]) == held
    # The organization room is membership, not a subscription.
    assert "org:org_a" not in second["subscriptions"]
    # Repeating a subscription adds only what is new.
    third = await client.call("subscribe", {"channels": ["kpi", "alerts"]})
    held.add("alerts:org:org_a")
    assert set(third["subscriptions"]) == held
    notices = await client.wait_for("client:subscribe", count=3)
    assert notices[0] == {"rooms": ["kpi:org:org_a"]}
    assert sorted(notices[1]["rooms"]) == ["backlog:org:org_a:dept:d1", "kpi:org:org_a:dept:d1"]
    assert notices[2] == {"rooms": ["alerts:org:org_a"]}
    fourth = await client.call("subscribe", {"channels": ["alerts"]})
    assert set(fourth["subscriptions"]) == held
    notices = await client.wait_for("client:subscribe", count=4)
    assert notices[3] == {"rooms": []}
    assert set(await subscriptions_of(api, client)) == held
    assert sorted(await subscriptions_of(api, client)) == sorted(fourth["subscriptions"])


async def test_notice_follows_the_ack(authed) -> None:
    client = await authed("user_1", "org_a")
    await client.call("subscribe", {"channels": ["kpi"]})
    # The notice is sent after the ack: by the time a later pong arrives it is there.
    await round_trip(client)
    assert client.received("client:subscribe") == [{"rooms": ["kpi:org:org_a"]}]


# -- unsubscribe ----------------------------------------------------------------------------


async def test_unsubscribe_by_filter(authed, api) -> None:
    client = await authed("user_1", "org_a")
    await client.call("subscribe", {"channels": ["kpi", "backlog"], "queue_name": "q1"})
    await client.call("subscribe", {"channels": ["kpi"]})
    ack = await client.call("unsubscribe", {"channels": ["kpi"], "queue_name": "q1"})
    remaining = ["backlog:org:org_a:queue:q1", "kpi:org:org_a"]
    assert ack["success"] is True
    assert sorted(ack["subscriptions"]) == remaining
    [notice] = await client.wait_for("client:unsubscribe")
    assert notice == {"rooms": ["kpi:org:org_a:queue:q1"]}
    assert sorted(await subscriptions_of(api, client)) == remaining


async def test_unsubscribe_all_leaves_every_channel_of_the_filter(authed) -> None:
    client = await authed("user_1", "org_a")
    await client.call("subscribe", {"channels": ["all"], "department_id": "d1"})
    await client.call("subscribe", {"channels": ["kpi"]})
    ack = await client.call("unsubscribe", {"channels": ["all"], "department_id": "d1"})
    assert ack["subscriptions"] == ["kpi:org:org_a"]
    [notice] = await client.wait_for("client:unsubscribe")
    assert sorted(notice["rooms"]) == sorted(f"{c}:org:org_a:dept:d1" for c in ALL_CHANNELS)


async def test_unsubscribe_by_rooms(authed, api) -> None:
    client = await authed("user_1", "org_a")
    await client.call("subscribe", {"channels": ["kpi", "alerts"], "department_id": "d1"})
    ack = await client.call("unsubscribe", {"rooms": ["alerts:org:org_a:dept:d1"]})
    assert ack == {"success": True, "subscriptions": ["kpi:org:org_a:dept:d1"]}
    [notice] = await client.wait_for("client:unsubscribe")
    assert notice == {"rooms": ["alerts:org:org_a:dept:d1"]}
    assert await subscriptions_of(api, client) == ["kpi:org:org_a:dept:d1"]


async def test_unsubscribe_of_a_room_not_held_is_a_no_op(authed) -> None:
    client = await authed("user_1", "org_a")
    await client.call("subscribe", {"channels": ["kpi"]})
    by_rooms = await client.call("unsubscribe", {"rooms": ["backlog:org:org_a"]})
    assert by_rooms == {"success": True, "subscriptions": ["kpi:org:org_a"]}
    by_filter = await client.call("unsubscribe", {"channels": ["kpi"], "queue_name": "nope"})
    assert by_filter == {"success": True, "subscriptions": ["kpi:org:org_a"]}
    assert await client.wait_for("client:unsubscribe", count=2) == [{"rooms": []}, {"rooms": []}]


async def test_unsubscribed_socket_no_longer_receives(authed, api) -> None:
    client = await authed("user_1", "org_a")
    await client.call("subscribe", {"channels": ["kpi"], "queue_name": "q1"})
    response = await api.post("/api/ws/broadcast/kpi", json=kpi_payload("org_a", queue="q1"))
    assert response.json()["recipients"] == 1
    await client.wait_for("kpi:update")
    await client.call("unsubscribe", {"channels": ["kpi"], "queue_name": "q1"})
    response = await api.post("/api/ws/broadcast/kpi", json=kpi_payload("org_a", queue="q1"))
    assert response.json()["recipients"] == 0
    await round_trip(client)
    assert len(client.received("kpi:update")) == 1


@pytest.mark.parametrize(
    ("rooms", "code"),
    [
        (["not-a-room"], "ROOM_NOT_FOUND"),
        (["kpi:org"], "ROOM_NOT_FOUND"),
        (["org:org_a"], "UNAUTHORIZED"),
        (["kpi:org:org_b"], "UNAUTHORIZED"),
    ],
    ids=["garbage", "truncated", "org-room", "other-org"],
)
async def test_unsubscribe_by_rooms_refuses_what_is_not_yours(authed, api, rooms, code) -> None:
    client = await authed("user_1", "org_a")
    await client.call("subscribe", {"channels": ["kpi"]})
    assert_error(await client.call("unsubscribe", {"rooms": ["kpi:org:org_a", *rooms]}), code)
    # Refused as a whole: the valid room in the same request is still held.
    assert await subscriptions_of(api, client) == ["kpi:org:org_a"]


# -- organizations and authentication ------------------------------------------------------


async def test_organization_defaults_to_the_authenticated_one(authed) -> None:
    client = await authed("user_1", "org_a")
    implicit = await client.call("subscribe", {"channels": ["kpi"], "department_id": "d1"})
    assert implicit["subscriptions"] == ["kpi:org:org_a:dept:d1"]
    explicit = await client.call("subscribe", {"channels": ["kpi"], "organization_id": "org_a"})
    assert sorted(explicit["subscriptions"]) == ["kpi:org:org_a", "kpi:org:org_a:dept:d1"]


async def test_another_organization_is_unauthorized_and_nothing_is_joined(authed, api) -> None:
    client = await authed("user_1", "org_a")
    await client.call("subscribe", {"channels": ["alerts"]})
    request = {"channels": ["kpi", "backlog"], "organization_id": "org_b", "queue_name": "q"}
    assert_error(await client.call("subscribe", request), "UNAUTHORIZED")
    assert await subscriptions_of(api, client) == ["alerts:org:org_a"]
    rooms = (await api.get("/api/ws/rooms", params={"organization_id": "org_b"})).json()
    assert rooms["rooms"] == []
    by_filter = {"channels": ["alerts"], "organization_id": "org_b"}
    assert_error(await client.call("unsubscribe", by_filter), "UNAUTHORIZED")
    await round_trip(client)
    assert client.received("client:subscribe") == [{"rooms": ["alerts:org:org_a"]}]


async def test_not_authenticated_is_unauthorized(server, make_client, api) -> None:
    client = make_client(server)
    await client.connect()
    for request in ({"channels": ["kpi"]}, {"channels": ["kpi"], "organization_id": "org_a"}):
        assert_error(await client.call("subscribe", request), "UNAUTHORIZED")
    assert_error(await client.call("unsubscribe", {"channels": ["kpi"]}), "UNAUTHORIZED")
    assert await subscriptions_of(api, client) == []


async def test_refusal_without_ack_is_an_error_event(server, make_client) -> None:
    client = make_client(server)
    await client.connect()
    await client.emit("subscribe", {"channels": ["kpi"]})
    [error] = await client.wait_for("error")
    assert error["code"] == "UNAUTHORIZED"
    assert error["retryable"] is False
    assert client.sio.connected


@pytest.mark.parametrize(
    "request_",
    [
        {"channels": ["kpi"], "queue": "support"},
        {"channels": ["kpi"], "dept": "d1"},
        {"channels": ["weather"]},
        {"channels": []},
        {"channels": "kpi"},
        {},
        {"channels": ["kpi"], "queue_name": "a:b"},
        {"channels": ["kpi"], "department_id": "dept:d1:queue:x"},
        {"channels": ["kpi"], "queue_name": "q" * 129},
        {"channels": ["kpi"], "organization_id": "org_a:dept:d1"},
    ],
    ids=[
        "queue",
        "dept",
        "unknown-channel",
        "no-channels",
        "channels-string",
        "empty",
        "colon-queue",
        "forged-room",
        "129-chars",
        "colon-org",
    ],
)
async def test_invalid_subscribe_is_invalid_message(authed, api, request_) -> None:
    client = await authed("user_1", "org_a")
    assert_error(await client.call("subscribe", request_), "INVALID_MESSAGE")
    assert await subscriptions_of(api, client) == []


async def test_128_character_queue_name_is_accepted(authed) -> None:
    client = await authed("user_1", "org_a")
    queue = "q" * 128
    ack = await client.call("subscribe", {"channels": ["kpi"], "queue_name": queue})
    assert ack["subscriptions"] == [f"kpi:org:org_a:queue:{queue}"]


@pytest.mark.parametrize(
    "request_",
    [
        {"channels": ["kpi"], "queue": "support"},
        {"channels": ["kpi"], "rooms": ["kpi:org:org_a"]},
        {},
    ],
    ids=["unknown-field", "both-forms", "neither-form"],
)
async def test_invalid_unsubscribe_is_invalid_message(authed, api, request_) -> None:
    client = await authed("user_1", "org_a")
    await client.call("subscribe", {"channels": ["kpi"]})
    assert_error(await client.call("unsubscribe", request_), "INVALID_MESSAGE")
    assert await subscriptions_of(api, client) == ["kpi:org:org_a"]


async def test_without_auth_required_unauthenticated_socket_names_its_org(
    make_server, make_client
) -> None:
    server = await make_server(auth_required=False)
    client = make_client(server)
    await client.connect()
    assert_error(await client.call("subscribe", {"channels": ["kpi"]}), "UNAUTHORIZED")
    ack = await client.call("subscribe", {"channels": ["kpi"], "organization_id": "org_a"})
    assert ack == {"success": True, "subscriptions": ["kpi:org:org_a"]}
    async with httpx.AsyncClient(base_url=server.url) as api:
        info = (await api.get(f"/api/ws/connections/{client.sio.get_sid()}")).json()["connection"]
        assert info["status"] == "connected"
        assert info["subscriptions"] == ["kpi:org:org_a"]
        response = await api.post("/api/ws/broadcast/kpi", json=kpi_payload("org_a"))
        assert response.json()["recipients"] == 1
    [envelope] = await client.wait_for("kpi:update")
    assert envelope["target"]["organization_id"] == "org_a"


# -- the management API's view ----------------------------------------------------------


async def test_connections_endpoint_matches_the_acks(authed, api) -> None:
    client = await authed("user_1", "org_a")
    other = await authed("user_2", "org_b")
    ack = await client.call("subscribe", {"channels": ["kpi", "alerts"], "department_id": "d"})
    ack = await client.call("subscribe", {"channels": ["notifications"]})
    other_ack = await other.call("subscribe", {"channels": ["backlog"], "queue_name": "q"})
    listed = (await api.get("/api/ws/connections")).json()
    by_sid = {c["socket_id"]: c for c in listed["connections"]}
    assert listed["total_count"] == 2
    mine = by_sid[client.sio.get_sid()]
    assert sorted(mine["subscriptions"]) == sorted(ack["subscriptions"])
    assert (mine["user_id"], mine["organization_id"], mine["status"]) == (
        "user_1",
        "org_a",
        "authenticated",
    )
    theirs = by_sid[other.sio.get_sid()]
    assert theirs["subscriptions"] == other_ack["subscriptions"]
    only_b = (await api.get("/api/ws/connections", params={"organization_id": "org_b"})).json()
    assert [c["socket_id"] for c in only_b["connections"]] == [other.sio.get_sid()]
    rooms = (await api.get("/api/ws/rooms", params={"organization_id": "org_a"})).json()
    counts = {r["name"]: r["member_count"] for r in rooms["rooms"]}
    for room in ack["subscriptions"]:
        assert counts[room] == 1


# -- polling transport ------------------------------------------------------------------


async def test_subscriptions_over_polling(server, make_client, api) -> None:
    client = make_client(server)
    await client.connect(transports=["polling"])
    assert client.sio.transport() == "polling"
    assert (await client.authenticate("user_1", "org_a"))["success"] is True
    ack = await client.call("subscribe", {"channels": ["kpi"], "queue_name": "q1"})
    assert ack == {"success": True, "subscriptions": ["kpi:org:org_a:queue:q1"]}
    await client.wait_for("client:subscribe")
    info = (await api.get(f"/api/ws/connections/{client.sio.get_sid()}")).json()["connection"]
    assert info["transport"] == "polling"
    assert info["subscriptions"] == ["kpi:org:org_a:queue:q1"]
    response = await api.post("/api/ws/broadcast/kpi", json=kpi_payload("org_a", "d1", "q1"))
    assert response.json()["recipients"] == 1
    [envelope] = await client.wait_for("kpi:update")
    assert envelope["id"] == response.json()["message_id"]
    unsubscribed = await client.call("unsubscribe", {"rooms": ["kpi:org:org_a:queue:q1"]})
    assert unsubscribed == {"success": True, "subscriptions": []}
    assert await client.wait_for("client:unsubscribe") == [{"rooms": ["kpi:org:org_a:queue:q1"]}]
