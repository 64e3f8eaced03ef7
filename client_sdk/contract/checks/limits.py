"""Section 8 limits, pushed for real: size, rate, connections, room size (``--destructive``).

Each reads the limit the server announces where it announces one, and bounds
what it sends by ``max_sockets`` and ``max_burst``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...exceptions import ConnectionLostError, ServerError
from ...protocol import ErrorCode, ErrorInfo
from .._context import CheckContext
from .._expect import error_object, failure_ack, require
from .._wire import SocketPeer
from ..model import CheckFailure, CheckSkipped, Section, check

__all__: list[str] = []

FLOOD_SECONDS = 10.0
"""How long a client keeps exceeding the rate before the suite gives up on a disconnect."""


@check(
    Section.LIMITS,
    "an oversized message is MESSAGE_TOO_LARGE and the connection stays up",
    destructive=True,
)
async def oversized_message(ctx: CheckContext) -> None:
    """A request over ``max_message_size_bytes`` is answered, not dropped or disconnected."""
    limit = ctx.server.limits.max_message_size_bytes
    peer = await ctx.socket()
    size = limit + 1024
    sent = {"timestamp": 1, "padding": "x" * size}
    shown = f"client:ping with {size} characters of padding (limit {limit} bytes)"
    ack = await peer.call("client:ping", sent)
    failure_ack(ack, {ErrorCode.MESSAGE_TOO_LARGE}, "an oversized message", sent=shown)
    after = await peer.call("client:ping", {"timestamp": 2})
    require(
        isinstance(after, dict) and after.get("success") is True and not peer.lost.is_set(),
        "the connection to stay up and answer the next ping",
        sent=shown,
        received=peer.summary(),
    )


@check(Section.LIMITS, "a burst over the rate limit is RATE_LIMIT_EXCEEDED", destructive=True)
async def rate_limit_burst(ctx: CheckContext) -> None:
    """``rate + rate/2`` pings at once: the excess is refused in the acks."""
    rate = ctx.server.limits.rate_limit_messages_per_second
    burst = rate + max(10, rate // 2)
    if burst > ctx.config.max_burst:
        raise CheckSkipped(f"a burst of {burst} exceeds max_burst {ctx.config.max_burst}")
    peer = await ctx.socket()
    answers = await asyncio.gather(
        *(peer.call("client:ping", {"timestamp": i}) for i in range(burst)),
        return_exceptions=True,
    )
    refused = [a for a in answers if isinstance(a, dict) and a.get("success") is False]
    sent = f"{burst} client:ping at once (limit {rate}/s)"
    unanswered = [a for a in answers if isinstance(a, BaseException)]
    require(
        not unanswered,
        "an ack to every request, refused or not",
        sent=sent,
        received=f"{len(unanswered)} unanswered: {unanswered[0] if unanswered else ''}",
    )
    require(
        bool(refused),
        "RATE_LIMIT_EXCEEDED for the requests over the limit",
        sent=sent,
        received=f"{burst - len(refused)} accepted, none refused",
    )
    failure_ack(refused[0], {ErrorCode.RATE_LIMIT_EXCEEDED}, "a request over the rate", sent=sent)


@check(
    Section.LIMITS,
    "a client that keeps exceeding the rate is disconnected",
    destructive=True,
    slow=True,
)
async def rate_limit_disconnect(ctx: CheckContext) -> None:
    """Bursts over the limit every half second until the server closes the connection.

    Every one-second window is then over the limit; at most ``max_burst`` events in all.
    """
    rate = ctx.server.limits.rate_limit_messages_per_second
    per_burst = rate + rate // 2 + 5
    if 3 * per_burst > ctx.config.max_burst:
        raise CheckSkipped(f"three bursts of {per_burst} exceed max_burst {ctx.config.max_burst}")
    peer = await ctx.socket()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FLOOD_SECONDS
    sent = 0
    while (
        not peer.lost.is_set()
        and loop.time() < deadline
        and sent + per_burst <= ctx.config.max_burst
    ):
        next_burst = loop.time() + 0.5
        # Concurrent emits: a burst must land within its window however slow the client.
        outcomes = await asyncio.gather(
            *(peer.emit("client:ping", {"timestamp": i}) for i in range(per_burst)),
            return_exceptions=True,
        )
        sent += per_burst
        if any(isinstance(o, CheckFailure) for o in outcomes):
            break  # the server closed the connection mid-burst
        await peer.wait_lost(max(0.0, next_burst - loop.time()))
    lost = await peer.wait_lost(ctx.config.event_timeout)
    require(
        lost,
        "the server to disconnect a client that keeps exceeding the rate limit",
        sent=f"{sent} client:ping in bursts of {per_burst} every 0.5 s (limit {rate}/s)",
        received=peer.summary(4),
    )


async def _authenticated(ctx: CheckContext, label: str) -> SocketPeer | ErrorInfo:
    """A socket of the first organization, or the CONNECTION_LIMIT that refused it."""
    peer = ctx.new_socket(label)
    try:
        await peer.open(
            ctx.config.url, ctx.config.socketio_path, timeout=ctx.config.request_timeout
        )
    except ServerError as refusal:
        wire = {
            "code": refusal.code.value,
            "message": refusal.message,
            "retryable": refusal.retryable,
        }
        return error_object(wire, {ErrorCode.CONNECTION_LIMIT}, "a refused handshake")
    except ConnectionLostError as exc:
        raise CheckFailure(
            "a handshake or a CONNECTION_LIMIT refusal", sent="connect", received=str(exc)
        ) from None
    body = ctx.auth_body()
    ack = await peer.call("authenticate", body)
    if isinstance(ack, dict) and ack.get("success") is False:
        return failure_ack(ack, {ErrorCode.CONNECTION_LIMIT}, "a refused authenticate", sent=body)
    require(
        isinstance(ack, dict) and ack.get("success") is True,
        "authenticate to succeed",
        sent=body,
        received=ack,
    )
    peer.identity = ack
    return peer


async def _patiently(ctx: CheckContext, label: str, patience: float) -> SocketPeer | ErrorInfo:
    """Like :func:`_authenticated`, retrying a CONNECTION_LIMIT for ``patience`` seconds.

    Sockets of an earlier check may still count for a moment after they closed.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        outcome = await _authenticated(ctx, label)
        if not isinstance(outcome, ErrorInfo) or loop.time() >= deadline:
            return outcome
        await asyncio.sleep(0.1)


@check(Section.LIMITS, "the connection limit is CONNECTION_LIMIT, retryable", destructive=True)
async def connection_limit(ctx: CheckContext) -> None:
    """Sockets of one organization up to its limit: the next is refused, retryably."""
    peers: list[SocketPeer] = []
    for n in range(ctx.config.max_sockets):
        patience = ctx.config.event_timeout if not peers else 0.0
        outcome = await _patiently(ctx, "filler", patience)
        if isinstance(outcome, ErrorInfo):
            require(
                outcome.retryable,
                "CONNECTION_LIMIT to be retryable",
                sent=f"socket {n + 1} of {ctx.org}",
                received=outcome.model_dump(mode="json"),
            )
            break
        peers.append(outcome)
    else:
        raise CheckSkipped(
            f"no connection limit within {ctx.config.max_sockets} sockets "
            "(raise max_sockets to reach it)"
        )
    require(
        bool(peers),
        "room for at least one socket",
        sent=f"authenticate in {ctx.org} for {ctx.config.event_timeout:g} s",
        received="CONNECTION_LIMIT every time",
    )
    await peers[0].close()
    outcome = await _patiently(ctx, "retry", ctx.config.event_timeout)
    if isinstance(outcome, ErrorInfo):
        raise CheckFailure(
            "a new socket accepted once one of the organization's sockets closed",
            sent=f"{len(peers)} sockets, one closed, then a new one",
            received="CONNECTION_LIMIT still",
        )


@check(
    Section.LIMITS,
    "a full room is ROOM_FULL and nothing of the request is joined",
    destructive=True,
)
async def room_full(ctx: CheckContext) -> None:
    """Fill one room; a request naming it and another room joins neither."""
    queue = ctx.name("queue")
    for n in range(ctx.config.max_sockets):
        outcome = await _patiently(ctx, "member", 1.0)
        if isinstance(outcome, ErrorInfo):
            raise CheckSkipped(
                f"the connection limit came first ({n} sockets): room_max_size cannot be reached"
            )
        sent: dict[str, Any] = {"channels": ["kpi"], "queue_name": queue}
        ack = await outcome.call("subscribe", sent)
        if isinstance(ack, dict) and ack.get("success") is True:
            continue
        failure_ack(ack, {ErrorCode.ROOM_FULL}, f"subscriber {n + 1} of one room", sent=sent)
        both = {"channels": ["alerts", "kpi"], "queue_name": queue}
        again = await outcome.call("subscribe", both)
        failure_ack(again, {ErrorCode.ROOM_FULL}, "a request naming the full room", sent=both)
        other = await outcome.request(
            "subscribe", {"channels": ["attendance"], "queue_name": queue}
        )
        alerts = f"alerts:org:{ctx.org}:queue:{queue}"
        require(
            alerts not in other.get("subscriptions", []),
            f"{alerts!r} not joined by the refused request",
            sent=both,
            received=other,
        )
        return
    raise CheckSkipped(f"no room limit within {ctx.config.max_sockets} sockets")
