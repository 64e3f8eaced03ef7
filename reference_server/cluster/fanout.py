"""The channel between nodes: our typed messages (:mod:`.wire`) over plain Redis pub/sub.

Every node listens on one channel (:data:`CHANNEL`: deliveries and kicks,
read by every node in the order Redis took them) and on its own answer
channel (the :class:`~.wire.Delivered` answers to what it published). One
listener task per node reads both and is the only owner of retries: when
Redis goes away it resubscribes with a backoff capped at
:data:`LISTEN_RETRY_CAP`, and :attr:`NodeChannel.listening` says meanwhile
that this node would miss its own messages.

A node acts on the frames that decode to our messages and on nothing else:
python-socketio's own manager commands (``enter_room``, ``disconnect``...)
published on the channel are dropped. The Socket.IO server of a cluster
node keeps the single-server client manager; nothing of python-socketio
crosses Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from redis.exceptions import RedisError

from . import wire
from .registry import ClusterUnavailableError

__all__ = ["CHANNEL", "PRESENCE", "NodeChannel", "answer_channel"]

log = logging.getLogger("reference_server.cluster")

CHANNEL: Final = "intraday-live"
"""The pub/sub channel every node of a cluster listens on (deliveries, kicks)."""

PRESENCE: Final = "intraday-live:nodes"
"""Subscribed by every listening node in the same command as :data:`CHANNEL`: its
subscriber count is the number of nodes a delivery reaches (a tool watching
:data:`CHANNEL` does not inflate it)."""

LISTEN_RETRY_CAP: Final = 1.0
"""Longest wait between two attempts of the listener to reach Redis."""

QUIET_PING_SECONDS: Final = 5.0
"""After this long without a frame the listener pings, so that a dead link is noticed."""

Handler = Callable[[Any], Awaitable[None]]


def answer_channel(node_id: str) -> str:
    """Where the answers to ``node_id``'s deliveries go."""
    return f"{CHANNEL}:answers:{node_id}"


class NodeChannel:
    """This node's end of the channel: publish our messages, listen for them.

    Args:
        redis: a redis-py asyncio client of the cluster's Redis (answers as bytes).
        node_id: this node.
        on_delivery: called with each :class:`~.wire.Delivery`, in channel order.
        on_delivered: called with each :class:`~.wire.Delivered` answer to this node.
        on_kick: called with each :class:`~.wire.Kick`.
    """

    def __init__(
        self,
        redis: Any,
        node_id: str,
        *,
        on_delivery: Callable[[wire.Delivery], Awaitable[None]],
        on_delivered: Callable[[wire.Delivered], None],
        on_kick: Callable[[wire.Kick], Awaitable[None]],
    ) -> None:
        self._redis = redis
        self._answers = answer_channel(node_id)
        self._on_delivery = on_delivery
        self._on_delivered = on_delivered
        self._on_kick = on_kick
        self.listening = False
        """Whether the listener is subscribed (what is published now will reach this node)."""
        self.subscribed = asyncio.Event()
        self.dropped = 0
        """Frames on the channel that were not our messages (dropped)."""
        self._task: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None  # sends the queued answers
        self._answers_out: list[tuple[str, str]] = []  # (answer channel, frame) not yet sent

    def start(self) -> None:
        """Start listening (in the background, retrying for as long as it runs)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen_forever())

    async def close(self) -> None:
        """Stop listening and close the client."""
        tasks = [t for t in (self._task, self._sender) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._task = None
        self._down()
        with contextlib.suppress(RedisError, OSError):
            await self._redis.aclose()

    async def publish(self, message: wire.Delivery | wire.Kick) -> int:
        """Send ``message`` to every listening node (this one included); how many they are.

        Raises:
            ClusterUnavailableError: Redis cannot be reached (nothing was published).
        """
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.publish(CHANNEL, wire.encode(message))
                pipe.pubsub_numsub(PRESENCE)
                _, numsub = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise ClusterUnavailableError(f"the cluster's Redis is unreachable: {exc}") from None
        return _count(numsub)

    def answer(self, origin: str, answer: wire.Delivered) -> None:
        """Send ``answer`` to node ``origin`` (in the background: the listener does not wait).

        The answers that come while a send is out go together in the next one: one
        frame per node answered (:func:`~.wire.decode_all`), all in one round trip.
        """
        self._answers_out.append((answer_channel(origin), wire.encode(answer)))
        # done(), not a set emptied by a done callback: that callback runs later, and an
        # answer queued in between would wait for the next one.
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_answers())

    async def _send_answers(self) -> None:
        while self._answers_out:
            batch, self._answers_out = self._answers_out, []
            frames: dict[str, list[str]] = {}
            for channel, frame in batch:
                frames.setdefault(channel, []).append(frame)
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for channel, texts in frames.items():
                        pipe.publish(channel, wire.FRAME_SEPARATOR.join(texts))
                    await pipe.execute()
            except (RedisError, OSError) as exc:  # the publisher counts what reached it
                log.debug("cluster: %d answers were lost: %s", len(batch), exc)

    def _up(self) -> None:
        self.listening = True
        self.subscribed.set()

    def _down(self) -> None:
        self.listening = False
        self.subscribed.clear()

    async def _listen_forever(self) -> None:
        # The one owner of retries: whatever breaks the subscription, start over.
        delay = 0.1
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.listening:
                    log.warning("cluster listener lost Redis (%s); reconnecting", exc)
                else:
                    log.debug("cluster listener cannot reach Redis: %s", exc)
            if self.listening:
                delay = 0.1  # it had worked: the first retry comes quickly
            self._down()
            await asyncio.sleep(delay)
            delay = min(delay * 2, LISTEN_RETRY_CAP)

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        channels = (CHANNEL, PRESENCE, self._answers)
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(*channels)
            confirmed = 0
            quiet_since = loop.time()
            while True:
                frame = await pubsub.get_message(timeout=1.0)
                now = loop.time()
                if frame is None:
                    if now - quiet_since > QUIET_PING_SECONDS:
                        await pubsub.ping()
                        quiet_since = now
                    continue
                quiet_since = now
                kind = frame.get("type")
                if kind == "subscribe":
                    confirmed += 1
                    if confirmed == len(channels):
                        self._up()  # Redis holds the subscription: nothing published now is missed
                elif kind == "message":
                    await self._dispatch(frame.get("data"))
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()

    async def _dispatch(self, data: Any) -> None:
        try:
            messages = wire.decode_all(data)
        except wire.WireError as exc:
            self.dropped += 1
            log.warning("cluster: dropped a frame that is not ours (%s)", exc)
            return
        for message in messages:
            await self._act_on(message)

    async def _act_on(self, message: wire.Delivery | wire.Delivered | wire.Kick) -> None:
        try:
            if isinstance(message, wire.Delivery):
                await self._on_delivery(message)
            elif isinstance(message, wire.Delivered):
                self._on_delivered(message)
            else:
                await self._on_kick(message)
        except Exception:  # one bad message must not stop the listener
            log.exception("cluster: handling a %s failed", message.kind)


def _count(numsub: Any) -> int:
    """The subscriber count in redis-py's ``PUBSUB NUMSUB`` answer ``[(channel, n)]``."""
    return int(numsub[0][1]) if numsub else 0
