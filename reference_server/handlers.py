"""The client requests of protocol sections 3, 4 and 7, independent of transport.

Each handler takes a connection and the request's data and returns a
:class:`Reply` (the ack, plus events to send after it), or raises
:class:`ProtocolError`. State changes happen before the first ``await``, so
the checks that guard them (room size, connection limit) cannot race.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from client_sdk.protocol import (
    PROTOCOL_VERSION,
    AuthenticateRequest,
    Capability,
    ClientEvent,
    ControlEvent,
    ErrorCode,
    PingRequest,
    ProtocolError,
    ServerInfo,
    ServerLimits,
    SubscribeRequest,
    UnsubscribeRequest,
    expand_channels,
    format_timestamp,
    org_room,
    parse_room,
    subscription_room,
    utc_now,
)

from .auth import Authenticator, Identity
from .config import ServerSettings
from .connections import Connection, Registry, SharedLimits
from .resume import Resumer, streams_of
from .validation import parse_model

__all__ = ["ClientHandlers", "Reply", "describe_server"]

NO_CAPABILITIES: frozenset[str] = frozenset()
"""What a client that announced no capability has (one object for all of them)."""

log = logging.getLogger("reference_server.subscriptions")
connection_log = logging.getLogger("reference_server.connections")

SERVER_CAPABILITIES: tuple[Capability, ...] = (Capability.ACKS,)
"""What every reference server can do; a store adds ``replay`` and ``snapshot``."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What a handled request sends back.

    ``unasked_event`` names the event that carries the ack's body when the
    client asked for no ack (``authenticate`` without an ack still tells the
    client it succeeded, which the wscat session relies on).
    """

    ack: dict[str, Any]
    follow_ups: list[tuple[str, Any]] = field(default_factory=list)
    unasked_event: str | None = None
    after: Callable[[], Awaitable[None]] | None = None
    """Run once the ack and the follow-ups are out (a replay's held live messages)."""


Handler = Callable[[Connection, Mapping[str, Any]], Awaitable[Reply]]


def describe_server(
    settings: ServerSettings,
    *,
    name: str,
    version: str,
    capabilities: tuple[Capability, ...] = (),
) -> ServerInfo:
    """The ``server`` object of the authentication answer: who answers, and its limits."""
    batching = settings.batching_enabled
    offered = (*SERVER_CAPABILITIES, *((Capability.BATCH,) if batching else ()), *capabilities)
    return ServerInfo(
        name=name,
        version=version,
        protocol=PROTOCOL_VERSION,
        capabilities=[str(c) for c in offered],
        limits=ServerLimits(
            max_message_size_bytes=settings.max_message_size_bytes,
            rate_limit_messages_per_second=settings.rate_limit_messages_per_second,
            batch_window_ms=settings.batch_window_ms if batching else None,
            batch_max_messages=settings.batch_max_messages if batching else None,
        ),
    )


class ClientHandlers:
    """The request handlers of one server, keyed by event name."""

    def __init__(
        self,
        settings: ServerSettings,
        registry: Registry,
        authenticator: Authenticator,
        server: ServerInfo,
        resumer: Resumer,
        shared_limits: SharedLimits | None = None,
    ) -> None:
        self._settings = settings
        self.shared_limits = shared_limits
        """A cluster's limits, checked after this server's own (``None``: a single server)."""
        self._registry = registry
        self._authenticator = authenticator
        self._server = server
        self._resumer = resumer
        self.table: dict[str, Handler] = {
            ClientEvent.AUTHENTICATE: self.authenticate,
            ClientEvent.SUBSCRIBE: self.subscribe,
            ClientEvent.UNSUBSCRIBE: self.unsubscribe,
            ClientEvent.PING: self.ping,
        }

    def auth_body(self, connection: Connection, identity: Identity) -> dict[str, Any]:
        """The body of ``authenticated`` (and of the ``authenticate`` ack)."""
        return {
            "success": True,
            "user_id": identity.user_id,
            "organization_id": identity.organization_id,
            "socket_id": connection.socket_id,
            "server_time": format_timestamp(utc_now()),
            "server": self._server.model_dump(mode="json", exclude_none=True),
        }

    async def authenticate(self, connection: Connection, data: Mapping[str, Any]) -> Reply:
        """``authenticate``: prove who the socket is and join its organization room."""
        request = parse_model(AuthenticateRequest, data, "authenticate request")
        identity = await self.authenticate_request(connection, request)
        return Reply(self.auth_body(connection, identity), unasked_event=ControlEvent.AUTHENTICATED)

    async def authenticate_request(
        self, connection: Connection, request: AuthenticateRequest
    ) -> Identity:
        """Authenticate ``connection`` (by event or at the handshake).

        Raises:
            ProtocolError: ``AUTH_FAILED``, ``UNAUTHORIZED`` (other ids on an
                authenticated socket) or ``CONNECTION_LIMIT``.
        """
        current = connection.identity
        if current is not None:
            if (current.user_id, current.organization_id) == (
                request.user_id,
                request.organization_id,
            ):
                return current
            raise ProtocolError(
                ErrorCode.UNAUTHORIZED, "this socket is already authenticated as someone else"
            )
        identity = self._authenticator.authenticate(request)
        per_org = self._settings.max_connections_per_org
        if self._registry.authenticated_in(identity.organization_id) >= per_org:
            raise ProtocolError(
                ErrorCode.CONNECTION_LIMIT,
                "the organization has reached its connection limit",
                details={"limit": per_org},
            )
        if self.shared_limits is not None:
            await self.shared_limits.claim_org(connection, identity.organization_id)
            # Authenticated meanwhile: the same ids pass (the claim is idempotent), others do not.
            if connection.identity is not None:
                return await self.authenticate_request(connection, request)
        self._registry.mark_authenticated(connection, identity)
        # None announced: one shared empty set, not one per connection.
        announced = request.capabilities
        connection.capabilities = frozenset(announced) if announced else NO_CAPABILITIES
        if Capability.BATCH in connection.capabilities and self._settings.batching_enabled:
            connection.link.start_batching()
        if connection.auth_timer is not None:
            connection.auth_timer.cancel()
            connection.auth_timer = None
        room = org_room(identity.organization_id)
        self._registry.join(connection, room)
        await connection.link.join(room)
        if self._settings.log_connection_events:
            connection_log.info(
                "authenticated %s as %s@%s",
                connection.socket_id,
                identity.user_id,
                identity.organization_id,
            )
        return identity

    def _organization_for(self, connection: Connection, requested: str | None) -> str:
        org = connection.organization_id
        if org is None:
            if self._settings.auth_required:
                raise ProtocolError(ErrorCode.UNAUTHORIZED, "authenticate first")
            if requested is None:
                raise ProtocolError(
                    ErrorCode.UNAUTHORIZED,
                    "unauthenticated subscriptions must name their organization_id",
                )
            return requested
        if requested is not None and requested != org:
            raise ProtocolError(
                ErrorCode.UNAUTHORIZED, "cannot subscribe to another organization's data"
            )
        return org

    async def subscribe(self, connection: Connection, data: Mapping[str, Any]) -> Reply:
        """``subscribe``: join one room per channel for the filter, or none if any is full."""
        request = parse_model(SubscribeRequest, data, "subscribe request")
        org = self._organization_for(connection, request.organization_id)
        scope = request.scope.within(org)
        channels = expand_channels(request.channels)
        positions = self._resumer.wanted(request, org, channels)
        wanted = [subscription_room(c, scope) for c in channels]
        added = [room for room in wanted if room not in connection.rooms]
        allowed = self._settings.max_subscriptions_per_socket
        if len(connection.subscriptions) + len(added) > allowed:
            raise ProtocolError(
                ErrorCode.SUBSCRIPTION_FAILED,
                f"a socket may hold at most {allowed} subscriptions",
                details={"max_subscriptions_per_socket": allowed},
                retryable=False,
            )
        limit = self._settings.room_max_size
        full = [room for room in added if self._registry.member_count(room) >= limit]
        if full:
            raise ProtocolError(
                ErrorCode.ROOM_FULL,
                f"room {full[0]} is full",
                details={"rooms": full, "room_max_size": limit},
            )
        streams = streams_of(channels, org)
        resuming = bool(positions) or request.snapshot
        # Before the first await: from here on, live messages of these streams wait.
        hold = self._resumer.hold(connection, streams) if resuming else None
        try:
            for room in added:
                self._registry.join(connection, room)
            for room in added:
                await connection.link.join(room)
            replay = None
            if resuming:
                replay = await self._resumer.send(
                    connection, hold, scope, streams, positions, request.snapshot
                )
        except BaseException:
            # Refused (the store is unreachable, say): the socket must not stay in
            # the rooms, or live messages would reach a subscription the client was
            # told failed, and it would take them for its position.
            for room in added:
                self._registry.leave(connection, room)
            if hold is not None:
                hold.forget_unmatched()
                await hold.release()
            for room in added:
                # The refusal is what the client must hear, not a failure to leave.
                with contextlib.suppress(Exception):
                    await connection.link.leave(room)
            raise
        if self._settings.log_subscription_events and added:
            log.info("%s subscribed to %s", connection.socket_id, ", ".join(added))
        ack: dict[str, Any] = {"success": True, "subscriptions": connection.subscriptions}
        if request.since is not None:
            ack["replay"] = replay or {}
        return Reply(
            ack,
            follow_ups=[(ControlEvent.SUBSCRIBED, {"rooms": added})],
            after=hold.release if hold is not None else None,
        )

    async def unsubscribe(self, connection: Connection, data: Mapping[str, Any]) -> Reply:
        """``unsubscribe``: leave the filter's rooms, or the rooms named."""
        request = parse_model(UnsubscribeRequest, data, "unsubscribe request")
        org = self._organization_for(connection, request.organization_id)
        if request.rooms is not None:
            targets: list[str] = []
            for name in request.rooms:
                try:
                    parsed = parse_room(name)
                except ValueError:
                    raise ProtocolError(
                        ErrorCode.ROOM_NOT_FOUND, f"not a room name: {name[:200]}"
                    ) from None
                if parsed.channel is None or parsed.scope.organization_id != org:
                    raise ProtocolError(ErrorCode.UNAUTHORIZED, f"cannot leave room {name}")
                targets.append(name)
        else:
            scope = request.scope.within(org)
            targets = [subscription_room(c, scope) for c in expand_channels(request.channels or [])]
        left = [room for room in dict.fromkeys(targets) if room in connection.rooms]
        for room in left:
            self._registry.leave(connection, room)
        for room in left:
            await connection.link.leave(room)
        if self._settings.log_subscription_events and left:
            log.info("%s unsubscribed from %s", connection.socket_id, ", ".join(left))
        return Reply(
            {"success": True, "subscriptions": connection.subscriptions},
            follow_ups=[(ControlEvent.UNSUBSCRIBED, {"rooms": left})],
        )

    async def ping(self, connection: Connection, data: Mapping[str, Any]) -> Reply:
        """``client:ping``: ack and ``client:pong`` with the client's timestamp echoed."""
        parse_model(PingRequest, data, "ping")
        # Echo the client's value untouched: a float round trip would turn 17 into 17.0.
        pong = {"timestamp": data.get("timestamp"), "server_time": format_timestamp(utc_now())}
        return Reply({"success": True, **pong}, follow_ups=[(ControlEvent.PONG, pong)])
