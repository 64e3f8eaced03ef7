"""Build the store a server's settings name: ``memory``, ``none`` or a Redis URL."""

from __future__ import annotations

from collections.abc import Callable

from ..config import ServerSettings
from .base import MessageStore
from .memory import MemoryStore

__all__ = ["StoreWrapper", "open_store"]

StoreWrapper = Callable[[MessageStore | None, ServerSettings], MessageStore | None]
"""Builds the store a server uses from its real one and the settings (a test seam)."""


def open_store(settings: ServerSettings) -> MessageStore | None:
    """The store of ``settings.store_url``; ``None`` for ``none`` (no replay, no snapshot).

    A Redis URL is ``redis://``, ``rediss://`` or ``redis+sentinel://`` (see
    :mod:`reference_server.redis_clients`).
    """
    spec = settings.store_url
    if spec == "none":
        return None
    if spec == "memory":
        return MemoryStore(
            max_messages=settings.store_max_messages,
            max_age_seconds=settings.store_max_age_seconds,
        )
    from .redis import RedisStore  # only a Redis store needs redis-py

    return RedisStore(
        spec,
        max_messages=settings.store_max_messages,
        max_age_seconds=settings.store_max_age_seconds,
        min_replicas=settings.store_min_replicas,
        replica_timeout_ms=settings.store_replica_timeout_ms,
    )
