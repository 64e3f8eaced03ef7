"""Section 4: subscribing joins one room per channel; unsubscribing leaves them."""

from __future__ import annotations

from typing import Any

from ...protocol import (
    CONCRETE_CHANNELS,
    ErrorCode,
    RoomsNotice,
    SubscribeAck,
    UnsubscribeAck,
)
from .._context import CheckContext
from .._expect import failure_ack, model, require
from .._wire import Peer
from ..model import Check, CheckFunction, Section, add_check, check

__all__: list[str] = []


def _room(channel: str, org: str, dept: str | None, queue: str | None) -> str:
    # Spelled out here rather than imported: the suite states the rule itself.
    name = f"{channel}:org:{org}"
    if dept is not None:
        name += f":dept:{dept}"
    if queue is not None:
        name += f":queue:{queue}"
    return name


async def _notice(peer: Peer, event: str, rooms: list[str], sent: Any) -> None:
    found = await peer.wait_for(event, sent=sent)
    notice = model(RoomsNotice, found[-1], f"the {event} event", sent=sent)
    require(
        sorted(notice.rooms) == sorted(rooms),
        f"{event} {{'rooms': {rooms}}}",
        sent=sent,
        received=found[-1],
    )


def _shape_check(label: str, with_dept: bool, with_queue: bool) -> CheckFunction:
    async def run(ctx: CheckContext) -> None:
        peer = await ctx.socket()
        dept = ctx.name("dept") if with_dept else None
        queue = ctx.name("queue") if with_queue else None
        sent: dict[str, Any] = {"channels": ["kpi"], "organization_id": ctx.org}
        if dept is not None:
            sent["department_id"] = dept
        if queue is not None:
            sent["queue_name"] = queue
        room = _room("kpi", ctx.org, dept, queue)
        ack = await peer.request("subscribe", sent)
        parsed = model(SubscribeAck, ack, "the subscribe ack", sent=sent)
        require(
            room in parsed.subscriptions,
            f"{room!r} in the ack's subscriptions",
            sent=sent,
            received=ack,
        )
        await _notice(peer, "client:subscribe", [room], sent)

    run.__doc__ = f"A {label} filter joins its room, named in the ack and in client:subscribe."
    return run


def _labels(with_dept: bool, with_queue: bool) -> tuple[str | None, str | None]:
    return ("{dept}" if with_dept else None, "{queue}" if with_queue else None)


for _label, _dept, _queue in (
    ("organization", False, False),
    ("department", True, False),
    ("queue", False, True),
    ("department and queue", True, True),
):
    _pattern = _room("{channel}", "{org}", *_labels(_dept, _queue))
    add_check(
        Check(
            Section.SUBSCRIPTIONS,
            f"{'an' if _label[0] in 'aeiou' else 'a'} {_label} filter joins {_pattern}",
            _shape_check(_label, _dept, _queue),
        )
    )


@check(Section.SUBSCRIPTIONS, "channel all joins the five channel rooms")
async def channel_all(ctx: CheckContext) -> None:
    """``all`` stands for kpi, backlog, attendance, alerts and notifications."""
    peer = await ctx.socket()
    queue = ctx.name("queue")
    sent = {"channels": ["all"], "queue_name": queue}
    ack = await peer.request("subscribe", sent)
    rooms = [_room(c.value, ctx.org, None, queue) for c in CONCRETE_CHANNELS]
    missing = [r for r in rooms if r not in ack.get("subscriptions", [])]
    require(not missing, f"the rooms {rooms} in the ack", sent=sent, received=ack)
    require(
        not any(r.startswith("all:") for r in ack.get("subscriptions", [])),
        "no room named after 'all'",
        sent=sent,
        received=ack,
    )
    await _notice(peer, "client:subscribe", rooms, sent)


@check(Section.SUBSCRIPTIONS, "organization_id defaults to the authenticated one")
async def default_organization(ctx: CheckContext) -> None:
    """A filter without ``organization_id`` subscribes within the socket's organization."""
    peer = await ctx.socket()
    queue = ctx.name("queue")
    sent = {"channels": ["alerts"], "queue_name": queue}
    ack = await peer.request("subscribe", sent)
    room = _room("alerts", ctx.org, None, queue)
    require(room in ack.get("subscriptions", []), f"{room!r} in the ack", sent=sent, received=ack)


@check(Section.SUBSCRIPTIONS, "another organization is UNAUTHORIZED and joins nothing")
async def other_organization(ctx: CheckContext) -> None:
    """``organization_id`` of another organization is refused, not retryable."""
    peer = await ctx.socket()
    other = ctx.config.organizations[1] if len(ctx.config.organizations) > 1 else ctx.name("org")
    sent = {"channels": ["kpi"], "organization_id": other}
    ack = await peer.call("subscribe", sent)
    info = failure_ack(
        ack, {ErrorCode.UNAUTHORIZED}, "a subscription to another organization", sent=sent
    )
    require(not info.retryable, "UNAUTHORIZED to be non-retryable", sent=sent, received=ack)
    probe = {"channels": ["backlog"], "queue_name": ctx.name("queue")}
    after = await peer.request("subscribe", probe)
    leaked = [r for r in after.get("subscriptions", []) if f":org:{other}" in r]
    require(not leaked, "no room of the other organization joined", sent=sent, received=after)


@check(Section.SUBSCRIPTIONS, "subscribing before authenticating is UNAUTHORIZED", auth=False)
async def not_authenticated(ctx: CheckContext) -> None:
    """A socket that has not authenticated cannot subscribe."""
    peer = await ctx.socket(authenticate=False)
    sent = {"channels": ["kpi"], "organization_id": ctx.org}
    ack = await peer.call("subscribe", sent)
    failure_ack(ack, {ErrorCode.UNAUTHORIZED}, "subscribe before authenticate", sent=sent)


@check(Section.SUBSCRIPTIONS, "unsubscribe by filter leaves the filter's rooms")
async def unsubscribe_by_filter(ctx: CheckContext) -> None:
    """Ack with the remaining rooms, then ``client:unsubscribe`` with the rooms left."""
    peer = await ctx.socket()
    queue = ctx.name("queue")
    await ctx.subscribe(peer, ["kpi", "backlog"], queue_name=queue)
    sent = {"channels": ["kpi"], "queue_name": queue}
    ack = await peer.request("unsubscribe", sent)
    parsed = model(UnsubscribeAck, ack, "the unsubscribe ack", sent=sent)
    kpi, backlog = _room("kpi", ctx.org, None, queue), _room("backlog", ctx.org, None, queue)
    require(
        kpi not in parsed.subscriptions and backlog in parsed.subscriptions,
        f"subscriptions without {kpi!r} and still with {backlog!r}",
        sent=sent,
        received=ack,
    )
    await _notice(peer, "client:unsubscribe", [kpi], sent)


@check(Section.SUBSCRIPTIONS, "unsubscribe by rooms leaves the rooms named")
async def unsubscribe_by_rooms(ctx: CheckContext) -> None:
    """``{"rooms": [...]}`` is the other form of ``unsubscribe``."""
    peer = await ctx.socket()
    dept = ctx.name("dept")
    await ctx.subscribe(peer, ["attendance", "alerts"], department_id=dept)
    room = _room("attendance", ctx.org, dept, None)
    sent = {"rooms": [room]}
    ack = await peer.request("unsubscribe", sent)
    require(
        room not in ack.get("subscriptions", []),
        f"{room!r} gone from the ack",
        sent=sent,
        received=ack,
    )
    require(
        _room("alerts", ctx.org, dept, None) in ack.get("subscriptions", []),
        "the other room kept",
        sent=sent,
        received=ack,
    )
    await _notice(peer, "client:unsubscribe", [room], sent)
