"""Fan-out between nodes: python-socketio's ``AsyncRedisManager``, carrying our deliveries.

A broadcast is published once on the manager's channel as a *delivery*
(event, envelope, target, stream, ``requires_ack``, ``socket_ids``), and every
node, the publishing one included, hands it to its own publisher when it
arrives (:meth:`~reference_server.publisher.Publisher.deliver_here`): there
the node's own registry gives the recipients, its replays in flight hold the
message back, its bridge sockets get it directly, and its ``requires_ack``
sockets get one emit each whose ack lands on this node's stats. Every node
reads one Redis channel in order, so deliveries arrive everywhere in the
order they were published; a logged message is appended and published by one
Lua script (:meth:`~reference_server.store.redis.RedisStore.append_published`),
which makes each stream's order the same on every node.

Everything else python-socketio emits (acks, answers, per-socket sends) is
for a socket of this node and stays local: nothing else crosses Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import socketio
from redis.exceptions import RedisError
from socketio.async_manager import AsyncManager

from ..frame_emit import FrameWritingManager
from .registry import ClusterUnavailableError

__all__ = ["CHANNEL", "DELIVERY_HOST", "ClusterManager", "delivery_frame", "split_frame"]

log = logging.getLogger("reference_server.cluster")

CHANNEL: Final = "intraday-live"
"""The pub/sub channel every node of a cluster listens on."""

DELIVERY_HOST: Final = "intraday-live"
"""The ``host_id`` of our messages: no node's own, so every node (the sender too) handles them."""

LISTEN_RETRY_CAP = 1.0
"""Longest wait between two attempts of the listener to reach Redis (python-socketio's: 60 s)."""

Receiver = Callable[[dict[str, Any]], Awaitable[None]]

_SLOT: Final = "\u0000envelope\u0000"
"""Where the envelope goes in a frame's text (no JSON value of ours contains it)."""


def delivery_frame(delivery: dict[str, Any]) -> dict[str, Any]:
    """The manager message that carries one of our messages (see :class:`ClusterManager`)."""
    return {"method": "emit", "host_id": DELIVERY_HOST, "intraday": delivery}


def split_frame(delivery: dict[str, Any]) -> tuple[str, str]:
    """The text of a delivery frame before and after its envelope.

    The store's Lua script puts the envelope (with its ``seq``) between them,
    so that the frame is published in the same step as the append.
    """
    text = json.dumps(delivery_frame({**delivery, "envelope": _SLOT}), separators=(",", ":"))
    head, _, tail = text.partition(json.dumps(_SLOT))
    return head, tail


class ClusterManager(FrameWritingManager, socketio.AsyncRedisManager):  # type: ignore[misc]
    """python-socketio's Redis manager, publishing only what the publisher gives it.

    Local emits are :class:`~reference_server.frame_emit.FrameWritingManager`'s
    (first in line, so its direct frame writes serve a node's own sockets as
    they serve a single server's; the application attaches its WebSocket index);
    what it hands on is told ``ignore_queue``.

    Args:
        url: the cluster's Redis.
        receive: called with each delivery or command from the channel, in order.
    """

    def __init__(self, url: str, receive: Receiver) -> None:
        super().__init__(
            url,
            channel=CHANNEL,
            redis_options={"socket_connect_timeout": 2.0, "health_check_interval": 5},
        )
        self._receive = receive
        self.listening = False
        """Whether the listener is subscribed (deliveries published now will reach this node)."""
        self.subscribed = asyncio.Event()
        self._closing: set[asyncio.Task[None]] = set()

    # python-socketio would publish these to every node; here they concern local sockets only.
    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Emit to this node's sockets (what crosses nodes is :meth:`publish`)."""
        kwargs["ignore_queue"] = True  # python-socketio's pub/sub emit, if reached, stays local
        return await super().emit(
            event,
            data,
            namespace or "/",
            room=to or room,
            skip_sid=skip_sid,
            callback=callback,
            **kwargs,
        )

    async def can_disconnect(self, sid: str, namespace: str | None) -> Any:
        """Whether this node's socket may be disconnected (never asks other nodes)."""
        return await AsyncManager.can_disconnect(self, sid, namespace)

    async def disconnect(self, sid: str, namespace: str | None, **kwargs: Any) -> Any:
        """Disconnect this node's socket."""
        return await AsyncManager.disconnect(self, sid, namespace)

    async def enter_room(
        self, sid: str, namespace: str | None, room: str, eio_sid: str | None = None
    ) -> Any:
        """Put this node's socket in a room."""
        return await AsyncManager.enter_room(self, sid, namespace, room, eio_sid=eio_sid)

    async def leave_room(self, sid: str, namespace: str | None, room: str) -> Any:
        """Take this node's socket out of a room."""
        return await AsyncManager.leave_room(self, sid, namespace, room)

    async def close_room(self, room: str, namespace: str | None = None) -> Any:
        """Close a room of this node."""
        return await AsyncManager.close_room(self, room, namespace)

    async def publish(self, delivery: dict[str, Any]) -> None:
        """Publish a delivery or command to every node, once.

        Raises:
            ClusterUnavailableError: Redis cannot be reached (nothing was published).
        """
        # Not python-socketio's reconnect-and-retry: that replaces the listener's
        # clients too; redis-py's pool reconnects by itself on the next command.
        if self.redis is None:
            raise ClusterUnavailableError("the cluster's Redis has not been reached yet")
        try:
            await self.redis.publish(self.channel, self.json.dumps(delivery_frame(delivery)))
        except (RedisError, OSError) as exc:
            raise ClusterUnavailableError(f"the cluster's Redis is unreachable: {exc}") from None

    async def close(self) -> None:
        """Stop listening and close the manager's Redis connections."""
        task = getattr(self, "thread", None)
        if isinstance(task, asyncio.Task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.listening = False
        for client in (self.pubsub, self.redis):
            if client is not None:
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()

    def _redis_connect(self) -> None:
        # python-socketio makes new clients on every reconnection and leaves the old
        # ones open; close them (in the background: this is called synchronously).
        old = [c for c in (self.pubsub, self.redis) if c is not None]
        super()._redis_connect()
        for client in old:
            task = asyncio.get_running_loop().create_task(_quietly_close(client))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        delivery = message.get("intraday")
        if isinstance(delivery, dict):
            try:
                await self._receive(delivery)
            except Exception:  # one bad delivery must not stop the listener
                log.exception("cluster delivery failed")
            return
        await super()._handle_emit(message)

    async def _redis_listen_with_retries(self) -> Any:  # pragma: no cover - timing
        # python-socketio's loop, with a flag for health and a 1 s cap on its backoff
        # (its own doubles up to 60 s: a node would miss a minute of live messages).
        retry_sleep = 0.1
        subscribed = False
        while True:
            try:
                if not subscribed:
                    self._redis_connect()
                    await self.pubsub.subscribe(self.channel)
                    subscribed = True
                    retry_sleep = 0.1
                    self.listening = True
                    self.subscribed.set()
                async for message in self.pubsub.listen():
                    yield message
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.listening:
                    log.warning("cluster listener lost Redis (%s); reconnecting", exc)
                self.listening = False
                self.subscribed.clear()
                subscribed = False
                await asyncio.sleep(retry_sleep)
                retry_sleep = min(retry_sleep * 2, LISTEN_RETRY_CAP)


async def _quietly_close(client: Any) -> None:
    with contextlib.suppress(RedisError, OSError):
        await client.aclose()
