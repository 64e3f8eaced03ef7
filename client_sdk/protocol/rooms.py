"""Room naming, parsing and the delivery rule (protocol section 4).

Rooms are plain strings so that any Socket.IO server can use them as they are:

- ``org:{org}``: every authenticated socket of the organization;
- ``{channel}:org:{org}``, ``{channel}:org:{org}:dept:{dept}``,
  ``{channel}:org:{org}:queue:{queue}``,
  ``{channel}:org:{org}:dept:{dept}:queue:{queue}``: a subscription.

A message for channel C with target (O, D?, Q?) goes to the union of the
rooms whose filter fields all equal the target's (:func:`delivery_rooms`).
Identifiers never contain a colon, so parsing is unambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from .events import CONCRETE_CHANNELS, Channel
from .identifiers import is_identifier

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


class RoomType(StrEnum):
    """The level of a room, as counted by ``rooms_by_type`` in the stats."""

    ORG = "org"
    DEPT = "dept"
    QUEUE = "queue"


@dataclass(frozen=True, slots=True)
class Scope:
    """An organization with an optional department and queue.

    Serves both as a subscription filter and as a message target. The two
    optional fields are independent: a queue filter without a department
    matches that queue in every department.
    """

    organization_id: str
    department_id: str | None = None
    queue_name: str | None = None

    def __post_init__(self) -> None:
        for name in ("organization_id", "department_id", "queue_name"):
            value = getattr(self, name)
            if (value is not None or name == "organization_id") and not is_identifier(value):
                raise ValueError(f"{name} is not a valid identifier: {value!r}")


@dataclass(frozen=True, slots=True)
class Room:
    """A parsed room name: ``channel`` is ``None`` for the organization room."""

    channel: Channel | None
    scope: Scope

    @property
    def name(self) -> str:
        """The room's wire name."""
        if self.channel is None:
            return org_room(self.scope.organization_id)
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
        ValueError: ``channel`` is ``all``; expand it first.
    """
    if channel is Channel.ALL:
        raise ValueError("'all' has no room of its own; expand it into channels")
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
    """
    org, dept, queue = target.organization_id, target.department_id, target.queue_name
    scopes = [Scope(org)]
    if dept is not None:
        scopes.append(Scope(org, department_id=dept))
    if queue is not None:
        scopes.append(Scope(org, queue_name=queue))
    if dept is not None and queue is not None:
        scopes.append(Scope(org, department_id=dept, queue_name=queue))
    return tuple(subscription_room(channel, s) for s in scopes)


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
