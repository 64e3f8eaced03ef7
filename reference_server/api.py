"""The HTTP management API (protocol section 9) under ``/api/ws``.

FastAPI validates the bodies and serves the OpenAPI description at
``/api/ws/openapi.json`` (browsable at ``/api/ws/docs``). Every answer,
including validation failures and unknown routes, has the protocol's shape
``{"success": false, "error": {"code", "message"}}`` with a fitting status.
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
    parse_room,
)

from .connections import Connection
from .hub import Hub

__all__ = ["create_api"]

log = logging.getLogger(__name__)

# Module level: with postponed annotations FastAPI resolves route annotations
# in the module's namespace, so a local alias would fail at request time.
OrgQuery = Annotated[Identifier | None, Query()]


class ApiError(Exception):
    """A protocol error with the HTTP status to answer it with."""

    def __init__(self, error: ProtocolError, status: int | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.status = status or HTTP_STATUS[error.code]


def _failure(status: int, code: ErrorCode, message: str, **extra: Any) -> JSONResponse:
    error: dict[str, Any] = {"code": code.value, "message": message, **extra}
    return JSONResponse({"success": False, "error": error}, status_code=status)


class BodyLimit:
    """Answer 413 ``MESSAGE_TOO_LARGE`` for a body over the limit, before reading it all."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, receive, send)
            return
        # Read the body here (at most ``limit`` bytes kept): an exception raised
        # from inside the app's ``receive`` would be turned into a 400 by FastAPI.
        body = bytearray()
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > self.limit:
                await self._too_large(scope, receive, send)
                return
            more_body = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _failure(
            413, ErrorCode.MESSAGE_TOO_LARGE, f"request body exceeds {self.limit} bytes"
        )
        await response(scope, receive, send)


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


def create_api(hub: Hub) -> ASGIApp:
    """Build the management API of ``hub`` as an ASGI app."""
    settings = hub.settings
    app = FastAPI(
        title="intraday-live management API",
        version=hub.version,
        openapi_url=f"{API_BASE}/openapi.json",
        docs_url=f"{API_BASE}/docs",
        redoc_url=None,
    )

    async def require_admin(request: Request) -> None:
        token = settings.admin_token
        if token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected):
            raise ApiError(ProtocolError(ErrorCode.AUTH_FAILED, "admin bearer token required"))

    admin = [Depends(require_admin)]

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        hub.stats.record_error()
        return JSONResponse(
            {"success": False, "error": exc.error.to_wire()}, status_code=exc.status
        )

    @app.exception_handler(ProtocolError)
    async def _protocol_error(_: Request, exc: ProtocolError) -> JSONResponse:
        hub.stats.record_error()
        return JSONResponse(
            {"success": False, "error": exc.to_wire()}, status_code=HTTP_STATUS[exc.code]
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        hub.stats.record_error()
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
            for e in exc.errors()
        ][:10]
        fields = ", ".join(p["field"] for p in problems)
        return _failure(
            400,
            ErrorCode.INVALID_MESSAGE,
            f"invalid request: {fields}",
            details={"errors": problems},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown routes and methods: the request itself is wrong.
        return _failure(exc.status_code, ErrorCode.INVALID_MESSAGE, str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("management API failure", exc_info=exc)
        hub.stats.record_error()
        return _failure(500, ErrorCode.INTERNAL_ERROR, "internal error")

    @app.get(f"{API_BASE}/health", response_model=Health)
    async def health() -> Health:
        """Liveness and auth mode; needs no token."""
        return Health(
            status="draining" if hub.draining else "ok",
            uptime_seconds=hub.stats.uptime_seconds(),
            connections=len(hub.registry),
            auth_mode=settings.auth_mode.value,
            warning=hub.trust_warning,
            version=hub.version,
            protocol=PROTOCOL_VERSION,
        )

    @app.get(f"{API_BASE}/stats", response_model=Stats, dependencies=admin)
    async def stats() -> Stats:
        """Connections, rooms, message counts and ack latency."""
        rooms = hub.registry.rooms()
        by_type: dict[str, int] = {"org": 0, "dept": 0, "queue": 0}
        for name in rooms:
            by_type[parse_room(name).type.value] += 1
        s = hub.stats
        return Stats.model_validate(
            {
                "active_connections": len(hub.registry),
                "connections_by_org": hub.registry.connections_by_org(),
                "active_rooms": len(rooms),
                "rooms_by_type": by_type,
                "total_messages": s.total_messages,
                "messages_per_second": round(s.messages_per_second(), 3),
                "messages_by_event": dict(s.messages_by_event),
                "average_latency_ms": s.average_latency_ms,
                "max_latency_ms": s.max_latency_ms,
                "error_count": s.error_count,
                "uptime_seconds": s.uptime_seconds(),
            }
        )

    @app.get(f"{API_BASE}/connections", response_model=ConnectionList, dependencies=admin)
    async def connections(organization_id: OrgQuery = None) -> ConnectionList:
        """Every connected socket, optionally of one organization."""
        chosen = [
            _connection_info(c)
            for c in hub.registry
            if organization_id is None or c.organization_id == organization_id
        ]
        return ConnectionList(connections=chosen, total_count=len(chosen))

    def _find(socket_id: str) -> Connection:
        connection = hub.registry.get(socket_id)
        if connection is None:
            error = ProtocolError(ErrorCode.INVALID_MESSAGE, f"no connection {socket_id[:128]}")
            raise ApiError(error, status=404)
        return connection

    @app.get(
        f"{API_BASE}/connections/{{socket_id}}", response_model=ConnectionDetail, dependencies=admin
    )
    async def connection(socket_id: str) -> ConnectionDetail:
        """One connected socket, or 404."""
        info = _connection_info(_find(socket_id))
        return ConnectionDetail.model_validate(info.model_dump())

    @app.delete(
        f"{API_BASE}/connections/{{socket_id}}",
        response_model=DisconnectResult,
        dependencies=admin,
    )
    async def disconnect(socket_id: str) -> DisconnectResult:
        """Disconnect one socket."""
        await hub.disconnect(_find(socket_id))
        return DisconnectResult(socket_id=socket_id)

    @app.get(f"{API_BASE}/rooms", response_model=RoomList, dependencies=admin)
    async def rooms(organization_id: OrgQuery = None) -> RoomList:
        """Every non-empty room with its level and size."""
        listed = []
        for name, count in sorted(hub.registry.rooms().items()):
            room = parse_room(name)
            if organization_id is None or room.scope.organization_id == organization_id:
                listed.append(RoomInfo(name=name, type=room.type, member_count=count))
        return RoomList(rooms=listed, total_count=len(listed))

    @app.post(f"{API_BASE}/broadcast", response_model=BroadcastResult, dependencies=admin)
    async def broadcast(request: BroadcastRequest) -> BroadcastResult:
        """Publish any server event; the payload is validated against its schema."""
        return await hub.publisher.publish(request)

    @app.post(f"{API_BASE}/broadcast/{{kind}}", response_model=BroadcastResult, dependencies=admin)
    async def broadcast_kind(
        kind: BroadcastKind,
        payload: dict[str, Any],
        event: Annotated[ServerEvent | None, Query()] = None,
        priority: Annotated[Priority, Query()] = Priority.MEDIUM,
        requires_ack: Annotated[bool, Query()] = False,
    ) -> BroadcastResult:
        """Publish one channel's payload to its own organization, department and queue."""
        try:
            chosen = kind.event(event)
        except ValueError as exc:
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, str(exc)) from None
        return await hub.publisher.publish(
            BroadcastRequest(
                event=chosen,
                data=payload,
                target=BroadcastTarget(),
                priority=priority,
                requires_ack=requires_ack,
            )
        )

    return BodyLimit(app, settings.max_message_size_bytes)
