"""Publishing a message: validation, the envelope, the delivery rule, the stats.

The management API, the simulator and the shutdown notice all publish
through :meth:`Publisher.publish`, so every message is validated and built
the same way and no path can skip the organization check.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, Protocol

from client_sdk.protocol import (
    EVENT_CHANNEL,
    BroadcastRequest,
    BroadcastResult,
    Channel,
    ErrorCode,
    Priority,
    ProtocolError,
    Scope,
    ServerEvent,
    build_envelope,
    delivery_rooms,
    format_timestamp,
    org_room,
    parse_payload,
    stream_name,
    utc_now,
)

from .config import ServerSettings
from .connections import Registry
from .metrics import ServerMetrics
from .resume import hold_for
from .stats import ServerStats
from .store import MessageStore
from .stream_locks import StreamLocks
from .validation import validating

__all__ = ["ClusterLink", "Fanout", "FanoutWrapper", "LogAndPublish", "Publisher"]

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


class ClusterLink(Protocol):
    """What the publisher of a cluster node needs from the cluster (``reference_server.cluster``).

    A cluster node publishes each message once to every node (itself
    included), and each node delivers it to its own sockets with
    :meth:`Publisher.deliver_here`.
    """

    def ensure_listening(self) -> None:
        """Raise a retryable ``INTERNAL_ERROR`` if this node would not see its own message."""
        ...

    def frame(self, delivery: dict[str, Any]) -> tuple[str, str, str]:
        """``(channel, head, tail)``: how the store's script publishes ``delivery``."""
        ...

    async def publish(self, delivery: dict[str, Any]) -> None:
        """Send ``delivery`` (with its ``envelope``) to every node."""
        ...

    async def remote_rooms(self) -> dict[str, int]:
        """The rooms other nodes hold, with their member counts there."""
        ...

    async def count_remote_members(self, rooms: list[str]) -> int:
        """How many sockets of other nodes are in any of ``rooms``, each once."""
        ...

    async def remote_sockets(self, socket_ids: list[str], organization_id: str | None) -> set[str]:
        """Those of ``socket_ids`` authenticated on other nodes (in the organization)."""
        ...


LogAndPublish = Callable[[str, dict[str, Any], tuple[str, str, str]], Awaitable[tuple[int, str]]]
"""A store's append that publishes the message in the same step (``append_published``)."""


class Publisher:
    """Validates broadcasts and delivers them by the delivery rule."""

    def __init__(
        self,
        settings: ServerSettings,
        registry: Registry,
        stats: ServerStats,
        fanout: Fanout,
        store: MessageStore | None = None,
        *,
        metrics: ServerMetrics | None = None,
        cluster: ClusterLink | None = None,
        log_and_publish: LogAndPublish | None = None,
    ) -> None:
        self._cluster = cluster
        self._log_and_publish = log_and_publish
        self._log_broadcasts = settings.log_broadcast_events
        self._registry = registry
        self._stats = stats
        self._fanout = fanout
        self._store = store
        # Appending and delivering one stream's messages in one order: with a
        # store that awaits (Redis), two publishes could otherwise overtake.
        self._stream_locks = StreamLocks()
        self._metrics = metrics or ServerMetrics(registry, stats, enabled=False)

    def resolve_target(self, request: BroadcastRequest, data: dict[str, Any]) -> Scope:
        """The message's target: the request's, completed from the payload.

        Raises:
            ProtocolError: ``INVALID_MESSAGE`` when they disagree, so that a
                payload of one organization can never be aimed at another.
        """
        given = request.target
        fields: dict[str, str | None] = {}
        for name in ("organization_id", "department_id", "queue_name"):
            from_payload = data.get(name)
            from_target = getattr(given, name) if given is not None else None
            if from_target is not None and from_payload is not None and from_target != from_payload:
                raise ProtocolError(
                    ErrorCode.INVALID_MESSAGE,
                    f"target.{name} does not match the payload's {name}",
                )
            fields[name] = from_target if from_target is not None else from_payload
        return Scope(**fields)

    def _recipients(
        self,
        event: ServerEvent,
        target: Scope,
        socket_ids: tuple[str, ...] | None,
        known_rooms: Iterable[str] | None = None,
    ) -> tuple[list[str], set[str]]:
        """The rooms to emit to and the id of every socket they hold, each once."""
        registry = self._registry
        org = target.organization_id
        channel = EVENT_CHANNEL[event]
        if socket_ids is not None:
            chosen = [
                c
                for sid in dict.fromkeys(socket_ids)
                if (c := registry.get(sid)) is not None
                and c.identity is not None
                and (org is None or c.organization_id == org)
            ]
            # A socket id is also the socket's own python-socketio room.
            ids = [c.socket_id for c in chosen]
            return ids, set(ids)
        if org is None and (target.department_id or target.queue_name):
            # Only a target-less admin broadcast may span organizations.
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE, "department_id and queue_name need organization_id"
            )
        if org is not None:
            rooms = list(delivery_rooms(channel, target))
            if event is ServerEvent.SYSTEM_MAINTENANCE:
                rooms.append(org_room(org))
        elif channel is Channel.NOTIFICATIONS:
            # An admin broadcast with no target: the one case that spans organizations.
            prefixes: tuple[str, ...] = ("notifications:org:",)
            if event is ServerEvent.SYSTEM_MAINTENANCE:
                prefixes = ("org:", "notifications:org:")
            known = registry.rooms() if known_rooms is None else known_rooms
            rooms = [r for r in known if r.startswith(prefixes)]
        else:
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{event} needs an organization_id")
        return rooms, registry.member_ids(rooms)

    def validate(self, request: BroadcastRequest) -> tuple[dict[str, Any], Scope]:
        """Validate the payload and resolve the target without sending anything.

        Raises:
            ProtocolError: ``INVALID_MESSAGE``.
        """
        with validating(f"{request.event} payload"):
            payload = parse_payload(request.event, request.data)
        data = payload.model_dump(mode="json", exclude_unset=True)
        return data, self.resolve_target(request, data)

    async def publish(self, request: BroadcastRequest) -> BroadcastResult:
        """Validate, build the envelope and deliver; nothing is sent if anything is invalid.

        Raises:
            ProtocolError: ``INVALID_MESSAGE`` for a bad payload or target.
        """
        data, target = self.validate(request)
        socket_ids = request.target.socket_ids if request.target is not None else None
        # A message of no organization, or for chosen sockets only, is in no
        # stream: it is not logged, so no replay can hand it to anyone else.
        org = target.organization_id
        logged = self._store is not None and org is not None and socket_ids is None
        clustered = self._cluster is not None
        if not logged and not clustered:  # a logged message's are taken after its append
            rooms, member_ids = self._recipients(request.event, target, socket_ids)
        message_id = uuid.uuid4().hex
        envelope = build_envelope(
            message_id=message_id,
            event=request.event,
            timestamp=format_timestamp(utc_now()),
            target=target,
            data=data,
            priority=request.priority,
            requires_ack=request.requires_ack,
        )
        event = request.event.value
        if clustered:  # its own check of the target comes before anything is sent
            return await self._publish_in_cluster(request, target, socket_ids, logged, envelope)
        started = time.perf_counter()
        if not logged:
            await self._deliver(None, event, envelope, rooms, member_ids, request.requires_ack)
        else:
            assert self._store is not None
            assert org is not None
            stream = stream_name(EVENT_CHANNEL[request.event], org)
            async with self._stream_locks.hold(stream):
                await self._store.append(stream, envelope)  # before anyone receives it
                # Who is subscribed now: a replay may have begun while the store answered,
                # and its socket must hold this message, not get it before the replay.
                rooms, member_ids = self._recipients(request.event, target, None)
                await self._deliver(
                    stream, event, envelope, rooms, member_ids, request.requires_ack
                )
        self._stats.record_message(event)
        self._metrics.record_delivery(event, len(member_ids), time.perf_counter() - started)
        if self._log_broadcasts:
            ids = {"message_id": message_id, "organization_id": target.organization_id}
            log.info("%s %s to %d sockets", request.event, message_id, len(member_ids), extra=ids)
        return BroadcastResult(message_id=message_id, recipients=len(member_ids))

    async def _publish_in_cluster(
        self,
        request: BroadcastRequest,
        target: Scope,
        socket_ids: tuple[str, ...] | None,
        logged: bool,
        envelope: dict[str, Any],
    ) -> BroadcastResult:
        cluster = self._cluster
        assert cluster is not None
        event = request.event
        self._recipients(event, target, socket_ids)  # refuses a bad target before anything is sent
        org = target.organization_id
        stream = stream_name(EVENT_CHANNEL[event], org) if logged and org is not None else None
        delivery: dict[str, Any] = {
            "kind": "deliver",
            "event": event.value,
            "stream": stream,
            "requires_ack": request.requires_ack,
            "target": {
                "organization_id": org,
                "department_id": target.department_id,
                "queue_name": target.queue_name,
            },
            "socket_ids": list(socket_ids) if socket_ids is not None else None,
        }
        cluster.ensure_listening()
        started = time.perf_counter()
        if stream is None:
            await cluster.publish({**delivery, "envelope": envelope})
        else:
            assert self._store is not None
            async with self._stream_locks.hold(stream):
                if self._log_and_publish is not None:
                    # One script: every node receives the stream in seq order.
                    await self._log_and_publish(stream, envelope, cluster.frame(delivery))
                else:
                    await self._store.append(stream, envelope)
                    await cluster.publish({**delivery, "envelope": envelope})
        recipients = await self._count_in_cluster(event, target, socket_ids)
        self._stats.record_message(event.value)
        self._metrics.record_delivery(event.value, recipients, time.perf_counter() - started)
        if self._log_broadcasts:
            ids = {"message_id": envelope["id"], "organization_id": org}
            log.info("%s %s to %d sockets", event, envelope["id"], recipients, extra=ids)
        return BroadcastResult(message_id=envelope["id"], recipients=recipients)

    async def _count_in_cluster(
        self, event: ServerEvent, target: Scope, socket_ids: tuple[str, ...] | None
    ) -> int:
        """The recipients over the cluster: this node's exactly, the others' as Redis has them."""
        cluster = self._cluster
        assert cluster is not None
        try:
            if socket_ids is not None:
                _, local = self._recipients(event, target, socket_ids)
                rest = [sid for sid in dict.fromkeys(socket_ids) if sid not in local]
                remote = await cluster.remote_sockets(rest, target.organization_id)
                return len(local) + len(remote)
            known = None
            if target.organization_id is None:
                known = set(self._registry.rooms()) | set(await cluster.remote_rooms())
            rooms, local = self._recipients(event, target, None, known)
            return len(local) + await cluster.count_remote_members(rooms)
        except ProtocolError:  # sent already: a count Redis cannot give is this node's
            return len(self._recipients(event, target, socket_ids)[1])

    async def deliver_here(self, delivery: dict[str, Any]) -> None:
        """Deliver a message that came through the cluster to this node's own sockets."""
        try:
            event = ServerEvent(delivery["event"])
            target = Scope(**delivery["target"])
            ids = delivery.get("socket_ids")
            socket_ids = tuple(ids) if ids is not None else None
            envelope: dict[str, Any] = delivery["envelope"]
            stream = delivery.get("stream")
            rooms, member_ids = self._recipients(event, target, socket_ids)
        except (KeyError, TypeError, ValueError, ProtocolError):
            log.warning("dropped a malformed cluster delivery")
            return
        skip = self._replayed_already(stream, envelope.get("seq"))
        await self._deliver(
            stream,
            event.value,
            envelope,
            rooms,
            member_ids,
            bool(delivery.get("requires_ack")),
            skip,
        )

    def _replayed_already(self, stream: str | None, seq: Any) -> set[str]:
        """Sockets whose finished replay carried this message (it arrived after the replay)."""
        replayed = self._registry.replayed
        if stream is None or not replayed or not isinstance(seq, int):
            return set()
        marks = replayed.get(stream)
        if not marks:
            return set()
        skip = set()
        for socket_id, upto in list(marks.items()):
            if seq <= upto:
                skip.add(socket_id)
            else:  # the stream arrives in seq order: nothing older can come after this one
                del marks[socket_id]
        if not marks:
            del replayed[stream]
        return skip

    def _hold_back(
        self, stream: str, event: str, envelope: dict[str, Any], member_ids: set[str], ack: bool
    ) -> set[str]:
        """Recipients whose replay of ``stream`` is running: the message waits for them."""
        held: set[str] = set()
        for socket_id in self._registry.holding & member_ids:
            connection = self._registry.get(socket_id)
            if connection is not None and hold_for(connection, stream, (event, envelope, ack)):
                held.add(socket_id)
        return held

    async def _deliver(
        self,
        stream: str | None,
        event: str,
        envelope: dict[str, Any],
        rooms: list[str],
        member_ids: set[str],
        requires_ack: bool,
        skip: set[str] | None = None,
    ) -> None:
        registry = self._registry
        held: set[str] = set()
        if skip:
            member_ids = member_ids - skip
        if stream is not None and registry.holding:
            held = self._hold_back(stream, event, envelope, member_ids, requires_ack)
        if skip:
            held |= skip
        if requires_ack:
            # python-socketio has no broadcast acks: one emit per socket.
            for connection in registry.connections(member_ids - held if held else member_ids):
                if connection.link.via_fanout:
                    await self._fanout.emit_with_ack(
                        connection.socket_id, event, envelope, self._latency_recorder()
                    )
                else:
                    await connection.link.send(event, envelope)
            return
        if rooms:
            await self._fanout.emit_to_rooms(event, envelope, rooms, skip=held)
        for connection in registry.direct(member_ids):
            if connection.socket_id not in held:
                await connection.link.send(event, envelope)

    def _latency_recorder(self) -> Any:
        sent = time.monotonic()
        stats = self._stats
        metrics = self._metrics

        def on_ack(*_: Any) -> None:
            seconds = time.monotonic() - sent
            stats.record_latency(seconds * 1000)
            metrics.record_ack(seconds)

        return on_ack

    async def notify_all(self, event: ServerEvent, data: dict[str, Any]) -> None:
        """Send a server-originated message to every connected socket (shutdown notice)."""
        envelope = build_envelope(
            message_id=uuid.uuid4().hex,
            event=event,
            timestamp=format_timestamp(utc_now()),
            target=Scope(),
            data=data,
            priority=Priority.URGENT,
        )
        connections = list(self._registry)
        started = time.perf_counter()
        # A socket id is also the socket's own python-socketio room.
        sids = [c.socket_id for c in connections if c.link.via_fanout]
        await self._fanout.emit_to_rooms(event.value, envelope, sids)
        for connection in connections:
            if not connection.link.via_fanout:
                await connection.link.send(event.value, envelope)
        self._stats.record_message(event.value)
        self._metrics.record_delivery(event.value, len(connections), time.perf_counter() - started)
