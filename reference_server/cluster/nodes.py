"""A node's id, its heartbeat, and how dead nodes are found and their connections released.

Every ``node_heartbeat_seconds`` a node writes its entry (time, URL, figures)
and the API view of its connections that changed; it makes all its
connections in Redis match its own registry (a sync, whose work goes with
their number) only when Redis may not hold what it wrote: at its first beat,
after a write was lost or refused, when it finds itself unregistered, or
when another Redis process answers (restarted, or a replica promoted). With
every beat, in the same round trip, it reaps: one Lua script releases the
connections of every node whose heartbeat is older than
``node_timeout_seconds`` and forgets the node, so a SIGKILLed
node's slots come back within the timeout plus one heartbeat, and two nodes
reaping at once cannot release anything twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..connections import Registry
from ..stats import ServerStats
from .registry import ClusterRegistry, ClusterUnavailableError

__all__ = ["Heartbeat", "default_node_id", "node_figures", "sum_figures"]

log = logging.getLogger("reference_server.cluster")


def default_node_id() -> str:
    """``hostname-pid-random``: unique per process, readable in logs."""
    host = socket.gethostname().split(".", 1)[0][:32] or "node"
    return f"{host}-{os.getpid()}-{secrets.token_hex(2)}"


def node_figures(registry: Registry, stats: ServerStats, pending_sessions: int) -> dict[str, Any]:
    """One node's figures, in ``GET /stats``'s fields plus the raw latency sums."""
    return {
        "active_connections": len(registry),
        "connections_by_org": registry.connections_by_org(),
        "total_messages": stats.total_messages,
        "messages_per_second": round(stats.messages_per_second(), 3),
        "messages_by_event": dict(stats.messages_by_event),
        "average_latency_ms": stats.average_latency_ms,
        "max_latency_ms": stats.max_latency_ms,
        "latency_count": stats.latency_count,
        "latency_total_ms": stats.latency_total_ms,
        "error_count": stats.error_count,
        "uptime_seconds": stats.uptime_seconds(),
        "pending_sessions": pending_sessions,
        "disconnects_by_reason": dict(stats.disconnects_by_reason),
    }


def sum_figures(per_node: list[dict[str, Any]]) -> dict[str, Any]:
    """The cluster's figures: counts summed, the latency averaged over every ack."""
    by_org: Counter[str] = Counter()
    by_event: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    count = 0
    total_ms = 0.0
    maximum: float | None = None
    sums = {"active_connections": 0, "total_messages": 0, "error_count": 0, "pending_sessions": 0}
    rate = 0.0
    for figures in per_node:
        try:
            node_sums = {key: int(figures.get(key, 0)) for key in sums}
            node_rate = float(figures.get("messages_per_second", 0.0))
            node_counts = [
                Counter({str(k): int(v) for k, v in figures.get(name, {}).items()})
                for name in ("connections_by_org", "messages_by_event", "disconnects_by_reason")
            ]
            node_count = int(figures.get("latency_count", 0))
            node_total = float(figures.get("latency_total_ms", 0.0))
            node_max = figures.get("max_latency_ms")
            node_max = float(node_max) if node_max is not None else None
        except (AttributeError, TypeError, ValueError):  # one bad entry must not fail /stats
            log.warning("skipped a node's malformed figures")
            continue
        for key, value in node_sums.items():
            sums[key] += value
        rate += node_rate
        by_org.update(node_counts[0])
        by_event.update(node_counts[1])
        reasons.update(node_counts[2])
        count += node_count
        total_ms += node_total
        if node_max is not None and (maximum is None or node_max > maximum):
            maximum = node_max
    return {
        **sums,
        "connections_by_org": dict(by_org),
        "messages_per_second": round(rate, 3),
        "messages_by_event": dict(by_event),
        "disconnects_by_reason": dict(reasons),
        "average_latency_ms": total_ms / count if count else None,
        "max_latency_ms": maximum,
    }


class Heartbeat:
    """The loop that keeps this node registered and reaps the dead ones.

    Args:
        cluster: the registry in Redis.
        registry: this node's own connections.
        info: this node's entry (URL, figures), read at every beat.
        interval: seconds between beats.
        timeout: seconds of silence after which a node is dead.
    """

    def __init__(
        self,
        cluster: ClusterRegistry,
        registry: Registry,
        info: Callable[[], dict[str, Any]],
        *,
        interval: float,
        timeout: float,
    ) -> None:
        self._cluster = cluster
        self._registry = registry
        self._info = info
        self._interval = interval
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None
        self.beats = 0

    async def beat(self) -> None:
        """Write the entry and the connections once, then reap.

        Raises:
            ClusterUnavailableError: Redis cannot be reached.
        """
        # A registry found empty waits for every live node's next beat before it takes
        # claims again; a node's first beat of all finds a new cluster, with nothing to wait for.
        settle = 2 * self._interval + 1.0 if self.beats else 0.0
        # Queued before the beat, so that the writer sends both in one round trip (the
        # reap leaves this node alone: their order does not matter). Its error, if the
        # beat's is raised first, is retrieved here rather than reported as never read.
        reaping = self._cluster.reap(self._timeout)
        reaping.add_done_callback(lambda f: f.cancelled() or f.exception())
        # A full sync costs Redis work for every connection of the node: only when Redis may
        # not hold what this node wrote. Otherwise the beat's work goes with what changed.
        if not self._cluster.needs_sync and await self._cluster.beat(self._registry, self._info()):
            known = True
        else:
            known = await self._cluster.sync(self._registry, self._info(), settle)
        if not known and self.beats:
            log.warning(
                "node %s was missing from Redis: its connections are registered again",
                self._cluster.node,
            )
        for node in await reaping:
            log.warning("node %s missed its heartbeats: its connections were released", node)
        self.beats += 1

    def start(self) -> None:
        """Beat every interval in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop beating (the entry ages out, or :meth:`ClusterRegistry` forgets it)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except ClusterUnavailableError as exc:
                log.warning("heartbeat: %s", exc)
            except Exception:
                log.exception("heartbeat failed")
            await asyncio.sleep(self._interval)
