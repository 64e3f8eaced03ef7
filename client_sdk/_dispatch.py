"""Incoming server events, in order, to the application's listeners.

python-engineio runs every incoming message as a task of its own, so order
and backpressure are ours. Every envelope enters through
:meth:`Dispatcher.receive` (synchronously up to its first wait, so arrival
order is kept): when nothing is waiting and no event is being dispatched, it
is dispatched there and then, in the transport's task; otherwise it waits on
one queue that one task takes off, in order, one event at a time. Either way
it is parsed into a typed :class:`~client_sdk.messages.Message`, dropped if
its id is a duplicate, and handed to the listeners of its event, of its
channel and of ``"*"``, each isolated from the others. A ``requires_ack``
message is acknowledged only after its listeners have run, so the server's
latency figure includes them.

Resumes pass through the same queue as markers: a message is *replayed*
when it arrives between a ``subscribe`` that asked for a replay of its
stream and that request's answer, or carries a seq the answer said was
already logged. Only after a message's listeners ran does its stream's
position move (:mod:`client_sdk._resume`).
The queue obeys a :class:`~client_sdk.Backpressure` policy (the client's
``handler_backpressure``, bounded by default) like the hooks' streams: a
listener slower than the feed makes the oldest waiting events drop, counted
in :attr:`Dispatcher.dropped`, instead of memory growing without bound. A
dropped ``requires_ack`` message is still acknowledged (it was received).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ._backpressure import Backpressure, PolicyQueue
from ._resume import ResumeState
from .exceptions import IntradayError, MalformedMessageError, ServerError
from .messages import Message, RecentIds, _parse_message
from .protocol import Channel, ControlEvent, Payload, ServerEvent, stream_name

__all__ = ["Dispatcher", "Listener"]


def _release(item: _Item) -> None:
    done = item[2]
    if done is not None and not done.done():
        done.set_result(None)  # releases the transport task waiting to ack


Listener = Callable[[Message[Payload]], Any]
"""Called with each message of its key; may be a coroutine function."""

_SERVER_EVENTS = frozenset(e.value for e in ServerEvent)

_Item = tuple[str, Any, "asyncio.Future[None] | None"]

_MARK = ""
"""The event name of a resume marker in the queue (no server event is named so)."""


class Dispatcher:
    """One ordered queue from the transport to the listeners, and what went through it.

    Args:
        dedupe_window: how many recent message ids are remembered.
        policy: what waits when the listeners fall behind.
        on_error: called with every error that did not fail a call (a server
            ``error`` event, a malformed message).
        on_handler_error: called when a listener raised (``where``, exception).
    """

    def __init__(
        self,
        dedupe_window: int,
        *,
        resume: ResumeState,
        policy: Backpressure,
        on_error: Callable[[IntradayError], Awaitable[None]],
        on_handler_error: Callable[[str, Exception], None],
    ) -> None:
        self._recent = RecentIds(dedupe_window)
        for message_id in resume.recent_ids:
            self._recent.seen(message_id)
        self._resume = resume
        self._resuming: dict[str, int] = {}
        self._replayed_upto: dict[str, int] = {}
        self._on_error = on_error
        self._on_handler_error = on_handler_error
        # Tuples, replaced on every change: dispatching iterates a snapshot
        # (a listener may remove itself) without copying it per message.
        self._listeners: dict[str, tuple[Listener, ...]] = {}
        self._policy = policy
        self._queue: PolicyQueue[_Item] | None = None
        self._task: asyncio.Task[None] | None = None
        # Whether an event is being dispatched (by the task or inline, in
        # receive), the inline one's task, and the dispatcher task's wait for it.
        self._busy = False
        self._inline: asyncio.Task[Any] | None = None
        self._idle_waiter: asyncio.Future[None] | None = None
        self.received = 0
        self.duplicates = 0
        self.malformed = 0
        self.dropped = 0
        self.last_event_at: float | None = None

    @property
    def depth(self) -> int:
        """Events waiting to be dispatched."""
        return len(self._queue) if self._queue is not None else 0

    def add_listener(
        self, key: ServerEvent | Channel | str, listener: Listener
    ) -> Callable[[], None]:
        """Call ``listener`` for an event, a channel or ``"*"``; returns its remover."""
        name = key.value if isinstance(key, (ServerEvent, Channel)) else key
        self._listeners[name] = (*self._listeners.get(name, ()), listener)

        def remove() -> None:
            current = self._listeners.get(name, ())
            if listener in current:
                at = current.index(listener)
                self._listeners[name] = current[:at] + current[at + 1 :]

        return remove

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        """Start taking events off the queue (in the running loop)."""
        self._queue = PolicyQueue(self._policy, self._count_drops, on_evict=self._evicted)
        self._busy, self._inline, self._idle_waiter = False, None, None
        self._task = asyncio.get_running_loop().create_task(
            self._dispatch_forever(), name="intraday-dispatch"
        )

    async def stop(self) -> None:
        """Stop; events still queued are dropped and their acks released."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        inline = self._inline
        if inline is not None and inline is not asyncio.current_task():
            inline.cancel()  # a listener running in receive(), cut off as the task's would be
        queue, self._queue = self._queue, None
        while queue is not None and len(queue):
            _release(queue.get_nowait())
        if queue is not None:
            queue.close()

    def _count_drops(self, count: int) -> None:
        self.dropped += count

    def _evicted(self, item: _Item) -> None:
        # A resume marker is bookkeeping, not a message: dropping it would leave
        # its stream "resuming" for ever. What was queued before it is gone
        # too, so taking effect now keeps its place in the order.
        if item[0] == _MARK:
            self._mark(*item[1])
        _release(item)

    # -- resumes --------------------------------------------------------------------

    def begin_resume(self, streams: list[str]) -> None:
        """A ``subscribe`` asking to replay ``streams`` is about to be sent."""
        if self._queue is not None:
            self._queue.put_nowait((_MARK, ("begin", streams), None))

    def end_resume(self, latest: dict[str, int | None]) -> None:
        """Its answer arrived (``latest``: the newest logged seq of each stream it replayed)."""
        if self._queue is not None:
            self._queue.put_nowait((_MARK, ("end", latest), None))

    def _mark(self, kind: str, payload: Any) -> None:
        if kind == "begin":
            for stream in payload:
                self._resuming[stream] = self._resuming.get(stream, 0) + 1
                self._replayed_upto.pop(stream, None)
            return
        for stream, latest in payload.items():
            count = self._resuming.get(stream, 0) - 1
            if count > 0:
                self._resuming[stream] = count
            else:
                self._resuming.pop(stream, None)
            if isinstance(latest, int):
                self._replayed_upto[stream] = latest

    # -- the transport's sink -----------------------------------------------------

    async def receive(self, event: str, data: Any, *, inline: bool = True) -> Any:
        """Take one server event (raw envelope dict): dispatch it, or queue it behind others.

        The one entry point of every envelope, single or from a batch; what
        it returns is the event's ack. When nothing is queued and no event is
        being dispatched, the event is dispatched right here, in the
        caller's task: handing it to the dispatcher task would cost a task
        switch and a loop iteration per message for the same order.
        ``inline=False`` always queues it: for a caller that feeds several
        events in a row (a batch), which must not wait in a listener between
        them while an event that arrived later queues ahead of the rest.
        """
        queue = self._queue
        if queue is None:
            return None
        acked = isinstance(data, dict) and data.get("requires_ack") is True
        if inline and not self._busy and not len(queue):
            self._busy = True
            self._inline = asyncio.current_task()
            try:
                await self._dispatch(event, data)
            except asyncio.CancelledError:
                # stop() while a listener ran here: as for a queued event, the
                # message was received (and is acked), its listeners cut off.
                if not acked:
                    raise
            finally:
                # Unless stop() and start() came meanwhile: this run is not
                # the one their dispatching state belongs to any more.
                if self._queue is queue:
                    self._inline = None
                    self._idle()
            return {"received": True} if acked else None
        if acked:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            queue.put_nowait((event, data, done))
            with contextlib.suppress(asyncio.CancelledError):
                await done
            return {"received": True}
        queue.put_nowait((event, data, None))
        return None

    def _idle(self) -> None:
        self._busy = False
        waiter, self._idle_waiter = self._idle_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- dispatching ----------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            await queue.wait()
            if not len(queue):
                return  # closed
            if self._busy:
                # An event is being dispatched in its own task (receive); the
                # queued ones come after it. Nothing is taken off the queue
                # before then, so a newcomer sees a non-empty queue and waits.
                self._idle_waiter = asyncio.get_running_loop().create_future()
                await self._idle_waiter
                continue
            event, data, done = queue.get_nowait()
            self._busy = True
            try:
                await self._dispatch(event, data)
            finally:
                self._busy = False
                if done is not None and not done.done():
                    done.set_result(None)

    async def _dispatch(self, event: str, data: Any) -> None:
        if event == _MARK:
            self._mark(*data)
            return
        if event == ControlEvent.ERROR:
            await self._on_error(ServerError.from_wire(data))
            return
        if event not in _SERVER_EVENTS:
            return  # control events (authenticated, client:pong, ...) need no listener
        self.received += 1
        self.last_event_at = time.monotonic()
        try:
            message = _parse_message(event, data)
        except MalformedMessageError as exc:
            self.malformed += 1
            await self._on_error(exc)
            return
        if self._recent.seen(message.id):
            self.duplicates += 1
            return
        envelope = message.envelope
        stream: str | None = None
        if envelope.seq is not None and envelope.target.organization_id is not None:
            stream = stream_name(envelope.channel, envelope.target.organization_id)
            upto = self._replayed_upto.get(stream)
            resumed = stream in self._resuming or (upto is not None and envelope.seq <= upto)
            if resumed and not envelope.snapshot:  # a snapshot message says so itself
                message = message.as_replayed()
        listeners = self._listeners
        for key in (envelope.event.value, envelope.channel.value, "*"):
            for listener in listeners.get(key, ()):
                try:
                    # call_handler's body, inline: one coroutine less per listener.
                    result = listener(message)
                    if result is not None and inspect.isawaitable(result):
                        await result
                except Exception as exc:
                    self._on_handler_error(key, exc)
        if stream is not None and envelope.seq is not None and envelope.epoch is not None:
            self._resume.advance(stream, envelope.seq, envelope.epoch, message.id)
