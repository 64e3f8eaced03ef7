"""Connections and rooms, whatever transport carries them.

The registry is the server's single record of who is connected, who they
are and which rooms they are in. Socket.IO sockets and plain-WebSocket
bridge sockets are both in it, so the limits, the room size and the
management API see one population; delivery to Socket.IO sockets still goes
through python-socketio's own rooms (kept in step by the :class:`Link`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from client_sdk.protocol import ConnectionStatus, org_room, utc_now

from .auth import Identity
from .ratelimit import RateWindow

__all__ = ["Connection", "Link", "Registry", "RegistryObserver", "SharedLimits"]


class Link(Protocol):
    """What the protocol logic needs from a transport."""

    @property
    def transport(self) -> str:
        """``websocket``, ``polling`` or ``bridge``."""
        ...

    async def send(self, event: str, data: Any) -> None:
        """Send one server event to this socket (a message may wait for its batch)."""
        ...

    async def send_replayed(self, event: str, data: Any) -> None:
        """Send a replayed message: paced by the socket's drain, never cut as too slow."""
        ...

    def start_batching(self) -> None:
        """From now on gather this socket's messages into ``batch`` events (section 5)."""
        ...

    async def send_ack(self, ack_id: int, data: Any) -> None:
        """Answer the client request that carried ``ack_id``."""
        ...

    async def join(self, room: str) -> None:
        """Put the socket in the transport's own room (if it has rooms)."""
        ...

    async def leave(self, room: str) -> None:
        """Take the socket out of the transport's own room."""
        ...

    async def close(self) -> None:
        """Kick the socket: tell it it is disconnected and close its transport."""
        ...

    async def drop(self) -> None:
        """Close the transport without the kick (a shutdown: the client may come back)."""
        ...


class RegistryObserver(Protocol):
    """Told of every change of a registry, synchronously (a cluster mirrors them to Redis)."""

    def released(self, socket_id: str) -> None:
        """The socket left the registry (and so every room)."""
        ...

    def joined(self, connection: Connection, room: str) -> None:
        """The socket entered ``room``."""
        ...

    def left(self, connection: Connection, room: str) -> None:
        """The socket left ``room`` (not told when it leaves the registry)."""
        ...


@dataclass(eq=False, slots=True, weakref_slot=True)
class Connection:
    """One connected socket and what the server knows about it."""

    socket_id: str
    link: Link
    identity: Identity | None = None
    capabilities: frozenset[str] = frozenset()
    rooms: set[str] = field(default_factory=set)
    connected_at: datetime = field(default_factory=utc_now)
    last_activity_at: datetime = field(default_factory=utc_now)
    auth_timer: asyncio.Task[None] | None = None
    rate_window: RateWindow = field(default_factory=RateWindow)
    closing: bool = False

    @property
    def status(self) -> ConnectionStatus:
        """``authenticated`` once the socket proved who it is, else ``connected``."""
        return "authenticated" if self.identity is not None else "connected"

    @property
    def organization_id(self) -> str | None:
        """The organization of an authenticated socket."""
        return self.identity.organization_id if self.identity is not None else None

    @property
    def subscriptions(self) -> list[str]:
        """The subscription rooms, sorted; the organization room is not a subscription."""
        org = self.organization_id
        own = org_room(org) if org is not None else None
        return sorted(r for r in self.rooms if r != own)

    def touch(self) -> None:
        """Record activity from the client."""
        self.last_activity_at = utc_now()


_RECIPIENT_SETS_KEPT = 64
"""Lists of rooms whose recipients a registry keeps at most (all are forgotten past it)."""


class Registry:
    """Connections by socket id and room membership, for one server process.

    Every mutation is synchronous, so a check (room size, connection count)
    and the change it guards cannot be interleaved with another task's.
    """

    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}
        self._members: dict[str, set[str]] = {}
        self._authenticated_by_org: Counter[str] = Counter()
        # recipient_ids' answers, until a socket comes, goes, joins or leaves.
        self._recipients: dict[tuple[str, ...], frozenset[str]] = {}
        self.observer: RegistryObserver | None = None
        """Told of every change (a cluster node's mirror in Redis); ``None`` on a single node."""

    # -- connections --------------------------------------------------------

    def add(self, connection: Connection) -> None:
        """Register a new socket."""
        self._connections[connection.socket_id] = connection
        self._changed()

    def remove(self, socket_id: str) -> Connection | None:
        """Forget a socket and take it out of every room."""
        connection = self._connections.pop(socket_id, None)
        if connection is None:
            return None
        self._changed()
        for room in list(connection.rooms):
            self._leave(connection, room)
        if self.observer is not None:
            self.observer.released(socket_id)
        if connection.identity is not None:
            self._authenticated_by_org[connection.identity.organization_id] -= 1
            if self._authenticated_by_org[connection.identity.organization_id] <= 0:
                del self._authenticated_by_org[connection.identity.organization_id]
        return connection

    def get(self, socket_id: str) -> Connection | None:
        """The connection with this socket id, if it is connected."""
        return self._connections.get(socket_id)

    def __len__(self) -> int:
        return len(self._connections)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._connections.values()))

    def mark_authenticated(self, connection: Connection, identity: Identity) -> None:
        """Record that ``connection`` is now ``identity``."""
        connection.identity = identity
        self._authenticated_by_org[identity.organization_id] += 1

    def authenticated_in(self, organization_id: str) -> int:
        """How many authenticated sockets the organization has."""
        return self._authenticated_by_org.get(organization_id, 0)

    def connections_by_org(self) -> dict[str, int]:
        """Authenticated sockets per organization."""
        return dict(self._authenticated_by_org)

    # -- rooms --------------------------------------------------------------

    def join(self, connection: Connection, room: str) -> bool:
        """Put ``connection`` in ``room``; ``False`` if it was already there."""
        if room in connection.rooms:
            return False
        connection.rooms.add(room)
        self._members.setdefault(room, set()).add(connection.socket_id)
        self._changed()
        if self.observer is not None:
            self.observer.joined(connection, room)
        return True

    def leave(self, connection: Connection, room: str) -> bool:
        """Take ``connection`` out of ``room``; ``False`` if it was not there."""
        if not self._leave(connection, room):
            return False
        if self.observer is not None:
            self.observer.left(connection, room)
        return True

    def _leave(self, connection: Connection, room: str) -> bool:
        if room not in connection.rooms:
            return False
        connection.rooms.discard(room)
        self._changed()
        members = self._members.get(room)
        if members is not None:
            members.discard(connection.socket_id)
            if not members:
                # Forgotten at once: a periodic clean-up let a few clients
                # within the rate limit pile up thousands of empty rooms.
                del self._members[room]
        return True

    def member_count(self, room: str) -> int:
        """How many sockets are in ``room``."""
        return len(self._members.get(room, ()))

    def member_ids(self, rooms: Iterable[str]) -> set[str]:
        """The socket id of every connection in any of ``rooms``, each once."""
        seen: set[str] = set()
        for room in rooms:
            seen.update(self._members.get(room, ()))
        return seen

    def recipient_ids(self, rooms: Sequence[str]) -> frozenset[str]:
        """:meth:`member_ids`, plus the sockets named by id in ``rooms``; kept until a change.

        A broadcast goes to the same rooms as the one before it far more
        often than a socket comes, goes, joins or leaves: the answer is kept
        (per list of rooms, until one of those changes) instead of being
        remade for every message. The same set is returned until then, so a
        caller may key its own cache on its identity.
        """
        key = tuple(rooms)
        found = self._recipients.get(key)
        if found is None:
            if len(self._recipients) >= _RECIPIENT_SETS_KEPT:
                self._recipients.clear()
            ids = self.member_ids(key)
            ids.update(room for room in key if room in self._connections)
            found = self._recipients[key] = frozenset(ids)
        return found

    def _changed(self) -> None:
        if self._recipients:
            self._recipients.clear()

    def connections(self, socket_ids: Iterable[str]) -> list[Connection]:
        """The connections with these ids (ids no longer connected are skipped)."""
        return [c for sid in socket_ids if (c := self._connections.get(sid)) is not None]

    def rooms(self) -> dict[str, int]:
        """Every non-empty room with its member count."""
        return {room: len(m) for room, m in self._members.items() if m}

    def known_room_count(self) -> int:
        """Rooms held in memory (an emptied room is forgotten at once, so: the non-empty ones)."""
        return len(self._members)


class SharedLimits(Protocol):
    """Connection limits kept with other servers (a cluster): awaited, atomic claims.

    A claimed slot is given back when the socket leaves the registry (its
    observer is told), whatever the reason.
    """

    async def claim_socket(self, connection: Connection) -> None:
        """Count a new socket against the shared total.

        Raises:
            ProtocolError: ``CONNECTION_LIMIT``, or a retryable ``INTERNAL_ERROR``.
        """
        ...

    async def claim_org(self, connection: Connection, organization_id: str) -> None:
        """Count an authenticating socket against its organization's shared limit.

        Raises:
            ProtocolError: ``CONNECTION_LIMIT``, or a retryable ``INTERNAL_ERROR``.
        """
        ...
