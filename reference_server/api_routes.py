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
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response

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
from .idempotency import HEADER, Idempotency, check_key
from .metrics import ServerMetrics
from .publisher import Publisher
from .stats import ServerStats
from .store import MessageStore

if TYPE_CHECKING:
    from .cluster import ClusterNode

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
    cluster: ClusterNode | None = None
    """This node's cluster (``None``: a single server); the API then answers for every node."""
    idempotency: Idempotency | None = None
    """Where broadcasts' ``Idempotency-Key`` are honoured (``None``: the header is ignored)."""


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


async def _parts_dependency(request: Request) -> ApiParts:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a
    # thread hop per request (measured: a third of a broadcast POST's CPU).
    return api_parts(request)


# Module level: with postponed annotations FastAPI resolves route annotations
# in the module's namespace, so a local alias would fail at request time.
Parts = Annotated[ApiParts, Depends(_parts_dependency)]
OrgQuery = Annotated[Identifier | None, Query()]
EventQuery = Annotated[ServerEvent | None, Query()]
PriorityQuery = Annotated[Priority, Query()]
AckQuery = Annotated[bool, Query()]
KeyHeader = Annotated[
    str | None,
    Header(
        alias=HEADER,
        description="Retry-safe publishing: a repeated key answers as the first request did "
        "and sends nothing again; the key with another body is 409",
    ),
]

public = APIRouter()
"""Endpoints open to anyone who can reach the port."""
admin = APIRouter()
"""Endpoints behind the admin token (when one is configured)."""


def _connection_info(connection: Connection, node: str | None = None) -> ConnectionInfo:
    identity = connection.identity
    extra = {"node": node} if node is not None else {}
    return ConnectionInfo(
        **extra,
        socket_id=connection.socket_id,
        user_id=identity.user_id if identity else None,
        organization_id=identity.organization_id if identity else None,
        status=connection.status,
        transport=connection.link.transport,
        subscriptions=connection.subscriptions,
        connected_at=connection.connected_at,
        last_activity_at=connection.last_activity_at,
    )


def _not_found(socket_id: str) -> ApiError:
    error = ProtocolError(ErrorCode.INVALID_MESSAGE, f"no connection {socket_id[:128]}")
    return ApiError(error, status=404)


def _node_id(parts: ApiParts) -> str | None:
    return parts.cluster.node_id if parts.cluster is not None else None


@functools.cache
def _asyncapi() -> bytes:
    return asyncapi.render().encode()


# Behind the admin token like every route but health (section 9); the same
# document is committed as docs/asyncapi.json for readers without a token.
@admin.get(f"{API_BASE}/asyncapi.json", response_class=Response, include_in_schema=True)
async def asyncapi_document() -> Response:
    """The protocol as an AsyncAPI 3.0 document (the committed ``docs/asyncapi.json``)."""
    return Response(_asyncapi(), media_type="application/json")


@public.get(
    f"{API_BASE}/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "degraded: `failing` names what"}},
)
async def health(parts: Parts, response: Response) -> Health:
    """Whether this server can take and deliver broadcasts (503 ``degraded`` if not); no token.

    A load balancer uses the status code: 200 only when the store and, in a
    cluster, the cluster's Redis and this node's listener are reachable.
    """
    store = await _store_info(parts)
    # Asked now (a Redis store's figures may be a second old): one round trip.
    ping = getattr(parts.store, "ping", None)
    if store is not None and ping is not None and not await ping():
        store = store.model_copy(update={"reachable": False})
    cluster = await parts.cluster.health() if parts.cluster is not None else None
    failing = []
    if store is not None and not store.reachable:
        failing.append("message store unreachable")
    if cluster is not None:
        redis = cluster["redis"]
        if not redis["reachable"]:
            failing.append("cluster Redis unreachable")
        if not redis["listening"]:
            failing.append("not listening to the cluster's Redis")
    status = "draining" if parts.hub.draining else "ok"
    if failing:
        status = "degraded"
        response.status_code = 503
    return Health(
        status=status,
        failing=failing,
        uptime_seconds=parts.stats.uptime_seconds(),
        connections=len(parts.registry),
        auth_mode=parts.settings.auth_mode.value,
        warning=mode_warning(parts.settings.auth_mode),
        version=parts.version,
        protocol=PROTOCOL_VERSION,
        store=store,
        **({"cluster": cluster} if cluster is not None else {}),
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
    """Connections, rooms, message counts and ack latency (of every node, in a cluster)."""
    if parts.cluster is not None:
        return await _cluster_stats(parts, parts.cluster)
    registry = parts.registry
    rooms = registry.rooms()
    s = parts.stats
    return Stats.model_validate(
        {
            "active_connections": len(registry),
            "connections_by_org": registry.connections_by_org(),
            "active_rooms": len(rooms),
            "rooms_by_type": _rooms_by_type(rooms),
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


def _rooms_by_type(rooms: dict[str, int]) -> dict[str, int]:
    by_type: dict[str, int] = {"org": 0, "dept": 0, "queue": 0}
    for name in rooms:
        by_type[parse_room(name).type.value] += 1
    return by_type


_RAW_FIGURES = ("latency_count", "latency_total_ms")


async def _cluster_stats(parts: ApiParts, cluster: ClusterNode) -> Stats:
    """The protocol's figures summed over the live nodes, and each node's under ``nodes``."""
    from .cluster.nodes import sum_figures

    nodes = await cluster.nodes()
    per_node = {n["node_id"]: n["info"].get("figures", {}) for n in nodes}
    rooms = await _all_rooms(parts)
    summed = sum_figures(list(per_node.values()))
    # Connections from the registries (this node's exact, the others' as Redis has them
    # now), not from the heartbeats, which are up to one beat old.
    by_org = parts.registry.connections_by_org()
    remote = await cluster.remote_connections()
    for entry in remote:
        org = entry.info.get("organization_id")
        if entry.info.get("status") == "authenticated" and isinstance(org, str):
            by_org[org] = by_org.get(org, 0) + 1
    return Stats.model_validate(
        {
            **summed,
            "active_connections": len(parts.registry) + len(remote),
            "connections_by_org": by_org,
            "active_rooms": len(rooms),
            "rooms_by_type": _rooms_by_type(rooms),
            "uptime_seconds": parts.stats.uptime_seconds(),
            "store": await _store_info(parts),
            "nodes": {
                node: {k: v for k, v in figures.items() if k not in _RAW_FIGURES}
                for node, figures in per_node.items()
            },
        }
    )


async def _all_rooms(parts: ApiParts) -> dict[str, int]:
    rooms = parts.registry.rooms()
    if parts.cluster is not None:
        for name, count in (await parts.cluster.remote_rooms()).items():
            rooms[name] = rooms.get(name, 0) + count
    return rooms


@admin.get(f"{API_BASE}/connections", response_model=ConnectionList)
async def connections(parts: Parts, organization_id: OrgQuery = None) -> ConnectionList:
    """Every connected socket, optionally of one organization."""
    node = _node_id(parts)
    chosen = [
        _connection_info(c, node)
        for c in parts.registry
        if organization_id is None or c.organization_id == organization_id
    ]
    if parts.cluster is not None:
        for remote in await parts.cluster.remote_connections():
            if organization_id is None or remote.info.get("organization_id") == organization_id:
                chosen.append(ConnectionInfo.model_validate(remote.info))
    return ConnectionList(connections=chosen, total_count=len(chosen))


@admin.get(f"{API_BASE}/connections/{{socket_id}}", response_model=ConnectionDetail)
async def connection(parts: Parts, socket_id: str) -> ConnectionDetail:
    """One connected socket (on any node), or 404."""
    connection = parts.registry.get(socket_id)
    if connection is not None:
        return ConnectionDetail(connection=_connection_info(connection, _node_id(parts)))
    if parts.cluster is not None:
        remote = await parts.cluster.remote_connection(socket_id)
        if remote is not None:
            return ConnectionDetail(connection=ConnectionInfo.model_validate(remote.info))
    raise _not_found(socket_id)


@admin.delete(f"{API_BASE}/connections/{{socket_id}}", response_model=DisconnectResult)
async def disconnect(parts: Parts, socket_id: str) -> DisconnectResult:
    """Disconnect one socket (a cluster's owner node is told to)."""
    connection = parts.registry.get(socket_id)
    if connection is not None:
        await parts.hub.disconnect(connection)
    elif parts.cluster is None or not await parts.cluster.kick(socket_id):
        raise _not_found(socket_id)
    return DisconnectResult(socket_id=socket_id)


@admin.get(f"{API_BASE}/rooms", response_model=RoomList)
async def rooms(parts: Parts, organization_id: OrgQuery = None) -> RoomList:
    """Every non-empty room with its level and size."""
    listed = []
    for name, count in sorted((await _all_rooms(parts)).items()):
        room = parse_room(name)
        if organization_id is None or room.scope.organization_id == organization_id:
            listed.append(RoomInfo(name=name, type=room.type, member_count=count))
    return RoomList(rooms=listed, total_count=len(listed))


async def _publish(
    parts: ApiParts, request: BroadcastRequest, key: str | None, http: Request
) -> BroadcastResult:
    """Publish, once per ``Idempotency-Key`` when one is given (not once its caller left)."""
    if key is None or parts.idempotency is None:
        return await parts.publisher.publish(request)
    return await parts.idempotency.publish(
        check_key(key), request, parts.publisher.publish, gone=http.is_disconnected
    )


@admin.post(f"{API_BASE}/broadcast", response_model=BroadcastResult)
async def broadcast(
    parts: Parts, request: BroadcastRequest, http: Request, idempotency_key: KeyHeader = None
) -> BroadcastResult:
    """Publish any server event; the payload is validated against its schema."""
    return await _publish(parts, request, idempotency_key, http)


@admin.post(f"{API_BASE}/broadcast/{{kind}}", response_model=BroadcastResult)
async def broadcast_kind(
    parts: Parts,
    kind: BroadcastKind,
    payload: dict[str, Any],
    http: Request,
    event: EventQuery = None,
    priority: PriorityQuery = Priority.MEDIUM,
    requires_ack: AckQuery = False,
    idempotency_key: KeyHeader = None,
) -> BroadcastResult:
    """Publish one channel's payload to its own organization, department and queue."""
    try:
        chosen = kind.event(event)
    except ValueError as exc:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, str(exc)) from None
    request = BroadcastRequest(
        event=chosen,
        data=payload,
        target=BroadcastTarget(),
        priority=priority,
        requires_ack=requires_ack,
    )
    return await _publish(parts, request, idempotency_key, http)
