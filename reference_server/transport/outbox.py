"""One socket's way out: every byte the server sends to a socket leaves through its ``Outbox``.

This module holds that monopoly, for Socket.IO over WebSocket, Socket.IO over
long-polling and the plain-WebSocket bridge alike. Nothing else in the server
writes to a socket: room broadcasts, ``requires_ack`` messages, answers,
errors, batches, replays, and python-engineio's and python-socketio's own
packets (OPEN, CONNECT, PING, DISCONNECT) all pass through it. For an
Engine.IO session the outbox *is* the session's queue (python-engineio makes
it through ``AsyncServer.create_queue``, its documented factory), so the
library's writer (the WebSocket write loop, or the pending long-poll GET)
only ever takes packets from us.

What it owns:

- **Order.** What is handed to a socket's outbox first leaves first, across
  streams, acks and batches: one FIFO, filled synchronously.
- **Write now or queue**, decided on the writer's side of that FIFO. A
  message is written straight to the transport only when the writer is parked
  in :meth:`Outbox.get` with nothing handed to it and nothing queued; then
  nothing can be in flight to overtake, on any Python. Otherwise it is queued
  and the writer takes it in turn. "Straight" means at the end of the event
  loop's turn (:class:`TurnWrites`): the frames a socket gets from every
  broadcast handled in one turn leave in one system call, and anything queued
  meanwhile first writes them, so the order holds.
- **Compression once per message**: a :class:`Message` is encoded once and
  its frames (:class:`~.frames.MessageFrames`) built once for every recipient.
  A batch is compressed only when one of its messages would be alone: the
  window changes the framing, never what a client must inflate.
- **The batch window** (protocol section 5), adaptive: a message to a batch
  socket with nothing in flight goes at once; what arrives while earlier
  writes are pending gathers, and goes when the writer is free again, at the
  latest ``batch_window_ms`` after the first of it. A write counts as pending
  while the writer holds it, and a while after (TCP gives no read receipt):
  a message sent at once for two windows (a publisher on a kept-alive HTTP
  connection is often one window apart), a batch for one. A lone message
  never waits, a burst is gathered behind its first message, a steady feed
  goes one batch a window.
- **The bound**, in messages and in bytes, counting what waits here and what
  the transport still holds; a socket over it is **cut as too slow**. A
  replay (:meth:`Outbox.deliver_paced`) is never too slow: it waits for the
  socket to drain below half the bound instead.
- **At most 16 packets per round** of the writer, so that a long-poll
  response never holds more than python-engineio's client decodes
  (``Payload.max_decode_packets``); the rest goes with the next poll.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from .frames import MessageFrames
from .message import Codec, Encoded, Message, WireLike

__all__ = [
    "HELD_BYTES_LIMIT",
    "MAX_PACKETS_PER_ROUND",
    "PENDING_WINDOWS",
    "BatchClock",
    "Outbox",
    "OutboxLink",
    "OutboxPolicy",
    "TurnWrites",
    "flush_batches",
]

MAX_PACKETS_PER_ROUND: Final = 16
"""Packets the writer takes in one round (one long-poll response holds at most these)."""

log = logging.getLogger("reference_server")

PENDING_WINDOWS: Final = 2
"""How many batch windows a message sent at once counts as pending (a batch: one)."""

HELD_BYTES_LIMIT: Final = 64 * 1024
"""Bytes of frames a socket holds for the end of the loop's turn; more are written at once."""


class BatchClock:
    """One event-loop timer per millisecond of deadline, for all the outboxes of a server.

    The sockets of a room gather the same messages at the same moment; one
    timer wakes them all, instead of one per socket.
    """

    def __init__(self) -> None:
        self._due: dict[int, list[Outbox]] = {}

    def wake(self, outbox: Outbox, delay: float) -> int:
        """Call ``outbox.window_ends(tick)`` in about ``delay`` seconds; the tick."""
        loop = asyncio.get_running_loop()
        tick = math.ceil((loop.time() + delay) * 1000)
        due = self._due.get(tick)
        if due is None:
            due = self._due[tick] = []
            loop.call_at(tick / 1000, self._fire, tick)
        due.append(outbox)
        return tick

    def _fire(self, tick: int) -> None:
        for outbox in self._due.pop(tick, ()):
            outbox.window_ends(tick)


class TurnWrites:
    """The outboxes holding frames for the end of this turn of the event loop.

    A broadcast gives each recipient one frame; the broadcasts handled in one
    turn (a burst of POSTs in flight, a group from the cluster's channel) would
    each cost every socket a ``send()`` system call, about a third of a
    delivery's CPU. Held to the end of the turn, a socket's frames leave in one.
    One callback per turn serves every outbox of the server.
    """

    def __init__(self) -> None:
        self._outboxes: list[Outbox] = []

    def hold(self, outbox: Outbox) -> None:
        """Write ``outbox``'s held frames at the end of this turn (a server runs on one loop)."""
        if not self._outboxes:
            asyncio.get_running_loop().call_soon(self._write_all)
        self._outboxes.append(outbox)

    def _write_all(self) -> None:
        outboxes, self._outboxes = self._outboxes, []
        for outbox in outboxes:
            try:
                outbox.write_held()
            except Exception:  # one socket's failure must not strand the others' frames
                log.warning("a socket's write failed; its held frames are lost", exc_info=True)


@dataclass
class OutboxPolicy:
    """The limits shared by a server's outboxes, and their one counter."""

    max_messages: int
    max_bytes: int
    batch_window_ms: int
    batch_max_messages: int
    direct_writes: int = 0
    """Messages written straight to a transport (for tests and profiles)."""
    turn_writes: int = 0
    """System calls that wrote them: one per socket per turn of the loop (tests, profiles)."""
    clock: BatchClock = field(default_factory=BatchClock)
    """When gathered batches go."""
    turn: TurnWrites = field(default_factory=TurnWrites)
    """Where frames written straight wait for the end of the loop's turn."""


_NO_ITEMS: Final[deque[Encoded]] = deque(maxlen=0)
"""The items of every outbox with none waiting: an empty deque holds a 64-slot block
(760 bytes), and an idle socket's outbox is empty nearly all the time. Never appended
to (its ``maxlen`` of 0 would drop the item): :meth:`Outbox._push` makes a deque first."""


def _no_wire() -> WireLike | None:
    return None


class Outbox:
    """One socket's outgoing FIFO, its writer's queue, its bound and its batches.

    Args:
        codec: how this socket's messages are encoded.
        policy: the server's limits.

    The transport sets :attr:`find_wire` (the transport to write through
    directly, when it may: the outbox keeps the first one found as
    :attr:`wire`; the transport clears it when the socket starts closing) and
    :attr:`on_too_slow` once the socket is known.
    """

    __slots__ = (
        "_acks",
        "_all_done",
        "_batch",
        "_batch_bytes",
        "_bytes",
        "_codec",
        "_getter",
        "_held",
        "_held_bytes",
        "_items",
        "_messages",
        "_next_ack",
        "_pending_until",
        "_policy",
        "_progress",
        "_round",
        "_timer",
        "_unfinished",
        "batching",
        "ended",
        "find_wire",
        "on_too_slow",
        "wire",
    )

    def __init__(self, codec: Codec, policy: OutboxPolicy) -> None:
        self._codec = codec
        self._policy = policy
        self._items: deque[Encoded] = _NO_ITEMS  # a deque of its own while items wait
        self._messages = 0  # counted items waiting in _items
        self._bytes = 0
        self._getter: asyncio.Future[None] | None = None
        self._held: list[bytes] | None = None  # frames for the end of the turn (TurnWrites)
        self._held_bytes = 0
        self._round = 0
        self._unfinished = 0
        self._all_done: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None
        self._batch: list[Message] = []
        self._batch_bytes = 0
        self._timer = 0  # the BatchClock tick at which the gathered batch goes; 0: none
        self._pending_until = 0.0  # until when what went last counts as unread (batching)
        self._acks: dict[int, Callable[..., None]] = {}
        self._next_ack = 0
        self.batching = False
        """Gather messages into ``batch`` events (the socket announced capability ``batch``)."""
        self.ended = False
        """Cut or closed: nothing more is delivered."""
        self.find_wire: Callable[[], WireLike | None] = _no_wire
        self.on_too_slow: Callable[[int, int], None] | None = None
        self.wire: WireLike | None = None
        """The transport found by :attr:`find_wire`, kept until the socket closes."""

    # -- the writer's side (python-engineio's socket, or the bridge's writer) --

    async def put(self, item: Any) -> None:
        """Queue ``item`` as it is (python-engineio's own packets)."""
        self._push(item, None, 0)

    def put_nowait(self, item: Any) -> None:
        """Queue ``item`` as it is (python-engineio's own packets; ``None`` ends the writer)."""
        self._push(item, None, 0)

    async def get(self) -> Any:
        """The next item, once there is one; a new round of at most 16 begins."""
        self._round = 0
        while not self._items:
            if self._batch:
                self._flush_batch()  # gathered while the writer was busy: its turn now
                continue
            getter = self._getter = asyncio.get_running_loop().create_future()
            try:
                await getter
            finally:
                if self._getter is getter:
                    self._getter = None
        self._round = 1
        return self._take()

    def get_nowait(self) -> Any:
        """The next item of this round; ``QueueEmpty`` when none, or the round is full."""
        if self._round >= MAX_PACKETS_PER_ROUND:
            raise asyncio.QueueEmpty
        if not self._items and self._batch:
            self._flush_batch()
        if not self._items:
            raise asyncio.QueueEmpty
        self._round += 1
        return self._take()

    def task_done(self) -> None:
        """The writer is done with one item."""
        if self._unfinished > 0:
            self._unfinished -= 1
        if self._unfinished == 0 and self._all_done is not None:
            self._all_done.set()

    async def join(self) -> None:
        """Wait until the writer is done with everything queued."""
        while self._unfinished > 0:
            if self._all_done is None:
                self._all_done = asyncio.Event()
            self._all_done.clear()
            await self._all_done.wait()

    def empty(self) -> bool:
        """Whether nothing waits."""
        return not self._items

    def qsize(self) -> int:
        """How many items wait."""
        return len(self._items)

    def _push(self, item: Any, frames: MessageFrames | None, size: int) -> None:
        if self._held is not None:
            self.write_held()  # the writer may write this at once: what came first goes first
        if self._items is _NO_ITEMS:
            self._items = deque()
        self._items.append((item, frames, size))
        self._unfinished += 1
        if size:
            self._messages += 1
            self._bytes += size
        getter = self._getter
        if getter is not None:
            self._getter = None  # the writer is busy from here until it asks again
            if not getter.done():
                getter.set_result(None)

    def _take(self) -> Any:
        item, _, size = self._items.popleft()
        if not self._items:
            self._items = _NO_ITEMS
        if size:
            self._messages -= 1
            self._bytes -= size
            if self._progress is not None:
                self._progress.set()
        return item

    # -- the server's side ---------------------------------------------------

    def deliver(self, message: Message, on_ack: Callable[..., None] | None = None) -> None:
        """Hand ``message`` to this socket; ``on_ack`` is called when the client acknowledges."""
        if on_ack is None and not self.batching and not self.ended:
            # The common case, once per recipient of a broadcast: kept short.
            encoded = message.made.get(self._codec) or message.encoded(self._codec)
            self._send(encoded, paced=False)
        else:
            self._deliver(message, on_ack, paced=False)

    async def deliver_paced(self, message: Message) -> None:
        """Hand over a replayed ``message``: wait while half the bound is used, never cut."""
        policy = self._policy
        while not self.ended and (
            self._messages + len(self._batch) >= policy.max_messages // 2
            or self._bytes + self._batch_bytes >= policy.max_bytes // 2
        ):
            if self._progress is None:
                self._progress = asyncio.Event()
            self._progress.clear()
            await self._progress.wait()
        self._deliver(message, None, paced=True)

    def answer(self, ack_id: int, data: Any) -> None:
        """Answer the client's request ``ack_id`` (after what is already due)."""
        if self.ended:
            return
        if self._batch:
            self._flush_batch()
        self._send(self._codec.ack(ack_id, data), paced=False)

    def acknowledged(self, ack_id: int, args: list[Any]) -> None:
        """The client acknowledged our message ``ack_id``."""
        callback = self._acks.pop(ack_id, None)
        if callback is not None:
            callback(*args)

    def flush(self) -> None:
        """Send what is gathered now (something urgent, or the end)."""
        if self._batch:
            self._flush_batch()

    def closing(self) -> None:
        """The session is ending: what was held this turn goes; nothing more goes straight."""
        self.write_held()
        self.wire = None

    def end(self) -> None:
        """The socket is gone: nothing more is delivered, nothing gathered is sent."""
        self.write_held()  # written straight before the end (a closing error, say): they go
        self.ended = True
        self.wire = None
        self._batch.clear()
        self._batch_bytes = 0
        self._acks.clear()
        self._timer = 0
        if self._progress is not None:
            self._progress.set()

    def discard(self) -> None:
        """Drop everything waiting (a socket cut as too slow will not read it)."""
        self._held = None
        self.end()
        self._items.clear()
        self._messages = self._bytes = self._unfinished = 0
        if self._all_done is not None:
            self._all_done.set()

    def reset(self) -> None:
        """The socket left; its session may carry another one: no batch, no ack pending."""
        self.batching = False
        self._batch.clear()
        self._batch_bytes = 0
        self._acks.clear()
        self._timer = 0

    def _deliver(self, message: Message, on_ack: Callable[..., None] | None, paced: bool) -> None:
        if self.ended:
            return
        if on_ack is not None and not self._codec.asks_acks:
            on_ack = None
        if on_ack is None and self.batching and message.batchable:
            if self._batch or self._busy():
                self._gather(message, paced)
                return
            window = self._policy.batch_window_ms / 1000
            self._pending_until = time.monotonic() + PENDING_WINDOWS * window
        elif self._batch:
            self._flush_batch()  # what was due before it goes first
        if on_ack is None:
            encoded = message.encoded(self._codec)
        else:
            ack_id = self._next_ack
            self._next_ack += 1
            self._acks[ack_id] = on_ack
            encoded = self._codec.single(message, ack_id)
        self._send(encoded, paced)

    def _busy(self) -> bool:
        # What went out counts as pending for a while: TCP tells the sender nothing
        # about when the client has read it. A message sent at once, for two windows;
        # a batch, for one (so a steady feed gets one batch a window, and a lone
        # message one window after a batch goes at once). Answers and errors do not
        # count: they are not what a batch gathers.
        return bool(self._items) or self._getter is None or time.monotonic() < self._pending_until

    def _send(self, encoded: Encoded, paced: bool) -> None:
        item, frames, size = encoded
        if frames is not None and self._getter is not None and not self._items:
            # The writer is parked in get() with nothing handed to it: nothing
            # can be in flight, so a frame written straight keeps the order
            # (behind the frames held this turn, if any).
            wire = self.wire
            if wire is None:
                wire = self.wire = self.find_wire()
            if wire is not None and (self._held is not None or wire.ready()):
                frame = wire.frame(frames)
                if frame is not None:
                    self._hold(frame)
                    self._policy.direct_writes += 1
                    return
        if not paced and not self._admit(size):
            return
        self._push(item, frames, size)

    def _hold(self, frame: bytes) -> None:
        held = self._held
        if held is None:
            self._held = [frame]
            self._held_bytes = len(frame)
            self._policy.turn.hold(self)
            return
        held.append(frame)
        self._held_bytes += len(frame)
        if self._held_bytes >= HELD_BYTES_LIMIT:
            self.write_held()  # a turn's worth is bounded: the next frame sees the transport

    def write_held(self) -> None:
        """Write the frames held for the end of the turn, in one system call."""
        held = self._held
        if held is None:
            return
        self._held = None
        wire = self.wire
        if wire is not None:
            wire.send(held[0] if len(held) == 1 else b"".join(held))
            self._policy.turn_writes += 1

    def _admit(self, size: int) -> bool:
        policy = self._policy
        messages = self._messages + len(self._batch) + 1
        held = self._bytes + self._batch_bytes + size
        if messages <= policy.max_messages and held <= policy.max_bytes:
            wire = (self.wire or self.find_wire()) if held > policy.max_bytes // 2 else None
            held += wire.buffered() if wire is not None else 0
            if held <= policy.max_bytes:
                return True
        self._cut(messages, held)
        return False

    def _cut(self, messages: int, held: int) -> None:
        self.discard()
        if self.on_too_slow is not None:
            self.on_too_slow(messages, held)

    def _gather(self, message: Message, paced: bool) -> None:
        size = len(message.json)
        if not paced and not self._admit(size):
            return
        self._batch.append(message)
        self._batch_bytes += size
        if len(self._batch) >= self._policy.batch_max_messages:
            self._flush_batch()
        elif not self._timer:
            # When what went last is no longer pending, at most a window away.
            window = self._policy.batch_window_ms / 1000
            delay = max(0.0, min(self._pending_until - time.monotonic(), window))
            self._timer = self._policy.clock.wake(self, delay)

    def _flush_batch(self) -> None:
        self._timer = 0
        batch, self._batch = self._batch, []
        self._batch_bytes = 0
        self._pending_until = time.monotonic() + self._policy.batch_window_ms / 1000
        for encoded in batch[0].batch_encoded(self._codec, batch):
            self._send(encoded, paced=True)  # admitted as it was gathered

    def window_ends(self, tick: int) -> None:
        """The :class:`BatchClock` says the gathered batch is due (if ``tick`` is still its)."""
        if tick != self._timer:
            return  # flushed since, by the writer or a full batch
        self._timer = 0
        if self._batch:
            self._flush_batch()


def flush_batches(outboxes: list[Outbox]) -> None:
    """Send what every one of ``outboxes`` has gathered (the shutdown notice is urgent)."""
    for outbox in outboxes:
        outbox.flush()


class OutboxLink:
    """What every socket's link hands to its :class:`Outbox` (Socket.IO and bridge alike)."""

    __slots__ = ()
    outbox: Outbox

    async def send(self, event: str, data: Any) -> None:
        """Hand one event to the outbox (a message may wait for its batch)."""
        self.outbox.deliver(Message(event, data))

    async def send_replayed(self, event: str, data: Any) -> None:
        """Hand over a replayed message, paced by the socket's drain (never too slow)."""
        await self.outbox.deliver_paced(Message(event, data))

    def start_batching(self) -> None:
        """Gather this socket's messages into ``batch`` events from now on."""
        self.outbox.batching = True

    async def send_ack(self, ack_id: int, data: Any) -> None:
        """Answer the client's request ``ack_id`` (after what is already due)."""
        self.outbox.answer(ack_id, data)
