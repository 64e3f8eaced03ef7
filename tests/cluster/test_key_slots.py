"""Ready for Redis Cluster: every script run touches keys of one hash slot.

A cluster node runs in this process over a ``redis-server`` of the test's
own while ``MONITOR`` records every command, those run inside Lua scripts
included. Clients of two organizations connect, subscribe (with ``since``
and ``snapshot``), are broadcast to, and leave; heartbeats run. Then every
script execution seen (one run of ``lua`` lines: scripts are atomic) is
checked: the keys of its commands (as Redis's own ``COMMAND GETKEYS`` names
them) all hash to one slot (redis-py's CRC16 ``key_slot``), and every key
the server wrote carries a hash tag: ``{ORG}`` for the store, ``{cluster}``
for the registry.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import socketio
from redis.asyncio.connection import Connection
from redis.crc import key_slot
from redis.exceptions import ResponseError

from reference_server.app import ReferenceServer
from tests.delivery.sequence import TIMESTAMP
from tests.processes import RedisProcess

_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _arguments(line: str) -> list[bytes]:
    """The arguments of one ``MONITOR`` line (Redis escapes them like a bytes literal)."""
    return [ast.literal_eval(f'b"{raw}"') for raw in _ARG.findall(line)]


async def _record(port: int, lines: list[str], ready: asyncio.Event) -> None:
    connection = Connection(host="127.0.0.1", port=port, decode_responses=True)
    await connection.connect()
    try:
        await connection.send_command("MONITOR")
        await connection.read_response()
        ready.set()
        while True:
            lines.append(str(await connection.read_response(timeout=None)))
    finally:
        await connection.disconnect()


def _script_runs(lines: list[str]) -> list[list[list[bytes]]]:
    """The commands of each script execution: each maximal run of ``lua`` lines."""
    runs: list[list[list[bytes]]] = []
    current: list[list[bytes]] | None = None
    for line in lines:
        if " lua] " in line:
            if current is None:
                current = []
                runs.append(current)
            current.append(_arguments(line))
        else:
            current = None
    return runs


async def _keys(redis: Any, command: list[bytes]) -> list[bytes]:
    try:
        keys = await redis.command_getkeys(*command)
    except ResponseError:  # INFO, TIME, PUBLISH...: no key
        return []
    return [k if isinstance(k, bytes) else str(k).encode() for k in keys]


async def _use_the_cluster(url: str) -> None:
    """Everything a node asks of Redis: admissions, rooms, broadcasts, resumes, departures."""
    clients = []
    for org in ("org_a", "org_b"):
        sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        auth = {"user_id": "user_1", "organization_id": org}
        await sio.connect(url, socketio_path="/ws", auth=auth, transports=["websocket"])
        clients.append(sio)
        answer = await sio.call("subscribe", {"channels": ["kpi", "alerts"]}, timeout=10)
        assert answer["success"], answer
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        for org in ("org_a", "org_b"):
            body = {"organization_id": org, "queue_name": "support", "timestamp": TIMESTAMP}
            assert (await http.post("/api/ws/broadcast/kpi", json=body)).status_code == 200
            alert = {
                "organization_id": org,
                "timestamp": TIMESTAMP,
                "alert_id": "a1",
                "rule_name": "r",
                "severity": "high",
            }
            assert (await http.post("/api/ws/broadcast/alert", json=alert)).status_code == 200
        for path in ("/api/ws/stats", "/api/ws/connections", "/api/ws/rooms"):
            assert (await http.get(path)).status_code == 200
    resumed = {"channels": ["kpi"], "since": {"kpi:org_a": 0}, "snapshot": True}
    assert (await clients[0].call("subscribe", resumed, timeout=10))["success"]
    assert (await clients[0].call("unsubscribe", {"channels": ["alerts"]}, timeout=10))["success"]
    for sio in clients:
        await sio.disconnect()


@pytest.mark.timeout(60)
async def test_every_script_touches_one_slot_and_every_key_has_a_hash_tag(
    make_server: Callable[..., Awaitable[ReferenceServer]], tmp_path: Path
) -> None:
    async with RedisProcess(tmp_path) as redis_process:
        lines: list[str] = []
        ready = asyncio.Event()
        monitor = asyncio.create_task(_record(redis_process.port, lines, ready))
        await asyncio.wait_for(ready.wait(), 10)
        redis: Any = aioredis.from_url(redis_process.url)
        try:
            server = await make_server(
                cluster=redis_process.url, node_heartbeat_seconds=0.2, node_timeout_seconds=1
            )
            await _use_the_cluster(server.url)
            await asyncio.sleep(0.5)  # the writer's releases and two heartbeats (sync, reap)
            await server.stop()  # the node leaves: FORGET_NODE

            runs = _script_runs(lines)
            assert len(runs) >= 10, f"too few scripts seen: {len(runs)}"
            for run in runs:
                slots: dict[int, bytes] = {}
                for command in run:
                    for key in await _keys(redis, command):
                        slots.setdefault(key_slot(key), key)
                assert len(slots) <= 1, f"one script, several slots: {slots}"
            written = [k.decode() for k in await redis.keys("intraday:*")]
            assert written
            untagged = [k for k in written if not re.search(r"\{[^}]+\}", k)]
            assert untagged == ["intraday:orgs"], untagged  # written apart from the scripts
        finally:
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor
            await redis.aclose()
