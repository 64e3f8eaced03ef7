"""Live completeness (protocol section 6): what a node skipped of a stream, it sends from the log.

A cluster node can miss messages while its sockets stay connected: Redis
drops a subscriber whose pub/sub output buffer overflows, a network blip
cuts its subscription. Its clients would learn of it only at the stream's
next message, on an alerts stream maybe hours later. So each node keeps, per
stream it delivers here, the last ``(epoch, seq)`` it delivered
(:meth:`LiveCompleteness.admit`, called by the publisher for every logged
message it delivers), and fills what it skipped from the log:

- at a delivery: a message whose ``seq`` jumps past the next one waits while
  the skipped ones are read from the log and delivered first, in order; a
  message at or below the position was delivered already (from the log) and
  is not sent again;
- on a quiet stream: every ``completeness_check_seconds`` (0.5 s by default)
  one pipelined read (:meth:`~.store.MessageStore.heads`) gives the newest
  ``seq`` of every stream this node has subscribers for; a stream that is
  behind on two checks in a row (so not a message merely in flight between
  Redis and this node) is filled the same way.

A log that no longer holds what was skipped makes every subscriber of the
stream here get the section 6 ``error`` (``INTERNAL_ERROR``, retryable,
``details: {stream, last_seq}``); it resumes with ``since``, which reports the
gap. A new epoch (the log started again) is read from its start.

Cost (docs/delivery.md has the measured figures): per delivered logged
message, one dict lookup and an uncontended lock; per check, one walk over
this node's rooms and one round trip to the store carrying two ``GET`` per
stream; nothing more unless a stream is behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from client_sdk.protocol import ControlEvent, ErrorCode, ProtocolError

from .connections import Registry
from .store import MessageStore, StoredMessage

__all__ = ["LiveCompleteness"]

log = logging.getLogger("reference_server.completeness")

Redeliver = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Delivers a logged envelope of a stream to this node's sockets by the delivery rule."""


@dataclass(slots=True)
class _Position:
    epoch: str | None
    seq: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    settled: bool = True
    """``False`` while the position is the log's head read at first sight, not a delivery:
    a message up to it may still be on its way here and is delivered, not dropped."""
    behind: bool = False
    """The last check found the log ahead of this node."""
    passing: dict[str, Any] | None = None
    """The envelope this node is sending as a fill right now (it comes back through admit)."""


class LiveCompleteness:
    """Per stream, the last seq this node delivered, and the fill of what it skipped.

    Args:
        store: the message log (the one every node appends to).
        registry: this node's sockets and rooms (which streams have subscribers here).
        interval: seconds between two checks against the log (at most 1).
    """

    def __init__(self, store: MessageStore, registry: Registry, interval: float) -> None:
        self._store = store
        self._registry = registry
        self._interval = interval
        self._positions: dict[str, _Position] = {}
        self._room_streams: dict[str, str | None] = {}
        self._redeliver: Redeliver | None = None
        self.filled = 0
        """Messages sent from the log because this node had skipped them."""
        self.reported = 0
        """Section 6 ``error`` events sent because the log no longer held them."""

    def bind(self, redeliver: Redeliver) -> None:
        """Give the delivery to this node's sockets (built after this), which calls :meth:`admit`
        for what it is given too: a fill passes it (the envelope is recognised)."""
        self._redeliver = redeliver

    async def admit(self, stream: str, envelope: dict[str, Any]) -> bool:
        """Called before a logged message goes to this node's sockets: ``False`` to drop it.

        What this node skipped of ``stream`` before it is delivered first.
        """
        seq = envelope.get("seq")
        epoch = envelope.get("epoch")
        if not isinstance(seq, int):
            return True
        position = self._positions.get(stream)
        if position is None:
            self._positions[stream] = _Position(epoch, seq)
            return True
        if position.passing is envelope:
            return True  # a fill of ours, on its way through the publisher
        async with position.lock:
            if epoch != position.epoch:
                # A new log: its first messages may have gone by unseen.
                position.epoch, position.seq = epoch, 0
            if seq <= position.seq:
                if position.settled:
                    return False  # sent already, from the log
                position.settled = seq == position.seq
                return True
            if seq > position.seq + 1:
                await self._fill(stream, position, seq - 1)
            position.seq = seq
            position.settled = True
            position.behind = False
            return True

    async def run_forever(self) -> None:
        """Check every ``interval`` seconds until cancelled; a failed check is retried."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check()
            except ProtocolError as error:  # the store is away: the next check tries again
                log.debug("completeness check skipped: %s", error.message)
            except Exception:
                log.exception("completeness check failed")

    def _streams_here(self) -> list[str]:
        """The streams this node has subscribers for (from its rooms; parsed once per room)."""
        streams: set[str] = set()
        known = self._room_streams
        for room in self._registry.rooms():
            stream = known.get(room, "")
            if stream == "":
                parts = room.split(":")
                # Subscription rooms are ``{channel}:org:{org}[...]``; ``org:{org}`` is no stream.
                stream = f"{parts[0]}:{parts[2]}" if len(parts) >= 3 and parts[1] == "org" else None
                if len(known) > 100_000:
                    known.clear()
                known[room] = stream
            if stream is not None:
                streams.add(stream)
        return sorted(streams)

    async def check(self) -> None:
        """Compare every stream with subscribers here with the log; fill what is behind twice.

        Raises:
            StoreUnavailableError: the store cannot be reached.
        """
        streams = self._streams_here()
        for gone in self._positions.keys() - set(streams):
            del self._positions[gone]  # no subscriber here any more
        if not streams:
            return
        heads = await self._store.heads(streams)
        for stream in streams:
            head = heads.get(stream)
            if head is None or head.epoch is None:
                continue
            position = self._positions.get(stream)
            if position is None:
                # First seen: subscribers here start from the log's present.
                self._positions[stream] = _Position(head.epoch, head.latest, settled=False)
                continue
            ahead = head.epoch != position.epoch or head.latest > position.seq
            if not ahead or not position.behind:
                position.behind = ahead
                continue
            async with position.lock:
                if head.epoch != position.epoch:
                    position.epoch, position.seq = head.epoch, 0
                if head.latest > position.seq:
                    await self._fill(stream, position, head.latest)
                position.behind = False

    async def _fill(self, stream: str, position: _Position, upto: int) -> None:
        """Deliver ``stream`` from after ``position.seq`` up to ``upto`` (held: its lock)."""
        part = await self._store.read_since(stream, position.seq, position.epoch)
        if not part.complete:
            # The subscribers resume with since: the replay sends what the log
            # still has and its ack reports the gap.
            await self._report(stream, position.seq)
            position.epoch, position.seq = part.epoch, upto
            return
        for message in part.messages:
            if message.seq <= upto:
                await self._send(stream, position, message)
        position.seq = max(position.seq, upto)

    async def _send(self, stream: str, position: _Position, message: StoredMessage) -> None:
        envelope = message.envelope
        position.passing = envelope
        position.seq = message.seq
        try:
            if self._redeliver is not None:
                await self._redeliver(stream, envelope)
                self.filled += 1
        finally:
            position.passing = None

    async def _report(self, stream: str, last_seq: int) -> None:
        """The section 6 ``error`` to every subscriber of ``stream`` here."""
        error = ProtocolError(
            ErrorCode.INTERNAL_ERROR,
            "messages of this stream were missed and the log no longer holds them: "
            "subscribe again with since",
            retryable=True,
            details={"stream": stream, "last_seq": last_seq},
        ).to_wire()
        rooms = [r for r, s in self._room_streams.items() if s == stream]
        for connection in self._registry.connections(self._registry.member_ids(rooms)):
            with contextlib.suppress(Exception):  # a socket that just went away
                await connection.link.send(ControlEvent.ERROR, error)
            self.reported += 1
        log.warning("stream %s: skipped messages gone from the log, after %d", stream, last_seq)
