"""Sections 7 and 8: ``client:ping``, and error codes a client can provoke."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...protocol import ErrorCode, PingAck, Pong
from .._context import CheckContext
from .._expect import error_object, failure_ack, model, require
from ..model import Section, check

__all__: list[str] = []

UNKNOWN_EVENT = "contract:no-such-event"


@check(Section.PING, "client:ping is acked and answered by client:pong, timestamp echoed")
async def ping_pong(ctx: CheckContext) -> None:
    """``{"timestamp": client_ms}`` comes back untouched in the ack and in ``client:pong``."""
    peer = await ctx.socket()
    sent = {"timestamp": 1764066600123}
    ack = model(PingAck, await peer.call("client:ping", sent), "the client:ping ack", sent=sent)
    require(
        ack.timestamp == sent["timestamp"],
        "the timestamp echoed in the ack",
        sent=sent,
        received=ack.model_dump(mode="json"),
    )
    found = await peer.wait_for("client:pong", sent=sent)
    pong = model(Pong, found[0], "client:pong", sent=sent)
    require(
        pong.timestamp == sent["timestamp"],
        "the timestamp echoed in client:pong",
        sent=sent,
        received=found[0],
    )


@check(Section.ERRORS, "an unknown event is INVALID_MESSAGE in the ack")
async def unknown_event_ack(ctx: CheckContext) -> None:
    """``{"success": false, "error": {"code": "INVALID_MESSAGE", "message", "retryable"}}``."""
    peer = await ctx.socket()
    sent = {"contract": True}
    ack = await peer.call(UNKNOWN_EVENT, sent)
    failure_ack(ack, {ErrorCode.INVALID_MESSAGE}, f"the ack of {UNKNOWN_EVENT!r}", sent=sent)


@check(Section.ERRORS, "without an ack request the error comes as the error event")
async def unknown_event_error_event(ctx: CheckContext) -> None:
    """The same refusal, emitted as ``error`` when the client asked for no ack."""
    peer = await ctx.socket()
    sent = {"contract": True}
    await peer.emit(UNKNOWN_EVENT, sent)
    found = await peer.wait_for("error", sent=f"{UNKNOWN_EVENT} {sent} (no ack requested)")
    error_object(found[0], {ErrorCode.INVALID_MESSAGE}, "the error event", sent=sent)


@check(Section.ERRORS, "unsubscribing from something that is not a room: ignored or ROOM_NOT_FOUND")
async def not_a_room(ctx: CheckContext) -> None:
    """Section 4 allows two answers, and this check accepts both.

    A name that no room can have is either ignored (a success ack whose
    ``subscriptions`` are the socket's rooms, unchanged) or refused with
    ``ROOM_NOT_FOUND``. The reference server ignores it.
    """
    peer = await ctx.socket()
    sent = {"rooms": ["contract-not-a-room"]}
    ack = await peer.call("unsubscribe", sent)
    if isinstance(ack, Mapping) and ack.get("success") is True:
        require(
            isinstance(ack.get("subscriptions"), list),
            "unsubscribe from a non-room, ignored: a success ack with the remaining subscriptions",
            sent=sent,
            received=ack,
        )
        return
    failure_ack(ack, {ErrorCode.ROOM_NOT_FOUND}, "unsubscribe from a non-room, refused", sent=sent)


MALFORMED: tuple[tuple[str, Any], ...] = (
    ("subscribe", "kpi please"),
    ("subscribe", [1, 2, 3]),
    ("subscribe", {"channels": 42}),
    ("subscribe", {"channels": ["no-such-channel"]}),
    ("subscribe", {"channels": [{"nested": {"deeper": [None]}}]}),
    ("subscribe", {"channels": ["kpi"], "queue_name": 5}),
    ("unsubscribe", {"rooms": "kpi"}),
    ("authenticate", {"user_id": 5, "organization_id": ["x"]}),
)


@check(Section.ERRORS, "malformed requests are refused and never kill the connection")
async def malformed_requests(ctx: CheckContext) -> None:
    """Each gets a failure ack with a protocol code and no stack trace; the socket lives on."""
    peer = await ctx.socket()
    codes = set(ErrorCode)
    for event, data in MALFORMED:
        ack = await peer.call(event, data)
        failure_ack(ack, codes, f"a malformed {event}", sent=data)
    ack = await peer.call("client:ping", {"timestamp": 1})
    require(
        isinstance(ack, dict) and ack.get("success") is True and not peer.lost.is_set(),
        "the connection to survive malformed requests and answer a ping",
        sent=[list(m) for m in MALFORMED],
        received=peer.summary(),
    )
