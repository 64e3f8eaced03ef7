"""Which rooms the open subscriptions need, counted, and how to ask for them again.

Several handles may need the same room (two hooks on the same queue); the
book counts them, so a room is left only when its last handle closes, and
after a reconnect exactly the rooms still wanted are subscribed again.
"""

from __future__ import annotations

from collections import Counter

from .protocol import Channel, Scope, SubscribeRequest
from .subscriptions import Subscription

__all__ = ["SubscriptionBook"]


class SubscriptionBook:
    """Every open subscription and how many of them need each room."""

    def __init__(self) -> None:
        self._open: list[Subscription] = []
        self._needed: Counter[str] = Counter()

    def add(self, subscription: Subscription) -> list[str]:
        """Record ``subscription``; the rooms no one needed before."""
        self._open.append(subscription)
        new = [room for room in subscription.rooms if self._needed[room] == 0]
        self._needed.update(subscription.rooms)
        return new

    def remove(self, subscription: Subscription) -> list[str]:
        """Forget ``subscription``; the rooms no one needs any more."""
        if subscription not in self._open:
            return []
        self._open.remove(subscription)
        self._needed.subtract(subscription.rooms)
        unused = [room for room in subscription.rooms if self._needed[room] <= 0]
        for room in unused:
            del self._needed[room]
        return unused

    @property
    def rooms(self) -> list[str]:
        """Every room some open subscription needs, sorted."""
        return sorted(self._needed)

    def requests(self) -> list[SubscribeRequest]:
        """Subscribe requests that restore every room: one per filter, channels merged."""
        by_filter: dict[Scope, set[Channel]] = {}
        for subscription in self._open:
            by_filter.setdefault(subscription.filter, set()).update(subscription.channels)
        return [
            SubscribeRequest.of(sorted(channels), scope) for scope, channels in by_filter.items()
        ]

    def __len__(self) -> int:
        return len(self._open)
