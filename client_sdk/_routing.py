"""Messages to the subscriptions that asked for them, each message filtered once per subscription.

Every open :class:`~client_sdk.Subscription` has a :class:`Route`: its
channels, its filter, and the readers attached to it (its ``messages()``
loops, the hook that holds it, a blocking stream). The dispatcher hands
each message to :meth:`Router.route` once, after the ``client.on``
handlers: an index by channel gives the routes that may want it, and
each of those with a reader is checked once with ``Scope.covers``. Readers
never filter again.
"""

from __future__ import annotations

from collections.abc import Callable

from ._messages import Message
from .protocol import Channel, Payload, Scope

__all__ = ["Route", "Router", "Sink"]

Sink = Callable[[Message[Payload]], None]
"""A reader of a route: called with each message, in order, in the client's loop."""


class Route:
    """One subscription's channels and filter, and the readers of what it covers.

    Attributes:
        channels: the concrete channels subscribed to.
        scope: the organization, department and queue covered.
        sinks: the readers, in the order they attached.
        dropped: messages its readers' queues dropped (their backpressure).
    """

    __slots__ = ("channels", "dropped", "scope", "sinks")

    def __init__(self, channels: frozenset[Channel], scope: Scope) -> None:
        self.channels = channels
        self.scope = scope
        self.sinks: tuple[Sink, ...] = ()
        self.dropped = 0

    def attach(self, sink: Sink) -> Callable[[], None]:
        """Hand ``sink`` every message from now on; returns its remover."""
        self.sinks = (*self.sinks, sink)

        def detach() -> None:
            if sink in self.sinks:
                at = self.sinks.index(sink)
                self.sinks = self.sinks[:at] + self.sinks[at + 1 :]

        return detach

    def count_drops(self, count: int) -> None:
        """A reader's queue dropped ``count`` messages."""
        self.dropped += count

    def covers(self, message: Message[Payload]) -> bool:
        """Whether ``message`` is one the subscription asked for (channel and filter)."""
        return message.channel in self.channels and self.scope.covers(message.target)


class Router:
    """The open routes, indexed by channel.

    Args:
        on_error: a reader raised (``where``, exception); the others still run.
    """

    def __init__(self, on_error: Callable[[str, Exception], None]) -> None:
        self._on_error = on_error
        self._by_channel: dict[Channel, tuple[Route, ...]] = {}
        self._closed_drops = 0

    def add(self, route: Route) -> None:
        """Route messages of ``route``'s channels to it."""
        for channel in route.channels:
            self._by_channel[channel] = (*self._by_channel.get(channel, ()), route)

    def remove(self, route: Route) -> None:
        """Stop routing to ``route`` (its drops stay counted)."""
        removed = False
        for channel in route.channels:
            routes = self._by_channel.get(channel, ())
            if route in routes:
                removed = True
                kept = tuple(r for r in routes if r is not route)
                if kept:
                    self._by_channel[channel] = kept
                else:
                    del self._by_channel[channel]
        if removed:
            self._closed_drops += route.dropped

    @property
    def dropped(self) -> int:
        """Messages the readers' queues dropped, over every route there was."""
        live = {id(r): r.dropped for routes in self._by_channel.values() for r in routes}
        return self._closed_drops + sum(live.values())

    def route(self, message: Message[Payload]) -> None:
        """Hand ``message`` to the readers of every route that covers it."""
        routes = self._by_channel.get(message.channel)
        if not routes:
            return
        target = message.target
        for route in routes:
            sinks = route.sinks
            if sinks and route.scope.covers(target):  # once per subscription
                for sink in sinks:
                    try:
                        sink(message)
                    except Exception as exc:
                        self._on_error(f"a reader of {message.channel}", exc)
