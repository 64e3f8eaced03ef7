"""The endpoints of the management API (protocol section 9), under ``/api/ws``.

Each endpoint gets the server's parts through the :data:`Parts` dependency,
which reads the :class:`ApiParts` that :func:`reference_server.api.create_api`
stored on the application's state. :data:`public` holds what needs no token
(``/health``); :data:`admin` holds the rest, which the app factory includes
behind the admin-token check.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from client_sdk.protocol import (
    API_BASE,
    HTTP_STATUS,
    PROTOCOL_VERSION,
    BroadcastKind,
    BroadcastRequest,
    BroadcastResult,
    BroadcastTarget,
    ConnectionDetail,
    ConnectionInfo,
    ConnectionList,
    DisconnectResult,
    ErrorCode,
    Health,
    Identifier,
    Priority,
    ProtocolError,
    RoomInfo,
    RoomList,
    ServerEvent,
    Stats,
    StoreInfo,
    asyncapi,
    parse_room,
)

from .auth import mode_warning
from .config import ServerSettings
from .connections import Connection, Registry
from .hub import Hub
from .metrics import ServerMetrics
from .publisher import Publisher
from .stats import ServerStats
from .store import MessageStore

__all__ = ["ApiError", "ApiParts", "admin", "api_parts", "public"]


@dataclass(frozen=True, slots=True)
class ApiParts:
    """The parts of the server the management API reads and drives."""

    settings: ServerSettings
    registry: Registry
    stats: ServerStats
    hub: Hub
    """For ``draining`` and to disconnect a socket."""
    publisher: Publisher
    version: str
    metrics: ServerMetrics | None = None
    """What ``GET /metrics`` renders (none: the route answers 404)."""
    store: MessageStore | None = None
    """The message store, for its figures (``None``: no replay)."""


class ApiError(Exception):
    """A protocol error with the HTTP status to answer it with."""

    def __init__(self, error: ProtocolError, status: int | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.status = status or HTTP_STATUS[error.code]


def api_parts(request: Request) -> ApiParts:
    """The :class:`ApiParts` of the application serving ``request``."""
    parts = request.app.state.api_parts
    if not isinstance(parts, ApiParts):  # only create_api builds these apps
        raise TypeError("the management API was built without its ApiParts")
    return parts


# Module level: with postponed annotations FastAPI resolves route annotations
# in the module's namespace, so a local alias would fail at request time.
Parts = Annotated[ApiParts, Depends(api_parts)]
OrgQuery = Annotated[Identifier | None, Query()]
EventQuery = Annotated[ServerEvent | None, Query()]
PriorityQuery = Annotated[Priority, Query()]
AckQuery = Annotated[bool, Query()]

public = APIRouter()
"""Endpoints open to anyone who can reach the port."""
admin = APIRouter()
"""Endpoints behind the admin token (when one is configured)."""


def _connection_info(connection: Connection) -> ConnectionInfo:
    identity = connection.identity
    return ConnectionInfo(
        socket_id=connection.socket_id,
        user_id=identity.user_id if identity else None,
        organization_id=identity.organization_id if identity else None,
        status=connection.status,
        transport=connection.link.transport,
        subscriptions=connection.subscriptions,
        connected_at=connection.connected_at,
        last_activity_at=connection.last_activity_at,
    )


def _find(parts: ApiParts, socket_id: str) -> Connection:
    connection = parts.registry.get(socket_id)
    if connection is None:
        error = ProtocolError(ErrorCode.INVALID_MESSAGE, f"no connection {socket_id[:128]}")
        raise ApiError(error, status=404)
    return connection


@functools.cache
def _asyncapi() -> bytes:
    return asyncapi.render().encode()


# Behind the admin token like every route but health (section 9); the same
# document is committed as docs/asyncapi.json for readers without a token.
@admin.get(f"{API_BASE}/asyncapi.json", response_class=Response, include_in_schema=True)
async def asyncapi_document() -> Response:
    """The protocol as an AsyncAPI 3.0 document (the committed ``docs/asyncapi.json``)."""
    return Response(_asyncapi(), media_type="application/json")


@public.get(f"{API_BASE}/health", response_model=Health)
async def health(parts: Parts) -> Health:
    """Liveness and auth mode; needs no token."""
    return Health(
        status="draining" if parts.hub.draining else "ok",
        uptime_seconds=parts.stats.uptime_seconds(),
        connections=len(parts.registry),
        auth_mode=parts.settings.auth_mode.value,
        warning=mode_warning(parts.settings.auth_mode),
        version=parts.version,
        protocol=PROTOCOL_VERSION,
        store=await _store_info(parts),
    )


async def _store_info(parts: ApiParts) -> StoreInfo | None:
    if parts.store is None:
        return None
    figures = await parts.store.stats()
    return StoreInfo(
        kind=figures.kind,
        streams=figures.streams,
        messages=figures.messages,
        oldest_age_seconds=figures.oldest_age_seconds,
        reachable=figures.reachable,
    )


@admin.get(f"{API_BASE}/stats", response_model=Stats)
async def stats(parts: Parts) -> Stats:
    """Connections, rooms, message counts and ack latency."""
    registry = parts.registry
    rooms = registry.rooms()
    by_type: dict[str, int] = {"org": 0, "dept": 0, "queue": 0}
    for name in rooms:
        by_type[parse_room(name).type.value] += 1
    s = parts.stats
    return Stats.model_validate(
        {
            "active_connections": len(registry),
            "connections_by_org": registry.connections_by_org(),
            "active_rooms": len(rooms),
            "rooms_by_type": by_type,
            "total_messages": s.total_messages,
            "messages_per_second": round(s.messages_per_second(), 3),
            "messages_by_event": dict(s.messages_by_event),
            "average_latency_ms": s.average_latency_ms,
            "max_latency_ms": s.max_latency_ms,
            "error_count": s.error_count,
            "uptime_seconds": s.uptime_seconds(),
            "store": await _store_info(parts),
            "pending_sessions": parts.hub.reserved,
            "disconnects_by_reason": dict(s.disconnects_by_reason),
        }
    )


@admin.get(f"{API_BASE}/connections", response_model=ConnectionList)
async def connections(parts: Parts, organization_id: OrgQuery = None) -> ConnectionList:
    """Every connected socket, optionally of one organization."""
    chosen = [
        _connection_info(c)
        for c in parts.registry
        if organization_id is None or c.organization_id == organization_id
    ]
    return ConnectionList(connections=chosen, total_count=len(chosen))


@admin.get(f"{API_BASE}/connections/{{socket_id}}", response_model=ConnectionDetail)
async def connection(parts: Parts, socket_id: str) -> ConnectionDetail:
    """One connected socket, or 404."""
    return ConnectionDetail(connection=_connection_info(_find(parts, socket_id)))


@admin.delete(f"{API_BASE}/connections/{{socket_id}}", response_model=DisconnectResult)
async def disconnect(parts: Parts, socket_id: str) -> DisconnectResult:
    """Disconnect one socket."""
    await parts.hub.disconnect(_find(parts, socket_id))
    return DisconnectResult(socket_id=socket_id)


@admin.get(f"{API_BASE}/rooms", response_model=RoomList)
async def rooms(parts: Parts, organization_id: OrgQuery = None) -> RoomList:
    """Every non-empty room with its level and size."""
    listed = []
    for name, count in sorted(parts.registry.rooms().items()):
        room = parse_room(name)
        if organization_id is None or room.scope.organization_id == organization_id:
            listed.append(RoomInfo(name=name, type=room.type, member_count=count))
    return RoomList(rooms=listed, total_count=len(listed))


@admin.post(f"{API_BASE}/broadcast", response_model=BroadcastResult)
async def broadcast(parts: Parts, request: BroadcastRequest) -> BroadcastResult:
    """Publish any server event; the payload is validated against its schema."""
    return await parts.publisher.publish(request)


@admin.post(f"{API_BASE}/broadcast/{{kind}}", response_model=BroadcastResult)
async def broadcast_kind(
    parts: Parts,
    kind: BroadcastKind,
    payload: dict[str, Any],
    event: EventQuery = None,
    priority: PriorityQuery = Priority.MEDIUM,
    requires_ack: AckQuery = False,
) -> BroadcastResult:
    """Publish one channel's payload to its own organization, department and queue."""
    try:
        chosen = kind.event(event)
    except ValueError as exc:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, str(exc)) from None
    return await parts.publisher.publish(
        BroadcastRequest(
            event=chosen,
            data=payload,
            target=BroadcastTarget(),
            priority=priority,
            requires_ack=requires_ack,
        )
    )
