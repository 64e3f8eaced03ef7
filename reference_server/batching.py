"""Gathering a socket's messages into ``batch`` events (protocol section 5).

Only sockets that announced capability ``batch`` are enrolled. A message due
to enrolled sockets is appended to each one's pending list; the first pending
message arms one timer of ``batch_window_ms``, and when it fires every
pending list goes out. A list that reaches ``batch_max_messages`` goes out
at once. Anything else the server sends to an enrolled socket (an ack, a
``requires_ack`` message, an ``error``) first sends that socket's pending
list (:meth:`Batcher.flush`), so the order a socket sees is the order the
server decided, with or without batching.

What makes batching pay is the flush: sockets whose pending lists hold the
same messages (the members of one room, typically) form one group, and the
transport encodes the group's batch once and queues it to each member.
Delivery is synchronous (a transport queues, it does not await), so no
other send can slip in between a flush and the batch it writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from client_sdk.protocol import ServerEvent

__all__ = ["MESSAGE_EVENTS", "Batcher", "Deliver", "batchable", "split_encoded"]

Envelope = dict[str, Any]

MESSAGE_EVENTS = frozenset(e.value for e in ServerEvent)
"""The events whose envelopes may travel in a ``batch``; every other event goes singly."""


def batchable(event: str, data: Any) -> bool:
    """Whether ``event`` may wait in a batch: a message, and none that needs its own ack."""
    return event in MESSAGE_EVENTS and isinstance(data, dict) and not data.get("requires_ack")


Deliver = Callable[[list[str], list[Envelope]], None]
"""Queues one ``batch`` of these envelopes to each of these sockets (synchronously)."""


class Batcher:
    """Pending messages of the sockets that take batches, and when they go out.

    Args:
        window_ms: how long the first pending message waits for others.
        max_messages: the most messages one batch holds.
        deliver: queues a batch to a group of sockets, without awaiting.
    """

    def __init__(self, window_ms: int, max_messages: int, deliver: Deliver) -> None:
        self._window = window_ms / 1000
        self._max = max_messages
        self._deliver = deliver
        self._pending: dict[str, list[Envelope]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.members: set[str] = set()
        """The sockets that announced ``batch``; only these are ever batched."""

    @property
    def waiting(self) -> int:
        """Messages pending over all sockets (a delivery per socket counts once each)."""
        return sum(len(box) for box in self._pending.values())

    def enrol(self, socket_id: str) -> None:
        """Batch this socket's messages from now on."""
        self.members.add(socket_id)

    def forget(self, socket_id: str) -> None:
        """The socket is gone: what it had pending is dropped, not sent."""
        self.members.discard(socket_id)
        self._pending.pop(socket_id, None)

    def add(self, socket_ids: Iterable[str], envelope: Envelope) -> None:
        """Append ``envelope`` to the pending list of each of ``socket_ids`` (enrolled ones)."""
        pending = self._pending
        limit = self._max
        full: list[str] = []
        for sid in socket_ids:
            box = pending.get(sid)
            if box is None:
                box = pending[sid] = []
            box.append(envelope)
            if len(box) >= limit:
                full.append(sid)
        if full:
            self._send({sid: pending.pop(sid) for sid in full})
        if pending and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._window, self._expire)

    def flush(self, socket_id: str) -> None:
        """Send this socket's pending messages now (something else is about to go to it)."""
        box = self._pending.pop(socket_id, None)
        if box:
            self._deliver([socket_id], box)

    def flush_all(self) -> None:
        """Send every pending list now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, {}
        if pending:
            self._send(pending)

    def close(self) -> None:
        """Send what is pending and disarm the timer (the server is stopping)."""
        self.flush_all()

    def _expire(self) -> None:
        self._timer = None
        self.flush_all()

    def _send(self, boxes: dict[str, list[Envelope]]) -> None:
        # The same envelope objects in the same order: the sockets of one room
        # (or of the same rooms). Identity is safe as a key while ``boxes``
        # keeps every envelope alive.
        groups: dict[tuple[int, ...], list[str]] = {}
        for sid, box in boxes.items():
            groups.setdefault(tuple(map(id, box)), []).append(sid)
        for sids in groups.values():
            self._deliver(sids, boxes[sids[0]])


def split_encoded(
    messages: list[Envelope], encode: Callable[[list[Envelope]], str], limit: int
) -> list[str]:
    """``messages`` encoded as one batch, or as several in order if one would exceed ``limit``.

    A client's transport has a frame limit of its own (aiohttp's WebSocket
    takes 4 MiB by default), so a batch frame stays within the server's
    stated ``max_message_size_bytes`` unless it holds a single message.
    """
    text = encode(messages)
    if len(text) <= limit or len(messages) == 1:
        return [text]
    half = len(messages) // 2
    return split_encoded(messages[:half], encode, limit) + split_encoded(
        messages[half:], encode, limit
    )
