"""Incoming server events, in order, to the application's listeners.

Order and backpressure are ours. Plain server events (no ack asked; a
``batch`` is unpacked) enter through :meth:`Dispatcher.take`, synchronously
in the transport's read loop; the others through :meth:`Dispatcher.receive`,
in a task of their own (synchronously up to its first wait, so arrival
order is kept). When nothing waits and nothing is being dispatched, an
event is dispatched there and then; otherwise it waits on one queue that
one task takes off, in order. Each is parsed into a typed
:class:`~client_sdk.Message`, checked against its stream's position
(:mod:`client_sdk._continuity`: no position moves past a hole), dropped if
its id is a duplicate, and delivered (:mod:`client_sdk._listeners`). A
``requires_ack`` message is acknowledged only after its listeners have run.

Resumes pass through the same queue as typed markers (:class:`ResumeBegin`,
:class:`ResumeEnd`), so what a resume's answer releases keeps its place in
the order. The queue obeys the client's ``handler_backpressure``: when
the listeners fall behind, the oldest waiting message is dropped and
counted (:attr:`Dispatcher.dropped`, never a marker); a dropped message of a
stream is filled again by a replay (its position stays before it), one
without a ``seq`` is reported as a gap. A dropped ``requires_ack`` message
is still acknowledged (it was received).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ._backpressure import Backpressure
from ._continuity import StreamGuard, Verdict, stream_of
from ._listeners import Delivery, Listener, ListenerTable, Rest
from ._messages import Message, RecentIds, _parse_message
from ._queue_items import FillDone, QueuedEvent, QueueItem, ResumeBegin, ResumeEnd
from ._resume import ResumeState
from ._routing import Router
from .exceptions import IntradayError, MalformedMessageError, ServerError
from .protocol import Channel, ControlEvent, ErrorCode, Payload, ServerEvent

__all__ = ["Dispatcher", "FillDone", "Listener", "ResumeBegin", "ResumeEnd"]

log = logging.getLogger("client_sdk")


_SERVER_EVENTS = frozenset(e.value for e in ServerEvent)
_STREAM_PREFIX = {c: f"{c.value}:" for c in Channel}


class Dispatcher:
    """One ordered queue from the transport to the listeners, and what went through it.

    Args:
        dedupe_window: how many recent message ids are remembered.
        resume: the positions, moved after each message's listeners ran.
        policy: how many messages wait when the listeners fall behind.
        read_whole: whether a stream is read without a department or queue filter.
        fill: asks for a ``subscribe`` with ``since`` of one stream; ``False``:
            no open subscription reads it.
        on_error: called with every error that did not fail a call (a server
            ``error`` event, a malformed message).
        on_handler_error: called when a listener raised (``where``, exception).
        on_overflow: a message without ``seq`` was dropped (its stream, if known).
        router: the subscriptions' readers, handed each message after the listeners.
    """

    def __init__(
        self,
        dedupe_window: int,
        *,
        resume: ResumeState,
        policy: Backpressure,
        read_whole: Callable[[str], bool],
        fill: Callable[[str], bool],
        on_error: Callable[[IntradayError], Awaitable[None]],
        on_handler_error: Callable[[str, Exception], None],
        on_overflow: Callable[[str | None], None],
        router: Router,
    ) -> None:
        recent = RecentIds(dedupe_window)
        for message_id in resume.recent_ids:
            recent.seen(message_id)
        self.guard = StreamGuard(resume, read_whole=read_whole, fill=fill)
        self._on_error = on_error
        self._on_overflow = on_overflow
        self._listeners = ListenerTable()
        self._delivery = Delivery(
            self._listeners, recent, router, self.guard, resume, on_handler_error
        )
        self._capacity = policy.capacity
        self._queue: deque[QueueItem] | None = None
        self._waiting = 0  # messages (not markers) in the queue
        self._wakeup: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        # Whether an event is being dispatched (by the task, or inline: in
        # receive, or in take and a task finishing its listeners), and that task.
        self._busy = False
        self._inline: asyncio.Task[Any] | None = None
        self.maintenance = False
        """The server announced ``system:maintenance`` (reset by the supervisor per connection)."""
        self.received = 0
        self._old = 0  # duplicates told by their stream's position (the rest by their id)
        self.malformed = 0
        self.dropped = 0
        self.last_event_at: float | None = None

    @property
    def duplicates(self) -> int:
        """Messages dropped as already received."""
        return self._old + self._delivery.duplicates

    @property
    def depth(self) -> int:
        """Events waiting to be dispatched."""
        return self._waiting

    def add_listener(
        self, key: ServerEvent | Channel | str, listener: Listener
    ) -> Callable[[], None]:
        """Call ``listener`` for an event, a channel or ``"*"``; returns its remover."""
        return self._listeners.add(key, listener)

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        """Start taking events off the queue (in the running loop)."""
        self._queue = deque()
        self._waiting = 0
        self.guard.reset()
        self._busy, self._inline = False, None
        self._task = asyncio.get_running_loop().create_task(
            self._dispatch_forever(), name="intraday-dispatch"
        )

    async def stop(self) -> None:
        """Stop; events still queued are dropped and their acks released."""
        queue, self._queue = self._queue, None
        self._wake()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        inline = self._inline
        if inline is not None and inline is not asyncio.current_task():
            inline.cancel()  # a listener running in receive(), cut off as the task's would be
        for item in queue or ():
            if isinstance(item, QueuedEvent):
                item.release()
        self._waiting = 0

    # -- the queue --------------------------------------------------------------------

    def _put(self, item: QueueItem) -> None:
        queue = self._queue
        if queue is None:
            if isinstance(item, QueuedEvent):
                item.release()
            return
        capacity = self._capacity
        full = capacity is not None and self._waiting >= capacity
        if isinstance(item, QueuedEvent) and item.counted and full and self._evict(queue, item):
            self._wake()
            return
        if isinstance(item, QueuedEvent) and item.counted:
            self._waiting += 1
        queue.append(item)
        self._wake()

    def _evict(self, queue: deque[QueueItem], newcomer: QueuedEvent) -> bool:
        """Drop a message for ``newcomer``; ``True`` if the newcomer itself went.

        A message of a stream goes itself: the ones waiting stay a contiguous
        run, and a fill asks for it again once they are handled (dropping the
        oldest instead would drop the next one due, round after round). One
        the server cannot replay makes room by dropping the oldest such
        (markers are bookkeeping, never dropped), reported as a gap.
        """
        self.dropped += 1
        where = stream_of(newcomer.data)
        if where is not None and where[1] is not None:
            newcomer.release()
            self.guard.dropped(where[0], where[1], where[2])
            return True
        at = next(
            i for i, item in enumerate(queue) if isinstance(item, QueuedEvent) and item.counted
        )
        oldest = queue[at]
        assert isinstance(oldest, QueuedEvent)
        del queue[at]
        oldest.release()
        self._waiting -= 1
        where = stream_of(oldest.data)
        if where is not None and where[1] is not None:
            self.guard.dropped(where[0], where[1], where[2])
        else:
            self._on_overflow(where[0] if where is not None else None)
        return False

    def _wake(self) -> None:
        waiter, self._wakeup = self._wakeup, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- resumes ------------------------------------------------------------------------

    def begin_resume(self, streams: dict[str, bool]) -> None:
        """A ``subscribe`` resuming ``streams`` is about to be sent (``True``: asks a replay)."""
        self._put(ResumeBegin(streams))

    def end_resume(self, streams: dict[str, bool], ack: Any) -> None:
        """Its answer arrived, in the order of the packets (``None``: it failed)."""
        self._put(ResumeEnd(streams, ack))

    def fill_done(self, stream: str) -> None:
        """A fill of ``stream`` ended (after its answer, in the queue's order)."""
        self._put(FillDone(stream))

    # -- the transport's sinks ----------------------------------------------------

    def take(self, event: str, data: Any = None) -> bool:
        """Dispatch or queue one server event without awaiting; ``False``: it needs receive.

        Left to :meth:`receive`, in a task of its own: an event asking for an
        ack (answered once its listeners ran), a ``batch`` holding one, and
        what the queue has no room for under the policy (a burst read in one
        go is never dropped where one task per message would have been
        dispatched in turn: the queued ones run first, those tasks after).
        """
        if isinstance(data, dict) and data.get("requires_ack") is True:
            return False
        capacity = self._capacity
        if event == ControlEvent.BATCH:
            messages = data.get("messages") if isinstance(data, dict) else None
            if (
                not isinstance(messages, list)
                or (capacity is not None and self._waiting + len(messages) > capacity)
                or any(isinstance(e, dict) and e.get("requires_ack") is True for e in messages)
            ):
                return False
            for envelope in messages:
                self._unpack(envelope)
            return True
        if capacity is not None and self._waiting >= capacity:
            return False
        if event == ServerEvent.SYSTEM_MAINTENANCE:
            self.maintenance = True
        queue = self._queue
        if queue is not None and not queue and not self._busy and event in _SERVER_EVENTS:
            self._dispatch_now(event, data, queue)
        else:
            self._put(QueuedEvent(event, data, None, event in _SERVER_EVENTS))
        return True

    def _dispatch_now(self, event: str, data: Any, queue: deque[QueueItem]) -> None:
        """Dispatch a message here; if a listener returns an awaitable, finish in a task.

        Until that task ends the dispatcher is busy: what arrives meanwhile queues.
        """
        try:
            message = _parse_message(event, data)
        except MalformedMessageError:
            self._put(QueuedEvent(event, data))  # the task counts and reports it
            return
        self.received += 1
        self.last_event_at = time.monotonic()
        admitted = self._admit(message)
        rest = self._delivery.now(*admitted) if admitted is not None else None
        if rest is not None:
            self._busy = True
            self._inline = asyncio.get_running_loop().create_task(self._finish_inline(rest, queue))
        elif not queue and self.guard.missing:
            self.guard.drained()

    async def _finish_inline(self, rest: Rest, queue: deque[QueueItem]) -> None:
        try:
            await self._delivery.finish(rest)
        finally:
            self._inline_done(queue)

    def _inline_done(self, queue: deque[QueueItem]) -> None:
        # Unless stop() and start() came meanwhile: this run is not the one
        # their dispatching state belongs to any more.
        if self._queue is queue:
            self._inline = None
            self._busy = False
            if queue:
                self._wake()  # what queued meanwhile: the task's turn
            elif self.guard.missing:
                self.guard.drained()

    async def receive(self, event: str, data: Any = None, *_more: Any, inline: bool = True) -> Any:
        """Take one server event (raw envelope dict): dispatch it, or queue it behind others.

        The entry of every event :meth:`take` left; what it returns is the
        event's ack. A ``batch``'s envelopes are queued, in order (dispatched
        here, the first could wait in an async listener while a later event
        queued ahead of the rest). When nothing is queued and no event is
        being dispatched, the event is dispatched right here, in the
        caller's task (the dispatcher task would cost a task switch).
        """
        if event == ControlEvent.BATCH:
            messages = data.get("messages") if isinstance(data, dict) else None
            for envelope in messages if isinstance(messages, list) else ():
                name = self._unpack(envelope)
                if name is not None:  # asks for an ack: never batched by the protocol
                    await self.receive(name, envelope, inline=False)
            return None
        if event == ServerEvent.SYSTEM_MAINTENANCE:
            self.maintenance = True
        queue = self._queue
        if queue is None:
            return None
        acked = isinstance(data, dict) and data.get("requires_ack") is True
        if inline and not self._busy and not queue:
            self._busy = True
            self._inline = asyncio.current_task()
            try:
                await self._dispatch_event(event, data)
            except asyncio.CancelledError:
                # stop() while a listener ran here: as for a queued event, the
                # message was received (and is acked), its listeners cut off.
                if not acked:
                    raise
            finally:
                self._inline_done(queue)
            return {"received": True} if acked else None
        if acked:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._put(QueuedEvent(event, data, done, event in _SERVER_EVENTS))
            with contextlib.suppress(asyncio.CancelledError):
                await done
            return {"received": True}
        self._put(QueuedEvent(event, data, None, event in _SERVER_EVENTS))
        return None

    def _unpack(self, envelope: Any) -> str | None:
        """Queue one envelope of a batch; its event instead if it asks for an ack."""
        name = envelope.get("event") if isinstance(envelope, dict) else None
        if not isinstance(name, str) or not name or name == ControlEvent.BATCH:
            return None
        if name == ServerEvent.SYSTEM_MAINTENANCE:
            self.maintenance = True
        if envelope.get("requires_ack") is True:
            return name
        self._put(QueuedEvent(name, envelope, None, name in _SERVER_EVENTS))
        return None

    # -- dispatching ----------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            queue = self._queue
            if queue is None:
                return
            if self._busy or not queue:
                # Empty, or an event is being dispatched in its own task
                # (receive): the queued ones come after it. Nothing is taken
                # off before then, so a newcomer sees a non-empty queue and waits.
                if not self._busy:
                    self.guard.drained()
                self._wakeup = loop.create_future()
                await self._wakeup
                continue
            item = queue.popleft()
            self._busy = True
            try:
                if isinstance(item, QueuedEvent):
                    self._waiting -= item.counted
                    await self._dispatch_event(item.name, item.data)
                elif isinstance(item, ResumeBegin):
                    self.guard.begin(item.streams)
                elif isinstance(item, ResumeEnd):
                    await self._resume_ended(item)
                else:
                    self.guard.fill_done(item.stream)
            finally:
                self._busy = False
                if isinstance(item, QueuedEvent):
                    item.release()

    async def _resume_ended(self, end: ResumeEnd) -> None:
        released, settles = self.guard.end(end.streams, end.ack)
        for stream, message in released:
            await self._deliver(message, stream)
        for settle in settles:
            self.guard.settle(*settle)

    async def _dispatch_event(self, event: str, data: Any) -> None:
        if event not in _SERVER_EVENTS:
            if event == ControlEvent.ERROR:
                await self._server_error(data)
            return  # control events (authenticated, client:pong, ...) need no listener
        self.received += 1
        self.last_event_at = time.monotonic()
        try:
            message = _parse_message(event, data)
        except MalformedMessageError as exc:
            self.malformed += 1
            await self._on_error(exc)
            return
        admitted = self._admit(message)
        if admitted is not None:
            await self._deliver(*admitted)

    def _admit(self, message: Message[Payload]) -> tuple[Message[Payload], str | None] | None:
        """The message to deliver now and its stream; ``None``: held for a fill, or old."""
        envelope = message.envelope
        seq, epoch = envelope.seq, envelope.epoch
        org = envelope.target.organization_id
        if seq is None or epoch is None or org is None or envelope.snapshot:
            return message, None
        stream = _STREAM_PREFIX[envelope.channel] + org  # stream_name's, without its check
        guard = self.guard
        verdict = guard.admit(stream, seq, epoch, message)
        if verdict is Verdict.DELIVER:
            replayed = guard.replayed_upto  # empty unless a replay ran
            if replayed and seq <= replayed.get(stream, -1):
                message = message.as_replayed()
            return message, stream
        if verdict is Verdict.OLD:
            self._old += 1
        return None

    async def _deliver(self, message: Message[Payload], stream: str | None) -> None:
        rest = self._delivery.now(message, stream)
        if rest is not None:
            await self._delivery.finish(rest)

    async def _server_error(self, data: Any) -> None:
        error = ServerError.from_wire(data)
        stream = error.details.get("stream")
        skipped = stream if error.code == ErrorCode.INTERNAL_ERROR else None
        if isinstance(skipped, str) and self.guard.request(skipped):
            # Section 6: the server could not resend what it skipped; the
            # fill's answer says complete: false, which reports the gap.
            log.info("server lost messages of %s; resuming it", stream)
            return
        await self._on_error(error)
