"""The handle of a subscription: what ``IntradayClient.subscribe`` returns.

Rooms several handles need are counted by the client, so closing one handle
leaves only the rooms no other handle needs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .protocol import Channel, Scope

__all__ = ["Subscription"]


class Subscription:
    """A live subscription; :meth:`close` (or leaving ``async with``) ends it.

    It survives reconnects: the client subscribes it again each time.

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
    ) -> None:
        self.channels = channels
        self.filter = filter
        self.rooms = rooms
        self.streams = streams
        self.snapshot = snapshot
        self._closer = closer
        self.closed = False

    async def close(self) -> None:
        """Unsubscribe (the rooms no other subscription needs). Idempotent."""
        if not self.closed:
            self.closed = True
            await self._closer(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<Subscription {', '.join(self.rooms)}{' closed' if self.closed else ''}>"
