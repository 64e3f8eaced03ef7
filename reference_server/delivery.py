"""Delivering a built message to this process's sockets, and recording deliveries.

The second half of publishing (the first, building the message, is
:mod:`.publisher`). :class:`LocalDelivery` takes one
:class:`OutgoingMessage` and hands it to the sockets of this process that
must get it: it finds the recipients in the registry, lets the replay holds
(:class:`~reference_server.resume.ReplayHolds`) withhold it from sockets
whose replay is running, and hands the rest to the :class:`Fanout` (room
emits, one emit per socket for ``requires_ack``) or to the socket's own link
(the bridge). A single server calls it once per message; a cluster node calls
it for every message any node publishes (:mod:`.cluster.distribution`).

:class:`DeliveryRecorder` is the one place a delivery is counted, for
``GET /stats`` and ``/metrics`` alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Protocol

from client_sdk.protocol import EVENT_CHANNEL, Scope, ServerEvent, delivery_rooms, org_room

from .completeness import LiveCompleteness
from .connections import Registry
from .metrics import ServerMetrics
from .resume import ReplayHolds
from .stats import ServerStats

__all__ = ["DeliveryRecorder", "Fanout", "FanoutWrapper", "LocalDelivery", "OutgoingMessage"]

log = logging.getLogger("reference_server.broadcasts")


class Fanout(Protocol):
    """Delivery to Socket.IO sockets through python-socketio's rooms.

    The publisher is given its fan-out when it is built. ``IntradayApp`` and
    ``ReferenceServer`` take a ``wrap_fanout`` (a :data:`FanoutWrapper`) that
    wraps the real one: the way to build a server that misdelivers, for the
    tests that prove a client or the contract suite notices.
    """

    async def emit_to_rooms(
        self, event: str, data: dict[str, Any], rooms: list[str], skip: Collection[str] = ()
    ) -> None:
        """Send to every socket in any of ``rooms`` but those in ``skip``, once per socket."""
        ...

    async def emit_with_ack(
        self, socket_id: str, event: str, data: dict[str, Any], on_ack: Any
    ) -> None:
        """Send to one socket with an ack callback ``on_ack()``."""
        ...


FanoutWrapper = Callable[[Fanout, Registry], Fanout]
"""Builds the fan-out a server uses from its real one and the registry (a test seam)."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A broadcast validated and built, ready to be delivered: the one value publishing makes.

    ``target`` is already checked (it names an organization, or it is an
    admin broadcast of the notifications channel). ``stream`` is the stream
    the message belongs to (``None`` for a message of no organization or for
    chosen sockets: such a message is never logged nor replayed).
    """

    event: ServerEvent
    envelope: dict[str, Any]
    target: Scope
    socket_ids: tuple[str, ...] | None
    stream: str | None
    requires_ack: bool

    @property
    def message_id(self) -> str:
        """The envelope's ``id``."""
        message_id: str = self.envelope["id"]
        return message_id


class DeliveryRecorder:
    """The one place a delivery is recorded: ``stats``, ``metrics`` and the broadcast log.

    Args:
        stats: ``GET /stats``.
        metrics: ``/metrics``.
        log_broadcasts: log one line per published message.
    """

    def __init__(self, stats: ServerStats, metrics: ServerMetrics, *, log_broadcasts: bool) -> None:
        self._stats = stats
        self._metrics = metrics
        self._log_broadcasts = log_broadcasts

    def published(self, message: OutgoingMessage, recipients: int, seconds: float) -> None:
        """``message`` was handed to ``recipients`` sockets in ``seconds`` (once per publish)."""
        event = message.event.value
        self._stats.record_message(event)
        self._metrics.record_delivery(event, recipients, seconds)
        if self._log_broadcasts:
            org = message.target.organization_id
            ids = {"message_id": message.message_id, "organization_id": org}
            log.info("%s %s to %d sockets", event, message.message_id, recipients, extra=ids)

    def ack_timer(self) -> Callable[..., None]:
        """An ack callback that records the round trip from now."""
        sent = time.monotonic()
        stats = self._stats
        metrics = self._metrics

        def on_ack(*_: Any) -> None:
            seconds = time.monotonic() - sent
            stats.record_latency(seconds * 1000)
            metrics.record_ack(seconds)

        return on_ack


class LocalDelivery:
    """Hands messages to this process's sockets: recipients, replay holds, fan-out.

    Args:
        registry: this process's sockets and rooms.
        fanout: room emits to Socket.IO sockets.
        holds: replays running (their sockets' live messages wait).
        recorder: times acknowledged deliveries.
        completeness: what this node skipped of a stream goes first (protocol section 6);
            ``None`` without a log.
    """

    def __init__(
        self,
        registry: Registry,
        fanout: Fanout,
        holds: ReplayHolds,
        recorder: DeliveryRecorder,
        completeness: LiveCompleteness | None = None,
    ) -> None:
        self._registry = registry
        self._fanout = fanout
        self._holds = holds
        self._recorder = recorder
        self._completeness = completeness
        if completeness is not None:
            completeness.bind(self._deliver_logged)

    def recipients(self, message: OutgoingMessage) -> tuple[list[str], AbstractSet[str]]:
        """The rooms to emit to and the id of every socket of this process they hold, each once."""
        registry = self._registry
        target = message.target
        org = target.organization_id
        if message.socket_ids is not None:
            chosen = [
                c
                for sid in dict.fromkeys(message.socket_ids)
                if (c := registry.get(sid)) is not None
                and c.identity is not None
                and (org is None or c.organization_id == org)
            ]
            # A socket id is also the socket's own python-socketio room.
            ids = [c.socket_id for c in chosen]
            return ids, frozenset(ids)
        maintenance = message.event is ServerEvent.SYSTEM_MAINTENANCE
        if org is not None:
            rooms = list(delivery_rooms(EVENT_CHANNEL[message.event], target))
            if maintenance:
                rooms.append(org_room(org))
        else:
            # An admin broadcast with no target (notifications only: the builder
            # checked): the one case that spans organizations.
            prefixes = ("org:", "notifications:org:") if maintenance else ("notifications:org:",)
            rooms = [r for r in registry.rooms() if r.startswith(prefixes)]
        return rooms, registry.recipient_ids(rooms)

    async def deliver(self, message: OutgoingMessage) -> int:
        """Hand ``message`` to this process's recipients; how many sockets it concerns here.

        The one step every message takes on every node before it reaches a
        socket: what is recorded per node and per stream belongs here.
        """
        # Live completeness: what this node skipped of the stream goes first; never twice.
        completeness = self._completeness
        if (
            message.stream is not None
            and completeness is not None
            and not await completeness.admit(message.stream, message.envelope)
        ):
            return 0
        rooms, member_ids = self.recipients(message)
        event = message.event.value
        envelope = message.envelope
        withheld: set[str] = set()
        if message.stream is not None:
            held = (event, envelope, message.requires_ack)
            withheld = self._holds.withhold(message.stream, held, member_ids)
        if message.requires_ack:
            # One hand-off per socket, each with its own ack timer.
            chosen = member_ids - withheld if withheld else member_ids
            for socket_id in chosen:
                on_ack = self._recorder.ack_timer()
                await self._fanout.emit_with_ack(socket_id, event, envelope, on_ack)
            return len(member_ids)
        if rooms:
            await self._fanout.emit_to_rooms(event, envelope, rooms, skip=withheld)
        return len(member_ids)

    async def _deliver_logged(self, stream: str, envelope: dict[str, Any]) -> None:
        """Deliver a message of ``stream`` read from the log to this node's sockets."""
        # A logged message is never one for chosen sockets (those have no stream).
        await self.deliver(
            OutgoingMessage(
                ServerEvent(envelope["event"]),
                envelope,
                Scope(**envelope["target"]),
                None,
                stream,
                bool(envelope.get("requires_ack")),
            )
        )

    async def deliver_to_everyone(self, event: ServerEvent, envelope: dict[str, Any]) -> int:
        """Send a server-originated message to every socket of this process (shutdown notice)."""
        # A socket id names its socket: every socket of this process, Socket.IO and bridge.
        sids = [c.socket_id for c in self._registry]
        await self._fanout.emit_to_rooms(event.value, envelope, sids)
        return len(sids)
