"""Cluster mode: many reference servers over one Redis, seen as one system.

The parts, one concept each: :mod:`.registry` (connections, rooms and counts
in Redis) with its Lua :mod:`.scripts`, :mod:`.nodes` (ids, heartbeat, death
detection), :mod:`.wire` (the typed messages between nodes), :mod:`.fanout`
(the Redis pub/sub channel that carries them), :mod:`.distribution` (a
publish delivered by every node, their counts summed) and :mod:`.node`,
which wires them to the server. See ``docs/cluster.md``.
"""

from __future__ import annotations

from .node import ClusterNode
from .registry import ClusterUnavailableError

__all__ = ["ClusterNode", "ClusterUnavailableError"]
