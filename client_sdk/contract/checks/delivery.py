"""Section 4, the delivery rule: who receives a message, how often, and who never does.

Every check ends with a fence: a message that the observing sockets must
receive, published after the others; once it has arrived (plus a short
settle), anything that should have arrived has, and anything else that was
going to arrive (a duplicate, a leak) has had its chance too.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ...protocol import ServerEvent
from .._context import CheckContext
from .._samples import sample_payload, scope_fields
from .._wire import Peer
from ..model import Check, CheckFailure, CheckFunction, Needs, Section, add_check, check, show

__all__: list[str] = []

KPI = ServerEvent.KPI_UPDATE

# Targets as (department, queue): "D"/"Q" match the subscriber's filter, "D2"/"Q2" do not.
TARGETS: tuple[tuple[str | None, str | None], ...] = (
    (None, None),
    ("D", None),
    ("D2", None),
    (None, "Q"),
    (None, "Q2"),
    ("D", "Q"),
    ("D2", "Q"),
    ("D", "Q2"),
)

SHAPES: tuple[tuple[str, str | None, str | None], ...] = (
    ("organization filter", None, None),
    ("department filter", "D", None),
    ("queue filter", None, "Q"),
    ("department and queue filter", "D", "Q"),
)


def _probes_of(peer: Peer, event: str | None = None) -> Counter[str]:
    found: Counter[str] = Counter()
    for envelope in peer.received(event):
        data = envelope.get("data") if isinstance(envelope, dict) else None
        probe = data.get("contract_probe") if isinstance(data, dict) else None
        if isinstance(probe, str):
            found[probe] += 1
    return found


async def _fence(ctx: CheckContext, peer: Peer, **scope: str) -> None:
    fence = ctx.name("fence")
    await ctx.publish(KPI, fence, **scope)
    await ctx.wait_probe(peer, KPI, fence)
    await ctx.settle()


def _describe(dept: str | None, queue: str | None) -> str:
    parts = (
        ["org"] + [f"dept {dept}"] * (dept is not None) + [f"queue {queue}"] * (queue is not None)
    )
    return "(" + ", ".join(parts) + ")"


def _shape_check(dept_key: str | None, queue_key: str | None) -> CheckFunction:
    async def run(ctx: CheckContext) -> None:
        names = {key: ctx.name(key.lower()) for key in ("D", "D2", "Q", "Q2")}
        peer = await ctx.socket()
        scope: dict[str, str] = {}
        if dept_key is not None:
            scope["department_id"] = names[dept_key]
        if queue_key is not None:
            scope["queue_name"] = names[queue_key]
        await ctx.subscribe(peer, ["kpi"], **scope)
        sent: dict[str, tuple[str | None, str | None]] = {}
        for dept, queue in TARGETS:
            probe = ctx.name("probe")
            d = names[dept] if dept else None
            q = names[queue] if queue else None
            await ctx.publish(KPI, probe, department_id=d, queue_name=q)
            sent[probe] = (dept, queue)
        await _fence(ctx, peer, department_id=names["D"], queue_name=names["Q"])
        got = _probes_of(peer, KPI.value)
        problems = []
        for probe, (dept, queue) in sent.items():
            matches = dept_key in (None, dept) and queue_key in (None, queue)
            if got[probe] != int(matches):
                problems.append(
                    f"target {_describe(dept, queue)}: delivered {got[probe]} time(s), "
                    f"expected {int(matches)}"
                )
        if problems:
            raise CheckFailure(
                "each message delivered once when every filter field equals the target's, "
                "never otherwise",
                sent=f"subscribe kpi {_describe(dept_key, queue_key)}; kpi:update to 8 targets",
                received="; ".join(problems),
            )

    run.__doc__ = "A subscriber receives exactly the messages whose target its filter matches."
    return run


for _label, _dept, _queue in SHAPES:
    add_check(Check(Section.DELIVERY, _label, _shape_check(_dept, _queue), Needs(admin=True)))


@check(Section.DELIVERY, "one delivery per socket however many of its rooms match", admin=True)
async def once_per_socket(ctx: CheckContext) -> None:
    """A socket in all four matching rooms receives the message once."""
    dept, queue = ctx.name("dept"), ctx.name("queue")
    peer = await ctx.socket()
    for scope in (
        {},
        {"department_id": dept},
        {"queue_name": queue},
        {"department_id": dept, "queue_name": queue},
    ):
        await ctx.subscribe(peer, ["kpi"], **scope)
    probe = ctx.name("probe")
    await ctx.publish(KPI, probe, department_id=dept, queue_name=queue)
    await _fence(ctx, peer, department_id=dept, queue_name=queue)
    copies = _probes_of(peer, KPI.value)[probe]
    if copies != 1:
        raise CheckFailure(
            "exactly one delivery to a socket subscribed at all four room levels",
            sent=f"kpi:update to (org, dept {dept}, queue {queue}); the socket is in "
            f"{show(peer.subscriptions)}",
            received=f"{copies} copies",
        )


@check(Section.DELIVERY, "a message reaches only its own channel's subscribers", admin=True)
async def channel_isolation(ctx: CheckContext) -> None:
    """A ``kpi`` subscriber receives no backlog, attendance, alert or system message."""
    queue = ctx.name("queue")
    peer = await ctx.socket()
    await ctx.subscribe(peer, ["kpi"], queue_name=queue)
    others = (
        ServerEvent.BACKLOG_UPDATE,
        ServerEvent.ATTENDANCE_UPDATE,
        ServerEvent.ALERT_TRIGGERED,
        ServerEvent.SYSTEM_NOTIFICATION,
    )
    for event in others:
        await ctx.publish(event, ctx.name("probe"), queue_name=queue)
    await _fence(ctx, peer, queue_name=queue)
    strays = [e.value for e in others if peer.received(e.value)]
    if strays:
        raise CheckFailure(
            "no message of another channel",
            sent=f"subscribe kpi (queue {queue}); {[e.value for e in others]} to that queue",
            received=f"{strays}; {peer.summary()}",
        )


@check(Section.DELIVERY, "nothing arrives from a room after unsubscribing", admin=True)
async def after_unsubscribe(ctx: CheckContext) -> None:
    """Unsubscribed from ``kpi`` but still in ``backlog``: kpi messages stop."""
    queue = ctx.name("queue")
    peer = await ctx.socket()
    await ctx.subscribe(peer, ["kpi", "backlog"], queue_name=queue)
    await peer.request("unsubscribe", {"channels": ["kpi"], "queue_name": queue})
    probe = ctx.name("probe")
    await ctx.publish(KPI, probe, queue_name=queue)
    fence = ctx.name("fence")
    await ctx.publish(ServerEvent.BACKLOG_UPDATE, fence, queue_name=queue)
    await ctx.wait_probe(peer, ServerEvent.BACKLOG_UPDATE, fence)
    await ctx.settle()
    if _probes_of(peer)[probe]:
        raise CheckFailure(
            "no kpi message after unsubscribing from kpi",
            sent=f"unsubscribe kpi (queue {queue}); kpi:update to that queue",
            received=peer.summary(),
        )


def _mentions(envelope: Any, org: str, probes: set[str]) -> bool:
    if not isinstance(envelope, dict):
        return False
    data, target = envelope.get("data"), envelope.get("target")
    fields = [d.get(k) for d in (data, target) if isinstance(d, dict) for k in ("organization_id",)]
    probe = data.get("contract_probe") if isinstance(data, dict) else None
    return org in fields or probe in probes


@check(
    Section.DELIVERY,
    "no cross-organization delivery, whatever the ids, filters and targets",
    admin=True,
    organizations=2,
)
async def organization_isolation(ctx: CheckContext) -> None:
    """Nothing of organization A reaches a socket of B: same dept and queue names, crafted
    targets (B's organization or socket ids for A's payload) and room-like identifiers."""
    org_a, org_b = ctx.org, ctx.org2
    dept, queue = ctx.name("dept"), ctx.name("queue")
    watcher_a = await ctx.socket(org=org_a, label=f"socket of {org_a}")
    await ctx.subscribe(watcher_a, ["kpi"])
    peer_b = await ctx.socket(org=org_b, label=f"socket of {org_b}")
    for scope in (
        {},
        {"department_id": dept},
        {"queue_name": queue},
        {"department_id": dept, "queue_name": queue},
    ):
        await ctx.subscribe(peer_b, ["all"], **scope)
    probes: set[str] = set()
    crafted: list[str] = []

    async def send(event: ServerEvent, target: dict[str, Any], **scope: Any) -> int:
        probe = ctx.name("probe")
        probes.add(probe)
        body = {
            "event": event.value,
            "data": sample_payload(event, probe, org_a, **scope),
            "target": target,
        }
        answer = await ctx.admin.request("POST", "/broadcast", json_body=body)
        crafted.append(f"{event.value} target={show(target, 120)} -> {answer.status}")
        return answer.status

    for event in (
        KPI,
        ServerEvent.ALERT_TRIGGERED,
        ServerEvent.BACKLOG_SNAPSHOT,
        ServerEvent.SYSTEM_NOTIFICATION,
        ServerEvent.SYSTEM_MAINTENANCE,
    ):
        await send(event, scope_fields(org_a, dept, queue), department_id=dept, queue_name=queue)
        await send(event, scope_fields(org_a))
    await send(KPI, {"organization_id": org_b})
    await send(
        KPI,
        {"organization_id": org_b, "department_id": dept, "queue_name": queue},
        department_id=dept,
        queue_name=queue,
    )
    sid_b = peer_b.sid
    if sid_b is not None:
        await send(ServerEvent.SYSTEM_NOTIFICATION, {"socket_ids": [sid_b]})
        await send(KPI, {"organization_id": org_a, "socket_ids": [sid_b]})
    forged = f"{queue}:org:{org_b}"
    status = await send(KPI, {"organization_id": org_a}, queue_name=forged)
    if status != 400:
        raise CheckFailure(
            "400 for a queue_name that forges a room of another organization",
            sent=f"kpi:update with queue_name {forged!r}",
            received=crafted[-1],
        )
    await _fence(ctx, peer_b, org=org_b)
    await _fence(ctx, watcher_a, org=org_a)
    leaks = [e for _, e in peer_b.inbox.items if _mentions(e, org_a, probes)]
    if leaks:
        raise CheckFailure(
            f"no message of {org_a} at a socket of {org_b}",
            sent="; ".join(crafted),
            received=f"{len(leaks)} leaked: {show(leaks[:3], 900)}",
        )
