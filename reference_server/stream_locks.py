"""One lock per stream, forgotten as soon as nobody holds or awaits it.

Appending and delivering one stream's messages happen under the stream's
lock, so that two publishes of a stream cannot overtake each other while the
store answers. A lock kept per stream forever would cost every organization
that ever published (an ``asyncio.Lock`` and its key) for the life of the
process; this one exists only while a publish of the stream is under way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

__all__ = ["StreamLocks"]


@dataclass(slots=True)
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    """Holders and waiters: the entry goes when the last of them is done."""


class StreamLocks:
    """``async with locks.hold(stream):`` one at a time per stream, in arrival order."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        """Streams with a publish under way or waiting."""
        return len(self._entries)

    @contextlib.asynccontextmanager
    async def hold(self, stream: str) -> AsyncIterator[None]:
        """Hold ``stream``'s lock for the block (waiting for earlier holders first)."""
        entry = self._entries.get(stream)
        if entry is None:
            entry = self._entries[stream] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[stream]
