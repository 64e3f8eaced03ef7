"""The server's core: connections in and out, requests dispatched and answered.

Transports (the Socket.IO adapter and the plain-WebSocket bridge) call into
a :class:`Hub` once their screen (see :mod:`.screening`) has let an event
through. The hub is given the registry, the stats and the request handlers
it works with; it never imports a transport, and it publishes nothing (the
shutdown notice is the application's, which knows both the hub and the
publisher).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Mapping
from typing import Any

from client_sdk.protocol import (
    AuthenticateRequest,
    ClientEvent,
    ControlEvent,
    ErrorCode,
    ProtocolError,
)

from .config import ServerSettings
from .connections import Connection, Link, Registry, SharedLimits
from .handlers import ClientHandlers, Reply
from .logformat import bind_ids
from .metrics import ServerMetrics
from .stats import ServerStats
from .validation import parse_model

__all__ = ["Hub"]

log = logging.getLogger("reference_server")
connection_log = logging.getLogger("reference_server.connections")
message_log = logging.getLogger("reference_server.messages")


class Hub:
    """Sockets admitted and forgotten, requests dispatched and answered, for every transport."""

    def __init__(
        self,
        settings: ServerSettings,
        registry: Registry,
        stats: ServerStats,
        handlers: ClientHandlers,
        metrics: ServerMetrics | None = None,
        shared_limits: SharedLimits | None = None,
    ) -> None:
        self.settings = settings
        self.shared_limits = shared_limits
        self.registry = registry
        self.stats = stats
        self.handlers = handlers
        self.metrics = metrics or ServerMetrics(registry, stats, enabled=False)
        self._draining = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Transport sessions that are open but not yet a socket (an Engine.IO
        # session before its CONNECT): they hold file descriptors and memory,
        # so they count against max_connections_total like sockets do.
        self._reserved = 0

    @property
    def draining(self) -> bool:
        """Whether the server is shutting down (new sockets are refused)."""
        return self._draining

    # -- sockets in and out -------------------------------------------------

    async def admit(self, socket_id: str, link: Link) -> Connection:
        """Register a new socket and start its authentication timer.

        Raises:
            ProtocolError: ``CONNECTION_LIMIT`` when the server (or its cluster)
                is full or draining; ``INTERNAL_ERROR`` when a cluster's Redis is away.
        """
        self._check_capacity()
        connection = Connection(socket_id, link)
        self.registry.add(connection)
        if self.shared_limits is not None:
            try:
                await self.shared_limits.claim_socket(connection)
            except ProtocolError:
                connection.closing = True  # refused: not counted as a disconnect
                self.registry.remove(socket_id)
                raise
        if self.settings.auth_required:
            connection.auth_timer = self._spawn(self._expire_unauthenticated(connection))
        if self.settings.log_connection_events:
            connection_log.info(
                "connected %s over %s", socket_id, link.transport, extra={"socket_id": socket_id}
            )
        return connection

    def _check_capacity(self) -> None:
        if self.draining:
            raise ProtocolError(ErrorCode.CONNECTION_LIMIT, "the server is shutting down")
        if len(self.registry) + self._reserved >= self.settings.max_connections_total:
            raise ProtocolError(
                ErrorCode.CONNECTION_LIMIT,
                "the server has reached its connection limit",
                details={"limit": self.settings.max_connections_total},
            )

    def reserve(self) -> None:
        """Hold a place for a transport session that is not a socket yet.

        Raises:
            ProtocolError: ``CONNECTION_LIMIT`` when the server is full or draining.
        """
        self._check_capacity()
        self._reserved += 1

    def release(self) -> None:
        """Give back a place taken by :meth:`reserve`."""
        self._reserved = max(0, self._reserved - 1)

    @property
    def reserved(self) -> int:
        """Transport sessions open without being a socket yet."""
        return self._reserved

    async def authenticate_handshake(
        self, connection: Connection, auth: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Authenticate from the handshake ``auth`` object; the ``authenticated`` body.

        Raises:
            ProtocolError: the handshake must be refused with this error.
        """
        try:
            request = parse_model(AuthenticateRequest, auth, "handshake auth")
            identity = await self.handlers.authenticate_request(connection, request)
        except ProtocolError as error:
            self.metrics.record_auth(error.code)
            raise
        self.metrics.record_auth("success")
        return self.handlers.auth_body(connection, identity)

    def forget(self, socket_id: str) -> None:
        """Drop a socket that disconnected (or was refused)."""
        connection = self.registry.remove(socket_id)
        if connection is None:
            return
        if connection.auth_timer is not None:
            connection.auth_timer.cancel()
        if not connection.closing:  # the server's own closes were counted with their reason
            self.metrics.record_disconnect("client")
        if self.settings.log_connection_events:
            connection_log.info("disconnected %s", socket_id, extra=_ids(connection))

    async def disconnect(self, connection: Connection, *, reason: str = "kicked") -> None:
        """Close a socket from the server side, counted under ``reason``.

        The reason ``shutdown`` drops the transport without the protocol's
        kick, so that clients reconnect to the restarted server.
        """
        if connection.closing:
            return
        connection.closing = True
        self.stats.record_disconnect(reason)
        with contextlib.suppress(Exception):
            if reason == "shutdown":
                await connection.link.drop()
            else:
                await connection.link.close()
        self.forget(connection.socket_id)

    async def _expire_unauthenticated(self, connection: Connection) -> None:
        await asyncio.sleep(self.settings.auth_timeout_ms / 1000)
        if connection.identity is None and self.registry.get(connection.socket_id) is connection:
            connection.auth_timer = None  # this task is ending; do not cancel it in forget()
            error = ProtocolError(ErrorCode.AUTH_FAILED, "authentication timeout")
            await self.send_error(connection, error)
            await self.disconnect(connection, reason="auth_timeout")

    # -- requests and answers -------------------------------------------------

    async def dispatch(
        self, connection: Connection, event: Any, args: list[Any], ack_id: int | None
    ) -> None:
        """Handle one client event and answer it (ack or ``error`` event)."""
        # Each event runs in its own task: the ids bound here tag every log line of it.
        bind_ids(lambda: _ids(connection))
        if self.settings.log_all_messages:
            message_log.info("%s -> %s %r", connection.socket_id, event, args)
        authenticating = event == ClientEvent.AUTHENTICATE
        try:
            reply = await self._handle(connection, event, args)
        except ProtocolError as error:
            if authenticating:
                self.metrics.record_auth(error.code)
            await self.refuse(connection, error, ack_id)
            return
        except Exception:
            log.exception("handler for %r failed", event)
            internal = ProtocolError(ErrorCode.INTERNAL_ERROR, "internal error")
            await self.refuse(connection, internal, ack_id)
            return
        if authenticating:
            self.metrics.record_auth("success")
        if ack_id is not None:
            await connection.link.send_ack(ack_id, reply.ack)
        elif reply.unasked_event is not None:
            await connection.link.send(reply.unasked_event, reply.ack)
        for follow_event, data in reply.follow_ups:
            await connection.link.send(follow_event, data)
        if reply.after is not None:
            await reply.after()

    async def _handle(self, connection: Connection, event: Any, args: list[Any]) -> Reply:
        handler = self.handlers.table.get(event) if isinstance(event, str) else None
        if handler is None:
            shown = event[:100] if isinstance(event, str) else type(event).__name__
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"unknown event: {shown!r}")
        if len(args) > 1:
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{event} takes one argument")
        data = args[0] if args else None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{event} takes a JSON object")
        return await handler(connection, data)

    async def refuse(
        self, connection: Connection, error: ProtocolError, ack_id: int | None
    ) -> None:
        """Answer a refused request: in its ack if it asked for one, else as ``error``."""
        self.stats.record_error(error.code)
        if ack_id is not None:
            await connection.link.send_ack(ack_id, error.to_ack())
        else:
            await connection.link.send(ControlEvent.ERROR, error.to_wire())

    async def send_error(self, connection: Connection, error: ProtocolError) -> None:
        """Send an ``error`` event that answers no particular request."""
        self.stats.record_error(error.code)
        with contextlib.suppress(Exception):
            await connection.link.send(ControlEvent.ERROR, error.to_wire())

    # -- background work ----------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def stop_admitting(self) -> bool:
        """Refuse every new socket from now on (the server is draining).

        Returns ``False`` if it already was, so that shutdown happens once.
        """
        if self._draining:
            return False
        self._draining = True
        return True

    async def disconnect_all(self) -> None:
        """Close every socket and stop the background work (the end of a shutdown)."""
        for connection in list(self.registry):
            await self.disconnect(connection, reason="shutdown")
        for task in list(self._tasks):
            task.cancel()


def _ids(connection: Connection) -> dict[str, str]:
    """The ids a log line about ``connection`` carries (see :mod:`.logformat`)."""
    ids = {"socket_id": connection.socket_id}
    if connection.identity is not None:
        ids["user_id"] = connection.identity.user_id
        ids["organization_id"] = connection.identity.organization_id
    return ids
