"""Sections 5 and 6: batching, replay and snapshots, where the server advertises them."""

from __future__ import annotations

from typing import Any

from ...protocol import Envelope, ReplayResult, ServerEvent
from .._context import CheckContext
from .._expect import model, require
from .._wire import Peer, probe_is
from ..model import CheckFailure, Section, check

__all__: list[str] = []

KPI = ServerEvent.KPI_UPDATE


def _envelopes(peer: Peer) -> list[Any]:
    """Every data envelope received, batched or single, in arrival order."""
    found: list[Any] = []
    for event, data in peer.inbox.items:
        if event == "batch" and isinstance(data, dict) and isinstance(data.get("messages"), list):
            found.extend(data["messages"])
        elif event == KPI.value:
            found.append(data)
    return found


def _probes(envelopes: list[Any]) -> list[str]:
    return [
        e["data"]["contract_probe"]
        for e in envelopes
        if isinstance(e, dict) and isinstance(e.get("data"), dict) and "contract_probe" in e["data"]
    ]


async def _publish_series(ctx: CheckContext, queue: str, count: int) -> list[str]:
    probes = [ctx.name("probe") for _ in range(count)]
    for probe in probes:
        await ctx.publish(KPI, probe, queue_name=queue)
    return probes


@check(
    Section.CAPABILITIES,
    "§5 batch: batches in order, and only to clients that announced it",
    admin=True,
    capability="batch",
)
async def batching(ctx: CheckContext) -> None:
    """``batch`` ``{"messages": [...]}`` keeps order; never to a client without the capability."""
    queue = ctx.name("queue")
    batched = await ctx.socket(capabilities=["batch"], label="batch client")
    plain = await ctx.socket(label="plain client")
    for peer in (batched, plain):
        await ctx.subscribe(peer, ["kpi"], queue_name=queue)
    probes = await _publish_series(ctx, queue, 5)
    for peer in (batched, plain):

        def arrived(peer: Peer = peer) -> bool:
            return set(probes) <= set(_probes(_envelopes(peer)))

        ok = await peer.inbox.wait_until(arrived, peer.event_timeout)
        require(ok, f"the five messages at {peer.label}", sent=probes, received=peer.summary())
        order = [p for p in _probes(_envelopes(peer)) if p in probes]
        require(order == probes, "the messages in publication order", sent=probes, received=order)
        for envelope in _envelopes(peer):
            model(Envelope, envelope, f"an envelope at {peer.label}")
    require(
        not plain.received("batch"),
        "no batch event to a client that did not announce it",
        sent=f"5 kpi:update broadcasts to a subscriber without 'batch': {probes}",
        received=plain.summary(),
    )


@check(
    Section.CAPABILITIES,
    "§6 replay: seq grows with each message of a stream",
    admin=True,
    capability="replay",
)
async def sequence_numbers(ctx: CheckContext) -> None:
    """Every envelope carries an integer ``seq``, increasing within ``kpi:{org}``."""
    queue = ctx.name("queue")
    peer = await ctx.socket()
    await ctx.subscribe(peer, ["kpi"], queue_name=queue)
    probes = await _publish_series(ctx, queue, 3)
    seqs = [(await ctx.wait_probe(peer, KPI, p)).get("seq") for p in probes]
    require(
        all(isinstance(s, int) and s >= 1 for s in seqs),
        "an integer seq >= 1 on every envelope",
        sent=f"3 kpi:update broadcasts: {probes}",
        received=seqs,
    )
    numbers = [s for s in seqs if isinstance(s, int)]
    require(
        numbers == sorted(set(numbers)),
        "seq increasing within the stream",
        sent=f"3 kpi:update broadcasts in this order: {probes}",
        received=seqs,
    )


@check(
    Section.CAPABILITIES,
    "§6 replay: subscribe with since replays what followed, in order",
    admin=True,
    capability="replay",
)
async def replay_since(ctx: CheckContext) -> None:
    """``since: {stream: seq}`` sends the later logged messages first and reports them."""
    queue = ctx.name("queue")
    first = await ctx.socket(label="live")
    await ctx.subscribe(first, ["kpi"], queue_name=queue)
    probes = await _publish_series(ctx, queue, 3)
    seqs = [(await ctx.wait_probe(first, KPI, p)).get("seq") for p in probes]
    require(
        isinstance(seqs[0], int),
        "a seq to replay from",
        sent=f"3 broadcasts {probes}",
        received=seqs,
    )
    stream = f"kpi:{ctx.org}"
    late = await ctx.socket(label="late")
    sent = {"channels": ["kpi"], "queue_name": queue, "since": {stream: seqs[0]}}
    ack = await late.request("subscribe", sent)
    replay = ack.get("replay")
    require(
        isinstance(replay, dict) and stream in replay,
        f"a replay report for {stream!r}",
        sent=sent,
        received=ack,
    )
    assert isinstance(replay, dict)
    result = model(ReplayResult, replay[stream], "the replay report", sent=sent)
    if result.complete:
        require(
            result.replayed == 2,
            "replayed 2 (the two later messages of this queue)",
            sent=sent,
            received=ack,
        )
    live = ctx.name("probe")
    await ctx.publish(KPI, live, queue_name=queue)
    await late.wait_for(KPI.value, where=probe_is(live), sent=sent)
    order = [p for p in _probes(_envelopes(late)) if p in (*probes, live)]
    expected = [*probes[1:], live] if result.complete else order
    if order != expected:
        raise CheckFailure(
            "the replayed messages, in order, before the live one", sent=sent, received=order
        )


@check(
    Section.CAPABILITIES,
    "§6 snapshot: the latest message first, marked snapshot",
    admin=True,
    capability="snapshot",
)
async def snapshot(ctx: CheckContext) -> None:
    """``"snapshot": true`` sends the last ``kpi:update`` of the queue with ``snapshot: true``."""
    queue = ctx.name("queue")
    older, latest = await _publish_series(ctx, queue, 2)
    peer = await ctx.socket()
    sent = {"channels": ["kpi"], "queue_name": queue, "snapshot": True}
    await peer.request("subscribe", sent)
    raw = await peer.wait_for(KPI.value, where=probe_is(latest), sent=sent)
    require(
        raw[0].get("snapshot") is True,
        "snapshot: true on the snapshot envelope",
        sent=sent,
        received=raw[0],
    )
    stale = peer.received(KPI.value, where=probe_is(older))
    require(not stale, "only the latest message of the (event, target)", sent=sent, received=stale)
