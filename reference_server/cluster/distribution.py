"""A cluster node's :class:`~reference_server.distribution.Distribution`: every node delivers.

A message is published once on the channel as a :class:`~.wire.Delivery`;
every node, this one included, hands it to its own sockets
(:class:`~reference_server.delivery.LocalDelivery`, where its replays in
flight hold it back) and answers the publishing node with how many sockets
it concerned there (:class:`~.wire.Delivered`). The broadcast's
``recipients`` is the sum of the answers: exact, and Redis does the same
work whatever the size of the rooms (one publish, one answer per node).

A logged message is appended and published by one script of the store
(``append_published``) when the store is the cluster's Redis, so every node
receives each stream in ``seq`` order; the messages of a stream that queue
while one script runs go together in the next (:mod:`.group_commit`). With a
store elsewhere the append and the publish are two steps under this node's
stream lock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from ..delivery import OutgoingMessage
from ..store import MessageStore, UnconfirmedAppendError
from ..store.redis import Published
from ..stream_locks import StreamLocks
from . import wire
from .fanout import CHANNEL, PRESENCE, NodeChannel
from .group_commit import GroupCommit

__all__ = ["ANSWER_TIMEOUT", "Answers", "ClusterDistribution", "LogAndPublish", "outgoing"]

log = logging.getLogger("reference_server.cluster")

ANSWER_TIMEOUT: Final = 2.0
"""Seconds a publish waits for every node's answer before it counts those it has."""

Frame = tuple[dict[str, Any], str, str]
"""A message as the store's script publishes it: ``(envelope, head, tail)``."""


class LogAndPublish(Protocol):
    """A store's append that publishes each message in the same step (``append_published``)."""

    async def __call__(
        self, stream: str, messages: Sequence[Frame], channel: str, presence: str
    ) -> Published: ...


@dataclass(slots=True)
class _Tally:
    counts: dict[str, int] = field(default_factory=dict)
    expected: int | None = None
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self) -> None:
        if self.expected is not None and len(self.counts) >= self.expected:
            self.complete.set()


class Answers:
    """The answers to this node's deliveries, summed per message.

    A node that let a deadline pass (paused, overloaded, its subscription
    cut) is not waited for again until it answers something: otherwise every
    broadcast would take the whole deadline while it stalls, and a client of
    the publishing node could time out waiting for a broadcast that a stalled
    peer holds up. Until it answers, its sockets are missing from
    ``recipients`` (they get the messages later, from the log: live completeness).
    """

    def __init__(self) -> None:
        self._tallies: dict[str, _Tally] = {}
        self._answering: set[str] = set()  # nodes that ever answered
        self._lagging: set[str] = set()  # of those, the ones that missed their last deadline
        self._lagging_unknown = 0  # nodes never heard from that missed a deadline

    def expect(self, message_id: str) -> None:
        """Collect answers to ``message_id`` from now (before it is published)."""
        self._tallies[message_id] = _Tally()

    def add(self, answer: wire.Delivered) -> None:
        """One node's answer (an answer to a message no longer awaited is dropped)."""
        node = answer.node
        tally = self._tallies.get(answer.message_id)
        if node in self._lagging:
            self._lagging.discard(node)
        elif tally is None and node not in self._answering and self._lagging_unknown:
            self._lagging_unknown -= 1  # a late answer: the stalled node is back
        self._answering.add(node)
        if tally is not None:
            tally.counts[node] = answer.recipients
            tally.check()

    async def total(self, message_id: str, nodes: int, timeout: float) -> int:
        """The sum of ``nodes`` answers (lagging nodes aside), or of those in within ``timeout``."""
        tally = self._tallies[message_id]
        lagging = len(self._lagging) + self._lagging_unknown
        tally.expected = max(1, nodes - lagging) if nodes else 0
        tally.check()
        try:
            await asyncio.wait_for(tally.complete.wait(), timeout)
        except TimeoutError:
            silent = self._answering - tally.counts.keys()
            self._lagging |= silent
            missing = nodes - len(tally.counts)
            self._lagging_unknown = max(0, missing - len(self._lagging))
            log.warning(
                "cluster: %d of %d nodes answered for %s", len(tally.counts), nodes, message_id
            )
        return sum(tally.counts.values())

    def forget(self, message_id: str) -> None:
        """Stop collecting answers to ``message_id``."""
        self._tallies.pop(message_id, None)


def outgoing(delivery: wire.Delivery) -> OutgoingMessage:
    """The message a delivery from the channel carries.

    Raises:
        ValueError: its target is not made of protocol identifiers.
    """
    return OutgoingMessage(
        event=delivery.event,
        envelope=delivery.envelope,
        target=delivery.target.scope(),
        socket_ids=delivery.socket_ids,
        stream=delivery.stream,
        requires_ack=delivery.requires_ack,
    )


class ClusterDistribution:
    """Publishes each message to every node and sums their answers.

    Args:
        node_id: this node.
        channel: the channel between nodes.
        answers: where the answers to this node's deliveries arrive.
        ensure_listening: raises if this node would not see its own message.
        store: the message store (``None``: nothing is logged).
        log_and_publish: the store's append-and-publish, when the store is the cluster's Redis.
    """

    def __init__(
        self,
        node_id: str,
        channel: NodeChannel,
        answers: Answers,
        ensure_listening: Callable[[], None],
        store: MessageStore | None,
        log_and_publish: LogAndPublish | None,
    ) -> None:
        self._node_id = node_id
        self._channel = channel
        self._answers = answers
        self._ensure_listening = ensure_listening
        self._store = store
        self._log_and_publish = log_and_publish
        self._locks = StreamLocks()
        self._commits: GroupCommit[Frame, Published] = GroupCommit(self._commit)

    def _delivery(self, message: OutgoingMessage) -> wire.Delivery:
        return wire.Delivery(
            origin=self._node_id,
            event=message.event,
            target=wire.WireTarget.of(message.target),
            socket_ids=message.socket_ids,
            stream=message.stream,
            requires_ack=message.requires_ack,
            envelope=message.envelope,
        )

    async def distribute(self, message: OutgoingMessage) -> int:
        """Log ``message`` if it has a stream, publish it to every node; the sockets it reached.

        Raises:
            ClusterUnavailableError: this node is not listening, or Redis is away.
            StoreUnavailableError: the store is away (nothing was published).
        """
        self._ensure_listening()
        message_id = message.message_id
        self._answers.expect(message_id)  # an answer may come before the publish returns
        try:
            stream = message.stream
            if self._store is None or stream is None:
                nodes = await self._channel.publish(self._delivery(message))
            elif self._log_and_publish is not None:
                nodes = await self._log_and_send(stream, message)
            else:
                async with self._locks.hold(stream):
                    await self._store.append(stream, message.envelope)  # sets seq and epoch
                    nodes = await self._channel.publish(self._delivery(message))
            return await self._answers.total(message_id, nodes, ANSWER_TIMEOUT)
        finally:
            self._answers.forget(message_id)

    async def _log_and_send(self, stream: str, message: OutgoingMessage) -> int:
        # One script logs and publishes (every node receives the stream in seq order); the
        # messages of the stream that came meanwhile go in the same script (group commit).
        head, tail = wire.store_frame(self._delivery(message))
        published = await self._commits.submit(stream, (message.envelope, head, tail))
        if not published.confirmed:
            raise UnconfirmedAppendError(message.message_id)
        return published.listeners

    async def _commit(self, stream: str, messages: list[Frame]) -> Published:
        assert self._log_and_publish is not None
        return await self._log_and_publish(stream, messages, CHANNEL, PRESENCE)
