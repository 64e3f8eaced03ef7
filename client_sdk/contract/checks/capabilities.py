"""Section 5: batching, where the server advertises it (section 6: ``replay``, ``snapshot``)."""

from __future__ import annotations

from ...protocol import Envelope
from .._context import CheckContext
from .._expect import model, require
from .._wire import Peer
from ..model import Section, check
from ._streams import envelopes as _envelopes
from ._streams import probes as _probes
from ._streams import publish_series as _publish_series

__all__: list[str] = []


@check(
    Section.CAPABILITIES,
    "§5 batch: batches in order, and only to clients that announced it",
    admin=True,
    capability="batch",
)
async def batching(ctx: CheckContext) -> None:
    """``batch`` ``{"messages": [...]}`` keeps order; never to a client without the capability.

    The ack states the window (at most 100 ms) and the maximum; no batch
    holds more than that maximum.
    """
    queue = ctx.name("queue")
    batched = await ctx.socket(capabilities=["batch"], label="batch client")
    plain = await ctx.socket(label="plain client")
    limits = (batched.identity or {}).get("server", {}).get("limits", {})
    window, most = limits.get("batch_window_ms"), limits.get("batch_max_messages")
    require(
        isinstance(window, int) and not isinstance(window, bool) and 0 < window <= 100,
        "server.limits.batch_window_ms in the authenticate ack, at most 100 (§5)",
        sent="authenticate with capabilities ['batch']",
        received=limits,
    )
    require(
        isinstance(most, int) and not isinstance(most, bool) and most >= 1,
        "server.limits.batch_max_messages in the authenticate ack (§5)",
        sent="authenticate with capabilities ['batch']",
        received=limits,
    )
    assert isinstance(most, int)
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
    sent_batches = [b.get("messages") for b in batched.received("batch") if isinstance(b, dict)]
    require(
        bool(sent_batches) and all(isinstance(m, list) for m in sent_batches),
        "batch events {'messages': [...]} at the client that announced 'batch'",
        sent=probes,
        received=batched.summary(),
    )
    sizes = [len(m) for m in sent_batches if isinstance(m, list)]
    require(
        all(0 < size <= most for size in sizes),
        f"every batch holds 1 to batch_max_messages ({most}) messages",
        sent=probes,
        received={"batch sizes": sizes},
    )
    require(
        not plain.received("batch"),
        "no batch event to a client that did not announce it",
        sent=f"5 kpi:update broadcasts to a subscriber without 'batch': {probes}",
        received=plain.summary(),
    )
