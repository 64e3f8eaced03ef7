"""Section 6, replay: ``seq`` and ``epoch``, and ``subscribe`` with ``since``.

The rules checked, each only as far as §6 states it: a stream's messages
are numbered 1, 2, 3, ... with no gaps; a ``since`` gets every logged
message after it that matches the filter, in ``seq`` order, each once,
before any newer live message; ``complete: true`` promises that nothing is
missing, so it must not be said when the log no longer reaches back or the
epoch is another. A log is bounded by count and age, both of which drop its
oldest messages, so what a server still holds is always the newest part of
a stream: a replay may lack a beginning (then ``complete: false``) but never
a middle. ``complete: false`` is accepted wherever messages may be missing.
"""

from __future__ import annotations

import itertools
from typing import Any

from .._context import CheckContext
from .._expect import require
from .._wire import probe_is
from ..failures import CheckSkipped
from ..model import CheckFailure, Section, check
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
    publish_while,
    replay_report,
    stream_of,
)

__all__: list[str] = []


def _suffix_problem(arrived: list[str], published: list[str]) -> dict[str, Any]:
    """What keeps ``arrived`` from being the newest part of ``published``, each once, in order."""
    problems = order_problems(arrived, published)
    if problems:
        return problems
    if arrived and arrived != published[len(published) - len(arrived) :]:
        first = published.index(arrived[0])
        held = set(arrived)
        problems["missing"] = [p for p in published[first:] if p not in held][:5]
    return problems


@check(
    Section.CAPABILITIES,
    "§6 replay: seq grows by one with each message of a stream",
    admin=True,
    capability="replay",
)
async def sequence_numbers(ctx: CheckContext) -> None:
    """``seq`` is 1, 2, 3, ... within ``kpi:{org}`` (across its queues), under one ``epoch``."""
    first, second = ctx.name("queue"), ctx.name("queue")
    watcher = await ctx.socket(label="organization-wide subscriber")
    await ctx.subscribe(watcher, ["kpi"])
    published = []
    for queue in (first, second, first):
        published += await publish_series(ctx, queue, 1)
    for probe in published:
        await ctx.wait_probe(watcher, KPI, probe)
    # Every message of the stream reaches an organization-wide subscriber: from
    # the first probe to the last, whoever else publishes, no number is skipped.
    seen = envelopes(watcher)
    found = [probe_of(e) for e in seen]
    span = seen[found.index(published[0]) : found.index(published[-1]) + 1]
    seqs = [e.get("seq") for e in span]
    epochs = {str(e.get("epoch")) for e in span}
    sent = f"kpi:update to queues {first}, {second}, {first}: {published}"
    require(
        all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in seqs),
        "an integer seq >= 1 on every envelope",
        sent=sent,
        received=seqs,
    )
    require(
        all(b == a + 1 for a, b in itertools.pairwise(seqs)),
        "seq growing by one with each message of the stream kpi:{org} (1, 2, 3, ... no gaps)",
        sent=sent,
        received=seqs,
    )
    require(
        len(epochs) == 1 and all(isinstance(e.get("epoch"), str) and e["epoch"] for e in span),
        "one non-empty epoch string on every envelope of the stream",
        sent=sent,
        received=[e.get("epoch") for e in span],
    )


@check(
    Section.CAPABILITIES,
    "§6 replay: subscribe with since replays what followed, in order",
    admin=True,
    capability="replay",
)
async def replay_since(ctx: CheckContext) -> None:
    """Every later logged message of the filter, in order, once, the same id and seq, then live."""
    queue, other = ctx.name("queue"), ctx.name("other-queue")
    watcher = await ctx.socket(label="live")
    await ctx.subscribe(watcher, ["kpi"])
    published: list[str] = []
    ours: list[str] = []
    for target in (queue, other, queue, queue, queue, other, queue):
        probe = (await publish_series(ctx, target, 1))[0]
        published.append(probe)
        if target == queue:
            ours.append(probe)
    live = {p: await ctx.wait_probe(watcher, KPI, p) for p in published}
    stream = stream_of(ctx)
    since = live[ours[0]].get("seq")
    require(isinstance(since, int), "a seq to replay from", received=live[ours[0]])
    late = await ctx.socket(label="late")
    sent = {"channels": ["kpi"], "queue_name": queue, "since": {stream: since}}
    ack = await late.request("subscribe", sent)
    result = replay_report(ack, stream, sent)
    expected = ours[1:]
    last = await fence(ctx, late, queue, sent)
    foreign = arrivals(late, [p for p in published if p not in ours])
    require(
        not foreign,
        "only messages matching the subscription's filter (queue_name) in the replay",
        sent=sent,
        received={"other queue's messages replayed": foreign},
    )
    arrived = arrivals(late, [*expected, last])
    problems = _suffix_problem(arrived, [*expected, last])
    if result.complete and not problems and arrived[:-1] != expected:
        problems["missing"] = [p for p in expected if p not in arrived]
    if problems:
        complete = "complete: true, so every one" if result.complete else "the newest part"
        raise CheckFailure(
            f"the logged messages after seq {since} that match the filter ({complete}), "
            "in seq order, each once, before the live message",
            sent=sent,
            received=describe(problems, arrived, ack=ack),
        )
    replayed = arrived[:-1]
    require(
        result.replayed == len(replayed),
        f"replayed: {len(replayed)} (the messages replayed)",
        sent=sent,
        received=ack,
    )
    for probe in replayed:
        again = late.received(KPI.value, where=probe_is(probe))[0]
        then = live[probe]
        require(
            again.get("id") == then.get("id") and again.get("seq") == then.get("seq"),
            "a replayed message with the id and seq it was first delivered with",
            sent=sent,
            received={"live": then, "replayed": again},
        )
    newest = live[published[-1]].get("seq")
    require(
        result.epoch == live[published[-1]].get("epoch")
        and isinstance(result.seq, int)
        and isinstance(newest, int)
        and result.seq >= newest,
        "the stream's epoch and latest seq in the replay report",
        sent=sent,
        received={"ack": ack, "newest delivered": live[published[-1]]},
    )


@check(
    Section.CAPABILITIES,
    "§6 replay: the replay comes before newer live messages, each once",
    admin=True,
    capability="replay",
)
async def replay_then_live(ctx: CheckContext) -> None:
    """Messages published while a replay is answered follow it, in order, none twice or lost."""
    queue = ctx.name("queue")
    late = await ctx.socket(label="late")
    _, start, _ = await position(ctx, late)
    earlier = await publish_series(ctx, queue, 20)
    stream = stream_of(ctx)
    sent = {"channels": ["kpi"], "queue_name": queue, "since": {stream: start}}
    ack, later = await publish_while(ctx, queue, late.request("subscribe", sent))
    result = replay_report(ack, stream, sent)
    published = [*earlier, *later]
    await late.wait_for(
        KPI.value,
        where=probe_is(later[-1]),
        sent=sent,
        expected=f"the last live message {later[-1]!r} at {late.label}",
    )
    await ctx.settle()
    arrived = arrivals(late, published)
    problems = order_problems(arrived, published)
    if result.complete:
        missing = [p for p in published if p not in arrived]
        if missing:
            problems["missing"] = missing[:5]
    if problems:
        raise CheckFailure(
            f"the {len(earlier)} replayed messages, then the {len(later)} published during and "
            "after the subscribe, in seq order, each once (no live message overtakes the replay)",
            sent=f"{sent}, while publishing {len(later)} live messages: {later[:3]}...",
            received=describe(problems, arrived),
        )


@check(
    Section.CAPABILITIES,
    "§6 replay: a since of another epoch is complete: false and replays nothing",
    admin=True,
    capability="replay",
)
async def other_epoch(ctx: CheckContext) -> None:
    """``since`` with an epoch that is not the stream's: ``complete: false``, ``replayed: 0``."""
    queue = ctx.name("queue")
    late = await ctx.socket(label="late")
    published = await publish_series(ctx, queue, 2)
    epoch, _, _ = await position(ctx, late)
    stale = "contract-gone-epoch" if epoch != "contract-gone-epoch" else "contract-old-epoch"
    stream = stream_of(ctx)
    sent = {
        "channels": ["kpi"],
        "queue_name": queue,
        "since": {stream: {"seq": 0, "epoch": stale}},
    }
    ack = await late.request("subscribe", sent)
    result = replay_report(ack, stream, sent)
    require(
        result.complete is False and result.replayed == 0,
        "complete: false and replayed: 0 for a position of another epoch",
        sent=sent,
        received=ack,
    )
    require(
        result.epoch == epoch,
        f"the stream's current epoch {epoch!r} in the replay report",
        sent=sent,
        received=ack,
    )
    await fence(ctx, late, queue, sent)
    replayed = arrivals(late, published)
    require(
        not replayed,
        "nothing replayed from a position of another epoch",
        sent=sent,
        received={"replayed": replayed},
    )


@check(
    Section.CAPABILITIES,
    "§6 replay: a since beyond the log limit is complete: false",
    admin=True,
    destructive=True,
    capability="replay",
)
async def since_beyond_the_log(ctx: CheckContext) -> None:
    """Publishes until the log no longer reaches back (at most ``max_burst``); then ``false``."""
    queue = ctx.name("queue")
    stream = stream_of(ctx)
    late = await ctx.socket(label="late")
    _, start, _ = await position(ctx, late)
    published: list[str] = []
    size = 16
    while len(published) < ctx.config.max_burst:
        published += await publish_series(
            ctx, queue, min(size, ctx.config.max_burst - len(published))
        )
        # A filter that matches nothing: no replay, only whether the log reaches back.
        reach = await late.request(
            "subscribe",
            {"channels": ["kpi"], "queue_name": ctx.name("empty-queue"), "since": {stream: start}},
        )
        if not replay_report(reach, stream, reach).complete:
            break
        size *= 2
    sent = {"channels": ["kpi"], "queue_name": queue, "since": {stream: start}}
    ack = await late.request("subscribe", sent)
    result = replay_report(ack, stream, sent)
    last = await fence(ctx, late, queue, sent)
    arrived = arrivals(late, [*published, last])
    shown = f"{sent} after {len(published)} kpi:update to that queue"
    if result.complete:
        lacking = [p for p in published if p not in arrived]
        require(
            not lacking,
            "complete: false when the log no longer reaches back to since",
            sent=shown,
            received=f"complete: true, yet the replay lacks {len(lacking)} of the "
            f"{len(published)} messages that followed since; ack {ack}",
        )
    problems = _suffix_problem(arrived, [*published, last])
    require(
        not problems,
        "the newest messages still logged, in seq order, each once, then the live one",
        sent=shown,
        received=describe(problems, arrived),
    )
    require(
        result.replayed == len(arrived) - 1,
        f"replayed: {len(arrived) - 1} (the messages replayed)",
        sent=shown,
        received=ack,
    )
    if result.complete:
        raise CheckSkipped(
            f"the log still held all {len(published)} messages published (max_burst): "
            "a since older than the log reaches cannot be provoked on this server"
        )
