"""Which rooms the open subscriptions need, counted, and how to ask for them again.

Several handles may need the same room (two hooks on the same queue); the
book counts them, so a room is left only when its last handle closes, and
after a reconnect exactly the rooms still wanted are subscribed again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ._subscriptions import Subscription
from .protocol import Channel, Scope, SubscribeRequest

__all__ = ["Restore", "SubscriptionBook"]


@dataclass(frozen=True, slots=True)
class Restore:
    """One request that restores a filter's rooms, the streams it reads, and if a snapshot helps."""

    request: SubscribeRequest
    streams: list[str]
    snapshot: bool


class SubscriptionBook:
    """Every open subscription and how many of them need each room."""

    def __init__(self) -> None:
        self._open: list[Subscription] = []
        self._needed: Counter[str] = Counter()
        self._whole: set[str] | None = None  # streams read whole, computed when asked

    def add(self, subscription: Subscription) -> list[str]:
        """Record ``subscription``; the rooms no one needed before."""
        self._open.append(subscription)
        self._whole = None
        new = [room for room in subscription.rooms if self._needed[room] == 0]
        self._needed.update(subscription.rooms)
        return new

    def remove(self, subscription: Subscription) -> list[str]:
        """Forget ``subscription``; the rooms no one needs any more."""
        if subscription not in self._open:
            return []
        self._open.remove(subscription)
        self._whole = None
        self._needed.subtract(subscription.rooms)
        unused = [room for room in subscription.rooms if self._needed[room] <= 0]
        for room in unused:
            del self._needed[room]
        return unused

    @property
    def rooms(self) -> list[str]:
        """Every room some open subscription needs, sorted."""
        return sorted(self._needed)

    def requests(self) -> list[Restore]:
        """What restores every room: one request per filter, channels merged."""
        by_filter: dict[Scope, tuple[set[Channel], set[str], list[bool]]] = {}
        for subscription in self._open:
            channels, streams, snapshot = by_filter.setdefault(
                subscription.filter, (set(), set(), [False])
            )
            channels.update(subscription.channels)
            streams.update(subscription.streams)
            snapshot[0] = snapshot[0] or subscription.snapshot
        return [
            Restore(SubscribeRequest.of(sorted(channels), scope), sorted(streams), snapshot[0])
            for scope, (channels, streams, snapshot) in by_filter.items()
        ]

    def reads(self, stream: str) -> bool:
        """Whether some open subscription reads ``stream``."""
        return any(stream in subscription.streams for subscription in self._open)

    def read_whole(self, stream: str) -> bool:
        """Whether some open subscription reads ``stream`` without a department or queue filter.

        Then every message of the stream reaches the socket, and a jump of
        its ``seq`` is a hole (:mod:`client_sdk._continuity`).
        """
        if self._whole is None:
            self._whole = {
                stream
                for subscription in self._open
                if subscription.filter.department_id is None
                and subscription.filter.queue_name is None
                for stream in subscription.streams
            }
        return stream in self._whole

    def __len__(self) -> int:
        return len(self._open)
