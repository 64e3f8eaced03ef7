"""The nginx and HAProxy configurations of ``examples/cluster/`` in front of a real cluster.

Each test runs the shipped file itself, with only its ports changed, in
front of three cluster nodes over a Redis of the test's own, and connects
clients through it: long-polling clients (which need every request of a
session on one node) and WebSocket clients. A broadcast sent through the
API of a node that does not hold the client's socket must reach it, once.
Without ``nginx`` or ``haproxy`` these tests skip, unless ``REQUIRE_BALANCERS=1``
(CI) makes that a failure.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.conftest import SioClient, kpi
from tests.processes import ROOT, RedisProcess, ServerProcess, free_port

EXAMPLES = ROOT / "examples" / "cluster"
SHIPPED_PORTS = ("5001", "5002", "5003")
SHIPPED_LISTEN = "8080"
WAIT = 10.0


def _binary(name: str) -> str:
    # Debian puts both in /usr/sbin, which is not on every user's PATH.
    path = shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if path is None:
        reason = f"{name} is not installed (make system-deps, or apt-get install {name})"
        if os.environ.get("REQUIRE_BALANCERS") == "1":
            pytest.fail(f"REQUIRE_BALANCERS=1 but {reason}")
        pytest.skip(reason)
    return path


def with_ports(text: str, nodes: list[int], listen: int) -> str:
    """The shipped configuration with the test's ports for the nodes and the listener."""
    for shipped, port in zip(SHIPPED_PORTS, nodes, strict=True):
        text = text.replace(f"127.0.0.1:{shipped}", f"127.0.0.1:{port}")
    changed = re.sub(rf"\b{SHIPPED_LISTEN}\b", str(listen), text)
    assert changed != text, "the shipped listener port was not found"
    return changed


@dataclass
class Cluster:
    nodes: list[ServerProcess]

    async def node_of(self, socket_id: str) -> int:
        """The index of the node that holds ``socket_id``, as the cluster registry says."""
        async with httpx.AsyncClient(timeout=WAIT) as http:
            answer = (await http.get(f"{self.nodes[0].url}/api/ws/connections/{socket_id}")).json()
        node_id = answer["connection"]["node"]
        return int(node_id.removeprefix("node-")) - 1


# One cluster and one balancer of each kind for the whole module: starting three nodes
# is most of the time these tests take.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("balancing")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(workdir: Path) -> AsyncIterator[Cluster]:
    async with RedisProcess(workdir) as redis:
        nodes = [
            ServerProcess(
                free_port(),
                args=["--cluster", redis.url, "--node-id", f"node-{i + 1}"],
                log=workdir / f"node-{i + 1}.log",
            )
            for i in range(len(SHIPPED_PORTS))
        ]
        try:
            await asyncio.gather(*(node.start() for node in nodes))
            yield Cluster(nodes)
        finally:
            await asyncio.gather(*(node.kill() for node in nodes))


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


async def _balancer(argv: list[str], url: str, log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=sink, stderr=sink
        )
    deadline = asyncio.get_running_loop().time() + WAIT
    async with httpx.AsyncClient(timeout=1.0) as http:
        while True:
            if process.returncode is not None:
                raise AssertionError(f"{argv[0]} exited: {_tail(log)}")
            try:
                if (await http.get(f"{url}/api/ws/health")).status_code == 200:
                    return process
            except httpx.TransportError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{argv[0]} not answering: {_tail(log)}")
            await asyncio.sleep(0.05)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def nginx(cluster: Cluster, workdir: Path) -> AsyncIterator[str]:
    binary = _binary("nginx")
    listen = free_port()
    shipped = (EXAMPLES / "nginx.conf").read_text()
    text = with_ports(shipped, [n.port for n in cluster.nodes], listen)
    config = workdir / "nginx.conf"
    config.write_text(text)
    url = f"http://127.0.0.1:{listen}"
    directives = f"daemon off; pid {workdir}/nginx.pid; error_log {workdir}/nginx-error.log;"
    argv = [binary, "-p", str(workdir), "-c", str(config), "-g", directives]
    process = await _balancer(argv, url, workdir / "nginx.out")
    try:
        yield url
    finally:
        process.kill()
        await process.wait()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def haproxy(cluster: Cluster, workdir: Path) -> AsyncIterator[str]:
    binary = _binary("haproxy")
    listen = free_port()
    shipped = (EXAMPLES / "haproxy.cfg").read_text()
    text = with_ports(shipped, [n.port for n in cluster.nodes], listen)
    config = workdir / "haproxy.cfg"
    config.write_text(text)
    url = f"http://127.0.0.1:{listen}"
    process = await _balancer([binary, "-db", "-f", str(config)], url, workdir / "haproxy.out")
    try:
        yield url
    finally:
        process.kill()
        await process.wait()


async def _subscribed(url: str, transports: list[str], user: str) -> SioClient:
    client = SioClient(url)
    await client.connect(transports=transports)
    ack = await client.authenticate(user, "org_lb")
    assert ack["success"] is True, ack
    answer = await client.call("subscribe", {"channels": ["kpi"], "organization_id": "org_lb"})
    assert answer["success"] is True, answer
    return client


async def _crosses_nodes(cluster: Cluster, client: SioClient, queue: str) -> None:
    """A broadcast through a node that does not hold ``client``'s socket reaches it once."""
    sid = client.sio.get_sid()
    assert sid is not None
    holder = await cluster.node_of(sid)
    other = cluster.nodes[(holder + 1) % len(cluster.nodes)]
    async with httpx.AsyncClient(timeout=WAIT) as http:
        answer = await http.post(
            f"{other.url}/api/ws/broadcast/kpi", json=kpi("org_lb", queue=queue)
        )
    assert answer.status_code == 200, answer.text
    received = await client.wait_for("kpi:update", timeout=WAIT)
    assert [m["data"]["queue_name"] for m in received] == [queue]


@pytest.mark.parametrize("transports", [["polling"], ["polling", "websocket"], ["websocket"]])
async def test_nginx_config_carries_every_transport_across_the_cluster(
    cluster: Cluster, nginx: str, transports: list[str]
) -> None:
    client = await _subscribed(nginx, transports, "lb-user")
    try:
        await _crosses_nodes(cluster, client, "via-nginx")
        # The session stays usable: a round trip after the broadcast still lands on its node.
        pong: Any = await client.call("ping", {})
        assert pong is not None
    finally:
        await client.close()


@pytest.mark.parametrize("transports", [["polling"], ["polling", "websocket"], ["websocket"]])
async def test_haproxy_config_carries_every_transport_across_the_cluster(
    cluster: Cluster, haproxy: str, transports: list[str]
) -> None:
    client = await _subscribed(haproxy, transports, "lb-user")
    try:
        await _crosses_nodes(cluster, client, "via-haproxy")
        pong: Any = await client.call("ping", {})
        assert pong is not None
    finally:
        await client.close()
