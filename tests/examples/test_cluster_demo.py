"""``make cluster-demo``: it shows events that crossed the nodes, then stops what it started."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys

from tests.processes import ROOT, redis_server_path


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_cluster_demo_shows_events_that_crossed_nodes_and_stops_all_it_started() -> None:
    redis_server_path()  # skips (fails under REQUIRE_REDIS=1) without redis-server
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reference_server.cli", "cluster-demo",
        "--nodes", "2", "--duration", "5",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=ROOT, env={**os.environ, "COLUMNS": "120"},
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(), 50)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    shown = err.decode()
    assert process.returncode == 0, shown[-2000:]
    assert "Traceback" not in shown
    crossed = re.search(
        r"(\d+) live events published on node-1 reached the dashboard on node-2", shown
    )
    assert crossed is not None, shown[-2000:]
    assert int(crossed[1]) > 0
    assert "KPIs by queue" in out.decode()  # the dashboard drew the simulated organization
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", shown)]
    assert len(ports) == 3, shown  # Redis and two nodes
    assert not [port for port in ports if _listening(port)], "the demo left processes behind"
