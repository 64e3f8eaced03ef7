"""What live completeness costs a node: CPU per second with N streams that have subscribers.

Run on demand (``python bench/completeness.py --streams 1000``); not part of the
test suite. A node checks every ``completeness_check_seconds`` (0.5 s by
default) every stream it has subscribers for against the log
(:meth:`reference_server.completeness.LiveCompleteness.check`): one walk over
its rooms, one pipelined read of the log's heads. This benchmark builds that
node's state for real -- a :class:`~reference_server.connections.Registry`
with one socket per organization subscribed to all five channels (so
``--streams`` streams), and the real store (memory, and Redis on a
``redis-server`` it starts on a free port) holding messages of every stream
-- and times ``--checks`` checks: the node's CPU (``time.process_time``)
and, for Redis, the Redis server's CPU (``INFO cpu``) per check, and what
that is per second at the default interval. The sockets' links are inert:
a check that finds nothing behind sends nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from client_sdk.protocol import Channel, stream_name, subscription_room
from client_sdk.protocol import Scope as ProtocolScope
from reference_server.auth import Identity
from reference_server.completeness import LiveCompleteness
from reference_server.connections import Connection, Registry
from reference_server.store import MemoryStore, MessageStore
from reference_server.store.redis import RedisStore

CHANNELS = [c for c in Channel if c is not Channel.ALL]


class InertLink:
    """A socket's link that is never written to here (a check behind nothing sends nothing)."""

    transport = "websocket"
    via_fanout = True

    async def send(self, event: str, data: Any) -> None:
        raise AssertionError("a check with nothing behind sent something")

    def start_batching(self) -> None: ...
    async def send_ack(self, ack_id: int, data: Any) -> None: ...
    async def join(self, room: str) -> None: ...
    async def leave(self, room: str) -> None: ...
    async def close(self) -> None: ...
    async def drop(self) -> None: ...


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_state(streams: int) -> tuple[Registry, list[str]]:
    registry = Registry()
    names = []
    orgs = max(1, streams // len(CHANNELS))
    for i in range(orgs):
        org = f"org_{i}"
        connection = Connection(f"sid{i}", InertLink())
        registry.add(connection)
        registry.mark_authenticated(connection, Identity(user_id="u", organization_id=org))
        for channel in CHANNELS:
            registry.join(connection, subscription_room(channel, ProtocolScope(org)))
            names.append(stream_name(channel, org))
    return registry, names


async def fill(store: MessageStore, streams: list[str]) -> None:
    for name in streams:
        channel, org = name.split(":")
        for _ in range(3):
            envelope = {
                "id": "x",
                "event": "kpi:update" if channel == "kpi" else "system:notification",
                "channel": channel,
                "target": {"organization_id": org, "department_id": None, "queue_name": None},
                "data": {},
            }
            await store.append(name, envelope)


async def redis_cpu(url: str) -> float:
    client = aioredis.from_url(url)
    try:
        info = await client.info("cpu")
    finally:
        await client.aclose()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def measure(
    kind: str, store: MessageStore, streams: int, checks: int, url: str | None
) -> dict[str, float]:
    registry, names = node_state(streams)
    await fill(store, names)
    checker = LiveCompleteness(store, registry, 0.5)
    await checker.check()  # first sight: every stream's position from the log
    await checker.check()
    redis_before = await redis_cpu(url) if url else 0.0
    cpu = time.process_time()
    wall = time.perf_counter()
    for _ in range(checks):
        await checker.check()
    cpu = (time.process_time() - cpu) / checks
    wall = (time.perf_counter() - wall) / checks
    redis_after = await redis_cpu(url) if url else 0.0
    assert checker.filled == 0
    return {
        "streams": len(names),
        "node_cpu_ms_per_check": cpu * 1000,
        "wall_ms_per_check": wall * 1000,
        "redis_cpu_ms_per_check": (redis_after - redis_before) / checks * 1000,
    }


async def admit_cost(streams: int, messages: int) -> float:
    """Microseconds of node CPU that :meth:`LiveCompleteness.admit` adds to a delivery."""
    registry, names = node_state(streams)
    checker = LiveCompleteness(MemoryStore(), registry, 0.5)
    envelopes = [{"seq": 0, "epoch": "e"} for _ in names]
    cpu = time.process_time()
    for i in range(messages):
        index = i % len(names)
        envelope = envelopes[index]
        envelope = {"seq": envelope["seq"] + 1, "epoch": "e"}
        envelopes[index] = envelope
        assert await checker.admit(names[index], envelope)
    return (time.process_time() - cpu) / messages * 1e6


async def main(args: argparse.Namespace) -> None:
    admit = await admit_cost(args.streams, 100_000)
    print(f"admit: {admit:.2f} us of node CPU per delivered message ({args.streams} streams)")
    results = {"memory": await measure("memory", MemoryStore(), args.streams, args.checks, None)}
    binary = shutil.which("redis-server")
    if binary is not None:
        port = free_port()
        with tempfile.TemporaryDirectory() as directory:
            process = await asyncio.create_subprocess_exec(
                binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", directory,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                url = f"redis://127.0.0.1:{port}/0"
                for _ in range(100):
                    try:
                        await redis_cpu(url)
                        break
                    except RedisError:
                        await asyncio.sleep(0.05)
                store = RedisStore(url, max_messages=10_000, max_age_seconds=86_400)
                results["redis"] = await measure("redis", store, args.streams, args.checks, url)
                await store.close()
            finally:
                process.kill()
                await process.wait()
    per_second = 1 / args.interval
    print(f"live completeness, {args.checks} checks, interval {args.interval:g} s")
    for kind, r in results.items():
        node = r["node_cpu_ms_per_check"]
        redis = r["redis_cpu_ms_per_check"]
        print(
            f"{kind:>6}: {r['streams']:.0f} streams: node CPU {node:.2f} ms per check "
            f"= {node * per_second / 10:.2f} % of a core "
            f"({node * per_second / r['streams'] * 1000:.2f} us per stream per second); "
            f"wall {r['wall_ms_per_check']:.2f} ms per check; "
            f"Redis CPU {redis:.2f} ms per check = {redis * per_second / 10:.2f} % of a core"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--checks", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.5)
    asyncio.run(main(parser.parse_args()))
