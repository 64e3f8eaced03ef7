"""``IntradayClient``: connect, authenticate, subscribe, receive, and survive the network.

The client is a facade over three parts, each in its own module: the
connection supervisor (:mod:`client_sdk._supervisor`: connect, authenticate,
resubscribe, reconnect on the policy of :mod:`client_sdk._retry`), the
dispatcher (:mod:`client_sdk._dispatch`: one ordered queue from the socket
to the listeners) and the connection state (:mod:`client_sdk._state`, moves
checked against the protocol's table). What is here is what an application
calls.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Unpack

import reactivex

from ._callbacks import (
    HANDLER_EVENTS,
    LIFECYCLE_HANDLERS,
    Handlers,
    check_names,
)
from ._dispatch import Dispatcher, Listener
from ._messages import Message
from ._reporting import Reporter
from ._requests import build_request
from ._resume import ResumeState
from ._resuming import Resumer
from ._routing import Router
from ._state import StateCell
from ._subscription_book import SubscriptionBook
from ._subscriptions import Subscription
from ._supervisor import Supervisor
from ._transport import SocketIOTransport
from .config import ClientConfig, ConfigOverrides
from .exceptions import ClientClosedError, ConnectionLostError, IntradayError, RequestTimeoutError
from .gaps import Gap
from .protocol import (
    AuthSuccess,
    Channel,
    ClientEvent,
    ConnectionState,
    Payload,
    PingRequest,
    Scope,
    ServerEvent,
    SubscribeRequest,
    UnsubscribeRequest,
    expand_channels,
    stream_name,
    subscription_room,
)

__all__ = ["ClientStatistics", "IntradayClient", "Listener"]


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
    gaps: int = 0
    """Streams where messages may have been missed, since the client was made."""
    last_error: BaseException | None = None
    """Why the latest connection attempt failed (refused, HTTP 404, TLS, timeout...)."""
    fills: int = 0
    """Resumes of one stream while connected, to fill a hole (a ``seq`` jump, a message
    the dispatch queue dropped, the server's section 6 ``error``)."""


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
    Keyword arguments override fields of ``config`` (or of the defaults).
    """

    def __init__(
        self, config: ClientConfig | None = None, /, **overrides: Unpack[ConfigOverrides]
    ) -> None:
        base = config or ClientConfig()
        self._config = base.replace(**overrides) if overrides else base
        self._state = StateCell()
        self._reporter = reporter = Reporter()
        self._book = SubscriptionBook()
        self._router = Router(reporter.handler_failed)
        self._resume = ResumeState(
            self._config.resume_store, self._config.dedupe_window, on_error=reporter.store_failed
        )
        self._dispatcher = Dispatcher(
            self._config.dedupe_window,
            resume=self._resume,
            policy=self._config.handler_backpressure,
            read_whole=self._book.read_whole,
            fill=lambda stream: self._resumer.fill(stream),
            on_error=reporter.error,
            on_handler_error=reporter.handler_failed,
            on_overflow=reporter.overflowed,
            router=self._router,
        )
        self._resumer = Resumer(
            self._config,
            resume=self._resume,
            dispatcher=self._dispatcher,
            book=self._book,
            on_gap=reporter.gap,
            report=reporter.report,
            capabilities=lambda: self._supervisor.server_capabilities,
            transport=lambda: self._supervisor.transport,
        )
        self._supervisor = Supervisor(
            self._config,
            states=self._state,
            dispatcher=self._dispatcher,
            restore=self._resumer.restore,
            fire=reporter.fire,
            report=reporter.report,
        )
        self._closed = False
        self._external_drops = 0

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
        return self._state.changes

    @property
    def errors(self) -> reactivex.Observable[IntradayError]:
        """Errors that did not fail a call: server ``error`` events, malformed
        messages, handler exceptions, the final reconnect failure."""
        return self._reporter.errors

    @property
    def gaps(self) -> reactivex.Observable[Gap]:
        """Every :class:`~client_sdk.gaps.Gap`: a stream where messages may have been missed."""
        return self._reporter.gaps

    @property
    def failure(self) -> IntradayError | None:
        """Why the client is ``failed``, if it is."""
        return self._supervisor.failure

    @property
    def identity(self) -> AuthSuccess | None:
        """The server's answer to the last successful authentication."""
        return self._supervisor.identity

    @property
    def socket_id(self) -> str | None:
        """The server's id for the current connection."""
        transport = self._supervisor.transport
        return transport.sid if transport is not None else None

    def statistics(self) -> ClientStatistics:
        """Client-side figures: reconnects, messages, drops, buffers."""
        dispatcher = self._dispatcher
        last = dispatcher.last_event_at
        return ClientStatistics(
            state=self.state,
            reconnects=self._supervisor.reconnects,
            messages_received=dispatcher.received,
            messages_dropped=dispatcher.duplicates
            + dispatcher.malformed
            + dispatcher.dropped
            + self._router.dropped
            + self._external_drops,
            duplicates_dropped=dispatcher.duplicates,
            malformed_dropped=dispatcher.malformed,
            handler_errors=self._reporter.handler_errors,
            last_event_age_seconds=None if last is None else time.monotonic() - last,
            dispatch_queue_depth=dispatcher.depth,
            subscriptions=len(self._book),
            rooms=tuple(self._book.rooms),
            gaps=self._reporter.gap_count,
            last_error=self._supervisor.last_error,
            fills=self._resumer.fills,
        )

    def _count_dropped(self, count: int = 1) -> None:
        """Count messages dropped downstream (a hook's or a stream's backpressure policy)."""
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
                removers.append(self._reporter.add(name, handler))
            else:
                removers.append(self._dispatcher.add_listener(HANDLER_EVENTS[name], handler))

        def remove() -> None:
            for remover in removers:
                with contextlib.suppress(ValueError):
                    remover()

        return remove

    def add_listener(
        self, key: ServerEvent | Channel | str, listener: Listener
    ) -> Callable[[], None]:
        """Call ``listener(message)`` for an event name, a channel name, or ``"*"``.

        Returns a function that removes the listener.
        """
        return self._dispatcher.add_listener(key, listener)

    # -- lifecycle ------------------------------------------------------------

    async def __aenter__(self) -> IntradayClient:
        if self._config.auto_connect:
            try:
                await self.connect()
            except BaseException:
                await self.close()  # __aexit__ will not run: the resume file is closed here
                raise
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
        if self._supervisor.running:
            wanted = [ConnectionState.AUTHENTICATED]
            if self._supervisor.credentials is None:
                wanted.append(ConnectionState.CONNECTED)
            await self.wait_for_state(*wanted)
            return
        await self._stop()  # what a failed earlier run left (its dispatcher)
        self._dispatcher.start()
        try:
            await self._supervisor.start()
        except BaseException:
            await self._stop()
            raise

    async def wait_for_state(
        self, *states: ConnectionState, timeout: float | None = None
    ) -> ConnectionState:
        """Wait until the state is one of ``states`` (or ``failed``); return it.

        Raises:
            RequestTimeoutError: not reached within ``timeout``.
            IntradayError: the client failed meanwhile (its failure).
        """
        state = await self._state.wait_for({*states, ConnectionState.FAILED}, timeout)
        if state is ConnectionState.FAILED and ConnectionState.FAILED not in states:
            raise self.failure or ConnectionLostError("connection failed")
        return state

    async def close(self) -> None:
        """Disconnect for good. Idempotent; later calls raise ``ClientClosedError``."""
        if self._closed:
            return
        self._closed = True
        await self._stop()
        self._state.set(ConnectionState.DISCONNECTED)
        self._state.complete()
        self._reporter.complete()
        await self._resume.aclose()

    def _live_transport(self) -> SocketIOTransport:
        self._check_open()
        transport = self._supervisor.transport
        if transport is None or self.state not in (
            ConnectionState.CONNECTED,
            ConnectionState.AUTHENTICATED,
        ):
            raise ConnectionLostError(f"not connected (state: {self.state})")
        return transport

    async def _stop(self) -> None:
        await self._supervisor.stop()
        await self._resumer.stop()
        await self._dispatcher.stop()

    # -- requests -------------------------------------------------------------

    async def authenticate(
        self, user_id: str, organization_id: str, token: str | None = None
    ) -> AuthSuccess:
        """Authenticate now, and again after every reconnect.

        A ``token`` given here is used for this call; reconnects use the
        configured ``token_provider`` or ``token``.

        Raises:
            ValueError: an id is not a protocol identifier (nothing is sent).
            AuthenticationError: the server refused (``reason`` says why).
            UnauthorizedError: this socket already authenticated as someone else.
        """
        transport = self._live_transport()
        supervisor = self._supervisor
        if token is None:
            token = await supervisor.token()
        identity = await supervisor.send_authenticate(transport, user_id, organization_id, token)
        supervisor.credentials = (user_id, organization_id)
        self._state.set(ConnectionState.AUTHENTICATED)
        return identity

    async def subscribe(
        self,
        channels: Iterable[Channel | str],
        *,
        organization_id: str | None = None,
        department_id: str | None = None,
        queue_name: str | None = None,
        snapshot: bool = False,
        on_message: Callable[[Message[Payload]], None] | None = None,
    ) -> Subscription:
        """Subscribe to ``channels`` for a filter; the handle unsubscribes.

        The subscription is restored after every reconnect until closed, and
        its streams resume from the last message seen (a server with
        ``replay`` sends what was missed; what it cannot is a gap, see
        :attr:`gaps`). With ``snapshot``, a server with the capability first
        sends the latest message of each ``(event, target)``, marked
        ``Message.snapshot``, and again after a gap. ``on_message`` is called
        (synchronously, in order) with every message the subscription
        covers, from the first one: snapshot and replayed messages that
        arrive before this call returns included.

        Raises:
            UnauthorizedError: another organization, or not authenticated.
            RoomFullError, SubscriptionFailedError: the server's limits.
        """
        self._live_transport()
        wanted = tuple(Channel(c) for c in channels)
        filter = Scope(organization_id, department_id, queue_name)
        org = filter.organization_id or (
            self.identity.organization_id if self.identity is not None else None
        )
        if org is None:
            raise ValueError("organization_id is needed before authentication")
        scope = filter.within(org)
        concrete = expand_channels(wanted)
        rooms = tuple(subscription_room(c, scope) for c in concrete)
        streams = tuple(stream_name(c, org) for c in concrete)
        subscription = Subscription(
            wanted, filter, rooms, self._close_subscription, streams=streams, snapshot=snapshot,
            source=self,
        )  # fmt: skip
        if on_message is not None:
            subscription.route.attach(on_message)
        self._book.add(subscription)
        self._router.add(subscription.route)
        # Asked even when another handle holds the rooms (joining is idempotent):
        # that handle's request may still be in flight, or may yet fail.
        try:
            await self._resumer.subscribe(
                SubscribeRequest.of(wanted, filter), list(streams), snapshot=snapshot, restore=False
            )
        except BaseException:
            self._book.remove(subscription)
            self._router.remove(subscription.route)
            subscription.closed = True
            raise
        return subscription

    async def _close_subscription(self, subscription: Subscription) -> None:
        self._router.remove(subscription.route)
        unused = self._book.remove(subscription)
        transport = self._supervisor.transport
        if unused and transport is not None and transport.connected and not self._closed:
            # If the connection is down the server already forgot the rooms,
            # and they are no longer in the book to be restored.
            with contextlib.suppress(ConnectionLostError, RequestTimeoutError):
                await self._supervisor.request(
                    ClientEvent.UNSUBSCRIBE, UnsubscribeRequest(rooms=unused)
                )

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Close ``subscription`` (same as ``await subscription.close()``)."""
        await subscription.close()

    async def ping(self) -> float:
        """Round trip of a ``client:ping``, in seconds.

        Raises:
            ConnectionLostError: not connected.
            RequestTimeoutError: no answer within ``ack_timeout``.
        """
        self._live_transport()
        started = time.monotonic()
        request = build_request(PingRequest, timestamp=int(time.time() * 1000))
        await self._supervisor.request(ClientEvent.PING, request)
        return time.monotonic() - started
