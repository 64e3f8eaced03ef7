"""The connection supervisor: one task that keeps a client connected.

It connects (retrying on the client's policy, :mod:`client_sdk._retry`),
authenticates with a fresh token, restores exactly the open subscriptions,
then waits for the connection to drop and starts over, until the client is
closed, reconnection gives up (state ``failed``) or the server kicked the
client (state ``disconnected``; which losses are retried is
:mod:`client_sdk._disconnect_policy`'s). A new transport is made
for every attempt, so reconnecting never stacks handlers or tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError
from tenacity import RetryError

from ._disconnect_policy import is_terminal
from ._dispatch import Dispatcher
from ._resume import ResumeState
from ._retry import RetryPolicy
from ._state import StateCell
from ._subscription_book import SubscriptionBook
from ._transport import SocketIOTransport
from .config import ClientConfig
from .exceptions import (
    AuthenticationError,
    ConnectionLostError,
    IntradayError,
    MalformedMessageError,
    ReconnectFailedError,
    ServerError,
)
from .gaps import Gap, GapReason
from .protocol import (
    AuthenticateRequest,
    AuthSuccess,
    Capability,
    ClientEvent,
    ConnectionState,
    ControlEvent,
    ServerEvent,
    StreamPosition,
    SubscribeAck,
    SubscribeRequest,
)

__all__ = ["PROBE_EPOCH", "Supervisor", "WireRequest", "build_request", "request"]

log = logging.getLogger("client_sdk")

Fire = Callable[..., Coroutine[Any, Any, None]]
"""Runs the application's lifecycle handlers of a name (``on_connect``...)."""

_R = TypeVar("_R", bound=BaseModel)


class WireRequest(Protocol):
    """A client request model of :mod:`client_sdk.protocol` (they all have ``to_wire``)."""

    def to_wire(self) -> dict[str, Any]:
        """The JSON object sent."""
        ...


def build_request(model: type[_R], **fields: Any) -> _R:
    """A request model, or ``ValueError`` naming the bad field (nothing is sent)."""
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise ValueError(f"{model.__name__}: {problems}") from None


PROBE_EPOCH = "?"
"""The epoch a client sends to learn where a stream is without a replay.

Section 6: ``since`` of an epoch that is not the stream's replays nothing
and answers ``complete: false`` with the stream's epoch and latest seq. A
new subscription asks so, to know from where to resume after an outage
even if nothing arrives before it."""


async def request(
    transport: SocketIOTransport,
    event: str,
    body: WireRequest,
    timeout: float,
    on_answer: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Send one protocol request and return its success ack.

    Raises:
        ServerError: the server refused (its protocol error).
        MalformedMessageError: the ack is not an object.
        ConnectionLostError, RequestTimeoutError: no answer.
    """
    ack = await transport.call(event, body.to_wire(), timeout, on_answer=on_answer)
    if not isinstance(ack, dict):
        raise MalformedMessageError(f"{event}: the ack is not an object", event=event, raw=ack)
    if ack.get("success") is False:
        raise ServerError.from_wire(ack.get("error"))
    return ack


class Supervisor:
    """Owns the client's connection: its transport, its identity, its retries.

    Args:
        config: the client's configuration.
        states: the client's state; every move goes through it.
        book: the open subscriptions, restored after every reconnect.
        dispatcher: receives every server event, and the resume markers.
        resume: where the client is in each stream.
        fire: runs lifecycle handlers (``on_connect``, ``on_disconnect``, ...).
        report: publishes an error on the client's ``errors``.
        on_gap: told of every gap.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        states: StateCell,
        book: SubscriptionBook,
        dispatcher: Dispatcher,
        resume: ResumeState,
        fire: Fire,
        report: Callable[[IntradayError], None],
        on_gap: Callable[[Gap], Awaitable[None]],
    ) -> None:
        self._config = config
        self._states = states
        self._book = book
        self._dispatcher = dispatcher
        self._sink = dispatcher.receive
        self._resume = resume
        self._on_gap = on_gap
        self._fire = fire
        self._report = report
        self._policy = RetryPolicy.of(config)
        self.credentials: tuple[str, str] | None = (
            (config.user_id, config.organization_id)
            if config.user_id and config.organization_id
            else None
        )
        self.identity: AuthSuccess | None = None
        self.transport: SocketIOTransport | None = None
        self.failure: IntradayError | None = None
        self.last_error: BaseException | None = None
        """Why the latest connection attempt failed (kept after a success)."""
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None
        self._lost: asyncio.Event | None = None
        self._lost_reason = ""
        self._maintenance = False  # the server announced system:maintenance on this connection
        self._stopping = False
        self._background: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> bool:
        """Whether the supervisor task is alive (connecting, connected or reconnecting)."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start supervising; return once connected (and authenticated).

        Raises:
            IntradayError: why it gave up (the supervisor has then ended).
        """
        loop = asyncio.get_running_loop()
        self._lost = asyncio.Event()
        self._stopping = False
        self.failure = None
        ready: asyncio.Future[None] = loop.create_future()
        self._task = loop.create_task(self._supervise(ready), name="intraday-supervisor")
        await ready

    async def stop(self) -> None:
        """End the supervisor and close the transport; never raises."""
        self._stopping = True
        if self._lost is not None:
            self._lost.set()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        transport, self.transport = self.transport, None
        if transport is not None:
            await transport.close()

    async def request(self, event: str, body: WireRequest) -> dict[str, Any]:
        """A protocol request on the live connection; its success ack.

        Raises:
            ConnectionLostError: not connected.
            ServerError: the server refused.
        """
        transport = self.transport
        if transport is None:
            raise ConnectionLostError(f"not connected (state: {self._states.value})")
        return await request(transport, event, body, self._config.ack_timeout)

    # -- the loop -----------------------------------------------------------------

    async def _supervise(self, ready: asyncio.Future[None]) -> None:
        assert self._lost is not None
        first = True
        while True:
            try:
                await self._establish(first)
            except IntradayError as exc:
                self._fail(exc, ready)
                return
            except Exception as exc:  # a bug or a foreign failure must not hang connect()
                log.exception("intraday client supervisor failed")
                failure = IntradayError(f"unexpected failure: {type(exc).__name__}: {exc}")
                failure.__cause__ = exc
                self._fail(failure, ready)
                return
            if first:
                first = False
            else:
                self.reconnects += 1
                await self._fire("on_reconnect")
            if not ready.done():
                ready.set_result(None)
            await self._lost.wait()
            if self._stopping:
                return
            reason = self._lost_reason
            transport, self.transport = self.transport, None
            if transport is not None:
                await transport.close()
            # The state says what happens next before the handler hears of the loss.
            kicked = is_terminal(
                reason,
                maintenance_announced=self._maintenance,
                reconnect_after_kick=self._config.reconnect_after_kick,
            )
            if kicked:
                log.warning("intraday client: kicked by the server (%s); not retrying", reason)
            reconnecting = self._config.reconnection and not kicked
            self._states.set(
                ConnectionState.RECONNECTING if reconnecting else ConnectionState.DISCONNECTED
            )
            await self._fire("on_disconnect", reason)
            if not reconnecting:
                return

    def _fail(self, exc: IntradayError, ready: asyncio.Future[None]) -> None:
        self.failure = exc
        self._states.set(ConnectionState.FAILED)
        log.warning("intraday client failed: %s", exc)
        self._report(exc)
        if not ready.done():
            ready.set_exception(exc)
        else:
            # The supervisor is ending; a task of its own keeps on_error from
            # being cancelled with it, and the reference keeps the task alive.
            task = asyncio.get_running_loop().create_task(self._fire("on_error", exc))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _watch(self, event: str, data: Any, *, inline: bool = True) -> Any:
        # Synchronous up to the sink's call, so arrival order is kept.
        if event == ControlEvent.BATCH:
            # Each envelope takes the path of a single event, in order, queued
            # (inline=False): dispatched here, the first could wait in an async
            # listener while a later event queued ahead of the rest. Queuing does
            # not await (a batch carries no requires_ack message, whose sink
            # waits for its listeners), so nothing can slip in between.
            messages = data.get("messages") if isinstance(data, dict) else None
            for envelope in messages if isinstance(messages, list) else ():
                name = envelope.get("event") if isinstance(envelope, dict) else None
                if isinstance(name, str) and name and name != ControlEvent.BATCH:
                    await self._watch(name, envelope, inline=False)
            return None
        if event == ServerEvent.SYSTEM_MAINTENANCE:
            self._maintenance = True
        return await self._sink(event, data, inline=inline)

    def _on_lost(self, reason: str) -> None:
        self._lost_reason = reason
        if self._lost is not None:
            self._lost.set()

    async def _establish(self, first: bool) -> None:
        """One outage's worth of attempts: connect, authenticate, resubscribe."""
        try:
            retrying = self._policy.retrying(what="connection", on_failure=self._attempt_failed)
            async for attempt in retrying:
                with attempt:
                    self._states.set(
                        ConnectionState.CONNECTING if first else ConnectionState.RECONNECTING
                    )
                    await self._attempt()
        except RetryError as exc:
            last = exc.last_attempt.exception()
            error = ReconnectFailedError(
                f"gave up after {exc.last_attempt.attempt_number} attempts: {last}"
            )
            raise error from last

    def _attempt_failed(self, error: BaseException) -> None:
        self.last_error = error

    async def _attempt(self) -> None:
        assert self._lost is not None
        if self.transport is not None:
            await self.transport.close()
        self._lost.clear()
        self._maintenance = False
        transport = SocketIOTransport(self._watch, self._on_lost)
        self.transport = transport
        config = self._config
        try:
            await transport.open(
                config.url,
                path=config.path,
                transports=config.transports,
                headers=config.headers,
                timeout=config.timeout,
            )
            self._states.set(ConnectionState.CONNECTED)
            await self._fire("on_connect")
            if self.credentials is not None:
                await self._authenticate(transport, *self.credentials)
            for restore in self._book.requests():
                await self.subscribe(
                    restore.request,
                    restore.streams,
                    snapshot=restore.snapshot,
                    restore=True,
                    transport=transport,
                )
        except BaseException:
            self.transport = None
            await transport.close()
            raise
        if self._lost.is_set():
            raise ConnectionLostError(f"connection lost while setting up: {self._lost_reason}")
        if self.credentials is not None:
            # Only now: "authenticated" after a reconnect means subscriptions are back.
            self._states.set(ConnectionState.AUTHENTICATED)

    # -- authentication -----------------------------------------------------------

    async def token(self, refresh: bool = False) -> str | None:
        """The token to send: the provider's (asked every time) or the configured one."""
        provider = self._config.token_provider
        if provider is None:
            return None if refresh else self._config.token
        token = provider()
        if inspect.isawaitable(token):
            token = await token
        return token

    async def _authenticate(self, transport: SocketIOTransport, user_id: str, org: str) -> None:
        try:
            await self.send_authenticate(transport, user_id, org, await self.token())
        except AuthenticationError as exc:
            if exc.reason != "token_expired" or self._config.token_provider is None:
                raise
            # One fresh token, then give up: a provider that keeps handing out
            # expired tokens must not cause a retry storm.
            await self.send_authenticate(transport, user_id, org, await self.token(True))

    async def send_authenticate(
        self, transport: SocketIOTransport, user_id: str, org: str, token: str | None
    ) -> AuthSuccess:
        """``authenticate`` on ``transport``; the server's answer, also kept as :attr:`identity`.

        Raises:
            ValueError: an id is not a protocol identifier (nothing was sent).
            AuthenticationError, UnauthorizedError: the server refused.
            MalformedMessageError: the success ack is not the protocol's.
        """
        body = build_request(
            AuthenticateRequest,
            user_id=user_id,
            organization_id=org,
            token=token,
            capabilities=list(self._config.announced),
        )
        ack = await request(transport, ClientEvent.AUTHENTICATE, body, self._config.ack_timeout)
        try:
            self.identity = AuthSuccess.model_validate(ack)
        except ValidationError:
            raise MalformedMessageError(
                "authenticate: the success ack is not the protocol's", event="authenticate", raw=ack
            ) from None
        return self.identity

    # -- subscriptions and resumes ------------------------------------------------

    @property
    def server_capabilities(self) -> frozenset[str]:
        """What the server announced at authentication."""
        identity = self.identity
        return frozenset(identity.server.capabilities) if identity is not None else frozenset()

    async def subscribe(
        self,
        base: SubscribeRequest,
        streams: list[str],
        *,
        snapshot: bool,
        restore: bool,
        transport: SocketIOTransport | None = None,
    ) -> SubscribeAck:
        """Subscribe, resuming ``streams`` where the client is, and say every gap.

        A new subscription resumes only the positions a previous process left
        (a ``resume_store``) and probes the streams this process has not read;
        a restored one (after a reconnect) resumes every stream it reads.

        Raises:
            ConnectionLostError: not connected.
            ServerError: the server refused.
        """
        transport = transport or self.transport
        if transport is None:
            raise ConnectionLostError(f"not connected (state: {self._states.value})")
        capabilities = self.server_capabilities
        replay = Capability.REPLAY in capabilities
        since: dict[str, StreamPosition] = {}
        probes: set[str] = set()
        resumed: dict[str, tuple[int, str]] = {}
        for stream in streams:
            fresh = self._resume.position(stream) is None
            position = (
                self._resume.position(stream) if restore else self._resume.take_stored(stream)
            )
            if position is not None:
                resumed[stream] = position
                since[stream] = StreamPosition(seq=position[0], epoch=position[1])
            elif fresh and not restore:
                probes.add(stream)
                since[stream] = StreamPosition(seq=0, epoch=PROBE_EPOCH)
        wanted = snapshot and not restore and Capability.SNAPSHOT in capabilities
        update: dict[str, Any] = {"since": (since or None) if replay else None, "snapshot": wanted}
        ack = await self._resuming(transport, base.model_copy(update=update), replay and since)
        gaps = await self._gaps(ack, streams, resumed, probes, restore, replay)
        if gaps and snapshot and restore and Capability.SNAPSHOT in capabilities:
            # The state the gap may have skipped: the latest of each target again.
            refresh = base.model_copy(update={"snapshot": True})
            await request(transport, ClientEvent.SUBSCRIBE, refresh, self._config.ack_timeout)
        return ack

    async def _resuming(
        self, transport: SocketIOTransport, body: SubscribeRequest, resuming: object
    ) -> SubscribeAck:
        streams = list(body.since or {}) if resuming else []
        if not streams:
            raw = await request(transport, ClientEvent.SUBSCRIBE, body, self._config.ack_timeout)
            return _parse_ack(raw)
        dispatcher = self._dispatcher
        ended = False

        def on_answer(answer: Any) -> None:
            nonlocal ended
            ended = True
            replay = answer.get("replay") if isinstance(answer, dict) else None
            parts = replay if isinstance(replay, dict) else {}
            latest: dict[str, int | None] = {}
            for stream in streams:
                part = parts.get(stream)
                seq = part.get("seq") if isinstance(part, dict) else None
                latest[stream] = seq if isinstance(seq, int) else None
            dispatcher.end_resume(latest)

        dispatcher.begin_resume(streams)
        try:
            raw = await request(
                transport, ClientEvent.SUBSCRIBE, body, self._config.ack_timeout, on_answer
            )
        finally:
            if not ended:
                dispatcher.end_resume(dict.fromkeys(streams))
        return _parse_ack(raw)

    async def _gaps(
        self,
        ack: SubscribeAck,
        streams: list[str],
        resumed: dict[str, tuple[int, str]],
        probes: set[str],
        restore: bool,
        replay: bool,
    ) -> list[Gap]:
        gaps: list[Gap] = []
        if not replay:
            # Nothing can be given back: every outage (or stored position) is a gap.
            lost = streams if restore else list(resumed)
            gaps = [Gap(s, None, None, GapReason.NO_REPLAY) for s in lost]
        else:
            answers = ack.replay or {}
            for stream in probes:
                result = answers.get(stream)
                known = self._resume.position(stream) is not None
                if result is not None and result.epoch and result.seq is not None and not known:
                    self._resume.restart(stream, result.seq, result.epoch)
            for stream, (last_seq, last_epoch) in resumed.items():
                result = answers.get(stream)
                if result is not None and result.complete:
                    continue
                reason = GapReason.INCOMPLETE
                if result is not None and result.epoch and result.epoch != last_epoch:
                    reason = GapReason.EPOCH_CHANGED
                gaps.append(Gap(stream, last_seq, last_epoch, reason, result))
                if result is not None and result.epoch and result.seq is not None:
                    self._resume.restart(stream, result.seq, result.epoch)
        for gap in gaps:
            await self._on_gap(gap)
        return gaps


def _parse_ack(raw: dict[str, Any]) -> SubscribeAck:
    try:
        return SubscribeAck.model_validate(raw)
    except ValidationError:
        raise MalformedMessageError(
            "subscribe: the success ack is not the protocol's", event="subscribe", raw=raw
        ) from None
