"""Engine.IO with a bound on what waits to be written to one socket.

python-engineio gives every session an unbounded ``asyncio.Queue`` of
packets that its writer (a WebSocket write loop, or the next long-poll GET)
empties. A client that stops reading stalls that writer, and the queue then
holds every message published to the client until the heartbeat gives up
(``ping_interval + ping_timeout``, 85 s by default): tens of MiB per stalled
client. :class:`BoundedEngineIOServer` checks the queue before each message
is added and hands a socket over its limit (messages or bytes) to an
overflow callback instead, which disconnects it.

Only messages are checked: heartbeat and CLOSE packets go straight to the
socket (python-engineio does not route them through ``send_packet``), so a
slow client is still told goodbye. Healthy subscribers keep a near-empty
queue and pass the check on its fast path, so their delivery (and its order)
is unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import engineio
from engineio import packet as eio_packet

__all__ = ["BoundedEngineIOServer", "Overflow", "discard_queue", "queued_bytes"]

Overflow = Callable[[str, int, int], Coroutine[Any, Any, None]]
"""Called with ``(eio_sid, queued_messages, queued_bytes)`` for a socket over its limit."""

# Below this many queued packets the byte count is not computed: even at the
# largest message size they cannot reach a sane byte limit by much, and a
# healthy socket almost always has an empty queue.
_FAST_PATH = 8


def _size(pkt: Any) -> int:
    data = getattr(pkt, "data", None)
    if isinstance(data, str):
        return len(data)
    if isinstance(data, bytes | bytearray):
        return len(data)
    return 0


def queued_bytes(queue: asyncio.Queue[Any]) -> int:
    """Bytes (characters of encoded text) of the packets waiting in ``queue``."""
    # asyncio.Queue keeps its items in the deque ``_queue``; reading it does
    # not disturb the queue, and nothing else exposes the pending items.
    return sum(_size(pkt) for pkt in getattr(queue, "_queue", ()))


def discard_queue(queue: asyncio.Queue[Any]) -> int:
    """Drop every packet waiting in ``queue`` (the socket is being closed); how many."""
    dropped = 0
    while not queue.empty():
        queue.get_nowait()
        queue.task_done()
        dropped += 1
    return dropped


class BoundedEngineIOServer(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server with a per-socket outgoing queue limit.

    python-socketio builds it (see ``IntradaySocketServer._engineio_server_class``);
    :meth:`bound` sets the limits and the overflow callback afterwards.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_queued_messages = 1000
        self.max_queued_bytes = 8 * 1_048_576
        self._on_overflow: Overflow | None = None
        self._overflows: set[asyncio.Task[None]] = set()

    def bound(self, *, messages: int, size: int, on_overflow: Overflow) -> None:
        """Set the limits and what to do with a socket that exceeds them."""
        self.max_queued_messages = messages
        self.max_queued_bytes = size
        self._on_overflow = on_overflow

    async def send_packet(self, sid: str, pkt: eio_packet.Packet) -> None:
        """Queue ``pkt`` for ``sid`` unless the socket is over its limit."""
        socket = self.sockets.get(sid)
        if socket is None or socket.closing or socket.closed:
            return  # python-engineio would log a warning per message for nothing
        queue = socket.queue
        count = queue.qsize()
        if self._on_overflow is not None and count >= min(_FAST_PATH, self.max_queued_messages):
            size = queued_bytes(queue) + _size(pkt)
            if count + 1 > self.max_queued_messages or size > self.max_queued_bytes:
                await self._on_overflow(sid, count + 1, size)
                return
        await socket.send(pkt)

    def put_now(self, sid: str, pkt: eio_packet.Packet) -> None:
        """Queue ``pkt`` for ``sid`` at once, with the same limit, without awaiting.

        For the sends that must keep their order against each other (a batch,
        then the ack that follows it): nothing can run in between. The
        ``send_packet`` path differs only in its ping-timeout check, which
        python-engineio's ping loop makes anyway.
        """
        socket = self.sockets.get(sid)
        if socket is None or socket.closing or socket.closed:
            return
        queue = socket.queue
        count = queue.qsize()
        if self._on_overflow is not None and count >= min(_FAST_PATH, self.max_queued_messages):
            size = queued_bytes(queue) + _size(pkt)
            if count + 1 > self.max_queued_messages or size > self.max_queued_bytes:
                task = asyncio.get_running_loop().create_task(
                    self._on_overflow(sid, count + 1, size)
                )
                self._overflows.add(task)
                task.add_done_callback(self._overflows.discard)
                return
        queue.put_nowait(pkt)
