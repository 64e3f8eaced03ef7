"""Deliberately faulty servers: a real reference server with one part broken.

Each :class:`Fault` says how to build such a server through the construction
seams of :class:`~reference_server.app.ReferenceServer`: ``wrap_fanout``
wraps the fan-out the publisher delivers through, ``wrap_screen`` wraps the
screen incoming events pass, ``wrap_store`` wraps the message store (the log
that replay and snapshot read), ``wrap_resumer`` wraps the part that answers
``since`` and ``snapshot``, and a fault that is only a configuration is a
setting. Nothing is patched, so other servers in the process are untouched.
The contract suite must catch each fault with the check meant for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from client_sdk.protocol import Capability, Channel, Scope, SubscribeRequest, parse_room
from reference_server.config import ServerSettings
from reference_server.connections import Connection, Registry
from reference_server.delivery import Fanout, FanoutWrapper
from reference_server.resume import Hold, Resumer, ResumerWrapper
from reference_server.screening import IngressScreen, ScreenWrapper
from reference_server.store import (
    MessageStore,
    ReplaySlice,
    StoredMessage,
    StoreStats,
    StoreWrapper,
    StreamHead,
)

__all__ = [
    "CLOSE_ON_OVERSIZE",
    "COMPLETE_WITHOUT_THE_LOG",
    "DELIVER_ONCE_PER_ROOM",
    "IGNORE_AUTH_TIMEOUT",
    "IGNORE_OVERSIZE",
    "LEAK_ACROSS_ORGANIZATIONS",
    "LIVE_OVERTAKES_REPLAY",
    "REPLAY_SKIPS_A_MESSAGE",
    "SNAPSHOT_AND_REPLAY_BOTH",
    "Fault",
    "drop_envelope_field",
    "one_off_fanout",
]


@dataclass(frozen=True)
class Fault:
    """One broken behaviour: the settings and wrapped parts of a server that has it."""

    description: str
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    wrap_fanout: FanoutWrapper | None = None
    wrap_screen: ScreenWrapper | None = None
    wrap_store: StoreWrapper | None = None
    wrap_resumer: ResumerWrapper | None = None


# -- fan-outs that misdeliver ---------------------------------------------------


def _shape(room: str) -> tuple[object, ...] | None:
    """A room's channel, department and queue: what it has in common with its twins."""
    try:
        parsed = parse_room(room)
    except ValueError:  # a socket id: its own room, of no shape
        return None
    return (parsed.channel, parsed.scope.department_id, parsed.scope.queue_name)


class LeakyFanout:
    """Matches rooms ignoring their organization: other organizations' twin rooms get it."""

    def __init__(self, real: Fanout, registry: Registry) -> None:
        self._real = real
        self._registry = registry

    async def emit_to_rooms(
        self, event: str, data: dict[str, Any], rooms: list[str], skip: Collection[str] = ()
    ) -> None:
        shapes = {shape for room in rooms if (shape := _shape(room)) is not None}
        twins = [r for r in self._registry.rooms() if r not in rooms and _shape(r) in shapes]
        await self._real.emit_to_rooms(event, data, rooms + twins, skip)

    async def emit_with_ack(
        self, socket_id: str, event: str, data: dict[str, Any], on_ack: Any
    ) -> None:
        await self._real.emit_with_ack(socket_id, event, data, on_ack)


class PerRoomFanout:
    """Emits once per matching room instead of once to their union: duplicates."""

    def __init__(self, real: Fanout) -> None:
        self._real = real

    async def emit_to_rooms(
        self, event: str, data: dict[str, Any], rooms: list[str], skip: Collection[str] = ()
    ) -> None:
        for room in rooms:
            await self._real.emit_to_rooms(event, data, [room], skip)

    async def emit_with_ack(
        self, socket_id: str, event: str, data: dict[str, Any], on_ack: Any
    ) -> None:
        await self._real.emit_with_ack(socket_id, event, data, on_ack)


class TrimmingFanout:
    """Sends envelopes without one of their fields."""

    def __init__(self, real: Fanout, dropped: str) -> None:
        self._real = real
        self._dropped = dropped

    def _trim(self, envelope: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in envelope.items() if k != self._dropped}

    async def emit_to_rooms(
        self, event: str, data: dict[str, Any], rooms: list[str], skip: Collection[str] = ()
    ) -> None:
        await self._real.emit_to_rooms(event, self._trim(data), rooms, skip)

    async def emit_with_ack(
        self, socket_id: str, event: str, data: dict[str, Any], on_ack: Any
    ) -> None:
        await self._real.emit_with_ack(socket_id, event, self._trim(data), on_ack)


# -- a screen that does not answer ----------------------------------------------


class UnansweredOversize:
    """Drops an oversized message (or closes the connection) instead of answering it."""

    def __init__(self, real: IngressScreen, settings: ServerSettings, *, close: bool) -> None:
        self._real = real
        self._limit = settings.max_message_size_bytes
        self._close = close

    async def passes(self, connection: Connection, size: int, ack_id: int | None) -> bool:
        if size <= self._limit:
            return await self._real.passes(connection, size, ack_id)
        if self._close:
            await connection.link.close()
        return False  # never answered


def _unanswered_oversize(*, close: bool) -> ScreenWrapper:
    def wrap(real: IngressScreen, settings: ServerSettings) -> IngressScreen:
        return UnansweredOversize(real, settings, close=close)

    return wrap


class OneOffFanout:
    """Misdelivers the ``at``-th numbered message (one with ``data.n``) once, one way:

    ``drop`` sends it to nobody, ``duplicate`` sends it twice, ``reorder``
    sends it after the next one of its event, ``invent`` sends it and then a copy under a
    new id and a number nobody published (what ``intraday-live verify`` must
    report as lost, duplicated, out of order and phantom).
    """

    def __init__(self, real: Fanout, fault: str, at: int = 5) -> None:
        self._real = real
        self._fault = fault
        self._at = at
        self._count = 0
        self._held: tuple[str, dict[str, Any], list[str], Collection[str]] | None = None

    async def emit_to_rooms(
        self, event: str, data: dict[str, Any], rooms: list[str], skip: Collection[str] = ()
    ) -> None:
        if "n" not in (data.get("data") or {}):
            await self._real.emit_to_rooms(event, data, rooms, skip)
            return
        self._count += 1
        if self._count != self._at:
            await self._real.emit_to_rooms(event, data, rooms, skip)
            if self._held is not None and self._held[0] == event:  # the next of its stream
                held, self._held = self._held, None
                await self._real.emit_to_rooms(*held)
            return
        if self._fault == "drop":
            return
        if self._fault == "reorder":
            self._held = (event, data, rooms, skip)
            return
        await self._real.emit_to_rooms(event, data, rooms, skip)
        if self._fault == "duplicate":
            await self._real.emit_to_rooms(event, data, rooms, skip)
        elif self._fault == "invent":
            invented = {**data, "id": uuid.uuid4().hex, "data": {**data["data"], "n": 10**9}}
            await self._real.emit_to_rooms(event, invented, rooms, skip)

    async def emit_with_ack(
        self, socket_id: str, event: str, data: dict[str, Any], on_ack: Any
    ) -> None:
        await self._real.emit_with_ack(socket_id, event, data, on_ack)


def one_off_fanout(fault: str, at: int = 5) -> FanoutWrapper:
    """The wrapper of a server whose fan-out misdelivers one message (:class:`OneOffFanout`)."""
    return _fanout_wrapper(lambda real: OneOffFanout(real, fault, at))


def _fanout_wrapper(build: Callable[[Fanout], Fanout]) -> FanoutWrapper:
    """A fan-out wrapper that needs only the real fan-out, not the registry."""

    def wrap(real: Fanout, registry: Registry) -> Fanout:
        return build(real)

    return wrap


# -- stores that misreport their log --------------------------------------------


class _WrappedStore:
    """A store that does what the real one does (the faulty ones change one answer)."""

    def __init__(self, real: MessageStore) -> None:
        self._real = real
        self.kind = real.kind

    async def append(self, stream: str, envelope: dict[str, Any]) -> tuple[int, str]:
        return await self._real.append(stream, envelope)

    async def read_since(self, stream: str, seq: int, epoch: str | None) -> ReplaySlice:
        return await self._real.read_since(stream, seq, epoch)

    async def snapshot(self, stream: str) -> list[StoredMessage]:
        return await self._real.snapshot(stream)

    async def heads(self, streams: list[str]) -> dict[str, StreamHead]:
        return await self._real.heads(streams)

    async def stats(self) -> StoreStats:
        return await self._real.stats()

    async def close(self) -> None:
        await self._real.close()


class GappyStore(_WrappedStore):
    """Loses the middle message of every replay of three or more, and still says complete."""

    async def read_since(self, stream: str, seq: int, epoch: str | None) -> ReplaySlice:
        part = await self._real.read_since(stream, seq, epoch)
        messages = part.messages
        if len(messages) >= 3:
            middle = len(messages) // 2
            messages = messages[:middle] + messages[middle + 1 :]
        return dataclasses.replace(part, messages=messages)


class OverconfidentStore(_WrappedStore):
    """Says ``complete: true`` whatever the log still holds (and whatever the epoch)."""

    async def read_since(self, stream: str, seq: int, epoch: str | None) -> ReplaySlice:
        part = await self._real.read_since(stream, seq, epoch)
        return dataclasses.replace(part, complete=True)


class SlowStore(_WrappedStore):
    """Takes ``delay`` seconds to read a replay, as a distant store may (not a fault alone)."""

    def __init__(self, real: MessageStore, delay: float) -> None:
        super().__init__(real)
        self._delay = delay

    async def read_since(self, stream: str, seq: int, epoch: str | None) -> ReplaySlice:
        await asyncio.sleep(self._delay)
        return await self._real.read_since(stream, seq, epoch)


def _store_wrapper(build: Callable[[MessageStore], MessageStore]) -> StoreWrapper:
    """A store wrapper for servers with a store (``store="none"`` stays without)."""

    def wrap(real: MessageStore | None, settings: ServerSettings) -> MessageStore | None:
        return build(real) if real is not None else None

    return wrap


# -- resumers that break the replay's rules ---------------------------------------


class _WrappedResumer(Resumer):
    """A resumer that does what the real one does (the faulty ones change one step)."""

    def __init__(self, real: Resumer) -> None:  # the real one holds the store and registry
        self._real = real

    @property
    def capabilities(self) -> tuple[Capability, ...]:
        return self._real.capabilities

    def wanted(
        self, request: SubscribeRequest, org: str, channels: tuple[Channel, ...]
    ) -> dict[str, tuple[int, str | None]]:
        return self._real.wanted(request, org, channels)

    def hold(self, connection: Connection, streams: list[str]) -> Hold | None:
        return self._real.hold(connection, streams)

    async def send(
        self,
        connection: Connection,
        hold: Hold | None,
        scope: Scope,
        streams: list[str],
        positions: dict[str, tuple[int, str | None]],
        snapshot: bool,
    ) -> dict[str, dict[str, Any]]:
        return await self._real.send(connection, hold, scope, streams, positions, snapshot)


class HoldlessResumer(_WrappedResumer):
    """Holds no live message back during a replay: they reach the socket as published."""

    def hold(self, connection: Connection, streams: list[str]) -> Hold | None:
        return self._real.hold(connection, [])


class TwiceResumer(_WrappedResumer):
    """Sends the snapshot and the replay separately, ignoring "never twice"."""

    async def send(
        self,
        connection: Connection,
        hold: Hold | None,
        scope: Scope,
        streams: list[str],
        positions: dict[str, tuple[int, str | None]],
        snapshot: bool,
    ) -> dict[str, dict[str, Any]]:
        if snapshot and positions:
            await self._real.send(connection, hold, scope, streams, {}, True)
            snapshot = False
        return await self._real.send(connection, hold, scope, streams, positions, snapshot)


# -- the faults -----------------------------------------------------------------

LEAK_ACROSS_ORGANIZATIONS = Fault(
    "delivers to the same department and queue rooms of every organization",
    wrap_fanout=LeakyFanout,
)
DELIVER_ONCE_PER_ROOM = Fault(
    "emits once per matching room instead of once per socket",
    wrap_fanout=_fanout_wrapper(PerRoomFanout),
)
IGNORE_AUTH_TIMEOUT = Fault(
    # An hour is forever to the suite, which waits a second and a half.
    "never expires an unauthenticated socket",
    settings=MappingProxyType({"auth_timeout_ms": 3_600_000}),
)
IGNORE_OVERSIZE = Fault(
    "drops an oversized message without answering it",
    wrap_screen=_unanswered_oversize(close=False),
)
CLOSE_ON_OVERSIZE = Fault(
    "closes the connection on an oversized message instead of answering it",
    wrap_screen=_unanswered_oversize(close=True),
)


def drop_envelope_field(dropped: str) -> Fault:
    """A server whose envelopes lack ``dropped``."""
    return Fault(
        f"sends envelopes without {dropped!r}",
        wrap_fanout=_fanout_wrapper(lambda real: TrimmingFanout(real, dropped)),
    )


REPLAY_SKIPS_A_MESSAGE = Fault(
    "loses a message in the middle of a replay and still says complete: true",
    wrap_store=_store_wrapper(GappyStore),
)
LIVE_OVERTAKES_REPLAY = Fault(
    # The slow store widens the window in which live messages get through.
    "lets live messages reach a socket while its replay is still read and sent",
    wrap_store=_store_wrapper(lambda real: SlowStore(real, 0.5)),
    wrap_resumer=HoldlessResumer,
)
COMPLETE_WITHOUT_THE_LOG = Fault(
    "says complete: true when its (30-message) log no longer reaches back to since",
    settings=MappingProxyType({"store_max_messages": 30}),
    wrap_store=_store_wrapper(OverconfidentStore),
)
SNAPSHOT_AND_REPLAY_BOTH = Fault(
    "sends the latest message both in the snapshot and in the replay",
    wrap_resumer=TwiceResumer,
)
