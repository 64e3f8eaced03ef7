"""The dispatcher's listeners, and the delivery of an admitted message to them.

Listeners are kept by event, by channel and ``"*"``, looked up once per
event. A delivery calls them in order, then hands the message to the
subscriptions' router and moves its stream's position. It runs without a
coroutine as long as the listeners return nothing to await: the first that
returns an awaitable (an ``async def`` listener's coroutine, not started yet)
ends :meth:`Delivery.now`, and :meth:`Delivery.finish` awaits it and goes on,
in whichever task the dispatcher chose.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from ._continuity import StreamGuard
from ._messages import Message, RecentIds
from ._resume import ResumeState
from ._routing import Router
from .protocol import Channel, Payload, ServerEvent

__all__ = ["Delivery", "Listener", "ListenerTable", "Rest"]

Listener = Callable[[Message[Payload]], Any]
"""Called with each message of its key; may be a coroutine function."""

Pairs = tuple[tuple[str, Listener], ...]
Rest = tuple[Message[Payload], str | None, Pairs, int, Awaitable[Any]]
"""A delivery to finish: message, stream, its listeners, the one awaited and its awaitable."""


class ListenerTable:
    """Listeners by key, and for each event the ones it reaches, in order."""

    def __init__(self) -> None:
        # Tuples, replaced on every change: dispatching iterates a snapshot
        # (a listener may remove itself) without copying it per message.
        self._listeners: dict[str, tuple[Listener, ...]] = {}
        # Per event: its channel and the (key, listener) pairs of the event, that
        # channel and "*"; cleared on every change (one look-up per message).
        self._called: dict[str, tuple[Channel, tuple[tuple[str, Listener], ...]]] = {}

    def add(self, key: ServerEvent | Channel | str, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for an event, a channel or ``"*"``; returns its remover."""
        name = key.value if isinstance(key, (ServerEvent, Channel)) else key
        self._listeners[name] = (*self._listeners.get(name, ()), listener)
        self._called.clear()

        def remove() -> None:
            current = self._listeners.get(name, ())
            if listener in current:
                at = current.index(listener)
                self._listeners[name] = current[:at] + current[at + 1 :]
                self._called.clear()

        return remove

    def of(self, event: ServerEvent, channel: Channel) -> tuple[tuple[str, Listener], ...]:
        """The (key, listener) pairs a message of ``event`` on ``channel`` reaches."""
        called = self._called.get(event)
        if called is not None and called[0] is channel:
            return called[1]
        # StrEnum members are their names as keys.
        pairs = tuple((k, f) for k in (event, channel, "*") for f in self._listeners.get(k, ()))
        self._called[event] = (channel, pairs)
        return pairs


class Delivery:
    """Delivers admitted messages: listeners, then the router, then the stream's position."""

    def __init__(
        self,
        listeners: ListenerTable,
        recent: RecentIds,
        router: Router,
        guard: StreamGuard,
        resume: ResumeState,
        on_handler_error: Callable[[str, Exception], None],
    ) -> None:
        self._listeners = listeners
        self._recent = recent
        self._router = router
        self._guard = guard
        self._resume = resume
        self._on_handler_error = on_handler_error
        self.duplicates = 0
        """Messages dropped because their id was seen already."""

    def now(self, message: Message[Payload], stream: str | None) -> Rest | None:
        """Deliver up to the first listener that returns an awaitable; then what is left."""
        envelope = message.envelope
        if self._recent.seen(envelope.id):
            self.duplicates += 1
            return None
        pairs = self._listeners.of(envelope.event, envelope.channel)
        return self._call(message, stream, pairs, 0)

    def _call(
        self, message: Message[Payload], stream: str | None, pairs: Pairs, start: int
    ) -> Rest | None:
        for at in range(start, len(pairs)):
            key, listener = pairs[at]
            try:
                result = listener(message)
            except Exception as exc:
                self._on_handler_error(key, exc)
                continue
            if result is not None and inspect.isawaitable(result):
                return message, stream, pairs, at, result
        self._router.route(message)
        envelope = message.envelope
        seq, epoch = envelope.seq, envelope.epoch
        if stream is not None and seq is not None and epoch is not None:
            self._guard.delivered(stream, seq)
            self._resume.advance(stream, seq, epoch, envelope.id)
        return None

    async def finish(self, rest: Rest | None) -> None:
        """Await the pending listener's result, then call the ones after it (each in turn)."""
        while rest is not None:
            message, stream, pairs, at, pending = rest
            try:
                await pending
            except Exception as exc:
                self._on_handler_error(pairs[at][0], exc)
            rest = self._call(message, stream, pairs, at + 1)
