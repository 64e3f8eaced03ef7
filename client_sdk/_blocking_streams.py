"""What :class:`~client_sdk.blocking.BlockingClient` hands out: subscriptions and message streams.

Both are documented and exported by :mod:`client_sdk.blocking`.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, TypeVar

from ._messages import Message
from ._subscriptions import Subscription
from .exceptions import ClientClosedError, RequestTimeoutError
from .protocol import Channel, ConnectionState, Payload, Scope, expand_channels

if TYPE_CHECKING:
    from ._client import IntradayClient

__all__ = ["BlockingSubscription", "MessageStream", "OnTimeout"]

_END: Final = object()
"""Put in a stream's queue to wake its reader when the stream ends."""

OnTimeout = Literal["raise", "stop"]
"""What a stream does when no message came within its timeout."""

T = TypeVar("T")


class Owner(Protocol):
    """What the handles need of :class:`~client_sdk.blocking.BlockingClient` (which
    imports this module: a protocol, not an import, keeps the two apart)."""

    @property
    def client(self) -> IntradayClient: ...

    @property
    def state(self) -> ConnectionState: ...

    @property
    def closed(self) -> bool: ...

    def _in_loop_thread(self) -> bool: ...

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T: ...

    def _call(self, function: Callable[[], T]) -> T: ...

    def subscribe(
        self,
        channels: Iterable[Channel | str],
        *,
        organization_id: str | None = None,
        department_id: str | None = None,
        queue_name: str | None = None,
        on_message: Callable[[Message[Payload]], None] | None = None,
    ) -> BlockingSubscription: ...


class BlockingSubscription:
    """A subscription made by :meth:`BlockingClient.subscribe`; :meth:`close` ends it."""

    def __init__(self, owner: Owner, subscription: Subscription) -> None:
        self._owner = owner
        self._subscription = subscription

    @property
    def channels(self) -> tuple[Channel, ...]:
        """The channels subscribed to."""
        return self._subscription.channels

    @property
    def filter(self) -> Scope:
        """The organization, department and queue covered."""
        return self._subscription.filter

    @property
    def rooms(self) -> tuple[str, ...]:
        """The server rooms this subscription needs."""
        return self._subscription.rooms

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._subscription.closed

    def close(self) -> None:
        """Unsubscribe (rooms no other subscription needs). Idempotent.

        After the client was closed there is nothing left to unsubscribe from,
        so this then does nothing.
        """
        if self._subscription.closed:
            return
        if self._owner.closed:
            self._subscription.closed = True
            return
        self._owner._run(self._subscription.close())

    def __enter__(self) -> BlockingSubscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BlockingSubscription {', '.join(self.rooms)}{' closed' if self.closed else ''}>"


class MessageStream(Iterator[Message[Payload]]):
    """Messages of one subscription, as a blocking iterator (from :meth:`BlockingClient.messages`).

    The subscription is made when the stream is created, so nothing sent
    after that is missed; messages wait in a bounded thread-safe queue
    (the oldest is dropped, and counted in the client's statistics, when
    the reader falls ``max_queued`` behind). Iteration ends when the stream
    or the client is closed; it raises the client's failure if the client
    fails. When no message arrived for ``timeout`` seconds, it raises
    :class:`~client_sdk.RequestTimeoutError` (``on_timeout="raise"``, the
    default) or ends, setting :attr:`timed_out` (``on_timeout="stop"``): a
    quiet stream is never mistaken for its end.
    Use it in a ``with`` block, or :meth:`close` it, to unsubscribe.
    """

    def __init__(
        self,
        owner: Owner,
        channels: tuple[Channel, ...],
        filter: Scope,
        *,
        timeout: float | None,
        on_timeout: OnTimeout = "raise",
        max_queued: int,
    ) -> None:
        self._owner = owner
        self._on_timeout = on_timeout
        self.timed_out = False
        """Whether the iteration ended because no message came within the timeout."""
        self._wanted = frozenset(expand_channels(channels))
        self._filter = filter
        self._timeout = timeout
        self._queue: queue.Queue[object] = queue.Queue(max_queued)
        self._closed = False
        self._removers: list[Callable[[], None]] = []
        self.subscription: BlockingSubscription | None = None
        self.dropped = 0
        """Messages dropped because the reader fell behind."""

    def _offer(self, item: object) -> None:
        """Queue ``item`` without ever blocking the client's loop."""
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()
                    self.dropped += 1
                    self._owner.client._count_dropped()

    def _on_message(self, message: Message[Payload]) -> None:
        # Routed by the subscription (its filter checked once, by the client).
        if not self._closed:
            self._offer(message)

    def _on_state(self, state: ConnectionState) -> None:
        if state is ConnectionState.FAILED:
            self._offer(_END)

    def _attach(self) -> None:
        client = self._owner.client
        disposable = client.state_changes.subscribe(
            self._on_state, on_completed=lambda: self._offer(_END)
        )
        self._removers.append(disposable.dispose)

    def _start(self) -> None:
        self._owner._call(self._attach)
        try:
            self.subscription = self._owner.subscribe(
                tuple(self._wanted),
                organization_id=self._filter.organization_id,
                department_id=self._filter.department_id,
                queue_name=self._filter.queue_name,
                on_message=self._on_message,
            )
        except BaseException:
            with contextlib.suppress(ClientClosedError):
                self._owner._call(self._detach)
            raise

    def _detach(self) -> None:
        removers, self._removers = self._removers, []
        for remove in removers:
            remove()

    def __iter__(self) -> MessageStream:
        return self

    def __next__(self) -> Message[Payload]:
        if self._closed:
            raise StopIteration
        try:
            item = self._queue.get(timeout=self._timeout)
        except queue.Empty:
            if self._on_timeout == "stop":
                self.timed_out = True
                raise StopIteration from None
            raise RequestTimeoutError(
                f"no message within {self._timeout:g} s (the stream is still open; "
                "pass on_timeout='stop' to end the loop instead)"
            ) from None
        if item is _END:
            self._offer(_END)  # every later call ends too
            failure = self._owner.client.failure
            if self._owner.state is ConnectionState.FAILED and failure is not None:
                raise failure
            raise StopIteration
        assert isinstance(item, Message)
        return item

    def close(self) -> None:
        """Stop the stream and unsubscribe. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owner._in_loop_thread():
            self._detach()
        else:
            with contextlib.suppress(ClientClosedError):
                self._owner._call(self._detach)
        if self.subscription is not None:
            self.subscription.close()

    def __enter__(self) -> MessageStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
