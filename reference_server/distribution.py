"""Where a built message goes: this process only, or every node of a cluster.

The publisher is given one :class:`Distribution` when it is built (the
composition root, :mod:`.app`, picks it): :class:`LocalDistribution` for a
single server, :class:`~reference_server.cluster.distribution.ClusterDistribution`
for a cluster node. Nothing on the publishing path asks whether it is clustered.
"""

from __future__ import annotations

from typing import Protocol

from .delivery import LocalDelivery, OutgoingMessage
from .store import MessageStore
from .stream_locks import StreamLocks

__all__ = ["Distribution", "LocalDistribution"]


class Distribution(Protocol):
    """Logs a message (when it has a stream and there is a store) and delivers it everywhere."""

    async def distribute(self, message: OutgoingMessage) -> int:
        """Log and deliver ``message``; how many sockets it was handed to, exactly.

        Raises:
            ProtocolError: retryable ``INTERNAL_ERROR`` (HTTP 503) when the
                store or the cluster cannot take it; nothing was delivered.
        """
        ...


class LocalDistribution:
    """A single server: append to the store, then deliver to this process's sockets.

    Args:
        delivery: this process's sockets.
        store: the message store (``None``: nothing is logged).
    """

    def __init__(self, delivery: LocalDelivery, store: MessageStore | None) -> None:
        self._delivery = delivery
        self._store = store
        self._locks = StreamLocks()

    async def distribute(self, message: OutgoingMessage) -> int:
        """Log ``message`` if it belongs to a stream, then deliver it here."""
        stream = message.stream
        if self._store is None or stream is None:
            return await self._delivery.deliver(message)
        async with self._locks.hold(stream):
            await self._store.append(stream, message.envelope)  # before anyone receives it
            # Recipients are taken now: a replay may have begun while the store
            # answered, and its socket must hold this message, not get it first.
            return await self._delivery.deliver(message)
