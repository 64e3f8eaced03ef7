"""The handle of a subscription: what ``IntradayClient.subscribe`` returns.

Rooms several handles need are counted by the client, so closing one handle
leaves only the rooms no other handle needs.

A handle is also the plainest way to receive: ``async for message in
subscription`` yields the messages the subscription covers (its channels,
its department and queue), in arrival order, until the subscription is
closed (the loop ends) or the client fails (the loop raises the failure).
Each loop reads its own bounded queue (:class:`~client_sdk.Backpressure`,
``BUFFER(1000)`` unless :meth:`Subscription.messages` says otherwise), so a
slow loop drops its oldest messages, counted in ``dropped`` and in the
client's ``statistics().messages_dropped``, and never holds up the client.
Loops read what the client routed to the subscription
(:mod:`client_sdk._routing`): a message is checked against the
subscription's filter once, however many loops read it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import reactivex

from ._backpressure import BUFFER, Backpressure, PolicyQueue
from ._messages import Message
from ._routing import Route
from .exceptions import IntradayError
from .protocol import Channel, ConnectionState, Payload, Scope, expand_channels

__all__ = ["MessageSource", "Subscription", "SubscriptionStream"]

DEFAULT_BACKPRESSURE = BUFFER(1000)


class MessageSource(Protocol):
    """The client a subscription belongs to (an :class:`~client_sdk.IntradayClient`)."""

    @property
    def state_changes(self) -> reactivex.Observable[ConnectionState]:
        """Every connection state, the current one first."""
        ...

    @property
    def failure(self) -> IntradayError | None:
        """Why the client failed, if it did."""
        ...


class SubscriptionStream:
    """One ``async for`` over a subscription's messages (see :meth:`Subscription.messages`).

    Attributes:
        queue: the messages waiting for the reader.
    """

    def __init__(self, queue: PolicyQueue[Message[Payload]], detach: Callable[[], None]) -> None:
        self.queue = queue
        self._detach = detach

    @property
    def dropped(self) -> int:
        """Messages dropped because this reader fell behind."""
        return self.queue.dropped

    def __aiter__(self) -> SubscriptionStream:
        return self

    async def __anext__(self) -> Message[Payload]:
        """The next message. Cancelling it is safe (nothing is lost)."""
        try:
            return await self.queue.__anext__()
        except Exception:  # the end or the client's failure; cancelling is not an end
            self._detach()
            raise

    def close(self) -> None:
        """Stop receiving; the loop ends after what is waiting."""
        self._detach()
        self.queue.close()


class Subscription:
    """A live subscription; :meth:`close` (or leaving ``async with``) ends it.

    It survives reconnects: the client subscribes it again each time.

    Example:
        >>> async def main(client: IntradayClient) -> None:  # doctest: +SKIP
        ...     async with await client.subscribe(["kpi"], queue_name="support") as kpis:
        ...         async for message in kpis:
        ...             print(message.payload)

    Attributes:
        channels: the channels subscribed to.
        filter: the organization, department and queue covered.
        rooms: the server rooms it needs.
        streams: the streams (``{channel}:{org}``) it reads, resumed after outages.
        snapshot: whether it asked for a snapshot (and asks again after a gap).
        closed: whether :meth:`close` was called.
    """

    def __init__(
        self,
        channels: tuple[Channel, ...],
        filter: Scope,
        rooms: tuple[str, ...],
        closer: Callable[[Subscription], Awaitable[None]],
        *,
        streams: tuple[str, ...] = (),
        snapshot: bool = False,
        source: MessageSource | None = None,
    ) -> None:
        self.channels = channels
        self.filter = filter
        self.rooms = rooms
        self.streams = streams
        self.snapshot = snapshot
        self.route = Route(frozenset(expand_channels(channels)), filter)
        """Where the client hands this subscription's messages (its readers attach there)."""
        self._closer = closer
        self._source = source
        self._readers: set[SubscriptionStream] = set()
        self.closed = False

    def covers(self, message: Message[Payload]) -> bool:
        """Whether ``message`` is one this subscription asked for (channel and scope)."""
        return self.route.covers(message)

    def messages(self, backpressure: Backpressure = DEFAULT_BACKPRESSURE) -> SubscriptionStream:
        """A new reader of this subscription's messages, from now on.

        ``async for message in subscription`` is ``async for message in
        subscription.messages()``. Start reading right after ``subscribe``
        returns (no ``await`` in between) and nothing is missed.

        Args:
            backpressure: what waits when the reader falls behind.

        Raises:
            RuntimeError: the subscription has no client to read from.
        """
        if self._source is None:
            raise RuntimeError("this subscription was not made by a client")
        queue: PolicyQueue[Message[Payload]] = PolicyQueue(backpressure, self.route.count_drops)
        if self.closed:
            queue.close()
            return SubscriptionStream(queue, lambda: None)
        source = self._source

        def on_state(state: ConnectionState) -> None:
            if state is ConnectionState.FAILED:
                queue.close(source.failure)

        removers = [self.route.attach(queue.put_nowait)]
        disposable = source.state_changes.subscribe(on_state, on_completed=queue.close)
        removers.append(disposable.dispose)

        def detach() -> None:
            while removers:
                removers.pop()()
            self._readers.discard(stream)

        stream = SubscriptionStream(queue, detach)
        self._readers.add(stream)
        return stream

    def __aiter__(self) -> SubscriptionStream:
        return self.messages()

    async def close(self) -> None:
        """Unsubscribe (the rooms no other subscription needs); readers' loops end. Idempotent."""
        if not self.closed:
            self.closed = True
            for stream in list(self._readers):
                stream.close()
            await self._closer(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<Subscription {', '.join(self.rooms)}{' closed' if self.closed else ''}>"
