"""Section 2: identifiers are 1-128 characters of ``[A-Za-z0-9_.@-]``, never a colon."""

from __future__ import annotations

from typing import Any

from ...protocol import ErrorCode
from .._context import CheckContext
from .._expect import failure_ack, require
from .._wire import Peer
from ..model import Section, check

__all__: list[str] = []

ALLOWED = "AZaz09_.@-"


async def _refused_auth(ctx: CheckContext, peer: Peer, **fields: str) -> None:
    sent = ctx.auth_body(**{k: v for k, v in fields.items() if k != "organization_id"})
    sent.update(fields)
    ack = await peer.call("authenticate", sent)
    failure_ack(ack, {ErrorCode.INVALID_MESSAGE}, f"authenticate with {sorted(fields)}", sent=sent)


async def _refused_subscribe(peer: Peer, **fields: str) -> None:
    sent: dict[str, Any] = {"channels": ["kpi"], **fields}
    ack = await peer.call("subscribe", sent)
    failure_ack(ack, {ErrorCode.INVALID_MESSAGE}, f"subscribe with {sorted(fields)}", sent=sent)


def _long(length: int) -> str:
    prefix = "contract-"
    return prefix + "x" * (length - len(prefix))


@check(Section.IDENTIFIERS, "a colon is INVALID_MESSAGE in every identifier")
async def colon_rejected(ctx: CheckContext) -> None:
    """``user_id``, ``organization_id``, ``department_id``, ``queue_name`` with ``:``."""
    peer = await ctx.socket(authenticate=False)
    await _refused_auth(ctx, peer, user_id="contract:user")
    await _refused_auth(ctx, peer, organization_id=f"{ctx.org}:x")
    await peer.request("authenticate", ctx.auth_body())
    await _refused_subscribe(peer, department_id="contract:dept")
    await _refused_subscribe(peer, queue_name="kpi:org:x")


@check(Section.IDENTIFIERS, "129 characters are INVALID_MESSAGE")
async def too_long_rejected(ctx: CheckContext) -> None:
    """One character over the limit in ``user_id``, ``department_id`` and ``queue_name``."""
    peer = await ctx.socket(authenticate=False)
    await _refused_auth(ctx, peer, user_id=_long(129))
    await peer.request("authenticate", ctx.auth_body())
    await _refused_subscribe(peer, department_id=_long(129))
    await _refused_subscribe(peer, queue_name=_long(129))


@check(Section.IDENTIFIERS, "128 characters of every allowed kind are accepted")
async def longest_accepted(ctx: CheckContext) -> None:
    """A 128-character user id and queue name using letters, digits and ``_.@-``."""
    user = ("contract-" + ALLOWED + ctx.run_id).ljust(128, "u")
    peer = await ctx.socket(authenticate=False)
    ack = await peer.request("authenticate", ctx.auth_body(user_id=user))
    require(ack.get("user_id") == user, "the ack to echo the user id", sent=user, received=ack)
    queue = ("contract-" + ALLOWED + ctx.run_id).ljust(128, "q")
    ack = await ctx.subscribe(peer, ["kpi"], queue_name=queue)
    room = f"kpi:org:{ctx.org}:queue:{queue}"
    require(
        room in ack.get("subscriptions", []),
        f"the room {room!r} in the subscribe ack",
        sent={"channels": ["kpi"], "queue_name": queue},
        received=ack,
    )


@check(Section.IDENTIFIERS, "empty identifiers and other characters are INVALID_MESSAGE")
async def other_characters_rejected(ctx: CheckContext) -> None:
    """Empty, space, slash, non-ASCII and newline are all refused."""
    peer = await ctx.socket(authenticate=False)
    await _refused_auth(ctx, peer, user_id="")
    await _refused_auth(ctx, peer, user_id="contract user")
    await peer.request("authenticate", ctx.auth_body())
    for bad in ("", "contract/queue", "contract-queue-\u00e9", "contract-queue\n", "a*b"):
        await _refused_subscribe(peer, queue_name=bad)
