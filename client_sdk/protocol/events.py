"""Event names and channels (protocol sections 4, 5 and 7).

Every server-to-client event belongs to exactly one channel; the table
:data:`EVENT_CHANNEL` is the single source of that mapping for both the
server (which room a message goes to) and the SDK (which subscription an
event handler needs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = [
    "CHANNEL_EVENTS",
    "CONCRETE_CHANNELS",
    "EVENT_CHANNEL",
    "Channel",
    "ClientEvent",
    "ControlEvent",
    "ServerEvent",
    "expand_channels",
]


class Channel(StrEnum):
    """A subscription channel. ``ALL`` stands for the five others."""

    KPI = "kpi"
    BACKLOG = "backlog"
    ATTENDANCE = "attendance"
    ALERTS = "alerts"
    NOTIFICATIONS = "notifications"
    ALL = "all"


CONCRETE_CHANNELS: Final[tuple[Channel, ...]] = tuple(c for c in Channel if c is not Channel.ALL)
"""The channels that rooms are made of (every channel but ``all``)."""


class ServerEvent(StrEnum):
    """The seventeen data events a server pushes, each in one channel."""

    KPI_UPDATE = "kpi:update"
    KPI_COMPUTED = "kpi:computed"
    KPI_ALERT = "kpi:alert"
    BACKLOG_UPDATE = "backlog:update"
    BACKLOG_SNAPSHOT = "backlog:snapshot"
    BACKLOG_ALERT = "backlog:alert"
    ATTENDANCE_UPDATE = "attendance:update"
    ATTENDANCE_CHECKIN = "attendance:checkin"
    ATTENDANCE_CHECKOUT = "attendance:checkout"
    ATTENDANCE_ALERT = "attendance:alert"
    ALERT_TRIGGERED = "alert:triggered"
    ALERT_ACKNOWLEDGED = "alert:acknowledged"
    ALERT_RESOLVED = "alert:resolved"
    ALERT_ESCALATED = "alert:escalated"
    SYSTEM_NOTIFICATION = "system:notification"
    SYSTEM_BROADCAST = "system:broadcast"
    SYSTEM_MAINTENANCE = "system:maintenance"


class ClientEvent(StrEnum):
    """Events a client may send. Any other name is ``INVALID_MESSAGE``."""

    AUTHENTICATE = "authenticate"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    PING = "client:ping"


class ControlEvent(StrEnum):
    """Server-to-client events that are not channel data."""

    AUTHENTICATED = "authenticated"
    ERROR = "error"
    PONG = "client:pong"
    SUBSCRIBED = "client:subscribe"
    UNSUBSCRIBED = "client:unsubscribe"
    BATCH = "batch"
    ACK = "ack"
    """Only on the plain-WebSocket bridge: the answer to a frame that had an ``id``."""


EVENT_CHANNEL: Final[Mapping[ServerEvent, Channel]] = MappingProxyType(
    {
        ServerEvent.KPI_UPDATE: Channel.KPI,
        ServerEvent.KPI_COMPUTED: Channel.KPI,
        ServerEvent.KPI_ALERT: Channel.KPI,
        ServerEvent.BACKLOG_UPDATE: Channel.BACKLOG,
        ServerEvent.BACKLOG_SNAPSHOT: Channel.BACKLOG,
        ServerEvent.BACKLOG_ALERT: Channel.BACKLOG,
        ServerEvent.ATTENDANCE_UPDATE: Channel.ATTENDANCE,
        ServerEvent.ATTENDANCE_CHECKIN: Channel.ATTENDANCE,
        ServerEvent.ATTENDANCE_CHECKOUT: Channel.ATTENDANCE,
        ServerEvent.ATTENDANCE_ALERT: Channel.ATTENDANCE,
        ServerEvent.ALERT_TRIGGERED: Channel.ALERTS,
        ServerEvent.ALERT_ACKNOWLEDGED: Channel.ALERTS,
        ServerEvent.ALERT_RESOLVED: Channel.ALERTS,
        ServerEvent.ALERT_ESCALATED: Channel.ALERTS,
        ServerEvent.SYSTEM_NOTIFICATION: Channel.NOTIFICATIONS,
        ServerEvent.SYSTEM_BROADCAST: Channel.NOTIFICATIONS,
        ServerEvent.SYSTEM_MAINTENANCE: Channel.NOTIFICATIONS,
    }
)
"""The channel of every server event (protocol section 5)."""

CHANNEL_EVENTS: Final[Mapping[Channel, tuple[ServerEvent, ...]]] = MappingProxyType(
    {
        channel: tuple(e for e, c in EVENT_CHANNEL.items() if c is channel)
        for channel in CONCRETE_CHANNELS
    }
)
"""The events of each concrete channel, in protocol order."""


def expand_channels(channels: Iterable[Channel | str]) -> tuple[Channel, ...]:
    """Resolve ``all`` and duplicates into concrete channels, in protocol order.

    Raises:
        ValueError: a name is not a channel.
    """
    wanted = {Channel(c) for c in channels}
    if Channel.ALL in wanted:
        return CONCRETE_CHANNELS
    return tuple(c for c in CONCRETE_CHANNELS if c in wanted)
