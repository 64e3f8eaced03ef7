"""Section 9: the HTTP management API under ``/api/ws``."""

from __future__ import annotations

import asyncio
from typing import Any

from ...protocol import (
    BroadcastResult,
    ConnectionInfo,
    ConnectionList,
    RoomList,
    ServerEvent,
    Stats,
)
from .._admin import Answer
from .._context import CheckContext
from .._expect import model, require
from .._samples import sample_payload, scope_fields
from .._wire import Peer, probe_is
from ..model import CheckFailure, CheckSkipped, Section, check, show

__all__: list[str] = []


def _failure_body(answer: Answer, status: int, code: str, sent: Any) -> None:
    require(
        answer.status == status
        and answer.error_code == code
        and isinstance(answer.body, dict)
        and answer.body.get("success") is False,
        f"{status} {{'success': false, 'error': {{'code': {code!r}, ...}}}}",
        sent=sent,
        received=answer.describe(),
    )


@check(Section.HTTP_API, "GET /health answers without a token", auth=False)
async def health(ctx: CheckContext) -> None:
    """Liveness needs no credentials (503 ``degraded`` is an answer too: section 9 as amended)."""
    answer = await ctx.no_token_answer("GET", "/health")
    require(
        isinstance(answer.body, dict)
        and "status" in answer.body
        and (
            (answer.status == 200 and answer.body.get("success") is True)
            or (answer.status == 503 and answer.body.get("status") == "degraded")
        ),
        "200 {'success': true, 'status': ...} (or 503 {'status': 'degraded', ...})",
        sent="GET /api/ws/health",
        received=answer.describe(),
    )


@check(Section.HTTP_API, "every other route needs the admin token (401)", admin=True, auth=False)
async def token_required(ctx: CheckContext) -> None:
    """Without a token, or with a wrong one: 401 ``AUTH_FAILED``; nothing is published."""
    if ctx.config.admin_token is None:
        if not ctx.config.is_loopback:
            raise CheckFailure(
                "a server listening beyond loopback to require an admin token",
                sent="GET /api/ws/stats without a token",
                received="200",
            )
        raise CheckSkipped("the server has no admin token (allowed on loopback only)")
    body = {
        "event": "system:notification",
        "data": {"message": "contract: must be refused"},
        "target": {"organization_id": ctx.org},
    }
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/stats", {}),
        ("GET", "/connections", {}),
        ("GET", "/rooms", {}),
        ("POST", "/broadcast", {"json_body": body}),
    ]
    for method, path, extra in attempts:
        answer = await ctx.no_token_answer(method, path, **extra)
        _failure_body(answer, 401, "AUTH_FAILED", f"{method} /api/ws{path} without a token")
    wrong = await ctx.admin.get("/stats", token="contract-wrong-token")
    _failure_body(wrong, 401, "AUTH_FAILED", "GET /api/ws/stats with a wrong token")


@check(Section.HTTP_API, "GET /stats has every field", admin=True, auth=False)
async def stats(ctx: CheckContext) -> None:
    """Connections, rooms by type, messages, latency, errors, uptime."""
    body = await ctx.admin.ok("GET", "/stats")
    parsed = model(Stats, body, "GET /stats")
    types = {t.value for t in parsed.rooms_by_type}
    require(
        types >= {"org", "dept", "queue"},
        "rooms_by_type with org, dept and queue",
        sent=ctx.last_sent,
        received=body,
    )


async def _listed(ctx: CheckContext) -> tuple[Peer, str, str]:
    peer = await ctx.socket()
    queue = ctx.name("queue")
    await ctx.subscribe(peer, ["kpi"], queue_name=queue)
    socket_id = str((peer.identity or {}).get("socket_id"))
    return peer, socket_id, f"kpi:org:{ctx.org}:queue:{queue}"


def _describes(info: ConnectionInfo, ctx: CheckContext, peer: Peer, room: str) -> bool:
    identity = peer.identity or {}
    return (
        info.user_id == identity.get("user_id")
        and info.organization_id == ctx.org
        and info.status == "authenticated"
        and room in info.subscriptions
    )


@check(Section.HTTP_API, "GET /connections lists sockets and filters by organization", admin=True)
async def connections(ctx: CheckContext) -> None:
    """The suite's socket with its user, organization, status and subscriptions."""
    peer, socket_id, room = await _listed(ctx)
    body = await ctx.admin.ok("GET", "/connections", params={"organization_id": ctx.org})
    listing = model(ConnectionList, body, "GET /connections")
    mine = [c for c in listing.connections if c.socket_id == socket_id]
    require(
        len(mine) == 1,
        f"the suite's socket {socket_id!r} listed once",
        sent=ctx.last_sent,
        received=body,
    )
    require(
        _describes(mine[0], ctx, peer, room),
        "its user, organization, status and rooms",
        sent=ctx.last_sent,
        received=mine[0].model_dump(mode="json"),
    )
    others = [c.socket_id for c in listing.connections if c.organization_id != ctx.org]
    require(
        not others,
        f"only sockets of {ctx.org} with ?organization_id=",
        sent=ctx.last_sent,
        received=others,
    )
    require(
        listing.total_count >= len(listing.connections),
        "total_count to count them",
        sent=ctx.last_sent,
        received=body,
    )


@check(
    Section.HTTP_API, "GET /connections/{socket_id} shows one socket, 404 if unknown", admin=True
)
async def one_connection(ctx: CheckContext) -> None:
    """The socket's details; an unknown id is 404 with a failure body."""
    peer, socket_id, room = await _listed(ctx)
    body = await ctx.admin.ok("GET", f"/connections/{socket_id}")
    # Section 9: {"success": true, "connection": {...}}, the fields of one listed entry.
    inner = body.get("connection") if isinstance(body, dict) else None
    require(
        isinstance(inner, dict),
        '{"success": true, "connection": {...}} (section 9)',
        sent=f"GET /api/ws/connections/{socket_id}",
        received=body,
    )
    info = model(ConnectionInfo, inner, f"GET /connections/{socket_id}: connection")
    require(
        _describes(info, ctx, peer, room),
        "its user, organization, status and rooms",
        sent=ctx.last_sent,
        received=body,
    )
    missing = await ctx.admin.get("/connections/contract-no-such-socket")
    require(
        missing.status == 404
        and isinstance(missing.body, dict)
        and missing.body.get("success") is False,
        "404 {'success': false, ...} for an unknown socket",
        sent="GET /api/ws/connections/contract-no-such-socket",
        received=missing.describe(),
    )


@check(Section.HTTP_API, "DELETE /connections/{socket_id} disconnects the socket", admin=True)
async def disconnect(ctx: CheckContext) -> None:
    """The server closes the socket."""
    peer, socket_id, _ = await _listed(ctx)
    await ctx.admin.ok("DELETE", f"/connections/{socket_id}")
    require(
        await peer.wait_lost(ctx.config.event_timeout),
        f"the socket closed within {ctx.config.event_timeout:g} s",
        sent=f"DELETE /api/ws/connections/{socket_id}",
        received=peer.summary(),
    )


@check(Section.HTTP_API, "GET /rooms lists rooms with name, type and member_count", admin=True)
async def rooms(ctx: CheckContext) -> None:
    """One room of each level, with the suite's socket in it."""
    peer = await ctx.socket()
    dept, queue = ctx.name("dept"), ctx.name("queue")
    expected = {
        f"alerts:org:{ctx.org}": "org",
        f"alerts:org:{ctx.org}:dept:{dept}": "dept",
        f"alerts:org:{ctx.org}:queue:{queue}": "queue",
        f"alerts:org:{ctx.org}:dept:{dept}:queue:{queue}": "queue",
    }
    for scope in (
        {},
        {"department_id": dept},
        {"queue_name": queue},
        {"department_id": dept, "queue_name": queue},
    ):
        await ctx.subscribe(peer, ["alerts"], **scope)
    body = await ctx.admin.ok("GET", "/rooms", params={"organization_id": ctx.org})
    listing = model(RoomList, body, "GET /rooms")
    found = {r.name: r for r in listing.rooms}
    for name, kind in expected.items():
        room = found.get(name)
        require(
            room is not None and room.type.value == kind and room.member_count >= 1,
            f"room {name!r} of type {kind!r} with at least one member",
            sent=ctx.last_sent,
            received=show([r.model_dump(mode="json") for r in listing.rooms][:20]),
        )


@check(Section.HTTP_API, "POST /broadcast answers message_id and recipients", admin=True)
async def broadcast_answer(ctx: CheckContext) -> None:
    """``recipients`` counts the subscribed sockets (at least the suite's two)."""
    queue = ctx.name("queue")
    peers = [await ctx.socket(), await ctx.socket()]
    for peer in peers:
        await ctx.subscribe(peer, ["attendance"], queue_name=queue)
    probe = ctx.name("probe")
    body = await ctx.publish(ServerEvent.ATTENDANCE_CHECKIN, probe, queue_name=queue)
    result = model(BroadcastResult, body, "the broadcast answer")
    require(
        bool(result.message_id) and result.recipients >= 2,
        "a message_id and recipients >= 2",
        sent=ctx.last_sent,
        received=body,
    )
    for peer in peers:
        await ctx.wait_probe(peer, ServerEvent.ATTENDANCE_CHECKIN, probe)


ROUTES: tuple[tuple[str, str | None, ServerEvent], ...] = (
    ("kpi", None, ServerEvent.KPI_UPDATE),
    ("backlog", None, ServerEvent.BACKLOG_UPDATE),
    ("attendance", None, ServerEvent.ATTENDANCE_UPDATE),
    ("alert", None, ServerEvent.ALERT_TRIGGERED),
    ("kpi", "kpi:computed", ServerEvent.KPI_COMPUTED),
    ("alert", "alert:resolved", ServerEvent.ALERT_RESOLVED),
)


@check(
    Section.HTTP_API, "POST /broadcast/{kind} publishes the payload to its own scope", admin=True
)
async def broadcast_kinds(ctx: CheckContext) -> None:
    """kpi, backlog, attendance, alert, ``?event=`` for another event of the same channel."""
    queue = ctx.name("queue")
    peer = await ctx.socket()
    await ctx.subscribe(peer, ["all"], queue_name=queue)
    for kind, event, expected in ROUTES:
        probe = ctx.name("probe")
        payload = sample_payload(expected, probe, ctx.org, None, queue)
        params = {"event": event} if event is not None else None
        await ctx.admin.ok("POST", f"/broadcast/{kind}", json_body=payload, params=params)
        raw = await ctx.wait_probe(peer, expected, probe)
        target = raw.get("target") or {}
        require(
            target.get("queue_name") == queue and target.get("organization_id") == ctx.org,
            "the payload's own organization and queue as the target",
            sent=f"POST /broadcast/{kind}",
            received=raw,
        )
    wrong = await ctx.admin.request(
        "POST",
        "/broadcast/kpi",
        params={"event": "backlog:update"},
        json_body=sample_payload(ServerEvent.KPI_UPDATE, "x", ctx.org),
    )
    _failure_body(wrong, 400, "INVALID_MESSAGE", "POST /broadcast/kpi?event=backlog:update")


@check(
    Section.HTTP_API,
    "a repeated Idempotency-Key publishes once; with another body it is 409",
    admin=True,
)
async def idempotent_publishing(ctx: CheckContext) -> None:
    """Section 9: concurrent and later requests with one key answer the one ``message_id``
    and ``recipients``, the message arrives once under that id; another body is 409."""
    queue = ctx.name("queue")
    peer = await ctx.socket()
    await ctx.subscribe(peer, ["kpi"], queue_name=queue)
    probe = ctx.name("probe")
    payload = sample_payload(ServerEvent.KPI_UPDATE, probe, ctx.org, None, queue)
    key = {"Idempotency-Key": ctx.name("key")}
    sent = {f"POST /api/ws/broadcast/kpi with {key}, three at once, then once more": payload}
    answers = list(
        await asyncio.gather(
            *(
                ctx.admin.request("POST", "/broadcast/kpi", json_body=payload, headers=key)
                for _ in range(3)
            )
        )
    )
    answers.append(
        await ctx.admin.request("POST", "/broadcast/kpi", json_body=payload, headers=key)
    )
    bodies = [a.body if isinstance(a.body, dict) else {} for a in answers]
    require(
        all(a.status == 200 for a in answers)
        and len({(b.get("message_id"), b.get("recipients")) for b in bodies}) == 1,
        "200 with one message_id and recipients for every request with the key",
        sent=sent,
        received=[a.describe() for a in answers],
    )
    message_id = bodies[0].get("message_id")
    other = sample_payload(ServerEvent.KPI_UPDATE, ctx.name("probe"), ctx.org, None, queue)
    reused = await ctx.admin.request("POST", "/broadcast/kpi", json_body=other, headers=key)
    _failure_body(reused, 409, "INVALID_MESSAGE", {"the same key with another body": other})
    fence = ctx.name("probe")
    await ctx.publish(ServerEvent.KPI_UPDATE, fence, queue_name=queue)
    await ctx.wait_probe(peer, ServerEvent.KPI_UPDATE, fence)
    await ctx.settle()
    copies = peer.received(ServerEvent.KPI_UPDATE.value, where=probe_is(probe))
    require(
        len(copies) == 1 and isinstance(copies[0], dict) and copies[0].get("id") == message_id,
        f"the message once, with id {message_id!r}",
        sent=sent,
        received=copies,
    )


def _bad_bodies(ctx: CheckContext, queue: str, probe: str) -> list[tuple[str, Any]]:
    good = sample_payload(ServerEvent.KPI_UPDATE, probe, ctx.org, None, queue)
    alert = sample_payload(ServerEvent.ALERT_TRIGGERED, probe, ctx.org, None, queue)
    target = scope_fields(ctx.org, None, queue)

    def kpi(**changes: Any) -> dict[str, Any]:
        data = {**good, **changes}
        return {
            "event": "kpi:update",
            "data": {k: v for k, v in data.items() if v is not None},
            "target": target,
        }

    return [
        ("a string health_score", kpi(health_score="high")),
        ("a utilization of 150 %", kpi(utilization={"current_utilization": 150})),
        ("a negative count", kpi(contacts_offered=-1)),
        ("no timestamp", kpi(timestamp=None)),
        ("an organization_id with a colon", kpi(organization_id=f"{ctx.org}:x")),
        (
            "an alert without severity",
            {
                "event": "alert:triggered",
                "data": {k: v for k, v in alert.items() if k != "severity"},
                "target": target,
            },
        ),
        (
            "a system event without message",
            {
                "event": "system:notification",
                "data": {"title": "x", "contract_probe": probe},
                "target": target,
            },
        ),
        ("an unknown event", {"event": "kpi:unknown", "data": good, "target": target}),
        ("no data", {"event": "kpi:update", "target": target}),
        ("a body that is not JSON", b"{not json"),
    ]


@check(
    Section.HTTP_API, "a bad broadcast body is 400 INVALID_MESSAGE and reaches nobody", admin=True
)
async def bad_bodies(ctx: CheckContext) -> None:
    """Wrong types, ranges, missing required fields, unknown events: refused and not sent."""
    queue = ctx.name("queue")
    peer = await ctx.socket()
    await ctx.subscribe(peer, ["all"], queue_name=queue)
    probe = ctx.name("probe")
    for label, body in _bad_bodies(ctx, queue, probe):
        if isinstance(body, bytes):
            answer = await ctx.admin.request("POST", "/broadcast", content=body)
        else:
            answer = await ctx.admin.request("POST", "/broadcast", json_body=body)
        _failure_body(answer, 400, "INVALID_MESSAGE", f"{label}: {show(body, 300)}")
    fence = ctx.name("fence")
    await ctx.publish(ServerEvent.KPI_UPDATE, fence, queue_name=queue)
    await ctx.wait_probe(peer, ServerEvent.KPI_UPDATE, fence)
    await ctx.settle()
    delivered = peer.received(None, where=probe_is(probe))
    require(
        not delivered,
        "no delivery of a refused broadcast",
        sent=f"the refused broadcasts above, all with contract_probe {probe!r}",
        received=delivered,
    )


@check(Section.HTTP_API, "an oversized body is 413 MESSAGE_TOO_LARGE", admin=True)
async def oversized_body(ctx: CheckContext) -> None:
    """A broadcast body over ``max_message_size_bytes`` is refused with 413."""
    limit = ctx.server.limits.max_message_size_bytes
    data = sample_payload(ServerEvent.SYSTEM_NOTIFICATION, ctx.name("probe"), ctx.org)
    data["padding"] = "x" * (limit + 1024)
    body = {"event": "system:notification", "data": data, "target": {"organization_id": ctx.org}}
    answer = await ctx.admin.request("POST", "/broadcast", json_body=body)
    _failure_body(
        answer,
        413,
        "MESSAGE_TOO_LARGE",
        f"POST /api/ws/broadcast of {limit + 1024} bytes and more (limit {limit})",
    )
