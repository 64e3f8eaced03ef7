"""Section 6, snapshot: ``"snapshot": true`` first sends the latest message it holds.

Checked as §6 states it: for each ``(event, target)`` matching the filter,
the latest message, once, marked ``"snapshot": true``, before any live
message; older messages of that ``(event, target)`` not at all; and with
``since`` as well, no message twice, whichever of the two carries it (and
in whichever order the snapshot and the replay come: §6 does not say).
"""

from __future__ import annotations

from .._context import CheckContext
from .._expect import require
from .._wire import probe_is
from ..failures import CheckSkipped
from ..model import Section, check
from ._streams import (
    KPI,
    arrivals,
    describe,
    envelopes,
    fence,
    order_problems,
    position,
    probe_of,
    publish_series,
    replay_report,
    stream_of,
)

__all__: list[str] = []


@check(
    Section.CAPABILITIES,
    "§6 snapshot: the latest message of each (event, target) first, marked snapshot",
    admin=True,
    capability="snapshot",
)
async def snapshot(ctx: CheckContext) -> None:
    """The last ``kpi:update`` of each queue of the filter, once, marked, before live ones."""
    department, first, second = ctx.name("dept"), ctx.name("queue"), ctx.name("queue")
    older, latest = await publish_series(ctx, first, 2, department_id=department)
    (alone,) = await publish_series(ctx, second, 1, department_id=department)
    peer = await ctx.socket()
    sent = {"channels": ["kpi"], "department_id": department, "snapshot": True}
    await peer.request("subscribe", sent)
    raw = await peer.wait_for(KPI.value, where=probe_is(latest), sent=sent)
    require(
        raw[0].get("snapshot") is True,
        "snapshot: true on the snapshot envelope",
        sent=sent,
        received=raw[0],
    )
    last = await fence(ctx, peer, first, sent, department)
    arrived = arrivals(peer, [older, latest, alone, last])
    require(
        older not in arrived,
        "only the latest message of the (event, target)",
        sent=sent,
        received={"older message sent": older, "arrived": arrived},
    )
    require(
        sorted(arrived[:-1]) == sorted([latest, alone]) and arrived[-1] == last,
        "the latest message of each of the two queues, once each, before the live message",
        sent=sent,
        received=describe(order_problems(arrived, [latest, alone, last]), arrived),
    )
    found = envelopes(peer)
    marks = [(probe_of(e), e.get("snapshot")) for e in found if probe_of(e) in arrived]
    require(
        all(mark is True for probe, mark in marks if probe != last),
        "snapshot: true on every snapshot envelope",
        sent=sent,
        received=marks,
    )
    require(
        all(mark is not True for probe, mark in marks if probe == last),
        "no snapshot mark on a live message",
        sent=sent,
        received=marks,
    )


@check(
    Section.CAPABILITIES,
    "§6 snapshot: with since as well, no message is sent twice",
    admin=True,
    capability="snapshot",
)
async def snapshot_with_since(ctx: CheckContext) -> None:
    """``since`` and ``snapshot`` in one subscribe: the latest message comes once, not twice."""
    if "replay" not in ctx.profile.capabilities:
        raise CheckSkipped("the server does not advertise 'replay': since cannot be combined")
    queue = ctx.name("queue")
    late = await ctx.socket(label="late")
    _, start, _ = await position(ctx, late)
    published = await publish_series(ctx, queue, 3)
    stream = stream_of(ctx)
    sent = {"channels": ["kpi"], "queue_name": queue, "since": {stream: start}, "snapshot": True}
    ack = await late.request("subscribe", sent)
    result = replay_report(ack, stream, sent)
    last = await fence(ctx, late, queue, sent)
    arrived = arrivals(late, [*published, last])
    twice = order_problems(arrived, [*published, last]).get("duplicates")
    require(
        not twice,
        "each message once, whether the snapshot or the replay carries it (§6: never twice)",
        sent=sent,
        received=describe({"duplicates": twice}, arrived, ack=ack),
    )
    require(
        arrived[-1] == last,
        "the snapshot and the replay before the live message",
        sent=sent,
        received={"arrived": arrived},
    )
    if result.complete:
        require(
            sorted(arrived) == sorted([*published, last]),
            "complete: true, so every message that followed since",
            sent=sent,
            received={"arrived": arrived, "ack": ack},
        )
