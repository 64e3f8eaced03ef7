"""Live hooks: the React console's hooks as reactivex observables, with an ``async for`` path.

Each hook is a hot :class:`reactivex.Observable` over one client. Observing
it is mounting the hook: the first observer (or stream) subscribes its
server channel with its filter, the last one to leave closes that
subscription again; observers in between share it. The client restores the
subscription after every reconnect, so a hook outlives outages without
doing anything. ``latest`` holds the last value, emissions happen on the
event loop (inside the client's dispatcher, in server order), and the hook
completes when the client is closed.

============================  ===========================  =====================================
React                         here                         emits
============================  ===========================  =====================================
``useKPIUpdates``             :func:`kpi_updates`          ``kpi:update``, ``kpi:computed``
``useBacklogUpdates``         :func:`backlog_updates`      ``backlog:update``, ``:snapshot``
``useAttendanceUpdates``      :func:`attendance_updates`   ``attendance:update``,
                                                           ``:checkin``, ``:checkout``
``useAlertNotifications``     :func:`alert_notifications`  the four ``alert:*`` events
``useWebSocket``              :func:`connection_status`    the client's ``ConnectionState``
``useWebSocketHealth``        :func:`health`               :class:`ConnectionHealth` after a ping
``useWebSocketSubscription``  :func:`subscription`         every event of some channels
(anything else)               :func:`events`               an event, a channel, or ``"*"``
============================  ===========================  =====================================

Observers run synchronously and see every message. Readers that await
between messages use :meth:`Hook.stream` (or ``async for`` on the hook),
which buffers per reader according to a :class:`Backpressure` policy and
counts what it drops (also in ``client.statistics().messages_dropped``).

Hooks must be observed from within the running event loop.

Example:
    >>> async def tile(client: IntradayClient) -> None:  # doctest: +SKIP
    ...     kpis = kpi_updates(client, queue_name="support")
    ...     kpis.pipe(ops.map(lambda m: m.payload.health_score)).subscribe(print)
    ...     async with kpis.stream(policy=KEEP_LATEST) as updates:
    ...         async for message in updates:
    ...             await redraw(message.payload)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from ._backpressure import BUFFER, KEEP_LATEST, UNBOUNDED, Backpressure, PolicyQueue
from ._hook import Hook, MessageHook
from .exceptions import IntradayError
from .messages import Message
from .protocol import (
    EVENT_CHANNEL,
    AlertPayload,
    AttendanceCheckPayload,
    AttendancePayload,
    BacklogPayload,
    Channel,
    ConnectionState,
    KpiPayload,
    Payload,
    Scope,
    ServerEvent,
    expand_channels,
)

if TYPE_CHECKING:
    from .client import IntradayClient

__all__ = [
    "BUFFER",
    "DEFAULT_BUFFER",
    "KEEP_LATEST",
    "UNBOUNDED",
    "AlertHook",
    "Backpressure",
    "ConnectionHealth",
    "ConnectionStatusHook",
    "HealthHook",
    "Hook",
    "HookOptions",
    "LiveHooks",
    "MessageHook",
    "PolicyQueue",
    "alert_notifications",
    "attendance_updates",
    "backlog_updates",
    "connection_status",
    "events",
    "health",
    "kpi_updates",
    "subscription",
]

DEFAULT_BUFFER = BUFFER(1000)
"""The policy of hooks whose every message matters (alerts, attendance, channels)."""


class AlertHook(MessageHook[AlertPayload]):
    """:func:`alert_notifications`: alert messages plus an unread count and recent history.

    Example:
        >>> alerts = alert_notifications(client)  # doctest: +SKIP
        >>> alerts.subscribe(lambda m: print(m.payload.severity, m.payload.rule_name))
        >>> alerts.alert_count  # alerts since the last clear_count()
        >>> alerts.clear_count()
    """

    def __init__(
        self,
        client: IntradayClient,
        *,
        filter: Scope,
        policy: Backpressure,
        keep: int = 100,
        snapshot: bool = True,
    ) -> None:
        super().__init__(
            client,
            channels=(Channel.ALERTS,),
            events=None,
            filter=filter,
            policy=policy,
            snapshot=snapshot,
        )
        self._count = 0
        self._recent: deque[Message[AlertPayload]] = deque(maxlen=keep)

    @property
    def alert_count(self) -> int:
        """Alerts received since the last :meth:`clear_count` (the unread badge).

        (Not ``count``: that name is the Rx operator every observable has.)
        """
        return self._count

    @property
    def recent(self) -> tuple[Message[AlertPayload], ...]:
        """The last alerts received, oldest first (up to ``keep``)."""
        return tuple(self._recent)

    def clear_count(self) -> None:
        """Reset :attr:`alert_count` to zero (the user has seen them)."""
        self._count = 0

    def _accept(self, message: Message[AlertPayload]) -> None:
        self._count += 1
        self._recent.append(message)
        super()._accept(message)


class ConnectionStatusHook(Hook[ConnectionState]):
    """:func:`connection_status`: the client's state; a new observer gets the current one.

    Example:
        >>> status = connection_status(client)  # doctest: +SKIP
        >>> status.subscribe(lambda state: print("connection:", state))
        >>> status.latest
        <ConnectionState.AUTHENTICATED: 'authenticated'>
    """

    @property
    def latest(self) -> ConnectionState:
        """The client's current state."""
        return self._client.state

    def _greeting(self) -> ConnectionState:
        return self._client.state

    def _state_changed(self, state: ConnectionState) -> None:
        if not self._starting:  # the current state is the greeting
            self._emit_logged(state)


@dataclass(frozen=True, slots=True)
class ConnectionHealth:
    """The connection's health after a ping (or a state change).

    Attributes:
        state: the client's state when measured.
        round_trip_seconds: the last successful ping's round trip (``None`` before one).
        last_pong_at: when that ping was answered (UTC).
        missed_pongs: pings failed or timed out in a row since the last answer.
        healthy: connected and fewer than the hook's ``unhealthy_after`` pongs missed.

    Example:
        >>> checks = health(client, interval=1.0)  # doctest: +SKIP
        >>> checks.subscribe(lambda h: h.healthy or print("missed", h.missed_pongs))
    """

    state: ConnectionState
    round_trip_seconds: float | None
    last_pong_at: datetime | None
    missed_pongs: int
    healthy: bool


class HealthHook(Hook[ConnectionHealth]):
    """:func:`health`: pings the server every ``interval`` while observed.

    Emits a :class:`ConnectionHealth` after every ping and on every state change. A new
    observer gets the last one at once.

    Example:
        >>> checks = health(client, interval=5.0)  # doctest: +SKIP
        >>> checks.subscribe(lambda h: print(h.healthy, h.round_trip_seconds))
    """

    def __init__(
        self,
        client: IntradayClient,
        *,
        interval: float,
        timeout: float | None,
        unhealthy_after: int,
        policy: Backpressure,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}")
        if unhealthy_after < 1:
            raise ValueError(f"unhealthy_after must be at least 1, not {unhealthy_after}")
        super().__init__(client, policy)
        self._interval = interval
        self._timeout = timeout if timeout is not None else interval
        self._unhealthy_after = unhealthy_after
        self._pinger: asyncio.Task[None] | None = None
        self._round_trip: float | None = None
        self._last_pong: datetime | None = None
        self._missed = 0

    @property
    def interval(self) -> float:
        """Seconds between the starts of two pings."""
        return self._interval

    def _greeting(self) -> ConnectionHealth | None:
        return self._latest

    def _start(self) -> None:
        self._latest = None
        self._round_trip = None
        self._last_pong = None
        self._missed = 0
        self._pinger = asyncio.get_running_loop().create_task(self._ping_forever())

    def _stop(self) -> None:
        pinger, self._pinger = self._pinger, None
        if pinger is not None:
            pinger.cancel()

    def _state_changed(self, state: ConnectionState) -> None:
        if not self._starting:
            self._publish()

    def _publish(self) -> None:
        state = self._client.state
        connected = state in (ConnectionState.CONNECTED, ConnectionState.AUTHENTICATED)
        self._emit_logged(
            ConnectionHealth(
                state=state,
                round_trip_seconds=self._round_trip,
                last_pong_at=self._last_pong,
                missed_pongs=self._missed,
                healthy=connected and self._missed < self._unhealthy_after,
            )
        )

    async def _ping_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                async with asyncio.timeout(self._timeout):
                    round_trip = await self._client.ping()
            except (IntradayError, TimeoutError):
                self._missed += 1
            else:
                self._round_trip = round_trip
                self._last_pong = datetime.now(UTC)
                self._missed = 0
            self._publish()
            await asyncio.sleep(max(0.0, self._interval - (loop.time() - started)))


# -- the hooks ----------------------------------------------------------------------


class HookOptions(TypedDict, total=False):
    """Keyword options of the message hooks.

    Attributes:
        organization_id: defaults to the authenticated organization.
        department_id: only this department.
        queue_name: only this queue.
        policy: the default backpressure policy of the hook's streams.
        snapshot: start full: a server with ``snapshot`` first sends the latest
            message of each target (and again after a gap). On by default for
            the hooks that hold state (KPIs, backlog, attendance, alerts).

    Example:
        >>> kpi_updates(client, queue_name="support", policy=BUFFER(10))  # doctest: +SKIP
    """

    organization_id: str | None
    department_id: str | None
    queue_name: str | None
    policy: Backpressure
    snapshot: bool


def _filter_of(filter: Scope | None, options: HookOptions) -> Scope:
    given = Scope(
        options.get("organization_id"), options.get("department_id"), options.get("queue_name")
    )
    if filter is None:
        return given
    if given != Scope():
        raise TypeError("give a Scope or filter keywords, not both")
    return filter


def _message_hook(
    client: IntradayClient,
    channels: Iterable[Channel | str],
    events: Iterable[ServerEvent] | None,
    filter: Scope | None,
    options: HookOptions,
    default: Backpressure,
    *,
    snapshot: bool = False,
) -> MessageHook[Any]:
    return MessageHook(
        client,
        channels=expand_channels(channels),
        events=frozenset(events) if events is not None else None,
        filter=_filter_of(filter, options),
        policy=options.get("policy", default),
        snapshot=options.get("snapshot", snapshot),
    )


def kpi_updates(
    client: IntradayClient, filter: Scope | None = None, **options: Unpack[HookOptions]
) -> MessageHook[KpiPayload]:
    """``useKPIUpdates``: ``kpi:update`` and ``kpi:computed`` messages (default ``KEEP_LATEST``).

    Example:
        >>> tile = kpi_updates(client, queue_name="support")  # doctest: +SKIP
        >>> tile.subscribe(lambda m: print(m.payload.health_score))
    """
    events = (ServerEvent.KPI_UPDATE, ServerEvent.KPI_COMPUTED)
    return _message_hook(client, [Channel.KPI], events, filter, options, KEEP_LATEST, snapshot=True)


def backlog_updates(
    client: IntradayClient, filter: Scope | None = None, **options: Unpack[HookOptions]
) -> MessageHook[BacklogPayload]:
    """``useBacklogUpdates``: ``backlog:update`` and ``backlog:snapshot`` (default ``KEEP_LATEST``).

    Example:
        >>> backlog_updates(client, department_id="sales").subscribe(print)  # doctest: +SKIP
    """
    events = (ServerEvent.BACKLOG_UPDATE, ServerEvent.BACKLOG_SNAPSHOT)
    return _message_hook(
        client, [Channel.BACKLOG], events, filter, options, KEEP_LATEST, snapshot=True
    )


def attendance_updates(
    client: IntradayClient, filter: Scope | None = None, **options: Unpack[HookOptions]
) -> MessageHook[AttendancePayload | AttendanceCheckPayload]:
    """``useAttendanceUpdates``: ``attendance:update``, ``:checkin``, ``:checkout``.

    Default policy ``DEFAULT_BUFFER``.

    Example:
        >>> attendance_updates(client, queue_name="support").subscribe(print)  # doctest: +SKIP
    """
    events = (
        ServerEvent.ATTENDANCE_UPDATE,
        ServerEvent.ATTENDANCE_CHECKIN,
        ServerEvent.ATTENDANCE_CHECKOUT,
    )
    return _message_hook(
        client, [Channel.ATTENDANCE], events, filter, options, DEFAULT_BUFFER, snapshot=True
    )


def alert_notifications(
    client: IntradayClient,
    filter: Scope | None = None,
    *,
    keep: int = 100,
    **options: Unpack[HookOptions],
) -> AlertHook:
    """``useAlertNotifications``: the four ``alert:*`` events, with a count (``DEFAULT_BUFFER``).

    Args:
        keep: how many recent alerts :attr:`AlertHook.recent` holds.

    Example:
        >>> alerts = alert_notifications(client)  # doctest: +SKIP
        >>> alerts.subscribe(lambda m: print(m.payload.rule_name))
        >>> alerts.alert_count, alerts.clear_count()
    """
    return AlertHook(
        client,
        filter=_filter_of(filter, options),
        policy=options.get("policy", DEFAULT_BUFFER),
        keep=keep,
        snapshot=options.get("snapshot", True),
    )


def subscription(
    client: IntradayClient,
    channels: Iterable[Channel | str],
    filter: Scope | None = None,
    **options: Unpack[HookOptions],
) -> MessageHook[Payload]:
    """``useWebSocketSubscription``: every message of ``channels`` (``"all"`` for all five).

    Example:
        >>> both = subscription(client, ["kpi", "alerts"], queue_name="q")  # doctest: +SKIP
        >>> both.subscribe(lambda m: print(m.event, m.payload))
    """
    return _message_hook(client, channels, None, filter, options, DEFAULT_BUFFER)


def events(
    client: IntradayClient,
    name_or_channel: ServerEvent | Channel | str,
    filter: Scope | None = None,
    **options: Unpack[HookOptions],
) -> MessageHook[Payload]:
    """One server event (subscribing its channel), one channel, or ``"*"``.

    ``"*"`` subscribes nothing: it emits every message the client receives
    through its other subscriptions (and ``system:maintenance``, which
    reaches everyone), still matched against the filter.

    Raises:
        ValueError: not an event, a channel or ``"*"``.

    Example:
        >>> events(client, "system:maintenance").subscribe(print)  # doctest: +SKIP
    """
    key = str(name_or_channel)
    if key == "*":
        return _message_hook(client, [], None, filter, options, DEFAULT_BUFFER)
    if key in _EVENT_NAMES:
        event = ServerEvent(key)
        return _message_hook(
            client, [EVENT_CHANNEL[event]], [event], filter, options, DEFAULT_BUFFER
        )
    try:
        channel = Channel(key)
    except ValueError:
        raise ValueError(f"not an event, a channel or '*': {key!r}") from None
    return _message_hook(client, [channel], None, filter, options, DEFAULT_BUFFER)


_EVENT_NAMES = frozenset(e.value for e in ServerEvent)


def connection_status(
    client: IntradayClient, *, policy: Backpressure = UNBOUNDED
) -> ConnectionStatusHook:
    """``useWebSocket``: every connection state, the current one first.

    Example:
        >>> connection_status(client).subscribe(lambda s: print(s))  # doctest: +SKIP
    """
    return ConnectionStatusHook(client, policy)


def health(
    client: IntradayClient,
    interval: float = 5.0,
    *,
    timeout: float | None = None,
    unhealthy_after: int = 3,
    policy: Backpressure = KEEP_LATEST,
) -> HealthHook:
    """``useWebSocketHealth``: ping every ``interval`` seconds while observed.

    Args:
        interval: seconds between the starts of two pings.
        timeout: how long a ping may take before it counts as missed
            (``interval`` by default).
        unhealthy_after: missed pongs in a row that make the connection unhealthy.
        policy: the default backpressure policy of the hook's streams.

    Raises:
        ValueError: ``interval`` not positive or ``unhealthy_after`` below 1.

    Example:
        >>> health(client, interval=2).subscribe(lambda h: print(h.healthy))  # doctest: +SKIP
    """
    return HealthHook(
        client,
        interval=interval,
        timeout=timeout,
        unhealthy_after=unhealthy_after,
        policy=policy,
    )


class LiveHooks:
    """Every hook of one client, as methods: ``hooks = LiveHooks(client)``.

    Each call creates a new hook (as each React component has its own);
    hooks with the same filter still share one server room.

    Example:
        >>> hooks = LiveHooks(client)  # doctest: +SKIP
        >>> hooks.kpi_updates(queue_name="support").subscribe(print)
        >>> hooks.connection_status().subscribe(print)
    """

    def __init__(self, client: IntradayClient) -> None:
        self.client = client

    def kpi_updates(
        self, filter: Scope | None = None, **options: Unpack[HookOptions]
    ) -> MessageHook[KpiPayload]:
        """See :func:`kpi_updates`."""
        return kpi_updates(self.client, filter, **options)

    def backlog_updates(
        self, filter: Scope | None = None, **options: Unpack[HookOptions]
    ) -> MessageHook[BacklogPayload]:
        """See :func:`backlog_updates`."""
        return backlog_updates(self.client, filter, **options)

    def attendance_updates(
        self, filter: Scope | None = None, **options: Unpack[HookOptions]
    ) -> MessageHook[AttendancePayload | AttendanceCheckPayload]:
        """See :func:`attendance_updates`."""
        return attendance_updates(self.client, filter, **options)

    def alert_notifications(
        self, filter: Scope | None = None, *, keep: int = 100, **options: Unpack[HookOptions]
    ) -> AlertHook:
        """See :func:`alert_notifications`."""
        return alert_notifications(self.client, filter, keep=keep, **options)

    def subscription(
        self,
        channels: Iterable[Channel | str],
        filter: Scope | None = None,
        **options: Unpack[HookOptions],
    ) -> MessageHook[Payload]:
        """See :func:`subscription`."""
        return subscription(self.client, channels, filter, **options)

    def events(
        self,
        name_or_channel: ServerEvent | Channel | str,
        filter: Scope | None = None,
        **options: Unpack[HookOptions],
    ) -> MessageHook[Payload]:
        """See :func:`events`."""
        return events(self.client, name_or_channel, filter, **options)

    def connection_status(self, *, policy: Backpressure = UNBOUNDED) -> ConnectionStatusHook:
        """See :func:`connection_status`."""
        return connection_status(self.client, policy=policy)

    def health(
        self,
        interval: float = 5.0,
        *,
        timeout: float | None = None,
        unhealthy_after: int = 3,
        policy: Backpressure = KEEP_LATEST,
    ) -> HealthHook:
        """See :func:`health`."""
        return health(
            self.client,
            interval,
            timeout=timeout,
            unhealthy_after=unhealthy_after,
            policy=policy,
        )
