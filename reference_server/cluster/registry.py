"""The cluster registry: every node's connections, rooms and counts, kept in Redis.

Each node keeps its own :class:`~reference_server.connections.Registry` (the
exact, synchronous record of its sockets) and mirrors it here, for what
other nodes need: the management API, the cluster-wide limits and the
recipient counts. Claims (a socket, an organization's slot) are awaited,
because they decide admission; the rest (rooms joined and left, releases)
is written in order by one writer task, and the heartbeat's :meth:`sync`
repairs whatever an outage lost. What a node reads about itself comes from
its local registry, so a single node's answers are exact; other nodes'
connections are as fresh as their last write.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from redis.exceptions import NoScriptError, RedisError

from client_sdk.protocol import ConnectionInfo, ErrorCode, ProtocolError

from ..connections import Connection
from ..redis_clients import open_redis, without_addresses
from . import scripts

__all__ = ["PREFIX", "ClusterRegistry", "ClusterUnavailableError", "RemoteConnection"]

log = logging.getLogger("reference_server.cluster")

PREFIX = "intraday:{cluster}:"
"""Where the cluster's keys live in Redis: one hash tag, so one slot for every script
(the message store's keys are under ``intraday:{ORG}:``)."""

UNREACHABLE = "the cluster's Redis is unreachable"
"""What a client or API caller is told (Redis's own error, with its address, is logged)."""

SETTLING = "the cluster is registering its connections again after a Redis restart"


class ClusterUnavailableError(ProtocolError):
    """Redis cannot be reached: ``INTERNAL_ERROR``, retryable, HTTP 503.

    The message never names an internal address (``host:port`` is removed).
    """

    http_status = 503

    def __init__(self, message: str = UNREACHABLE) -> None:
        super().__init__(ErrorCode.INTERNAL_ERROR, without_addresses(message), retryable=True)


@dataclass(frozen=True, slots=True)
class RemoteConnection:
    """A connection as the registry in Redis holds it: its API view and its node."""

    node: str
    info: dict[str, Any]


def connection_info(connection: Connection, node: str) -> dict[str, Any]:
    """The API view of a connection (``GET /connections``), with its node."""
    identity = connection.identity
    return {
        "socket_id": connection.socket_id,
        "user_id": identity.user_id if identity else None,
        "organization_id": identity.organization_id if identity else None,
        "status": connection.status,
        "transport": connection.link.transport,
        "subscriptions": connection.subscriptions,
        "connected_at": connection.connected_at.isoformat(),
        "last_activity_at": connection.last_activity_at.isoformat(),
        "node": node,
    }


def _text(info: dict[str, Any]) -> str:
    return json.dumps(info, separators=(",", ":"))


def _claimed(result: Any) -> int:
    """A claim script's answer; its ``-2`` (the registry is being rebuilt) raised."""
    if int(result) == -2:
        raise ClusterUnavailableError(SETTLING)
    return int(result)


def _connection_entry(socket_id: str, text: str) -> dict[str, Any] | None:
    """A connection's API view as Redis holds it; ``None`` (logged) if it is malformed.

    One bad entry (written by hand, or by another version) must not make every
    listing fail: it is skipped.
    """
    try:
        info = json.loads(text)
        ConnectionInfo.model_validate(info)
    except (ValueError, TypeError, ValidationError):
        log.warning("skipped a malformed registry entry for socket %r", socket_id[:128])
        return None
    if not isinstance(info, dict):
        return None
    return info


def _node_info(node: str, text: str | None) -> dict[str, Any]:
    """A node's reported entry; ``{}`` (logged) if it is malformed."""
    if text is None:
        return {}
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("figures", {}), dict):
        log.warning("skipped the malformed entry of node %r", node[:128])
        return {}
    return info


class ClusterRegistry:
    """This node's view of, and writes to, the registry in Redis.

    Args:
        url: the cluster's Redis.
        node: this node's id.
    """

    def __init__(self, url: str, node: str) -> None:
        self.node = node
        # Any: redis-py's answers are typed loosely; shapes are checked here.
        self.redis: Any = open_redis(url)
        self._claim_socket = self.redis.register_script(scripts.CLAIM_SOCKET)
        self._claim_org = self.redis.register_script(scripts.CLAIM_ORG)
        self._release = self.redis.register_script(scripts.RELEASE)
        self._join = self.redis.register_script(scripts.JOIN)
        self._leave = self.redis.register_script(scripts.LEAVE)
        self._sync = self.redis.register_script(scripts.SYNC)
        self._beat = self.redis.register_script(scripts.BEAT)
        # Their 0 means Redis no longer holds the socket (lost): the next heartbeat syncs.
        self._repairable = (self._join, self._leave)
        self._reap = self.redis.register_script(scripts.REAP)
        self._forget = self.redis.register_script(scripts.FORGET_NODE)
        self._count_remote = self.redis.register_script(scripts.COUNT_REMOTE)
        self._queue: asyncio.Queue[tuple[Any, list[Any]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self.reachable = True
        """Whether the last exchange with Redis worked."""
        self.needs_sync = True
        """Whether Redis may not hold what this node wrote (a write was lost or refused since
        the last :meth:`sync` began): the next heartbeat syncs in full."""
        self._run_id: str | None = None  # the Redis process of the last sync
        self._written: dict[str, str] = {}  # each connection's API view as last beaten
        self._logged_at = -10.0

    # -- admission (awaited: they decide) ------------------------------------

    async def claim_socket(self, connection: Connection, limit: int) -> bool:
        """Count a new socket against the cluster's total; ``False`` if it is full.

        Raises:
            ClusterUnavailableError: Redis cannot be reached.
        """
        info = _text(connection_info(connection, self.node))
        args = [PREFIX, self.node, connection.socket_id, info, limit]
        return _claimed(await self._ordered(self._claim_socket, args)) == 1

    async def claim_org(self, connection: Connection, organization_id: str, limit: int) -> bool:
        """Count an authenticated socket against its organization; ``False`` if it is full.

        Raises:
            ClusterUnavailableError: Redis cannot be reached.
        """
        info = connection_info(connection, self.node)
        info["organization_id"] = organization_id
        info["status"] = "authenticated"
        args = [PREFIX, connection.socket_id, organization_id, _text(info), limit]
        claimed = _claimed(await self._ordered(self._claim_org, args))
        if claimed == -1:
            self.needs_sync = True  # Redis lost the socket: the next heartbeat puts it back
        return claimed != 0

    def _ordered(self, script: Any, args: list[Any]) -> asyncio.Future[Any]:
        # Claims go through the writer too: a heartbeat's sync, whose snapshot of
        # the registry was taken before this socket was added, must not run after
        # the claim and release it as "no longer here".
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((script, [done, *args]))
        return done

    async def _call(self, script: Any, args: list[Any]) -> Any:
        try:
            result = await script(keys=[PREFIX], args=args)
        except RedisError as exc:
            raise self._unreachable(exc) from None
        self.reachable = True
        return result

    def _unreachable(self, exc: Exception) -> ClusterUnavailableError:
        """The error callers see; Redis's own text (its address too) goes to the log."""
        self.reachable = False
        now = time.monotonic()
        if now - self._logged_at >= 5.0:  # an outage is one line per 5 s
            self._logged_at = now
            log.warning("%s: %s", UNREACHABLE, exc)
        return ClusterUnavailableError()

    # -- changes written in order by the writer -------------------------------

    def released(self, socket_id: str) -> None:
        """The socket is gone from this node: give back its slots and rooms."""
        self._queue.put_nowait((self._release, [PREFIX, socket_id]))

    def joined(self, connection: Connection, room: str) -> None:
        """The socket entered ``room``."""
        info = _text(connection_info(connection, self.node))
        self._queue.put_nowait((self._join, [PREFIX, connection.socket_id, room, info]))
        self._wrote(connection.socket_id, info)

    def left(self, connection: Connection, room: str) -> None:
        """The socket left ``room``."""
        info = _text(connection_info(connection, self.node))
        self._queue.put_nowait((self._leave, [PREFIX, connection.socket_id, room, info]))
        self._wrote(connection.socket_id, info)

    def _wrote(self, socket_id: str, info: str) -> None:
        # JOIN and LEAVE write the connection's API view: the next beat need not write it
        # again (4,000 sockets subscribing cost 4,000 more HGET and HSET at that beat). If
        # Redis did not take it, the writer flags a full sync, which writes every view.
        self._written[socket_id] = info

    async def sync(
        self,
        connections: Iterable[Connection],
        node_info: dict[str, Any],
        settle_seconds: float = 0.0,
    ) -> bool:
        """Heartbeat: write this node's entry and make its connections match ``connections``.

        Queued behind the writes before it, so it cannot undo a newer one.
        Whether the node was still registered (``False``: Redis lost it, or the
        others took it for dead). A registry found empty refuses claims for
        ``settle_seconds`` (time for every live node to register its
        connections again). Its work in Redis goes with the node's connections:
        between two syncs the heartbeat is a :meth:`beat`.

        Raises:
            ClusterUnavailableError: Redis cannot be reached.
        """
        connections = list(connections)
        views = {c.socket_id: _text(connection_info(c, self.node)) for c in connections}
        entries = [
            {
                "s": c.socket_id,
                "o": c.organization_id or "",
                "r": sorted(c.rooms),
                "i": views[c.socket_id],
            }
            for c in connections
        ]
        args = [
            PREFIX,
            self.node,
            _text(node_info),
            json.dumps(entries, separators=(",", ":")),
            int(settle_seconds * 1000),
        ]
        self.needs_sync = False  # a write lost from now on is flagged again
        try:
            known, run_id = await self._ordered(self._sync, args)
        except BaseException:
            self.needs_sync = True
            raise
        self._run_id = str(run_id)
        self._written = views
        return int(known) == 1

    async def beat(self, connections: Iterable[Connection], node_info: dict[str, Any]) -> bool:
        """Heartbeat between syncs: this node's entry and the connections' changed API views.

        ``False`` when only a :meth:`sync` will do: the node is no longer
        registered, the registry is being rebuilt, or another Redis process
        answers (restarted, or a replica promoted: either may lack acknowledged
        writes). Queued behind the writes before it, like :meth:`sync`.

        Raises:
            ClusterUnavailableError: Redis cannot be reached.
        """
        views = {c.socket_id: _text(connection_info(c, self.node)) for c in connections}
        changed = [{"s": s, "i": i} for s, i in views.items() if self._written.get(s) != i]
        args = [PREFIX, self.node, _text(node_info), json.dumps(changed, separators=(",", ":"))]
        known, run_id = await self._ordered(self._beat, args)
        if int(known) != 1 or str(run_id) != self._run_id:
            return False
        self._written = views
        return True

    def start(self) -> None:
        """Start the writer task."""
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_forever())

    async def stop(self) -> None:
        """Write what is queued (briefly), leave the cluster, close the connections."""
        if self._writer is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain(), 2.0)
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        with contextlib.suppress(RedisError):
            await self._forget(keys=[PREFIX], args=[PREFIX, self.node])
        with contextlib.suppress(RedisError):
            await self.redis.aclose()

    async def _drain(self) -> None:
        await self._queue.join()

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 500:
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except Exception:  # the writer must outlive any one bad batch
                log.exception("cluster registry write failed")
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _send(self, batch: list[tuple[Any, list[Any]]]) -> list[Any]:
        """One pipelined round trip of ``batch``'s scripts; their results (errors included).

        ``EVALSHA`` alone: redis-py's own script calls in a pipeline ask ``SCRIPT
        EXISTS`` first, a second round trip for every batch (every heartbeat). A
        Redis without the scripts (restarted, or a replica promoted: the script
        cache is not replicated) answers ``NOSCRIPT`` without running them: they
        are loaded and the whole batch sent again, in order. Sending it again is
        safe, if one of them had run (another node loaded it meanwhile): each
        script sets a state (a claim, a room, a release) that running it twice in
        the same order leaves unchanged.
        """
        for attempt in range(2):
            async with self.redis.pipeline(transaction=False) as pipe:
                for script, args in batch:
                    pipe.evalsha(script.sha, 1, PREFIX, *args)
                results: list[Any] = await pipe.execute(raise_on_error=False)
            if attempt or not any(isinstance(r, NoScriptError) for r in results):
                break
            for script in {script for script, _ in batch}:
                await self.redis.script_load(script.script)
        return results

    async def _write(self, batch: list[tuple[Any, list[Any]]]) -> None:
        futures: list[tuple[int, asyncio.Future[Any]]] = []
        calls: list[tuple[Any, list[Any]]] = []
        for index, (script, args) in enumerate(batch):
            if args and isinstance(args[0], asyncio.Future):
                futures.append((index, args[0]))
                args = args[1:]
            calls.append((script, args))
        try:
            # ``async with`` in _send: a pipeline left unreset keeps its connection.
            results = await self._send(calls)
        except RedisError as exc:
            # Lost writes are repaired by the next heartbeat's sync once Redis is back.
            self.needs_sync = True
            error = self._unreachable(exc)
            for _, future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        self.reachable = True
        for (script, _), result in zip(batch, results, strict=True):
            if isinstance(result, Exception) or (script in self._repairable and result == 0):
                self.needs_sync = True  # Redis did not take it: the next heartbeat syncs
        for index, future in futures:
            result = results[index]
            if future.done():
                continue
            if isinstance(result, Exception):
                log.warning("cluster registry script failed: %s", result)
                future.set_exception(ClusterUnavailableError())
            else:
                future.set_result(result)

    # -- reads -------------------------------------------------------------------

    def reap(self, timeout_seconds: float) -> asyncio.Future[Any]:
        """Release the connections of every node silent for ``timeout_seconds``: queued now
        (a heartbeat's beat queued next goes in the same round trip); its answer is the
        list of their ids.

        Raises (through the future):
            ClusterUnavailableError: Redis cannot be reached.
        """
        return self._ordered(self._reap, [PREFIX, int(timeout_seconds * 1000), self.node])

    async def nodes(self) -> list[dict[str, Any]]:
        """Every registered node: id, heartbeat age, connections now and its last reported info."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.time()
                pipe.zrange(PREFIX + "nodes", 0, -1, withscores=True)
                pipe.hgetall(PREFIX + "nodeinfo")
                now, beats, infos = await pipe.execute()
            async with self.redis.pipeline(transaction=False) as pipe:
                for node, _ in beats:
                    pipe.scard(f"{PREFIX}node:{node}:conns")
                sizes = await pipe.execute()
        except RedisError as exc:
            raise self._unreachable(exc) from None
        self.reachable = True
        now_ms = int(now[0]) * 1000 + int(now[1]) / 1000
        listed = []
        for (node, beat), size in zip(beats, sizes, strict=True):
            listed.append(
                {
                    "node_id": node,
                    "age_seconds": max(0.0, (now_ms - beat) / 1000),
                    "connections": int(size),
                    "info": _node_info(node, infos.get(node)),
                }
            )
        return listed

    async def remote_connections(self) -> list[RemoteConnection]:
        """The connections of the other nodes."""
        try:
            entries = await self.redis.hgetall(PREFIX + "conns")
        except RedisError as exc:
            raise self._unreachable(exc) from None
        found = []
        for socket_id, text in entries.items():
            info = _connection_entry(socket_id, text)
            if info is not None and info.get("node") != self.node:
                found.append(RemoteConnection(str(info.get("node")), info))
        return found

    async def remote_connection(self, socket_id: str) -> RemoteConnection | None:
        """One connection of another node, or ``None``."""
        try:
            text = await self.redis.hget(PREFIX + "conns", socket_id)
        except RedisError as exc:
            raise self._unreachable(exc) from None
        info = _connection_entry(socket_id, text) if text is not None else None
        if info is None or info.get("node") == self.node:
            return None
        return RemoteConnection(str(info.get("node")), info)

    async def remote_rooms(self, nodes: Iterable[str]) -> dict[str, int]:
        """Member counts of every room, summed over ``nodes``."""
        chosen = [n for n in nodes if n != self.node]
        if not chosen:
            return {}
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for node in chosen:
                    pipe.hgetall(f"{PREFIX}node:{node}:rooms")
                counts = await pipe.execute()
        except RedisError as exc:
            raise self._unreachable(exc) from None
        rooms: dict[str, int] = {}
        for per_node in counts:
            for room, count in per_node.items():
                number = int(count) if str(count).lstrip("-").isdigit() else 0
                if number > 0:
                    rooms[room] = rooms.get(room, 0) + number
        return rooms

    async def count_remote_members(self, rooms: list[str]) -> int:
        """How many sockets of other nodes are in any of ``rooms``, each once."""
        if not rooms:
            return 0
        return int(await self._call(self._count_remote, [PREFIX, self.node, *rooms]))

    async def remote_sockets(self, socket_ids: list[str], organization_id: str | None) -> set[str]:
        """Those of ``socket_ids`` authenticated on other nodes (within the organization)."""
        if not socket_ids:
            return set()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hmget(PREFIX + "conn_node", socket_ids)
                pipe.hmget(PREFIX + "conn_org", socket_ids)
                nodes, orgs = await pipe.execute()
        except RedisError as exc:
            raise self._unreachable(exc) from None
        return {
            sid
            for sid, node, org in zip(socket_ids, nodes, orgs, strict=True)
            if node is not None
            and node != self.node
            and org is not None
            and (organization_id is None or org == organization_id)
        }

    async def owner(self, socket_id: str) -> str | None:
        """The node holding ``socket_id``, if any."""
        try:
            node = await self.redis.hget(PREFIX + "conn_node", socket_id)
        except RedisError as exc:
            raise self._unreachable(exc) from None
        return str(node) if node is not None else None

    async def ping(self) -> bool:
        """Whether Redis answers now."""
        try:
            await self.redis.ping()
        except RedisError as exc:
            self._unreachable(exc)
            return False
        self.reachable = True
        return True
