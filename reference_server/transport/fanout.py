"""Room fan-out into outboxes: what a broadcast hands to every recipient socket.

The delivery (:mod:`reference_server.delivery`) decides who gets a message;
this module hands it over: one :class:`~.message.Message` per emit, given to
the :class:`~.outbox.Outbox` of each socket in the rooms, Socket.IO and bridge
alike. Nothing here writes bytes; the outboxes do.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any

from ..connections import Connection, Registry
from .message import Message
from .outbox import Outbox

__all__ = ["OutboxFanout", "outbox_of"]


def outbox_of(connection: Connection) -> Outbox | None:
    """The outbox of ``connection``'s socket (``None`` for a link without one)."""
    outbox = getattr(connection.link, "outbox", None)
    return outbox if isinstance(outbox, Outbox) else None


_OUTBOX_LISTS_KEPT = 64
"""Lists of rooms whose outboxes a fan-out keeps at most (all are forgotten past it)."""


class OutboxFanout:
    """The delivery's :class:`~reference_server.delivery.Fanout`: room emits into outboxes.

    One :class:`~.message.Message` per emit (encoded, and framed, once), handed
    to the outbox of every socket in the rooms, Socket.IO and bridge alike.
    The outboxes of a list of rooms are looked up once and kept while the
    registry's answer for those rooms stays the same (no socket came, went,
    joined or left): a broadcast then costs one hand-off per recipient.
    """

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._outboxes: dict[tuple[str, ...], tuple[frozenset[str], list[Outbox]]] = {}

    async def emit_to_rooms(
        self, event: str, data: dict[str, Any], rooms: list[str], skip: Collection[str] = ()
    ) -> None:
        """Deliver to the union of ``rooms`` (a socket id names its socket), but not ``skip``."""
        if not rooms:
            return
        message = Message(event, data)
        ids = self._registry.recipient_ids(rooms)
        if skip:
            outboxes = self._outboxes_of(ids.difference(skip))
        else:
            key = tuple(rooms)
            kept = self._outboxes.get(key)
            if kept is not None and kept[0] is ids:
                outboxes = kept[1]
            else:
                outboxes = self._outboxes_of(ids)
                if len(self._outboxes) >= _OUTBOX_LISTS_KEPT:
                    self._outboxes.clear()
                self._outboxes[key] = (ids, outboxes)
        for outbox in outboxes:
            outbox.deliver(message)

    def _outboxes_of(self, ids: Iterable[str]) -> list[Outbox]:
        found = (outbox_of(c) for c in self._registry.connections(ids))
        return [outbox for outbox in found if outbox is not None]

    async def emit_with_ack(
        self, socket_id: str, event: str, data: dict[str, Any], on_ack: Callable[..., None]
    ) -> None:
        """Deliver to one socket and call ``on_ack`` when it acknowledges (never in a batch)."""
        connection = self._registry.get(socket_id)
        outbox = outbox_of(connection) if connection is not None else None
        if outbox is not None:
            outbox.deliver(Message(event, data), on_ack)
