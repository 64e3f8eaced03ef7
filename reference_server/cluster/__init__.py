"""Cluster mode: many reference servers over one Redis, seen as one system.

The parts, one concept each: :mod:`.registry` (connections, rooms and counts
in Redis) with its Lua :mod:`.scripts`, :mod:`.nodes` (ids, heartbeat, death
detection), :mod:`.fanout` (python-socketio's Redis manager carrying our
deliveries) and :mod:`.node`, which wires them to the server. See
``docs/cluster.md``.
"""

from __future__ import annotations

from .node import ClusterNode
from .registry import ClusterUnavailableError

__all__ = ["ClusterNode", "ClusterUnavailableError"]
