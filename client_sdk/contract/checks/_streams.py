"""What the section 6 checks share: a stream's envelopes, its position, fences and order.

The checks work on the ``kpi`` stream of the run's first organization and
tell their own messages apart by the ``contract_probe`` of their payloads,
always on a queue of their own, so what other checks published never
confuses them. They judge only what a client can see: the envelopes in
arrival order and the ``replay`` object of the ack.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Sequence
from typing import Any

from ...protocol import ReplayResult, ServerEvent
from .._context import CheckContext
from .._expect import model, require
from .._wire import Peer, probe_is
from ..failures import show

__all__ = [
    "KPI",
    "arrivals",
    "describe",
    "envelopes",
    "fence",
    "order_problems",
    "position",
    "probe_of",
    "probes",
    "publish_series",
    "publish_while",
    "replay_report",
    "stream_of",
]

KPI = ServerEvent.KPI_UPDATE


def stream_of(ctx: CheckContext) -> str:
    """The stream the checks use: ``kpi:{org}``."""
    return f"kpi:{ctx.org}"


def envelopes(peer: Peer) -> list[Any]:
    """Every ``kpi:update`` envelope received, batched or single, in arrival order."""
    found: list[Any] = []
    for event, data in peer.inbox.items:
        if event == "batch" and isinstance(data, dict) and isinstance(data.get("messages"), list):
            found.extend(
                m for m in data["messages"] if isinstance(m, dict) and m.get("event") == KPI.value
            )
        elif event == KPI.value:
            found.append(data)
    return found


def probe_of(envelope: Any) -> str | None:
    """The ``contract_probe`` an envelope carries, if any."""
    data = envelope.get("data") if isinstance(envelope, dict) else None
    probe = data.get("contract_probe") if isinstance(data, dict) else None
    return probe if isinstance(probe, str) else None


def probes(found: list[Any]) -> list[str]:
    """The probes of ``found``, in order."""
    return [p for e in found if (p := probe_of(e)) is not None]


def arrivals(peer: Peer, wanted: Sequence[str]) -> list[str]:
    """The probes among ``wanted`` that reached ``peer``, in arrival order, repeats kept."""
    chosen = set(wanted)
    return [p for p in probes(envelopes(peer)) if p in chosen]


async def publish_series(
    ctx: CheckContext, queue: str, count: int, department_id: str | None = None
) -> list[str]:
    """Publish ``count`` ``kpi:update`` one after the other (so in ``seq`` order); their probes."""
    published = []
    for _ in range(count):
        probe = ctx.name("probe")
        await ctx.publish(KPI, probe, department_id=department_id, queue_name=queue)
        published.append(probe)
    return published


async def publish_while(
    ctx: CheckContext, queue: str, pending: Awaitable[Any], *, most: int = 50, after: int = 3
) -> tuple[Any, list[str]]:
    """Publish to ``queue`` one by one until ``pending`` is done, then ``after`` more.

    So that live messages are published while the server answers a
    ``subscribe``; ``pending``'s result and the probes, in publication order.
    """
    task = asyncio.ensure_future(pending)
    published: list[str] = []
    try:
        while not task.done() and len(published) < most:
            published += await publish_series(ctx, queue, 1)
        result = await task
    finally:
        task.cancel()
    published += await publish_series(ctx, queue, after)
    return result, published


def replay_report(ack: dict[str, Any], stream: str, sent: Any) -> ReplayResult:
    """The ``replay`` entry of ``stream`` in a ``subscribe`` ack, checked against its schema."""
    replay = ack.get("replay")
    require(
        isinstance(replay, dict) and stream in replay,
        f"a replay report for {stream!r} in the subscribe ack",
        sent=sent,
        received=ack,
    )
    assert isinstance(replay, dict)
    return model(ReplayResult, replay[stream], "the replay report", sent=sent)


async def position(ctx: CheckContext, peer: Peer) -> tuple[str, int, ReplayResult]:
    """The stream's epoch and latest ``seq``, asked by a ``since`` on a queue nobody uses.

    The filter matches no message, so nothing is replayed; the report says
    where the stream stands (and whether the log still reaches its start).
    """
    stream = stream_of(ctx)
    sent = {"channels": ["kpi"], "queue_name": ctx.name("empty-queue"), "since": {stream: 0}}
    ack = await peer.request("subscribe", sent)
    result = replay_report(ack, stream, sent)
    require(
        isinstance(result.epoch, str) and isinstance(result.seq, int),
        "the stream's epoch and latest seq in the replay report (§6)",
        sent=sent,
        received=ack,
    )
    assert isinstance(result.epoch, str)
    assert isinstance(result.seq, int)
    return result.epoch, result.seq, result


async def fence(
    ctx: CheckContext, peer: Peer, queue: str, sent: Any, department_id: str | None = None
) -> str:
    """Publish one live message to ``queue`` and wait for it at ``peer``; its probe.

    A replay (and a snapshot) comes before any newer live message, so once
    the fence has arrived, everything they carry has too.
    """
    await ctx.settle()
    probe = (await publish_series(ctx, queue, 1, department_id))[0]
    await peer.wait_for(
        KPI.value,
        where=probe_is(probe),
        sent=sent,
        expected=f"the live message {probe!r} published after the subscribe ack, at {peer.label}",
    )
    await ctx.settle()
    return probe


def order_problems(arrived: list[str], published: list[str]) -> dict[str, Any]:
    """What is wrong with ``arrived`` against the ``seq`` order of ``published``.

    ``overtook``: messages that arrived (the first time) before an older one
    of the list; ``duplicates``: messages that arrived more than once.
    Empty: nothing.
    """
    place = {probe: i for i, probe in enumerate(published)}
    problems: dict[str, Any] = {}
    newest = -1
    overtaken: list[str] = []
    for probe in dict.fromkeys(arrived):
        if place[probe] < newest:
            overtaken.append(f"{published[newest]} overtook {probe}")
        newest = max(newest, place[probe])
    if overtaken:
        problems["overtook"] = overtaken[:5]
    repeated = {p: n for p, n in Counter(arrived).items() if n > 1}
    if repeated:
        problems["duplicates"] = {p: f"{n} times" for p, n in list(repeated.items())[:5]}
    return problems


def describe(problems: dict[str, Any], arrived: list[str], **more: Any) -> str:
    """A failure's ``received``: the problems first, then what arrived (and ``more``)."""
    parts = [f"{name}: {show(value, 400)}" for name, value in problems.items()]
    parts.append(f"arrived ({len(arrived)}): {show(arrived, 500)}")
    parts.extend(f"{name}: {show(value, 300)}" for name, value in more.items())
    return "; ".join(parts)
