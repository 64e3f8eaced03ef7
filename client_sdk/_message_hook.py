"""The hook whose work is a server subscription: :class:`MessageHook`.

Its session task subscribes once the client is authenticated (retrying
through outages), holds the subscription until released, then closes it.
The subscription routes what it covers to the hook (:mod:`client_sdk._routing`).
The public face is :mod:`client_sdk.hooks`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar, cast

from ._backpressure import Backpressure
from ._hook import Hook
from ._messages import Message
from ._retry import RetryPolicy
from ._subscriptions import Subscription
from .exceptions import ClientClosedError, IntradayError, RequestTimeoutError
from .protocol import Channel, ConnectionState, Payload, Scope, ServerEvent

if TYPE_CHECKING:
    from ._client import IntradayClient

__all__ = ["MessageHook", "QueueKey"]

log = logging.getLogger("client_sdk.hooks")

P = TypeVar("P", bound=Payload)

QueueKey: TypeAlias = tuple[str | None, str | None]
"""``(department_id, queue_name)`` of a message's target, the key of ``MessageHook.by_queue``."""


class _Released(Exception):
    """The last observer left while the hook was still subscribing."""


class MessageHook(Hook[Message[P]], Generic[P]):
    """A hook over server messages: subscribes its channels with its filter while observed.

    It reads what the client routes to its subscription (checked against
    the filter once, :mod:`client_sdk._routing`), keeping the events it
    emits; a hook without channels listens to every message and filters.

    Example:
        >>> hook = kpi_updates(client, queue_name="support")  # doctest: +SKIP
        >>> disposable = hook.subscribe(lambda m: print(m.payload.health_score))
        >>> await hook.wait_subscribed(timeout=5)
        >>> hook.latest  # the last kpi:update or kpi:computed, or None
        >>> disposable.dispose()  # last observer: unsubscribes
    """

    def __init__(
        self,
        client: IntradayClient,
        *,
        channels: tuple[Channel, ...],
        events: frozenset[ServerEvent] | None,
        filter: Scope,
        policy: Backpressure,
        snapshot: bool = False,
    ) -> None:
        super().__init__(client, policy)
        self._snapshot = snapshot
        self._channels = channels
        self._events = events
        self._filter = filter
        self._removers: list[Callable[[], None]] = []
        self._released: asyncio.Event | None = None
        self._session: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None
        self._ready = False
        self._by_queue: dict[QueueKey, Message[P]] = {}
        self._failure: Exception | None = None
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def channels(self) -> tuple[Channel, ...]:
        """The channels subscribed while observed (empty: listens only)."""
        return self._channels

    @property
    def event_names(self) -> frozenset[ServerEvent] | None:
        """The events emitted (``None``: every event of the channels)."""
        return self._events

    @property
    def subscription_filter(self) -> Scope:
        """The organization, department and queue this hook covers."""
        return self._filter

    @property
    def subscribed(self) -> bool:
        """Whether the hook holds its server subscription (the client restores it after outages)."""
        return self._ready

    @property
    def error(self) -> Exception | None:
        """Why the last subscription attempt was refused, if it was."""
        return self._failure

    def __repr__(self) -> str:
        what = ",".join(sorted(self._events)) if self._events else ",".join(self._channels) or "*"
        scope = "".join(f" {k}={v}" for k, v in self._filter.fields().items())
        return f"<{type(self).__name__} {what}{scope} observers={self.observer_count}>"

    async def wait_subscribed(self, timeout: float | None = None) -> None:
        """Wait until the server subscription is in place (someone must observe the hook).

        Raises:
            RequestTimeoutError: not subscribed within ``timeout`` seconds.
            ServerError: the server refused the subscription (for example
                ``UnauthorizedError`` for another organization).
            ClientClosedError: the client was closed.
        """
        if self._ready:
            return
        if self._closed:
            raise ClientClosedError("the client was closed")
        if self._failure is not None and not self._active:
            raise self._failure
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):  # wait_for can drop a cancellation on 3.11
                await waiter
        except TimeoutError:
            raise RequestTimeoutError(f"{self!r} not subscribed within {timeout} s") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def _until_ready(self) -> None:
        await self.wait_subscribed()

    def _resolve_waiters(self, error: Exception | None = None) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)

    # -- lifecycle ------------------------------------------------------------------

    def _start(self) -> None:
        self._failure = None
        if not self._channels:
            # Listens only: every message the client receives, filtered here.
            self._removers = [self._client.add_listener("*", self._on_any)]
            self._set_ready(None)
            return
        released = asyncio.Event()
        self._released = released
        self._session = asyncio.get_running_loop().create_task(
            self._run_session(self._session, released), name=f"hook {self!r}"
        )

    def _stop(self) -> None:
        for remove in self._removers:
            remove()
        self._removers = []
        self._ready = False
        if self._released is not None:
            self._released.set()
            self._released = None

    def _complete(self) -> None:
        super()._complete()
        self._resolve_waiters(ClientClosedError("the client was closed"))

    def _fail(self, error: Exception) -> None:
        self._failure = error
        super()._fail(error)
        self._resolve_waiters(error)

    def _set_ready(self, subscription: Subscription | None) -> None:
        self._subscription = subscription
        self._ready = True
        self._resolve_waiters()

    async def _run_session(
        self, previous: asyncio.Task[None] | None, released: asyncio.Event
    ) -> None:
        """Subscribe, hold the subscription until released, then close it."""
        if previous is not None and not previous.done():
            await asyncio.wait([previous])  # the last session's unsubscribe goes first
        subscription = await self._open(released)
        if subscription is None:
            return
        try:
            if not released.is_set():
                self._set_ready(subscription)
                await released.wait()
        finally:
            if self._subscription is subscription:
                self._subscription = None
            await subscription.close()

    async def _open(self, released: asyncio.Event) -> Subscription | None:
        """Subscribe once authenticated, retrying; ``None`` if released or refused.

        Connection trouble is never an error of the hook (``connection_status``
        reports it): the hook waits for the client to be authenticated again.
        A retryable refusal (``ROOM_FULL``) is tried again after the backoff.
        """
        policy = RetryPolicy.of(self._client.config).unbounded()

        async def sleep(seconds: float) -> None:
            if not await _unless_released(released, policy.sleep(seconds)):
                raise _Released

        try:
            async for attempt in policy.retrying(sleep=sleep, reraise=True):
                with attempt:
                    if not await _unless_released(released, self._authenticated()):
                        raise _Released
                    f = self._filter
                    # The subscription routes what it covers here (filtered once).
                    subscription = await self._client.subscribe(
                        self._channels,
                        organization_id=f.organization_id,
                        department_id=f.department_id,
                        queue_name=f.queue_name,
                        snapshot=self._snapshot,
                        on_message=self._on_message,
                    )
        except _Released:
            return None
        except (IntradayError, ValueError) as exc:
            self._fail(exc)
            return None
        if released.is_set():
            await subscription.close()
            return None
        return subscription

    async def _authenticated(self) -> None:
        """Wait until the client is authenticated (through failures and manual reconnects)."""
        done = asyncio.get_running_loop().create_future()

        def check(state: ConnectionState) -> None:
            if state is ConnectionState.AUTHENTICATED and not done.done():
                done.set_result(None)

        watch = self._client.state_changes.subscribe(check)
        try:
            await done
        finally:
            watch.dispose()

    # -- messages -------------------------------------------------------------------

    def _on_message(self, message: Message[Payload]) -> None:
        if not self._active or (self._events is not None and message.event not in self._events):
            return
        self._accept(cast(Message[P], message))

    def _on_any(self, message: Message[Payload]) -> None:
        if self._filter.covers(message.target):
            self._on_message(message)

    @property
    def by_queue(self) -> Mapping[QueueKey, Message[P]]:
        """The latest message per ``(department_id, queue_name)`` of its target.

        A dashboard's view: one entry per queue (``None`` where the target has
        no department or queue: an organization-wide message), filled from
        every message the hook receives, snapshot messages included, and
        kept after the last observer left. A read-only live view.
        """
        return MappingProxyType(self._by_queue)

    def _accept(self, message: Message[P]) -> None:
        target = message.target
        self._by_queue[(target.department_id, target.queue_name)] = message
        failures = self._emit(message)
        for extra in failures[1:]:
            log.error("an observer of %r raised", self, exc_info=extra)
        if failures:
            raise failures[0]  # the client reports it on ``errors`` and carries on


async def _unless_released(released: asyncio.Event, work: Awaitable[Any]) -> bool:
    """Run ``work`` unless ``released`` is set first; ``True`` if it finished first."""
    stop = asyncio.ensure_future(released.wait())
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({stop, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        task.cancel()
    return task.done() and not task.cancelled() and not released.is_set()
