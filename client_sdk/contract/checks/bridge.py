"""Section 1: the plain-WebSocket bridge (JSON text frames, no Engine.IO)."""

from __future__ import annotations

import json

from ...protocol import Envelope, ErrorCode, ServerEvent
from .._context import CheckContext
from .._expect import error_object, failure_ack, model, require
from ..model import Section, check

__all__: list[str] = []


@check(Section.BRIDGE, "the wscat session works as written")
async def wscat_session(ctx: CheckContext) -> None:
    """``{"event":"authenticate","data":{...}}`` without an id authenticates the socket."""
    peer = await ctx.bridge(authenticate=False)
    frame = {"event": "authenticate", "data": ctx.auth_body()}
    await peer.send_text(json.dumps(frame, separators=(",", ":")))
    sent = {"channels": ["kpi"]}
    ack = await peer.call("subscribe", sent)
    require(
        isinstance(ack, dict) and ack.get("success") is True,
        "a later subscribe to succeed: the id-less authenticate frame authenticated the socket",
        sent=[frame, {"event": "subscribe", "data": sent, "id": 1}],
        received=ack,
    )
    errors = peer.received("error")
    require(not errors, "no error frame after the authenticate frame", sent=frame, received=errors)


@check(Section.BRIDGE, "a frame with an id is answered by an ack frame")
async def bridge_ack_frames(ctx: CheckContext) -> None:
    """``{"event", "data", "id": N}`` is answered ``{"event": "ack", "id": N, "data": ACK}``."""
    peer = await ctx.bridge()
    sent = {"event": "client:ping", "data": {"timestamp": 7}, "id": 4242}
    await peer.send_text(json.dumps(sent))
    await peer.inbox.wait_until(
        lambda: any(isinstance(f, dict) and f.get("id") == 4242 for f in peer.frames),
        peer.request_timeout,
    )
    answers = [f for f in peer.frames if isinstance(f, dict) and f.get("id") == 4242]
    require(bool(answers), "an ack frame with id 4242", sent=sent, received=peer.frames[-5:])
    answer = answers[0]
    require(
        answer.get("event") == "ack" and isinstance(answer.get("data"), dict),
        "{'event': 'ack', 'id': 4242, 'data': {...}}",
        sent=sent,
        received=answer,
    )
    require(
        answer["data"].get("success") is True, "the ping to succeed", sent=sent, received=answer
    )


@check(Section.BRIDGE, "server events arrive as {event, data: envelope}", admin=True)
async def bridge_server_events(ctx: CheckContext) -> None:
    """A bridge subscriber receives ``{"event": NAME, "data": ENVELOPE}`` frames."""
    peer = await ctx.bridge()
    queue = ctx.name("queue")
    await ctx.subscribe(peer, ["kpi"], queue_name=queue)
    probe = ctx.name("probe")
    await ctx.publish(ServerEvent.KPI_UPDATE, probe, queue_name=queue)
    envelope = await ctx.wait_probe(peer, ServerEvent.KPI_UPDATE, probe)
    model(Envelope, envelope, "the envelope of a bridge frame")
    frames = [f for f in peer.frames if isinstance(f, dict) and f.get("event") == "kpi:update"]
    require(
        all(set(f) == {"event", "data"} for f in frames),
        "server event frames with exactly the keys 'event' and 'data'",
        sent=ctx.last_sent,
        received=frames[:2],
    )


@check(Section.BRIDGE, "the same rules: unknown events and bad identifiers are INVALID_MESSAGE")
async def bridge_same_rules(ctx: CheckContext) -> None:
    """Section 2 and 8 rules apply to bridge frames as to Socket.IO events."""
    peer = await ctx.bridge()
    sent = {"any": "thing"}
    ack = await peer.call("contract:unknown-event", sent)
    failure_ack(ack, {ErrorCode.INVALID_MESSAGE}, "an unknown event over the bridge", sent=sent)
    bad = {"channels": ["kpi"], "queue_name": "contract:queue"}
    ack = await peer.call("subscribe", bad)
    failure_ack(ack, {ErrorCode.INVALID_MESSAGE}, "a queue_name with a colon", sent=bad)


@check(Section.BRIDGE, "the same limits: an oversized frame is MESSAGE_TOO_LARGE", destructive=True)
async def bridge_oversized(ctx: CheckContext) -> None:
    """A frame over ``max_message_size_bytes`` is refused and the bridge stays open.

    The refusal may come as the frame's ack or as an ``error`` frame: a server
    need not parse an oversized frame to find its id.
    """
    limit = ctx.server.limits.max_message_size_bytes
    peer = await ctx.bridge()
    padding = "x" * (limit + 1024)
    frame = {"event": "client:ping", "data": {"timestamp": 1, "padding": padding}, "id": 777}
    shown = f"a client:ping frame with id 777 and {limit + 1024} characters of padding"
    await peer.send_text(json.dumps(frame))

    def answered() -> bool:
        return bool(peer.received("error")) or any(
            isinstance(f, dict) and f.get("event") == "ack" and f.get("id") == 777
            for f in peer.frames
        )

    await peer.inbox.wait_until(answered, peer.request_timeout)
    acks = [f for f in peer.frames if isinstance(f, dict) and f.get("id") == 777]
    if acks:
        failure_ack(
            acks[0].get("data"), {ErrorCode.MESSAGE_TOO_LARGE}, "an oversized frame", sent=shown
        )
    else:
        errors = peer.received("error")
        require(
            bool(errors),
            "an ack or an error frame MESSAGE_TOO_LARGE",
            sent=shown,
            received=peer.summary(),
        )
        error_object(errors[0], {ErrorCode.MESSAGE_TOO_LARGE}, "an oversized frame", sent=shown)
    after = await peer.call("client:ping", {"timestamp": 2})
    require(
        isinstance(after, dict) and after.get("success") is True,
        "the bridge to stay open and answer the next ping",
        sent=[shown, {"event": "client:ping", "data": {"timestamp": 2}}],
        received=after,
    )
