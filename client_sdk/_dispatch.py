"""Incoming server events, in order, to the application's listeners.

python-engineio runs every incoming message as a task of its own, so order
and backpressure are ours: the transport's sink puts each event on one queue
(synchronously, so arrival order is kept) and one task takes them off, parses
each into a typed :class:`~client_sdk.messages.Message`, drops duplicates by
id, and runs the listeners of its event, of its channel and of ``"*"``, each
isolated from the others. A ``requires_ack`` message is acknowledged only
after its listeners have run, so the server's latency figure includes them.

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
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ._backpressure import Backpressure, PolicyQueue
from ._callbacks import call_handler
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
        self._listeners: dict[str, list[Listener]] = {}
        self._policy = policy
        self._queue: PolicyQueue[_Item] | None = None
        self._task: asyncio.Task[None] | None = None
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
        self._listeners.setdefault(name, []).append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners[name].remove(listener)

        return remove

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        """Start taking events off the queue (in the running loop)."""
        self._queue = PolicyQueue(self._policy, self._count_drops, on_evict=self._evicted)
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

    async def receive(self, event: str, data: Any) -> Any:
        """Queue one server event; what it returns is the event's ack."""
        queue = self._queue
        if queue is None:
            return None
        if isinstance(data, dict) and data.get("requires_ack") is True:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            queue.put_nowait((event, data, done))
            with contextlib.suppress(asyncio.CancelledError):
                await done
            return {"received": True}
        queue.put_nowait((event, data, None))
        return None

    # -- dispatching ----------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        assert self._queue is not None
        async for event, data, done in self._queue:
            try:
                await self._dispatch(event, data)
            finally:
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
        for key in (message.event.value, message.channel.value, "*"):
            for listener in list(self._listeners.get(key, ())):
                try:
                    await call_handler(listener, message)
                except Exception as exc:
                    self._on_handler_error(key, exc)
        if stream is not None and envelope.seq is not None and envelope.epoch is not None:
            self._resume.advance(stream, envelope.seq, envelope.epoch, message.id)
