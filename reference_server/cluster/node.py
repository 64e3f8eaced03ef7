"""One node of a cluster: its parts over Redis, wired to the server's own.

:class:`ClusterNode` is what the application builds when ``cluster`` is set.
It owns the registry in Redis (:mod:`.registry`), the heartbeat
(:mod:`.nodes`) and the python-socketio manager that carries deliveries and
commands between nodes (:mod:`.fanout`), and it answers the hub (admission
under the cluster-wide limits), the publisher (publishing to every node) and
the management API (what the other nodes hold).
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
from ..stats import ServerStats
from .fanout import CHANNEL, ClusterManager, split_frame
from .nodes import Heartbeat, default_node_id, node_figures
from .registry import ClusterRegistry, ClusterUnavailableError, RemoteConnection

__all__ = ["ClusterNode"]

log = logging.getLogger("reference_server.cluster")

Receiver = Callable[[dict[str, Any]], Awaitable[None]]

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
        registry.replayed = {}
        self._deliver: Receiver | None = None
        self._kick: Callable[[str], Awaitable[None]] | None = None
        self.manager = ClusterManager(settings.cluster, self._received)
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
        deliver: Receiver,
        kick: Callable[[str], Awaitable[None]],
        pending_sessions: Callable[[], int],
    ) -> None:
        """Give the node the publisher's local delivery and the hub's kick."""
        self._deliver = deliver
        self._kick = kick
        self.pending_sessions = pending_sessions

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
        with contextlib.suppress(TimeoutError):  # a Redis away: the listener keeps trying
            await asyncio.wait_for(self.manager.subscribed.wait(), STARTUP_WAIT)
        try:
            await self.heartbeat.beat()
        except ClusterUnavailableError as exc:
            log.warning("cluster: %s (retrying with every heartbeat)", exc)
        self.heartbeat.start()
        log.info("cluster node %s on %s", self.node_id, _shown(self.url))

    async def stop(self) -> None:
        """Stop beating and leave: this node's connections are released at once."""
        await self.heartbeat.stop()
        await self.manager.close()
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

    def frame(self, delivery: dict[str, Any]) -> tuple[str, str, str]:
        """``(channel, head, tail)`` for the store's append-and-publish script."""
        head, tail = split_frame(delivery)
        return CHANNEL, head, tail

    def ensure_listening(self) -> None:
        """Refuse to publish while this node's listener is away (it would miss its own message).

        Raises:
            ClusterUnavailableError: the listener is not subscribed.
        """
        if not self.manager.listening:
            raise ClusterUnavailableError("this node is not listening to the cluster's Redis")

    async def publish(self, delivery: dict[str, Any]) -> None:
        """Send a delivery or command to every node (this one included).

        Raises:
            ClusterUnavailableError: Redis cannot be reached; nothing was sent.
        """
        await self.manager.publish(delivery)

    async def kick(self, socket_id: str) -> bool:
        """Disconnect a socket of another node; ``False`` if no node holds it.

        Raises:
            ClusterUnavailableError: Redis cannot be reached.
        """
        if await self.redis.owner(socket_id) is None:
            return False
        await self.manager.publish({"kind": "kick", "socket_id": socket_id})
        return True

    async def _received(self, delivery: dict[str, Any]) -> None:
        kind = delivery.get("kind")
        if kind == "deliver" and self._deliver is not None:
            await self._deliver(delivery)
        elif kind == "kick" and self._kick is not None:
            socket_id = delivery.get("socket_id")
            if isinstance(socket_id, str):
                await self._kick(socket_id)

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
            "redis": {"reachable": reachable, "listening": self.manager.listening},
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

    async def count_remote_members(self, rooms: list[str]) -> int:
        """How many sockets of other nodes are in any of ``rooms``."""
        return await self.redis.count_remote_members(rooms)

    async def remote_sockets(self, socket_ids: list[str], organization_id: str | None) -> set[str]:
        """Those of ``socket_ids`` authenticated on other nodes."""
        return await self.redis.remote_sockets(socket_ids, organization_id)


def _shown(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest
