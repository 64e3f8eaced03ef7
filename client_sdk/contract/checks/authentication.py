"""Section 3: authenticating by event and by handshake, modes, timeout, repeats."""

from __future__ import annotations

from ...exceptions import ConnectionLostError, ServerError
from ...protocol import PROTOCOL_VERSION, AuthSuccess, ErrorCode, ErrorInfo
from .._context import CheckContext
from .._expect import error_object, failure_ack, model, require
from .._tokens import hs256_token
from ..model import CheckFailure, CheckSkipped, Section, check

__all__: list[str] = []

INVALID_TOKEN = "contract.invalid.token"


@check(Section.AUTHENTICATION, "the success ack carries every field")
async def success_ack(ctx: CheckContext) -> None:
    """``success``, the ids, ``socket_id``, ``server_time`` and ``server`` (protocol 1, limits)."""
    peer = await ctx.socket(authenticate=False)
    sent = ctx.auth_body()
    ack = await peer.request("authenticate", sent)
    success = model(AuthSuccess, ack, "the authenticate ack", sent=sent)
    require(
        (success.user_id, success.organization_id) == (sent["user_id"], sent["organization_id"]),
        "the ack to echo user_id and organization_id",
        sent=sent,
        received=ack,
    )
    require(bool(success.socket_id), "a non-empty socket_id", sent=sent, received=ack)
    server = success.server
    require(server.protocol == PROTOCOL_VERSION, "server.protocol 1", sent=sent, received=ack)
    limits = server.limits
    require(
        limits.max_message_size_bytes > 0 and limits.rate_limit_messages_per_second > 0,
        "positive limits in server.limits",
        sent=sent,
        received=ack,
    )


@check(Section.AUTHENTICATION, "handshake auth: the server emits authenticated")
async def handshake_auth(ctx: CheckContext) -> None:
    """The ``authenticate`` object as handshake ``auth`` authenticates the socket on connect."""
    sent = ctx.auth_body()
    peer = await ctx.socket(authenticate=False, auth=sent, label="handshake")
    found = await peer.wait_for("authenticated", sent=sent)
    body = model(AuthSuccess, found[0], "the authenticated event", sent=sent)
    require(
        body.user_id == sent["user_id"] and body.organization_id == sent["organization_id"],
        "the authenticated event to carry the ids",
        sent=sent,
        received=found[0],
    )
    ack = await peer.call("subscribe", {"channels": ["kpi"]})
    require(
        isinstance(ack, dict) and ack.get("success") is True,
        "a subscribe without authenticate to succeed on a handshake-authenticated socket",
        sent={"channels": ["kpi"]},
        received=ack,
    )


@check(Section.AUTHENTICATION, "a refused handshake carries the ERROR as connect_error data")
async def handshake_refused(ctx: CheckContext) -> None:
    """Invalid handshake ``auth`` refuses the connection with ``{code, message}``."""
    sent = ctx.auth_body(user_id="contract:invalid")
    peer = ctx.new_socket("refused handshake")
    try:
        await peer.open(
            ctx.config.url, ctx.config.socketio_path, auth=sent, timeout=ctx.config.request_timeout
        )
    except ServerError as refusal:
        wire = {
            "code": refusal.code.value,
            "message": refusal.message,
            "retryable": refusal.retryable,
        }
        info = error_object(
            wire, {ErrorCode.INVALID_MESSAGE, ErrorCode.AUTH_FAILED}, "connect_error", sent=sent
        )
        require(
            not info.retryable,
            "a refusal of invalid credentials to be non-retryable",
            sent=sent,
            received=wire,
        )
        return
    except ConnectionLostError as exc:
        raise CheckFailure(
            "connect_error data {code, message} for a refused handshake",
            sent=sent,
            received=f"a refusal without an ERROR object: {exc}",
        ) from None
    raise CheckFailure("the handshake to be refused", sent=sent, received=peer.summary())


@check(Section.AUTHENTICATION, "authenticating again with the same ids is idempotent")
async def same_ids_again(ctx: CheckContext) -> None:
    """A second ``authenticate`` with the same ids succeeds, same socket."""
    peer = await ctx.socket(authenticate=False)
    sent = ctx.auth_body()
    first = await peer.request("authenticate", sent)
    second = await peer.request("authenticate", sent)
    require(
        first.get("socket_id") == second.get("socket_id"),
        "the same socket_id in both acks",
        sent=sent,
        received=[first, second],
    )


@check(Section.AUTHENTICATION, "authenticating again with other ids is UNAUTHORIZED")
async def other_ids_again(ctx: CheckContext) -> None:
    """A second ``authenticate`` as someone else is refused; the first identity stays."""
    peer = await ctx.socket()
    sent = ctx.auth_body()
    ack = await peer.call("authenticate", sent)
    info = failure_ack(
        ack, {ErrorCode.UNAUTHORIZED}, "re-authentication as another user", sent=sent
    )
    require(not info.retryable, "UNAUTHORIZED to be non-retryable", sent=sent, received=ack)
    await ctx.subscribe(peer, ["kpi"])


@check(
    Section.AUTHENTICATION,
    "an unauthenticated socket gets AUTH_FAILED and is disconnected",
    slow=True,
    auth=False,
)
async def auth_timeout(ctx: CheckContext) -> None:
    """After ``auth_timeout_ms``: ``error`` AUTH_FAILED ``authentication timeout``, then closed."""
    wait = ctx.config.auth_timeout_wait
    peer = await ctx.socket(authenticate=False, label="silent")
    expected = (
        f"an 'error' event AUTH_FAILED 'authentication timeout' within {wait:g} s of connecting "
        "without authenticating (the default auth_timeout_ms is 10 s; raise the wait bound "
        "if the server is configured longer)"
    )
    await peer.inbox.wait_until(lambda: bool(peer.received("error")) or peer.lost.is_set(), wait)
    errors = peer.received("error")
    require(bool(errors), expected, sent="connect, then nothing", received=peer.summary())
    info = error_object(errors[0], {ErrorCode.AUTH_FAILED}, "the authentication timeout error")
    require(
        "timeout" in info.message.lower(),
        "the message 'authentication timeout'",
        sent="connect, then nothing",
        received=errors[0],
    )
    require(
        await peer.wait_lost(ctx.config.event_timeout),
        f"a disconnect within {ctx.config.event_timeout:g} s of the timeout error",
        sent="connect, then nothing",
        received=peer.summary(),
    )


async def _try_invalid_token(ctx: CheckContext) -> tuple[dict[str, str], object]:
    peer = await ctx.socket(authenticate=False)
    sent = ctx.auth_body()
    sent["token"] = INVALID_TOKEN
    return sent, await peer.call("authenticate", sent)


@check(Section.AUTHENTICATION, "jwt mode: an invalid token is AUTH_FAILED, not retryable")
async def invalid_token(ctx: CheckContext) -> None:
    """A server that checks tokens refuses a malformed one with ``AUTH_FAILED``."""
    sent, ack = await _try_invalid_token(ctx)
    if isinstance(ack, dict) and ack.get("success") is True:
        raise CheckSkipped("the server accepted an invalid token: it is in trust mode")
    info: ErrorInfo = failure_ack(ack, {ErrorCode.AUTH_FAILED}, "an invalid token", sent=sent)
    require(not info.retryable, "AUTH_FAILED to be non-retryable", sent=sent, received=ack)


@check(Section.AUTHENTICATION, "jwt mode: an expired token is AUTH_FAILED token_expired")
async def expired_token(ctx: CheckContext) -> None:
    """``details.reason = "token_expired"`` tells a client to fetch a fresh token once."""
    secret = ctx.config.jwt_secret
    if secret is None:
        raise CheckSkipped(
            "needs the server's HS256 secret (--jwt-secret) to sign an expired token"
        )
    peer = await ctx.socket(authenticate=False)
    sent = ctx.auth_body()
    sent["token"] = hs256_token(
        secret, user_id=sent["user_id"], organization_id=sent["organization_id"], ttl=-120
    )
    ack = await peer.call("authenticate", sent)
    info = failure_ack(ack, {ErrorCode.AUTH_FAILED}, "an expired token", sent=sent)
    require(
        (info.details or {}).get("reason") == "token_expired",
        "details.reason 'token_expired'",
        sent=sent,
        received=ack,
    )


@check(Section.AUTHENTICATION, "trust mode says so in /health")
async def trust_mode_announced(ctx: CheckContext) -> None:
    """A server that accepts any token must say it is in trust mode in ``GET /health``."""
    _, ack = await _try_invalid_token(ctx)
    if not (isinstance(ack, dict) and ack.get("success") is True):
        raise CheckSkipped("the server checks tokens: it is not in trust mode")
    answer = await ctx.no_token_answer("GET", "/health")
    require(
        answer.status == 200 and "trust" in answer.text.lower(),
        "GET /health of a trust-mode server to mention 'trust'",
        sent=f"authenticate with token {INVALID_TOKEN!r} (accepted), then GET /api/ws/health",
        received=answer.describe(),
    )
