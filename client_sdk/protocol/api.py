"""Bodies of the HTTP management API (protocol section 9), base ``/api/ws``.

Shared by the reference server (which validates and answers with them) and
the SDK's admin client (which sends and parses them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator, with_config

from .envelope import Priority
from .events import EVENT_CHANNEL, Channel, ServerEvent
from .rooms import RoomType, Scope
from .timestamps import Timestamp

__all__ = [
    "API_BASE",
    "BROADCAST_KINDS",
    "BroadcastKind",
    "BroadcastRequest",
    "BroadcastResult",
    "BroadcastTarget",
    "ConnectionDetail",
    "ConnectionInfo",
    "ConnectionList",
    "ConnectionStatus",
    "DisconnectResult",
    "Health",
    "RoomInfo",
    "RoomList",
    "Stats",
    "StoreInfo",
]

API_BASE = "/api/ws"

ConnectionStatus = Literal["connected", "authenticated"]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


@with_config(ConfigDict(extra="forbid"))
@dataclass(frozen=True, slots=True)
class BroadcastTarget(Scope):
    """Who a broadcast is for: a :class:`Scope`, or some of its sockets by id.

    Omitted scope fields are taken from the payload; ``socket_ids`` sends to
    those sockets only (within the organization), whatever they subscribed.
    """

    socket_ids: (
        Annotated[tuple[Annotated[str, Field(max_length=128)], ...], Field(max_length=10000)] | None
    ) = None


class BroadcastKind(StrEnum):
    """The channel shortcuts ``POST /broadcast/{kind}``: one channel's payload each."""

    KPI = "kpi"
    BACKLOG = "backlog"
    ATTENDANCE = "attendance"
    ALERT = "alert"

    @property
    def default_event(self) -> ServerEvent:
        """The event published when the request names none."""
        return BROADCAST_KINDS[self]

    @property
    def channel(self) -> Channel:
        """The channel whose events this kind publishes."""
        return EVENT_CHANNEL[self.default_event]

    def event(self, chosen: ServerEvent | None = None) -> ServerEvent:
        """The event to publish: ``chosen`` (``?event=``) or the default.

        Raises:
            ValueError: ``chosen`` belongs to another channel.
        """
        if chosen is None:
            return self.default_event
        if EVENT_CHANNEL[chosen] is not self.channel:
            raise ValueError(f"{chosen} is not an event of the {self.channel} channel")
        return chosen


BROADCAST_KINDS: Final[Mapping[BroadcastKind, ServerEvent]] = MappingProxyType(
    {
        BroadcastKind.KPI: ServerEvent.KPI_UPDATE,
        BroadcastKind.BACKLOG: ServerEvent.BACKLOG_UPDATE,
        BroadcastKind.ATTENDANCE: ServerEvent.ATTENDANCE_UPDATE,
        BroadcastKind.ALERT: ServerEvent.ALERT_TRIGGERED,
    }
)
"""The default event of each broadcast kind (section 9)."""


class BroadcastRequest(BaseModel):
    """``POST /broadcast``: any server event with its payload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: ServerEvent
    data: dict[str, Any]
    target: BroadcastTarget | None = None
    priority: Priority = Priority.MEDIUM
    requires_ack: bool = False


class BroadcastResult(_Body):
    """The answer to a broadcast: the message id and how many sockets it reached."""

    success: Literal[True] = True
    message_id: str
    recipients: int


class StoreInfo(_Body):
    """The message store of a server with ``replay`` (in ``/stats`` and ``/health``)."""

    kind: str
    """``memory`` or ``redis``."""
    streams: int
    messages: int
    """Messages held over all streams."""
    oldest_age_seconds: float | None
    reachable: bool


class Stats(_Body):
    """``GET /stats``."""

    success: Literal[True] = True
    active_connections: int
    connections_by_org: dict[str, int]
    active_rooms: int
    rooms_by_type: dict[RoomType, int]
    total_messages: int
    messages_per_second: float
    messages_by_event: dict[str, int]
    average_latency_ms: float | None
    max_latency_ms: float | None
    error_count: int
    uptime_seconds: float
    store: StoreInfo | None = None
    pending_sessions: int = 0
    """Transport sessions open without a socket yet (counted against the total limit)."""
    disconnects_by_reason: dict[str, int] = {}
    """Sockets the server closed, by why: ``kicked``, ``auth_timeout``, ``rate_limit``,
    ``too_slow``, ``connect_rate``, ``no_connect_timeout``, ``shutdown``."""


class ConnectionInfo(_Body):
    """One connected socket, as ``GET /connections`` lists it."""

    socket_id: str
    user_id: str | None
    organization_id: str | None
    status: ConnectionStatus
    transport: str
    subscriptions: list[str]
    connected_at: Timestamp
    last_activity_at: Timestamp


class ConnectionDetail(_Body):
    """``GET /connections/{socket_id}``: ``{"success": true, "connection": {...}}`` (section 9).

    Servers written before section 9 settled the shape answered the
    connection's fields at the top level; that body is read as the same
    detail, so a client of this model works with both.
    """

    success: Literal[True] = True
    connection: ConnectionInfo

    @model_validator(mode="before")
    @classmethod
    def _flat_fallback(cls, data: Any) -> Any:
        if isinstance(data, dict) and "connection" not in data and "socket_id" in data:
            return {"success": data.get("success", True), "connection": data}
        return data


class ConnectionList(_Body):
    """``GET /connections``."""

    success: Literal[True] = True
    connections: list[ConnectionInfo]
    total_count: int


class DisconnectResult(_Body):
    """``DELETE /connections/{socket_id}``."""

    success: Literal[True] = True
    socket_id: str


class RoomInfo(_Body):
    """One room with its level and size."""

    name: str
    type: RoomType
    member_count: int


class RoomList(_Body):
    """``GET /rooms``."""

    success: Literal[True] = True
    rooms: list[RoomInfo]
    total_count: int


class Health(_Body):
    """``GET /health``: the one route that needs no admin token.

    ``status`` is ``ok`` (HTTP 200) only when the server can take and deliver
    broadcasts; ``degraded`` (HTTP 503, section 9 as amended) names in
    ``failing`` what cannot be reached, so a load balancer stops sending
    clients there.
    """

    success: Literal[True] = True
    status: Literal["ok", "draining", "degraded"]
    failing: list[str] = []
    """What keeps a ``degraded`` server from taking or delivering broadcasts."""
    uptime_seconds: float
    connections: int
    auth_mode: Literal["trust", "jwt"]
    warning: str | None = None
    version: str
    protocol: int
    store: StoreInfo | None = None
