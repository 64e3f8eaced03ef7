"""Deliberately faulty servers: a real reference server with one behaviour broken.

Each function patches one running :class:`ReferenceServer` instance (its hub,
publisher or fan-out), never the classes, so other servers in the process
are untouched. The contract suite must catch each fault with the check
meant for it.
"""

from __future__ import annotations

from typing import Any

from client_sdk.protocol import Scope, ServerEvent, parse_room
from reference_server.app import ReferenceServer
from reference_server.connections import Connection

__all__ = [
    "close_on_oversize",
    "deliver_once_per_room",
    "drop_envelope_field",
    "ignore_auth_timeout",
    "ignore_oversize",
    "leak_across_organizations",
]


def leak_across_organizations(server: ReferenceServer) -> None:
    """Match rooms ignoring their organization: the same dept/queue rooms of others get it."""
    hub = server.hub
    original = hub.publisher._recipients

    def shape(room: str) -> tuple[object, ...] | None:
        try:
            parsed = parse_room(room)
        except ValueError:
            return None
        return (parsed.channel, parsed.scope.department_id, parsed.scope.queue_name)

    def leaky(
        event: ServerEvent, target: Scope, socket_ids: tuple[str, ...] | None
    ) -> tuple[list[str], set[str]]:
        rooms, _ = original(event, target, socket_ids)
        shapes = {shape(room) for room in rooms}
        twins = [r for r in hub.registry.rooms() if r not in rooms and shape(r) in shapes]
        rooms = rooms + twins
        return rooms, hub.registry.member_ids(rooms)

    hub.publisher._recipients = leaky  # type: ignore[method-assign]


def deliver_once_per_room(server: ReferenceServer) -> None:
    """Emit once per matching room instead of once to their union (duplicates)."""
    fanout = server.hub.publisher.fanout
    assert fanout is not None
    original = fanout.emit_to_rooms

    async def per_room(event: str, data: dict[str, Any], rooms: list[str]) -> None:
        for room in rooms:
            await original(event, data, [room])

    fanout.emit_to_rooms = per_room  # type: ignore[method-assign]


def ignore_auth_timeout(server: ReferenceServer) -> None:
    """Never expire unauthenticated sockets."""

    async def no_timer(connection: Connection) -> None:
        return None

    server.hub._expire_unauthenticated = no_timer  # type: ignore[method-assign]


def drop_envelope_field(server: ReferenceServer, field: str) -> None:
    """Send envelopes without ``field``."""
    publisher = server.hub.publisher
    original = publisher._deliver

    async def deliver(
        event: str,
        envelope: dict[str, Any],
        rooms: list[str],
        member_ids: set[str],
        requires_ack: bool,
    ) -> None:
        trimmed = {k: v for k, v in envelope.items() if k != field}
        await original(event, trimmed, rooms, member_ids, requires_ack)

    publisher._deliver = deliver  # type: ignore[method-assign]


def _on_oversize(server: ReferenceServer, *, close: bool) -> None:
    hub = server.hub
    original = hub.screen
    limit = hub.settings.max_message_size_bytes

    async def screen(connection: Connection, size: int, ack_id: int | None) -> bool:
        if size <= limit:
            return await original(connection, size, ack_id)
        if close:
            await hub.disconnect(connection)
        return False  # never answered

    hub.screen = screen  # type: ignore[method-assign]


def ignore_oversize(server: ReferenceServer) -> None:
    """Drop an oversized message without answering it."""
    _on_oversize(server, close=False)


def close_on_oversize(server: ReferenceServer) -> None:
    """Close the connection on an oversized message instead of answering it."""
    _on_oversize(server, close=True)
