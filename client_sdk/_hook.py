"""The machinery of the live hooks: a hot, reference-counted observable with a pull path.

:class:`Hook` starts its work when the first observer or stream arrives and
stops it when the last one leaves (:class:`~client_sdk.hooks.MessageHook`,
in :mod:`client_sdk._message_hook`, is the hook whose work is a server
subscription). The public face is :mod:`client_sdk.hooks`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import reactivex
from reactivex import abc
from reactivex.disposable import Disposable

from ._backpressure import Backpressure, PolicyQueue
from .protocol import ConnectionState, Payload

if TYPE_CHECKING:
    from ._client import IntradayClient

__all__ = ["Hook"]

log = logging.getLogger("client_sdk.hooks")

T = TypeVar("T")
P = TypeVar("P", bound=Payload)


class Hook(reactivex.Observable[T]):
    """Base of every hook: a hot, reference-counted observable with a pull path.

    The first observer or stream starts the hook (subscribes, starts pinging
    ...), the last one to leave stops it. Observers added later share what
    is running. A hook is bound to one client; create it anywhere, observe
    it in the event loop.

    Example:
        >>> hook = connection_status(client)  # doctest: +SKIP
        >>> disposable = hook.subscribe(print)  # starts it
        >>> hook.observer_count, hook.active
        (1, True)
        >>> disposable.dispose()  # the last one: stops it
    """

    def __init__(self, client: IntradayClient, policy: Backpressure) -> None:
        super().__init__()
        self._client = client
        self._policy = policy
        self._observers: list[abc.ObserverBase[T]] = []
        self._queues: list[PolicyQueue[T]] = []
        self._latest: T | None = None
        self._warned_idle = False
        self._dropped = 0
        self._watch: abc.DisposableBase | None = None
        self._active = False
        self._starting = False
        self._closed = False

    @property
    def client(self) -> IntradayClient:
        """The client this hook reads from."""
        return self._client

    @property
    def policy(self) -> Backpressure:
        """The default backpressure policy of :meth:`stream`."""
        return self._policy

    @property
    def latest(self) -> T | None:
        """The last value emitted (kept after the last observer left), or ``None``.

        A hook only works while something observes it: reading ``latest`` of
        a hook that was never observed logs a warning (once), since it would
        stay ``None`` for ever.
        """
        if self._latest is None and not self._active and not self._warned_idle:
            self._warned_idle = True
            log.warning(
                "%r: .latest read but nothing observes the hook, so it stays None; "
                "observe it first (hook.subscribe(...), async for, or hook.stream())",
                self,
            )
        return self._latest

    @property
    def dropped(self) -> int:
        """Values dropped by this hook's streams under their backpressure policy."""
        return self._dropped

    @property
    def observer_count(self) -> int:
        """Observers plus open streams: while above zero the hook is running."""
        return len(self._observers) + len(self._queues)

    @property
    def active(self) -> bool:
        """Whether the hook is running (someone observes it)."""
        return self._active

    def __repr__(self) -> str:
        return f"<{type(self).__name__} observers={self.observer_count}>"

    # -- observers ----------------------------------------------------------------

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        if self._closed:
            observer.on_completed()
            return Disposable()
        self._observers.append(observer)
        self._sync()
        greeting = self._greeting()
        if greeting is not None and observer in self._observers:
            self._safely(observer.on_next, greeting)

        def remove() -> None:
            if observer in self._observers:
                self._observers.remove(observer)
                self._sync()

        return Disposable(remove)

    @contextlib.asynccontextmanager
    async def stream(self, policy: Backpressure | None = None) -> AsyncIterator[PolicyQueue[T]]:
        """Read this hook with ``async for``, buffering by ``policy`` while the reader is busy.

        Entering observes the hook and waits until it is live (for message
        hooks: subscribed on the server), so nothing published afterwards is
        missed; leaving stops observing. The stream ends when the client is
        closed, and raises the hook's error if the subscription is refused.

        Args:
            policy: what to keep while the reader is busy; the hook's own by default.

        Example:
            >>> async with kpi_updates(client).stream(BUFFER(10)) as updates:  # doctest: +SKIP
            ...     async for message in updates:
            ...         await store(message)
        """
        queue: PolicyQueue[T] = PolicyQueue(policy or self._policy, self._count_drops)
        if self._closed:
            queue.close()
            yield queue
            return
        self._queues.append(queue)
        try:
            self._sync()
            greeting = self._greeting()
            if greeting is not None:
                queue.put_nowait(greeting)
            if not queue.closed:
                await self._until_ready()
            yield queue
        finally:
            if queue in self._queues:
                self._queues.remove(queue)
                self._sync()
            queue.close()

    async def __aiter__(self) -> AsyncIterator[T]:
        """``async for value in hook``: :meth:`stream` with the hook's policy.

        Leaving the loop early stops observing once the generator is closed;
        wrap it in ``contextlib.aclosing`` to make that immediate.
        """
        async with self.stream() as values:
            async for value in values:
                yield value

    # -- lifecycle ------------------------------------------------------------------

    def _sync(self) -> None:
        """Start when the first user arrives, stop when the last one leaves."""
        wanted = bool(self._observers or self._queues) and not self._closed
        if wanted and not self._active:
            self._active = True
            self._starting = True
            try:
                watch = self._client.state_changes.subscribe(
                    on_next=self._state_changed, on_completed=self._complete
                )
                if self._closed:  # the client was closed already: completed at once
                    watch.dispose()
                    return
                self._watch = watch
                self._start()
            finally:
                self._starting = False
        elif not wanted and self._active:
            self._active = False
            old, self._watch = self._watch, None
            if old is not None:
                old.dispose()
            self._stop()

    def _start(self) -> None:
        """Begin the hook's work (first user)."""

    def _stop(self) -> None:
        """End the hook's work (last user left)."""

    async def _until_ready(self) -> None:
        """Wait until the hook delivers (a message hook: subscribed)."""

    def _greeting(self) -> T | None:
        """What a new observer gets at once (``None``: nothing)."""
        return None

    def _state_changed(self, state: ConnectionState) -> None:
        """The client's state changed (never raises into the client)."""

    def _count_drops(self, count: int) -> None:
        if not self._dropped:  # said once: a policy that drops says so
            log.info(
                "%r: a stream's backpressure policy dropped messages (KEEP_LATEST keeps "
                "only the newest); counted in hook.dropped and statistics().messages_dropped",
                self,
            )
        self._dropped += count
        self._client._count_dropped(count)

    def _complete(self) -> None:
        """The client was closed: complete every observer and stream, for good."""
        if self._closed:
            return
        self._closed = True
        observers, self._observers = self._observers, []
        queues, self._queues = self._queues, []
        self._sync()
        for queue in queues:
            queue.close()
        for observer in observers:
            self._safely(observer.on_completed)

    def _fail(self, error: Exception) -> None:
        """Send ``error`` to every observer and stream; they are detached."""
        observers, self._observers = self._observers, []
        queues, self._queues = self._queues, []
        self._sync()
        for queue in queues:
            queue.close(error)
        for observer in observers:
            self._safely(observer.on_error, error)

    def _emit(self, value: T) -> list[Exception]:
        """Deliver ``value`` to every stream and observer; return the observers' exceptions."""
        self._latest = value
        for queue in list(self._queues):
            queue.put_nowait(value)
        failures: list[Exception] = []
        for observer in list(self._observers):
            try:
                observer.on_next(value)
            except Exception as exc:
                failures.append(exc)
        return failures

    def _emit_logged(self, value: T) -> None:
        for failure in self._emit(value):
            log.error("an observer of %r raised", self, exc_info=failure)

    @staticmethod
    def _safely(call: Callable[..., Any], *args: Any) -> None:
        try:
            call(*args)
        except Exception:
            log.exception("an observer raised")
