"""``IntradayClient``: connect, authenticate, subscribe, receive, and survive the network.

One supervisor task owns the connection: it connects (retrying with
tenacity on the configured backoff), authenticates with a fresh token,
restores exactly the open subscriptions, then waits for the connection to
drop and starts over, until the client is closed or reconnection gives up
(state ``failed``). Incoming events go through one ordered queue to one
dispatcher task, which parses, drops duplicates, runs handlers (isolated
from each other and from the client) and, for ``requires_ack`` messages,
acknowledges after the handlers ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, Unpack

import reactivex
from pydantic import BaseModel, ValidationError
from reactivex.subject import BehaviorSubject, Subject
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception,
    stop_after_attempt,
    stop_never,
    wait_exponential,
    wait_random,
)

from ._handlers import (
    HANDLER_EVENTS,
    LIFECYCLE_HANDLERS,
    Callback,
    Handlers,
    call_handler,
    check_names,
)
from ._transport import SocketIOTransport
from .config import ClientConfig
from .exceptions import (
    AuthenticationError,
    ClientClosedError,
    ConnectionLostError,
    IntradayError,
    MalformedMessageError,
    ReconnectFailedError,
    RequestTimeoutError,
    ServerError,
)
from .messages import Message, RecentIds, parse_message
from .protocol import (
    AuthenticateRequest,
    AuthSuccess,
    Channel,
    ClientEvent,
    ConnectionState,
    ControlEvent,
    Payload,
    PingRequest,
    Scope,
    ServerEvent,
    SubscribeRequest,
    UnsubscribeRequest,
    expand_channels,
    subscription_room,
)
from .subscriptions import Subscription, SubscriptionBook

__all__ = ["ClientStatistics", "IntradayClient"]

log = logging.getLogger("client_sdk")

Listener = Callable[[Message[Payload]], Any]


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    """Client-side figures, from :meth:`IntradayClient.statistics`."""

    state: ConnectionState
    reconnects: int
    messages_received: int
    messages_dropped: int
    duplicates_dropped: int
    malformed_dropped: int
    handler_errors: int
    last_event_age_seconds: float | None
    dispatch_queue_depth: int
    subscriptions: int
    rooms: tuple[str, ...]


_R = TypeVar("_R", bound=BaseModel)


def _request(model: type[_R], **fields: Any) -> _R:
    """A request model, or ``ValueError`` naming the bad field (nothing is sent)."""
    try:
        return model(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise ValueError(f"{model.__name__}: {problems}") from None


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, ServerError):
        return exc.retryable
    return isinstance(exc, (ConnectionLostError, RequestTimeoutError))


class IntradayClient:
    """An asyncio client of the Intraday live-updates protocol.

    Example:
        >>> async def main() -> None:  # doctest: +SKIP
        ...     config = ClientConfig(url="http://localhost:5000", user_id="me",
        ...                           organization_id="acme")
        ...     async with IntradayClient(config) as client:
        ...         client.on(on_kpi_update=lambda m: print(m.payload.health_score))
        ...         await client.subscribe(["kpi"], queue_name="support")
        ...         await asyncio.sleep(60)

    Nothing bound to an event loop is created before :meth:`connect`, so a
    client can be built anywhere and used in a running loop (Jupyter).
    """

    def __init__(self, config: ClientConfig | None = None, /, **overrides: Any) -> None:
        base = config or ClientConfig()
        self._config = base.replace(**overrides) if overrides else base
        self._state = BehaviorSubject(ConnectionState.DISCONNECTED)
        self._errors: Subject[IntradayError] = Subject()
        self._listeners: dict[str, list[Listener]] = {}
        self._lifecycle: dict[str, list[Callback]] = {name: [] for name in LIFECYCLE_HANDLERS}
        self._book = SubscriptionBook()
        self._recent = RecentIds(self._config.dedupe_window)
        self._credentials: tuple[str, str] | None = (
            (self._config.user_id, self._config.organization_id)
            if self._config.user_id and self._config.organization_id
            else None
        )
        self._identity: AuthSuccess | None = None
        self._transport: SocketIOTransport | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[tuple[str, Any, asyncio.Future[Any] | None]] | None = None
        self._lost: asyncio.Event | None = None
        self._closed = False
        self._failure: IntradayError | None = None
        self._reconnects = 0
        self._received = 0
        self._duplicates = 0
        self._malformed = 0
        self._handler_errors = 0
        self._external_drops = 0
        self._last_event_at: float | None = None
        self._background: set[asyncio.Task[None]] = set()

    # -- public state ---------------------------------------------------------

    @property
    def config(self) -> ClientConfig:
        """The configuration in force."""
        return self._config

    @property
    def state(self) -> ConnectionState:
        """The current connection state."""
        return self._state.value

    @property
    def state_changes(self) -> reactivex.Observable[ConnectionState]:
        """Every state, the current one first (a ``BehaviorSubject``)."""
        return self._state

    @property
    def errors(self) -> reactivex.Observable[IntradayError]:
        """Errors that did not fail a call: server ``error`` events, malformed
        messages, handler exceptions, the final reconnect failure."""
        return self._errors

    @property
    def failure(self) -> IntradayError | None:
        """Why the client is ``failed``, if it is."""
        return self._failure

    @property
    def identity(self) -> AuthSuccess | None:
        """The server's answer to the last successful authentication."""
        return self._identity

    @property
    def socket_id(self) -> str | None:
        """The server's id for the current connection."""
        return self._transport.sid if self._transport is not None else None

    def statistics(self) -> ClientStatistics:
        """Client-side figures: reconnects, messages, drops, buffers."""
        now = time.monotonic()
        return ClientStatistics(
            state=self.state,
            reconnects=self._reconnects,
            messages_received=self._received,
            messages_dropped=self._duplicates + self._malformed + self._external_drops,
            duplicates_dropped=self._duplicates,
            malformed_dropped=self._malformed,
            handler_errors=self._handler_errors,
            last_event_age_seconds=(
                None if self._last_event_at is None else now - self._last_event_at
            ),
            dispatch_queue_depth=self._queue.qsize() if self._queue is not None else 0,
            subscriptions=len(self._book),
            rooms=tuple(self._book.rooms),
        )

    def count_dropped(self, count: int = 1) -> None:
        """Count messages dropped downstream (by a hook's backpressure policy)."""
        self._external_drops += count

    # -- handlers -------------------------------------------------------------

    def on(self, **handlers: Unpack[Handlers]) -> Callable[[], None]:
        """Register handlers, sync or async; returns a function that removes them.

        ``on_connect()``, ``on_disconnect(reason)``, ``on_reconnect()``,
        ``on_error(error)`` and one per event, ``on_kpi_update(message)`` ...
        A handler that raises is reported on :attr:`errors` and ``on_error``;
        it never stops the client or the other handlers.
        """
        named: dict[str, Any] = dict(handlers)
        check_names(named)
        removers: list[Callable[[], None]] = []
        for name, handler in named.items():
            if name in LIFECYCLE_HANDLERS:
                self._lifecycle[name].append(handler)
                removers.append(self._remover(self._lifecycle[name], handler))
            else:
                removers.append(self.add_listener(HANDLER_EVENTS[name], handler))

        def remove() -> None:
            for remover in removers:
                with contextlib.suppress(ValueError):
                    remover()

        return remove

    @staticmethod
    def _remover(handlers: list[Callback], handler: Callback) -> Callable[[], None]:
        def remove() -> None:
            with contextlib.suppress(ValueError):
                handlers.remove(handler)

        return remove

    def add_listener(
        self, key: ServerEvent | Channel | str, listener: Listener
    ) -> Callable[[], None]:
        """Call ``listener(message)`` for an event name, a channel name, or ``"*"``.

        Returns a function that removes the listener.
        """
        name = key.value if isinstance(key, (ServerEvent, Channel)) else key
        self._listeners.setdefault(name, []).append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners[name].remove(listener)

        return remove

    # -- lifecycle ------------------------------------------------------------

    async def __aenter__(self) -> IntradayClient:
        if self._config.auto_connect:
            await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("this client was closed; create a new one")

    async def connect(self) -> None:
        """Connect (and authenticate, when credentials are configured).

        Retries on the configured schedule. Returns once connected (and
        authenticated); raises the error that made it give up. Cancelling it
        is safe: the client is then left disconnected.

        Raises:
            ClientClosedError: the client was closed.
            ServerError: the server refused the credentials (not retryable).
            ReconnectFailedError: every attempt failed.
        """
        self._check_open()
        if self._supervisor is not None and not self._supervisor.done():
            if self._credentials is not None:
                await self.wait_for_state(ConnectionState.AUTHENTICATED)
            else:
                await self.wait_for_state(ConnectionState.AUTHENTICATED, ConnectionState.CONNECTED)
            return
        await self._stop_tasks()  # what a failed earlier run left (its dispatcher)
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._lost = asyncio.Event()
        self._failure = None
        self._dispatcher = loop.create_task(self._dispatch_forever(), name="intraday-dispatch")
        ready: asyncio.Future[None] = loop.create_future()
        self._supervisor = loop.create_task(self._supervise(ready), name="intraday-supervisor")
        try:
            await ready
        except BaseException:
            if isinstance(self._failure, IntradayError) or not ready.done():
                await self._stop_tasks()
            raise

    async def wait_for_state(
        self, *states: ConnectionState, timeout: float | None = None
    ) -> ConnectionState:
        """Wait until the state is one of ``states`` (or ``failed``); return it.

        Raises:
            RequestTimeoutError: not reached within ``timeout``.
            IntradayError: the client failed meanwhile (its failure).
        """
        wanted = set(states) | {ConnectionState.FAILED}
        loop = asyncio.get_running_loop()
        reached: asyncio.Future[ConnectionState] = loop.create_future()

        def check(state: ConnectionState) -> None:
            if state in wanted and not reached.done():
                reached.set_result(state)

        disposable = self._state.subscribe(check)
        try:
            state = await asyncio.wait_for(reached, timeout)
        except TimeoutError:
            raise RequestTimeoutError(f"state {', '.join(states)} not reached") from None
        finally:
            disposable.dispose()
        if state is ConnectionState.FAILED and ConnectionState.FAILED not in states:
            raise self._failure or ConnectionLostError("connection failed")
        return state

    async def close(self) -> None:
        """Disconnect for good. Idempotent; later calls raise ``ClientClosedError``."""
        if self._closed:
            return
        self._closed = True
        await self._stop_tasks()
        self._set_state(ConnectionState.DISCONNECTED)
        self._state.on_completed()
        self._errors.on_completed()

    async def _stop_tasks(self) -> None:
        if self._lost is not None:
            self._lost.set()
        for task in (self._supervisor, self._dispatcher):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._supervisor = self._dispatcher = None
        queue, self._queue = self._queue, None
        while queue is not None and not queue.empty():
            _, _, done = queue.get_nowait()
            if done is not None and not done.done():
                done.set_result(None)  # releases the transport task waiting to ack
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.close()

    # -- the supervisor ---------------------------------------------------------

    def _set_state(self, state: ConnectionState) -> None:
        if self._state.value is not state and not self._state.is_disposed:
            with contextlib.suppress(Exception):
                self._state.on_next(state)

    def _retrying(self) -> AsyncRetrying:
        config = self._config
        attempts = config.reconnection_attempts if config.reconnection else 1
        wait = wait_exponential(
            multiplier=config.reconnection_delay, max=config.reconnection_delay_max
        )
        if config.jitter:
            wait = wait + wait_random(0, config.jitter * config.reconnection_delay)  # type: ignore[assignment]
        return AsyncRetrying(
            stop=stop_never if attempts is None else stop_after_attempt(attempts),
            wait=wait,
            retry=retry_if_exception(_is_retryable),
            sleep=config.retry_sleep or asyncio.sleep,
            reraise=False,
        )

    async def _supervise(self, ready: asyncio.Future[None]) -> None:
        assert self._lost is not None
        first = True
        while not self._closed:
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
                self._reconnects += 1
                await self._fire("on_reconnect")
            if not ready.done():
                ready.set_result(None)
            await self._lost.wait()
            if self._closed:
                return
            reason = self._lost_reason
            transport, self._transport = self._transport, None
            if transport is not None:
                await transport.close()
            # The state says what happens next before the handler hears of the loss.
            reconnecting = self._config.reconnection
            self._set_state(
                ConnectionState.RECONNECTING if reconnecting else ConnectionState.DISCONNECTED
            )
            await self._fire("on_disconnect", reason)
            if not reconnecting:
                return

    def _fail(self, exc: IntradayError, ready: asyncio.Future[None]) -> None:
        self._failure = exc
        self._set_state(ConnectionState.FAILED)
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

    _lost_reason: str = ""

    def _on_lost(self, reason: str) -> None:
        self._lost_reason = reason
        if self._lost is not None:
            self._lost.set()

    async def _establish(self, first: bool) -> None:
        """One outage's worth of attempts: connect, authenticate, resubscribe."""
        try:
            async for attempt in self._retrying():
                with attempt:
                    self._set_state(
                        ConnectionState.CONNECTING if first else ConnectionState.RECONNECTING
                    )
                    await self._attempt()
        except RetryError as exc:
            last = exc.last_attempt.exception()
            error = ReconnectFailedError(
                f"gave up after {exc.last_attempt.attempt_number} attempts: {last}"
            )
            raise error from last
        except ServerError:
            raise

    async def _attempt(self) -> None:
        assert self._lost is not None
        if self._transport is not None:
            await self._transport.close()
        self._lost.clear()
        transport = SocketIOTransport(self._receive, self._on_lost)
        self._transport = transport
        config = self._config
        try:
            await transport.open(
                config.url,
                path=config.path,
                transports=config.transports,
                headers=config.headers,
                timeout=config.timeout,
            )
            self._set_state(ConnectionState.CONNECTED)
            await self._fire("on_connect")
            if self._credentials is not None:
                await self._authenticate(transport, *self._credentials)
            await self._restore_subscriptions(transport)
        except BaseException:
            self._transport = None
            await transport.close()
            raise
        if self._lost.is_set():
            raise ConnectionLostError(f"connection lost while setting up: {self._lost_reason}")
        if self._credentials is not None:
            # Only now: "authenticated" after a reconnect means subscriptions are back.
            self._set_state(ConnectionState.AUTHENTICATED)

    async def _token(self, refresh: bool = False) -> str | None:
        provider = self._config.token_provider
        if provider is None:
            return None if refresh else self._config.token
        token = provider()
        if inspect.isawaitable(token):
            token = await token
        return token

    async def _authenticate(self, transport: SocketIOTransport, user_id: str, org: str) -> None:
        token = await self._token()
        try:
            await self._send_authenticate(transport, user_id, org, token)
        except AuthenticationError as exc:
            if exc.reason != "token_expired" or self._config.token_provider is None:
                raise
            # One fresh token, then give up: a provider that keeps handing out
            # expired tokens must not cause a retry storm.
            await self._send_authenticate(transport, user_id, org, await self._token(True))

    async def _send_authenticate(
        self, transport: SocketIOTransport, user_id: str, org: str, token: str | None
    ) -> None:
        request = _request(
            AuthenticateRequest,
            user_id=user_id,
            organization_id=org,
            token=token,
            capabilities=list(self._config.capabilities),
        )
        ack = await self._request(transport, ClientEvent.AUTHENTICATE, request.to_wire())
        try:
            self._identity = AuthSuccess.model_validate(ack)
        except ValidationError:
            raise MalformedMessageError(
                "authenticate: the success ack is not the protocol's", event="authenticate", raw=ack
            ) from None

    async def _restore_subscriptions(self, transport: SocketIOTransport) -> None:
        for request in self._book.requests():
            await self._request(transport, ClientEvent.SUBSCRIBE, request.to_wire())

    async def _request(self, transport: SocketIOTransport, event: str, data: Any) -> dict[str, Any]:
        ack = await transport.call(event, data, self._config.ack_timeout)
        if not isinstance(ack, dict):
            raise MalformedMessageError(f"{event}: the ack is not an object", event=event, raw=ack)
        if ack.get("success") is False:
            raise ServerError.from_wire(ack.get("error"))
        return ack

    def _live_transport(self) -> SocketIOTransport:
        self._check_open()
        transport = self._transport
        if transport is None or self.state not in (
            ConnectionState.CONNECTED,
            ConnectionState.AUTHENTICATED,
        ):
            raise ConnectionLostError(f"not connected (state: {self.state})")
        return transport

    async def _fire(self, name: str, *args: Any) -> None:
        for handler in list(self._lifecycle[name]):
            try:
                await call_handler(handler, *args)
            except Exception as exc:
                self._handler_failed(name, exc)

    # -- requests -------------------------------------------------------------

    async def authenticate(
        self, user_id: str, organization_id: str, token: str | None = None
    ) -> AuthSuccess:
        """Authenticate now, and again after every reconnect.

        A ``token`` given here is used for this call; reconnects use the
        configured ``token_provider`` or ``token``.

        Raises:
            AuthenticationError: the server refused (``reason`` says why).
            UnauthorizedError: this socket already authenticated as someone else.
        """
        transport = self._live_transport()
        await self._send_authenticate(
            transport, user_id, organization_id, token if token is not None else await self._token()
        )
        self._credentials = (user_id, organization_id)
        self._set_state(ConnectionState.AUTHENTICATED)
        assert self._identity is not None
        return self._identity

    async def subscribe(
        self,
        channels: Iterable[Channel | str],
        *,
        organization_id: str | None = None,
        department_id: str | None = None,
        queue_name: str | None = None,
    ) -> Subscription:
        """Subscribe to ``channels`` for a filter; the handle unsubscribes.

        The subscription is restored after every reconnect until closed.

        Raises:
            UnauthorizedError: another organization, or not authenticated.
            RoomFullError, SubscriptionFailedError: the server's limits.
        """
        transport = self._live_transport()
        wanted = tuple(Channel(c) for c in channels)
        filter = Scope(organization_id, department_id, queue_name)
        org = filter.organization_id or (
            self._identity.organization_id if self._identity is not None else None
        )
        if org is None:
            raise ValueError("organization_id is needed before authentication")
        scope = filter.within(org)
        rooms = tuple(subscription_room(c, scope) for c in expand_channels(wanted))
        subscription = Subscription(wanted, filter, rooms, self._close_subscription)
        self._book.add(subscription)
        # Asked even when another handle holds the rooms (joining is idempotent):
        # that handle's request may still be in flight, or may yet fail.
        try:
            request = SubscribeRequest.of(wanted, filter)
            await self._request(transport, ClientEvent.SUBSCRIBE, request.to_wire())
        except BaseException:
            self._book.remove(subscription)
            subscription.closed = True
            raise
        return subscription

    async def _close_subscription(self, subscription: Subscription) -> None:
        unused = self._book.remove(subscription)
        transport = self._transport
        if unused and transport is not None and transport.connected and not self._closed:
            # If the connection is down the server already forgot the rooms,
            # and they are no longer in the book to be restored.
            with contextlib.suppress(ConnectionLostError, RequestTimeoutError):
                request = UnsubscribeRequest(rooms=unused)
                await self._request(transport, ClientEvent.UNSUBSCRIBE, request.to_wire())

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Close ``subscription`` (same as ``await subscription.close()``)."""
        await subscription.close()

    async def ping(self) -> float:
        """Round trip of a ``client:ping``, in seconds.

        Raises:
            ConnectionLostError: not connected.
            RequestTimeoutError: no answer within ``ack_timeout``.
        """
        transport = self._live_transport()
        started = time.monotonic()
        request = PingRequest(timestamp=int(time.time() * 1000))
        await self._request(transport, ClientEvent.PING, request.to_wire())
        return time.monotonic() - started

    # -- incoming -------------------------------------------------------------

    async def _receive(self, event: str, data: Any) -> Any:
        queue = self._queue
        if queue is None:
            return None
        if isinstance(data, dict) and data.get("requires_ack") is True:
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            queue.put_nowait((event, data, done))
            with contextlib.suppress(asyncio.CancelledError):
                await done
            return {"received": True}
        queue.put_nowait((event, data, None))
        return None

    async def _dispatch_forever(self) -> None:
        assert self._queue is not None
        while True:
            event, data, done = await self._queue.get()
            try:
                await self._dispatch(event, data)
            finally:
                if done is not None and not done.done():
                    done.set_result(None)

    async def _dispatch(self, event: str, data: Any) -> None:
        if event == ControlEvent.ERROR:
            error = ServerError.from_wire(data)
            self._report(error)
            await self._fire("on_error", error)
            return
        if event not in _SERVER_EVENTS:
            return  # control events (authenticated, client:pong, ...) need no handler
        self._received += 1
        self._last_event_at = time.monotonic()
        try:
            message = parse_message(event, data)
        except MalformedMessageError as exc:
            self._malformed += 1
            self._report(exc)
            await self._fire("on_error", exc)
            return
        if self._recent.seen(message.id):
            self._duplicates += 1
            return
        for key in (message.event.value, message.channel.value, "*"):
            for listener in list(self._listeners.get(key, ())):
                try:
                    await call_handler(listener, message)
                except Exception as exc:
                    self._handler_failed(key, exc)

    def _handler_failed(self, where: str, exc: Exception) -> None:
        self._handler_errors += 1
        log.exception("handler for %s raised", where, exc_info=exc)
        error = IntradayError(f"handler for {where} raised {type(exc).__name__}: {exc}")
        error.__cause__ = exc
        self._report(error)

    def _report(self, error: IntradayError) -> None:
        if not self._errors.is_disposed:
            with contextlib.suppress(Exception):
                self._errors.on_next(error)


_SERVER_EVENTS = frozenset(e.value for e in ServerEvent)
