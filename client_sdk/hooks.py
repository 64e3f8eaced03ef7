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

import functools
from collections.abc import Callable, Iterable
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    ParamSpec,
    TypedDict,
    TypeVar,
    Unpack,
    overload,
)

from ._backpressure import BUFFER, KEEP_LATEST, UNBOUNDED, Backpressure, PolicyQueue
from ._hook import Hook
from ._hook_kinds import AlertHook, ConnectionHealth, ConnectionStatusHook, HealthHook
from ._message_hook import MessageHook
from .protocol import (
    EVENT_CHANNEL,
    AttendanceCheckPayload,
    AttendancePayload,
    BacklogPayload,
    Channel,
    KpiPayload,
    Payload,
    Scope,
    ServerEvent,
    expand_channels,
)

if TYPE_CHECKING:
    from ._client import IntradayClient

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

_A = ParamSpec("_A")
_R = TypeVar("_R")

DEFAULT_BUFFER = BUFFER(1000)
"""The policy of hooks whose every message matters (alerts, attendance, channels)."""


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


class _Bound(Generic[_A, _R]):
    """A hook factory read as a method of :class:`LiveHooks`: the client is the instance's."""

    def __init__(self, factory: Callable[Concatenate[IntradayClient, _A], _R]) -> None:
        self._factory = factory
        self.__doc__ = f"Bound :func:`{factory.__name__}`: {factory.__doc__}"

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> _Bound[_A, _R]: ...

    @overload
    def __get__(self, instance: LiveHooks, owner: type[Any]) -> Callable[_A, _R]: ...

    def __get__(
        self, instance: LiveHooks | None, owner: type[Any]
    ) -> _Bound[_A, _R] | Callable[_A, _R]:
        if instance is None:
            return self
        return functools.partial(self._factory, instance.client)


class LiveHooks:
    """Every hook of one client, as methods: ``hooks = LiveHooks(client)``.

    The methods are the module's factories with the client filled in (one
    way to make a hook, two ways to call it). Each call creates a new hook
    (as each React component has its own); hooks with the same filter
    still share one server room.

    Example:
        >>> hooks = LiveHooks(client)  # doctest: +SKIP
        >>> hooks.kpi_updates(queue_name="support").subscribe(print)
        >>> hooks.connection_status().subscribe(print)
    """

    def __init__(self, client: IntradayClient) -> None:
        self.client = client

    kpi_updates = _Bound(kpi_updates)
    backlog_updates = _Bound(backlog_updates)
    attendance_updates = _Bound(attendance_updates)
    alert_notifications = _Bound(alert_notifications)
    subscription = _Bound(subscription)
    events = _Bound(events)
    connection_status = _Bound(connection_status)
    health = _Bound(health)
