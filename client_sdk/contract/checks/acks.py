"""Section 5: ``requires_ack`` messages are acknowledged and timed by the server."""

from __future__ import annotations

import asyncio

from ...protocol import ServerEvent, Stats
from .._context import CheckContext
from .._expect import model, require
from ..model import CheckFailure, CheckSkipped, Section, check

__all__: list[str] = []

HOLD = 0.25
"""Seconds the suite holds its ack, so that its own round trip shows in the stats."""


async def _stats(ctx: CheckContext) -> Stats:
    body = await ctx.admin.ok("GET", "/stats")
    return model(Stats, body, "GET /stats")


@check(Section.ACKS, "requires_ack: flagged, acknowledged, and timed in /stats", admin=True)
async def acknowledged_and_timed(ctx: CheckContext) -> None:
    """The envelope says ``requires_ack: true``; the ack's round trip raises ``max_latency_ms``."""
    before = (await _stats(ctx)).max_latency_ms or 0.0
    hold = max(HOLD, before / 1000 + HOLD)
    if hold > 3.0:
        raise CheckSkipped(
            f"max_latency_ms is already {before:.0f} ms: the suite's ack cannot show"
        )
    queue = ctx.name("queue")
    peer = await ctx.socket()
    peer.ack_delay = hold
    await ctx.subscribe(peer, ["alerts"], queue_name=queue)
    probe = ctx.name("probe")
    await ctx.publish(ServerEvent.ALERT_ESCALATED, probe, queue_name=queue, requires_ack=True)
    raw = await ctx.wait_probe(peer, ServerEvent.ALERT_ESCALATED, probe)
    require(
        raw.get("requires_ack") is True,
        "requires_ack true in the envelope",
        sent=ctx.last_sent,
        received=raw,
    )
    wanted = hold * 1000 * 0.9
    loop = asyncio.get_running_loop()
    deadline = loop.time() + hold + ctx.config.event_timeout
    latest = before
    while loop.time() < deadline:
        latest = (await _stats(ctx)).max_latency_ms or 0.0
        if latest >= wanted:
            return
        await asyncio.sleep(0.05)
    raise CheckFailure(
        f"max_latency_ms in /stats to reach {wanted:.0f} ms: the suite held its ack "
        f"{{'received': true}} for {hold * 1000:.0f} ms",
        sent="alert:escalated with requires_ack: true",
        received=f"max_latency_ms {before} before, {latest} after",
    )
