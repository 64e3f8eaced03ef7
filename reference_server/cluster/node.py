"""One node of a cluster: its parts over Redis, wired to the server's own.

:class:`ClusterNode` is what the application builds when ``cluster`` is set.
It owns the registry in Redis (:mod:`.registry`), the heartbeat
(:mod:`.nodes`) and the channel that carries our typed messages between
nodes (:mod:`.fanout`, :mod:`.wire`), and it answers the hub (admission
under the cluster-wide limits), the publisher (its
:class:`~.distribution.ClusterDistribution`) and the management API (what
the other nodes hold).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from client_sdk.protocol import ErrorCode, ProtocolError

from ..config import ServerSettings
from ..connections import Connection, Registry
from ..delivery import LocalDelivery
from ..distribution import Distribution
from ..redis_clients import open_redis
from ..stats import ServerStats
from ..store import MessageStore
from . import wire
from .distribution import Answers, ClusterDistribution, outgoing
from .fanout import NodeChannel
from .nodes import Heartbeat, default_node_id, node_figures
from .registry import ClusterRegistry, ClusterUnavailableError, RemoteConnection

__all__ = ["ClusterNode"]

log = logging.getLogger("reference_server.cluster")

STARTUP_WAIT = 5.0
"""Seconds a starting node waits for its listener before it serves anyway."""


class ClusterNode:
    """This process as one node of the cluster on ``settings.cluster``.

    Args:
        settings: the configuration (``cluster`` set).
        registry: this node's own connections, mirrored to Redis from now on.
        stats: this node's figures, reported with its heartbeat.
    """

    def __init__(self, settings: ServerSettings, registry: Registry, stats: ServerStats) -> None:
        assert settings.cluster is not None
        self.settings = settings
        self.node_id = settings.node_id or default_node_id()
        self.url = settings.cluster
        self.redis = ClusterRegistry(settings.cluster, self.node_id)
        self._registry = registry
        self._stats = stats
        registry.observer = self.redis
        self._local: LocalDelivery | None = None
        self._kick: Callable[[str], Awaitable[None]] | None = None
        self._answers = Answers()
        self.channel = NodeChannel(
            channel_client(settings.cluster),
            self.node_id,
            on_delivery=self._delivery_arrived,
            on_delivered=self._answers.add,
            on_kick=self._kick_arrived,
        )
        self.pending_sessions: Callable[[], int] = lambda: 0
        self.listen_url: str | None = None
        """``http://host:port`` of this node, once known (reported in the cluster's health)."""
        self.heartbeat = Heartbeat(
            self.redis,
            registry,
            self.info,
            interval=settings.node_heartbeat_seconds,
            timeout=settings.node_timeout_seconds,
        )

    def bind(
        self,
        *,
        kick: Callable[[str], Awaitable[None]],
        pending_sessions: Callable[[], int],
    ) -> None:
        """Give the node the hub's kick and its count of sessions not yet sockets."""
        self._kick = kick
        self.pending_sessions = pending_sessions

    def distribution(self, local: LocalDelivery, store: MessageStore | None) -> Distribution:
        """The publisher's distribution: every node delivers to its sockets through ``local``."""
        self._local = local
        log_and_publish = None
        if self.settings.store_url == self.settings.cluster:
            log_and_publish = getattr(store, "append_published", None)
        return ClusterDistribution(
            self.node_id, self.channel, self._answers, self.ensure_listening, store, log_and_publish
        )

    def info(self) -> dict[str, Any]:
        """This node's entry as the heartbeat writes it."""
        figures = node_figures(self._registry, self._stats, self.pending_sessions())
        return {"url": self.listen_url, "connections": len(self._registry), "figures": figures}

    async def start(self) -> None:
        """Register this node (first heartbeat) and start the writer and the beats.

        A Redis that is away at start-up is retried by the heartbeat: the node
        serves its clients meanwhile and refuses what needs Redis.
        """
        self.redis.start()
        self.channel.start()
        with contextlib.suppress(TimeoutError):  # a Redis away: the listener keeps trying
            await asyncio.wait_for(self.channel.subscribed.wait(), STARTUP_WAIT)
        try:
            await self.heartbeat.beat()
        except ClusterUnavailableError as exc:
            log.warning("cluster: %s (retrying with every heartbeat)", exc)
        self.heartbeat.start()
        log.info("cluster node %s on %s", self.node_id, _shown(self.url))

    async def stop(self) -> None:
        """Stop beating and leave: this node's connections are released at once."""
        await self.heartbeat.stop()
        await self.channel.close()
        await self.redis.stop()

    # -- admission ------------------------------------------------------------

    async def claim_socket(self, connection: Connection) -> None:
        """Count ``connection`` against the cluster's total.

        Raises:
            ProtocolError: ``CONNECTION_LIMIT`` when the cluster is full;
                ``INTERNAL_ERROR`` (retryable) when Redis is away.
        """
        limit = self.settings.max_connections_total
        if not await self.redis.claim_socket(connection, limit):
            raise ProtocolError(
                ErrorCode.CONNECTION_LIMIT,
                "the cluster has reached its connection limit",
                details={"limit": limit},
            )
        if self._registry.get(connection.socket_id) is not connection:
            self.redis.released(connection.socket_id)  # it left while the claim was out

    async def claim_org(self, connection: Connection, organization_id: str) -> None:
        """Count ``connection`` against its organization's limit, cluster-wide.

        Raises:
            ProtocolError: ``CONNECTION_LIMIT`` when the organization is full;
                ``INTERNAL_ERROR`` (retryable) when Redis is away.
        """
        limit = self.settings.max_connections_per_org
        if not await self.redis.claim_org(connection, organization_id, limit):
            raise ProtocolError(
                ErrorCode.CONNECTION_LIMIT,
                "the organization has reached its connection limit",
                details={"limit": limit},
            )
        if self._registry.get(connection.socket_id) is not connection:
            self.redis.released(connection.socket_id)

    # -- deliveries and commands ------------------------------------------------

    def ensure_listening(self) -> None:
        """Refuse to publish while this node's listener is away (it would miss its own message).

        Raises:
            ClusterUnavailableError: the listener is not subscribed.
        """
        if not self.channel.listening:
            raise ClusterUnavailableError("this node is not listening to the cluster's Redis")

    async def kick(self, socket_id: str) -> bool:
        """Disconnect a socket of another node; ``False`` if no node holds it.

        Raises:
            ClusterUnavailableError: Redis cannot be reached.
        """
        if await self.redis.owner(socket_id) is None:
            return False
        await self.channel.publish(wire.Kick(socket_id=socket_id))
        return True

    async def _delivery_arrived(self, delivery: wire.Delivery) -> None:
        if self._local is None:
            return
        try:
            message = outgoing(delivery)
        except ValueError:
            log.warning("cluster: dropped a delivery with a malformed target")
            return
        recipients = await self._local.deliver(message)
        answer = wire.Delivered(
            message_id=message.message_id, node=self.node_id, recipients=recipients
        )
        if delivery.origin == self.node_id:
            self._answers.add(answer)
        else:
            self.channel.answer(delivery.origin, answer)

    async def _kick_arrived(self, kick: wire.Kick) -> None:
        if self._kick is not None:
            await self._kick(kick.socket_id)

    # -- what the API shows -------------------------------------------------------

    async def nodes(self) -> list[dict[str, Any]]:
        """Every live node: id, heartbeat age, connections, URL and figures (this one fresh)."""
        listed = await self.redis.nodes()
        for node in listed:
            if node["node_id"] == self.node_id:
                node["info"] = self.info()
                node["connections"] = len(self._registry)
                node["age_seconds"] = min(node["age_seconds"], self.settings.node_heartbeat_seconds)
        return listed

    async def health(self) -> dict[str, Any]:
        """The ``cluster`` object of ``GET /health``."""
        reachable = await self.redis.ping()
        shown: list[dict[str, Any]] = []
        if reachable:
            try:
                for node in await self.nodes():
                    entry = {
                        "node_id": node["node_id"],
                        "age_seconds": round(node["age_seconds"], 3),
                        "connections": node["connections"],
                    }
                    if node["info"].get("url"):
                        entry["url"] = node["info"]["url"]
                    shown.append(entry)
            except ClusterUnavailableError:
                reachable = False
        return {
            "node_id": self.node_id,
            "nodes": shown,
            "redis": {"reachable": reachable, "listening": self.channel.listening},
        }

    async def remote_connections(self) -> list[RemoteConnection]:
        """The connections other nodes hold."""
        return await self.redis.remote_connections()

    async def remote_connection(self, socket_id: str) -> RemoteConnection | None:
        """One connection of another node."""
        return await self.redis.remote_connection(socket_id)

    async def remote_rooms(self) -> dict[str, int]:
        """The rooms of the other live nodes with their member counts there."""
        return await self.redis.remote_rooms(n["node_id"] for n in await self.redis.nodes())


def channel_client(url: str) -> Any:
    """The channel's redis-py client: bytes in, so that a frame that is not UTF-8 is
    dropped by the codec instead of breaking the subscription (the registry's decodes)."""
    return open_redis(url, decode_responses=False)


def _shown(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest
