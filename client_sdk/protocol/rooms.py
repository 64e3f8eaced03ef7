"""Scopes, room names and the delivery rule (protocol section 4).

:class:`Scope` is the protocol's one notion of "which part of an
organization": the filter of a subscription, the target of a message, the
scope of a room. Rooms are plain strings so that any Socket.IO server can
use them as they are:

- ``org:{org}``: every authenticated socket of the organization;
- ``{channel}:org:{org}``, ``{channel}:org:{org}:dept:{dept}``,
  ``{channel}:org:{org}:queue:{queue}``,
  ``{channel}:org:{org}:dept:{dept}:queue:{queue}``: a subscription.

The delivery rule has two faces that must agree, and a property test holds
them together: the server sends a message for channel C and target T to the
rooms :func:`delivery_rooms` names, and a client asks :meth:`Scope.covers`
whether one of its filters wanted it. Identifiers never contain a colon, so
parsing is unambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

from pydantic import ConfigDict, with_config

from .events import CONCRETE_CHANNELS, Channel
from .identifiers import Identifier, is_identifier

__all__ = [
    "ORG_ROOM_PREFIX",
    "Room",
    "RoomType",
    "Scope",
    "delivery_rooms",
    "org_room",
    "parse_room",
    "subscription_room",
]

ORG_ROOM_PREFIX: Final = "org:"

_SCOPE_FIELDS: Final = ("organization_id", "department_id", "queue_name")


class RoomType(StrEnum):
    """The level of a room, as counted by ``rooms_by_type`` in the stats."""

    ORG = "org"
    DEPT = "dept"
    QUEUE = "queue"


# ``extra="ignore"``: an envelope's ``target`` from a newer server may carry
# more than these three fields and must still parse. Built in code, a
# misspelt keyword is still a TypeError (it is a plain dataclass).
@with_config(
    ConfigDict(
        extra="ignore",
        json_schema_extra={
            "description": "An organization, optionally narrowed to one department and one "
            "queue (independently). As a message target, no organization means every "
            "organization (an admin broadcast)."
        },
    )
)
@dataclass(frozen=True, slots=True)
class Scope:
    """An organization, optionally narrowed to one department and one queue.

    The two optional fields are independent: a queue filter without a
    department matches that queue in every department. Without an
    organization, a scope means "the authenticated organization" as a
    subscription filter, and "every organization" as a message target (an
    admin broadcast, the one message that may span organizations).

    Raises:
        ValueError: a field is not a protocol identifier.

    Example:
        >>> Scope("acme", queue_name="support").covers(Scope("acme", "care", "support"))
        True
    """

    organization_id: Identifier | None = None
    department_id: Identifier | None = None
    queue_name: Identifier | None = None

    def __post_init__(self) -> None:
        for name in _SCOPE_FIELDS:
            value = getattr(self, name)
            if value is not None and not is_identifier(value):
                raise ValueError(f"{name} is not a valid identifier: {value!r}")

    def covers(self, target: Scope) -> bool:
        """Whether a subscription with this filter receives a message for ``target``.

        True when every field this filter sets equals the target's, and for
        a target of no organization (an admin broadcast to everyone). It
        agrees with :func:`delivery_rooms`: for a filter with an
        organization, ``covers(t)`` holds exactly when the filter's
        subscription room is among the delivery rooms of ``t``.
        """
        if target.organization_id is None:
            return True
        return (
            (self.organization_id is None or self.organization_id == target.organization_id)
            and (self.department_id is None or self.department_id == target.department_id)
            and (self.queue_name is None or self.queue_name == target.queue_name)
        )

    def within(self, organization_id: str) -> Scope:
        """This scope with ``organization_id`` filled in when it names none."""
        if self.organization_id is not None:
            return self
        return replace(self, organization_id=organization_id)

    def fields(self) -> dict[str, str]:
        """The fields that are set, as a request's filter or a payload carries them."""
        return {name: value for name in _SCOPE_FIELDS if (value := getattr(self, name)) is not None}

    def __str__(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.fields().items()) or "(any)"


@dataclass(frozen=True, slots=True)
class Room:
    """A parsed room name: ``channel`` is ``None`` for the organization room."""

    channel: Channel | None
    scope: Scope

    @property
    def organization_id(self) -> str:
        """The organization the room belongs to (every room has one)."""
        org = self.scope.organization_id
        assert org is not None  # parse_room never builds a room without one
        return org

    @property
    def name(self) -> str:
        """The room's wire name."""
        if self.channel is None:
            return org_room(self.organization_id)
        return subscription_room(self.channel, self.scope)

    @property
    def type(self) -> RoomType:
        """The room's level: a queue filter outranks a department filter."""
        if self.scope.queue_name is not None:
            return RoomType.QUEUE
        if self.scope.department_id is not None:
            return RoomType.DEPT
        return RoomType.ORG


def org_room(organization_id: str) -> str:
    """The room every authenticated socket of ``organization_id`` is in."""
    return f"{ORG_ROOM_PREFIX}{organization_id}"


def subscription_room(channel: Channel, scope: Scope) -> str:
    """The room a subscription to ``channel`` with filter ``scope`` joins.

    Raises:
        ValueError: ``channel`` is ``all`` (expand it first), or ``scope``
            names no organization (fill it in with :meth:`Scope.within`).
    """
    if channel is Channel.ALL:
        raise ValueError("'all' has no room of its own; expand it into channels")
    if scope.organization_id is None:
        raise ValueError("a subscription room needs an organization")
    name = f"{channel.value}:org:{scope.organization_id}"
    if scope.department_id is not None:
        name += f":dept:{scope.department_id}"
    if scope.queue_name is not None:
        name += f":queue:{scope.queue_name}"
    return name


def delivery_rooms(channel: Channel, target: Scope) -> tuple[str, ...]:
    """Every room that a message of ``channel`` for ``target`` must reach.

    A subscription matches when each field of its filter equals the target's,
    so the candidates are the target with each optional field kept or dropped.
    It runs once per broadcast, on validated input: it builds the names
    directly instead of a scope per candidate.

    Raises:
        ValueError: ``channel`` is ``all``, or ``target`` names no
            organization (such a broadcast goes to every organization's
            rooms, which only the server can list).
    """
    org, dept, queue = target.organization_id, target.department_id, target.queue_name
    if channel is Channel.ALL:
        raise ValueError("'all' has no room of its own; a message has one channel")
    if org is None:
        raise ValueError("delivery rooms need the target's organization")
    base = f"{channel.value}:org:{org}"
    rooms = [base]
    if dept is not None:
        rooms.append(f"{base}:dept:{dept}")
    if queue is not None:
        rooms.append(f"{base}:queue:{queue}")
    if dept is not None and queue is not None:
        rooms.append(f"{base}:dept:{dept}:queue:{queue}")
    return tuple(rooms)


_CHANNELS_BY_NAME: Final = {c.value: c for c in CONCRETE_CHANNELS}


def parse_room(name: str) -> Room:
    """Parse a room name produced by :func:`org_room` or :func:`subscription_room`.

    Raises:
        ValueError: ``name`` is not a room of this protocol.
    """
    parts = name.split(":")
    if len(parts) == 2 and parts[0] == "org":
        return Room(None, Scope(parts[1]))
    if len(parts) < 3 or parts[1] != "org" or parts[0] not in _CHANNELS_BY_NAME:
        raise ValueError(f"not a room name: {name!r}")
    fields: dict[str, str] = {}
    rest = parts[3:]
    for key, field in (("dept", "department_id"), ("queue", "queue_name")):
        if len(rest) >= 2 and rest[0] == key:
            fields[field] = rest[1]
            rest = rest[2:]
    if rest:
        raise ValueError(f"not a room name: {name!r}")
    return Room(_CHANNELS_BY_NAME[parts[0]], Scope(parts[2], **fields))
