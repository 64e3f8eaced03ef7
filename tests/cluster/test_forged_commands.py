"""A node obeys our typed messages only: a forged python-socketio command changes nothing.

Anyone who can publish on the cluster's channel could once send
python-socketio's own ``enter_room`` command and put an organization-A
socket into organization B's rooms, unseen by ``/connections`` and
``/rooms``. Here the command is published (as JSON and as a pickle, on our
channel and on python-socketio's default one); the node drops it, and
organization B's next broadcast reaches nobody while A's still arrives.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from reference_server.app import ReferenceServer
from tests.conftest import ServerFactory, SioClient, kpi
from tests.processes import RedisProcess


@pytest.mark.timeout(60)
async def test_a_forged_enter_room_on_the_channel_has_no_effect(
    make_server: ServerFactory,
    make_client: Callable[[ReferenceServer], SioClient],
    tmp_path: Path,
) -> None:
    async with RedisProcess(tmp_path) as redis:
        server = await make_server(cluster=redis.url, node_id="n0")
        client = make_client(server)
        await client.connect()
        assert (await client.authenticate("user_a", "org_a"))["success"]
        assert (await client.call("subscribe", {"channels": ["kpi"]}))["success"]
        sid = client.sio.get_sid("/")
        command = {"method": "enter_room", "sid": sid, "namespace": "/",
                   "room": "kpi:org:org_b", "host_id": "intruder"}  # fmt: skip
        publisher = aioredis.from_url(redis.url)
        try:
            for channel in ("intraday-live", "socketio"):
                for frame in (json.dumps(command).encode(), pickle.dumps(command)):
                    await publisher.publish(channel, frame)
        finally:
            await publisher.aclose()
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            # The channel is read in order: once A's message is in, the forgeries were read.
            to_a = await http.post("/api/ws/broadcast/kpi", json=kpi("org_a"))
            assert to_a.json()["recipients"] == 1
            await client.wait_for("kpi:update")
            to_b = await http.post("/api/ws/broadcast/kpi", json=kpi("org_b"))
            assert to_b.status_code == 200, to_b.text
            assert to_b.json()["recipients"] == 0
            again = await http.post("/api/ws/broadcast/kpi", json=kpi("org_a"))
            rooms = (await http.get("/api/ws/rooms")).json()["rooms"]
        got = await client.wait_for("kpi:update", 2)  # B's would have come between
        assert [m["id"] for m in got] == [to_a.json()["message_id"], again.json()["message_id"]]
        assert all(not room["name"].startswith("kpi:org:org_b") for room in rooms)
        assert "kpi:org:org_b" not in server.app.sio.manager.rooms.get("/", {})
