"""Replay and snapshot for a ``subscribe`` (section 6): nothing lost, doubled or reordered.

While a socket's replay is read and sent, live messages of the same streams
are not sent to it but held (:class:`ReplayHolds`, one :class:`Hold` per
replay); once the replay and the
``subscribe`` ack are out, the held messages that the replay did not already
carry follow, in order, and the hold ends. So the socket sees: snapshot,
replay, ack, then live messages, each once, whatever was published meanwhile
and however long the store took to answer.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from client_sdk.protocol import (
    EVENT_CHANNEL,
    Capability,
    Channel,
    ErrorCode,
    ProtocolError,
    Scope,
    ServerEvent,
    StreamPosition,
    SubscribeRequest,
    delivery_rooms,
    parse_stream,
    stream_name,
)

from .connections import Connection
from .metrics import ServerMetrics
from .store import MessageStore, StoredMessage

__all__ = ["Hold", "ReplayHolds", "Resumer", "ResumerWrapper"]

log = logging.getLogger("reference_server.replay")

HeldMessage = tuple[str, dict[str, Any], bool]
"""``(event, envelope, requires_ack)`` of a live message held back."""


@dataclass(slots=True)
class _StreamHold:
    holders: int = 0
    sent_upto: int = 0
    sent_ids: set[str] = field(default_factory=set)
    items: list[HeldMessage] = field(default_factory=list)


class ReplayHolds:
    """The one record of what live messages a socket must not get now, because of a replay.

    While a socket's replay of a stream runs, that stream's live messages
    wait in the socket's :class:`Hold`. A live message can also arrive
    *after* a finished replay that already carried it: the replay read the
    log after the message was appended and before its delivery came (through
    Redis in a cluster; on a single server, while the store's answer to the
    append was on its way). So each finished replay's
    last ``seq`` per stream is kept until a later message of the stream shows
    it is no longer needed (each stream arrives in ``seq`` order).

    A socket's holds live as long as its :class:`Connection` (a socket that
    vanishes in mid-replay leaves nothing behind).
    """

    def __init__(self) -> None:
        self._held: weakref.WeakKeyDictionary[Connection, dict[str, _StreamHold]] = (
            weakref.WeakKeyDictionary()
        )
        self._replayed: dict[str, dict[str, int]] = {}

    def hold(self, connection: Connection, streams: list[str]) -> Hold:
        """Start holding the live messages of ``streams`` back from ``connection``."""
        holds = self._held.setdefault(connection, {})
        for stream in streams:
            holds.setdefault(stream, _StreamHold()).holders += 1
        return Hold(self, connection, streams)

    def withhold(self, stream: str, message: HeldMessage, member_ids: AbstractSet[str]) -> set[str]:
        """Those of ``member_ids`` that must not get ``message`` of ``stream`` now.

        A socket whose replay of ``stream`` is running keeps the message for
        the end of it; a socket whose finished replay carried it is skipped.
        """
        withheld = self._replayed_already(stream, message[1].get("seq"))
        if not self._held:
            return withheld
        for connection, holds in list(self._held.items()):
            hold = holds.get(stream)
            socket_id = connection.socket_id
            if hold is not None and socket_id in member_ids and socket_id not in withheld:
                hold.items.append(message)
                withheld.add(socket_id)
        return withheld

    def _replayed_already(self, stream: str, seq: Any) -> set[str]:
        replayed = self._replayed
        if not replayed or not isinstance(seq, int):
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

    def _stream(self, connection: Connection, stream: str) -> _StreamHold | None:
        holds = self._held.get(connection)
        return holds.get(stream) if holds is not None else None

    async def _release(self, connection: Connection, streams: list[str]) -> None:
        holds = self._held.get(connection, {})
        for stream in streams:
            hold = holds.get(stream)
            if hold is None:
                continue
            hold.holders -= 1
            if hold.holders > 0:
                continue  # another replay of this stream is still running: it sends them
            # Sending awaits: messages held meanwhile join the list being drained.
            while hold.items:
                event, envelope, _ = hold.items.pop(0)
                if envelope.get("seq", 0) > hold.sent_upto and envelope["id"] not in hold.sent_ids:
                    await connection.link.send(event, envelope)
            del holds[stream]
            if hold.sent_upto:
                self._replayed.setdefault(stream, {})[connection.socket_id] = hold.sent_upto
        if not holds:
            self._held.pop(connection, None)


class Hold:
    """The live messages of some streams, held back from one socket during its replay."""

    def __init__(self, holds: ReplayHolds, connection: Connection, streams: list[str]) -> None:
        self._holds = holds
        self._connection = connection
        self._streams = streams
        self._released = False

    def read_upto(self, stream: str, seq: int) -> None:
        """The replay read ``stream`` up to ``seq``: held copies up to it are not sent again."""
        hold = self._holds._stream(self._connection, stream)
        if hold is not None and seq > hold.sent_upto:
            hold.sent_upto = seq

    def sent(self, stream: str, message_id: str) -> None:
        """The snapshot sent this message: a held copy of it is not sent again."""
        hold = self._holds._stream(self._connection, stream)
        if hold is not None:
            hold.sent_ids.add(message_id)

    def forget_unmatched(self) -> None:
        """Mark the held live messages that no room of the socket matches any more as sent.

        A subscribe refused after it joined its rooms (the store away) leaves
        them again: what only those rooms brought must not reach the socket.
        """
        rooms = self._connection.rooms
        for stream in self._streams:
            hold = self._holds._stream(self._connection, stream)
            for event, envelope, _ in hold.items if hold is not None else ():
                channel = EVENT_CHANNEL[ServerEvent(event)]
                if not rooms.intersection(delivery_rooms(channel, Scope(**envelope["target"]))):
                    self.sent(stream, envelope["id"])

    async def release(self) -> None:
        """Send what was held (and not replayed), in order, and stop holding."""
        if self._released:
            return
        self._released = True
        await self._holds._release(self._connection, self._streams)


class Resumer:
    """Answers ``since`` and ``snapshot`` from the store.

    Args:
        store: the message store; ``None`` for a server without replay.
        holds: where live messages wait while a replay runs.
        metrics: counts replays and snapshots (``None``: not counted).
    """

    def __init__(
        self,
        store: MessageStore | None,
        holds: ReplayHolds,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self._store = store
        self._holds = holds
        self._metrics = metrics

    @property
    def capabilities(self) -> tuple[Capability, ...]:
        """What the server can do with a store."""
        if self._store is None:
            return ()
        return (Capability.REPLAY, Capability.SNAPSHOT)

    def wanted(
        self, request: SubscribeRequest, org: str, channels: tuple[Channel, ...]
    ) -> dict[str, tuple[int, str | None]]:
        """The positions of ``since`` that concern this subscription, checked.

        Raises:
            ProtocolError: ``INVALID_MESSAGE`` for a name that is no stream,
                ``UNAUTHORIZED`` for a stream of another organization.
        """
        positions: dict[str, tuple[int, str | None]] = {}
        for name, position in (request.since or {}).items():
            try:
                channel, stream_org = parse_stream(name)
            except ValueError as exc:
                raise ProtocolError(ErrorCode.INVALID_MESSAGE, str(exc)) from None
            if stream_org != org:
                raise ProtocolError(
                    ErrorCode.UNAUTHORIZED, "cannot replay another organization's stream"
                )
            if channel not in channels:
                continue  # not a stream of this subscription: nothing to replay
            if isinstance(position, StreamPosition):
                positions[name] = (position.seq, position.epoch)
            else:
                positions[name] = (position, None)
        return positions

    def hold(self, connection: Connection, streams: list[str]) -> Hold | None:
        """Start holding live messages of ``streams`` (``None`` without a store)."""
        if self._store is None:
            return None
        return self._holds.hold(connection, streams)

    async def send(
        self,
        connection: Connection,
        hold: Hold | None,
        scope: Scope,
        streams: list[str],
        positions: dict[str, tuple[int, str | None]],
        snapshot: bool,
    ) -> dict[str, dict[str, Any]]:
        """Send the snapshot, then the replay; the ``replay`` object of the ack.

        Raises:
            StoreUnavailableError: the store cannot be reached.
        """
        store = self._store
        if store is None or hold is None:
            return {name: {"replayed": 0, "complete": False} for name in positions}
        results: dict[str, dict[str, Any]] = {}
        replays: dict[str, list[StoredMessage]] = {}
        for name, (seq, epoch) in positions.items():
            part = await store.read_since(name, seq, epoch)
            chosen = [m for m in part.messages if scope.covers(Scope(**m.envelope["target"]))]
            replays[name] = chosen
            results[name] = {
                "replayed": len(chosen),
                "complete": part.complete,
                "epoch": part.epoch,
                "seq": part.latest,
            }
        if snapshot:
            replayed = {m.envelope["id"] for chosen in replays.values() for m in chosen}
            for name in streams:
                for message in await store.snapshot(name):
                    envelope = message.envelope
                    if envelope["id"] in replayed:
                        continue  # the replay carries it: never twice
                    if scope.covers(Scope(**envelope["target"])):
                        hold.sent(name, envelope["id"])
                        await connection.link.send_replayed(
                            envelope["event"], {**envelope, "snapshot": True}
                        )
            if self._metrics is not None:
                self._metrics.record_snapshot()
        for name, chosen in replays.items():
            hold.read_upto(name, results[name]["seq"])
            for message in chosen:
                await connection.link.send_replayed(message.envelope["event"], message.envelope)
            if self._metrics is not None:
                self._metrics.record_replay(len(chosen))
        return results


ResumerWrapper = Callable[[Resumer], Resumer]
"""Builds the resumer a server uses from its real one (a test seam)."""


def streams_of(channels: tuple[Channel, ...], org: str) -> list[str]:
    """The streams a subscription to ``channels`` of ``org`` reads."""
    return [stream_name(c, org) for c in channels]
