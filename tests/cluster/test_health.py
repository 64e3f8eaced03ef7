"""``GET /health`` a load balancer can use, and errors that never show Redis's address.

Protocol section 9 as amended: 200 ``"ok"`` only when the server can take
and deliver broadcasts; else 503 ``"degraded"`` naming what fails. Checked
on a single server with the Redis store and on a cluster node, with their
Redis SIGKILLed and started again; meanwhile the 503 of a broadcast and the
refusal of a new connection name no ``host:port``. And the replicas: a
broadcast whose ``WAIT`` is not confirmed is not answered 200.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from reference_server.app import ReferenceServer
from tests.cluster.conftest import eventually
from tests.cluster.test_limits import Attempt
from tests.delivery.sequence import ORG, TIMESTAMP
from tests.processes import RedisProcess

KPI = {"organization_id": ORG, "timestamp": TIMESTAMP}


async def _health(http: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    answer = await http.get("/api/ws/health")
    body: dict[str, Any] = answer.json()
    return answer.status_code, body


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["store", "cluster"])
async def test_health_is_503_degraded_while_redis_is_away_and_no_error_names_it(
    make_server: Callable[..., Awaitable[ReferenceServer]], tmp_path: Path, mode: str
) -> None:
    async with RedisProcess(tmp_path, appendonly=True) as redis:
        settings: dict[str, Any] = {"store": redis.url}
        if mode == "cluster":
            settings = {"cluster": redis.url, "node_heartbeat_seconds": 0.5}
        server = await make_server(**settings)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            status, body = await _health(http)
            assert (status, body["status"], body["failing"]) == (200, "ok", [])

            await redis.kill()
            status, body = await _health(http)
            assert (status, body["status"]) == (503, "degraded"), body
            expected = {
                "store": ["message store unreachable"],
                "cluster": ["message store unreachable", "cluster Redis unreachable"],
            }[mode]
            assert body["failing"][: len(expected)] == expected
            refused = await http.post("/api/ws/broadcast/kpi", json=KPI)
            assert refused.status_code == 503
            assert str(redis.port) not in refused.text, refused.text
            if mode == "cluster":  # admission needs the cluster's Redis
                attempt = Attempt(ORG)
                assert not await attempt.connect(server.url)
                assert attempt.error is not None
                assert attempt.error["retryable"] is True
                assert str(redis.port) not in str(attempt.error), attempt.error
            else:
                subscriber = Attempt(ORG)
                assert await subscriber.connect(server.url)
                answer = await subscriber.sio.call(
                    "subscribe", {"channels": ["kpi"], "since": {f"kpi:{ORG}": 0}}, timeout=10
                )
                await subscriber.sio.disconnect()
                assert answer["success"] is False
                assert str(redis.port) not in str(answer), answer

            await redis.start()

            async def ok_again() -> bool:
                return (await _health(http))[0] == 200

            await eventually(ok_again, "health 200 once Redis is back")
            assert (await http.post("/api/ws/broadcast/kpi", json=KPI)).status_code == 200


@pytest.mark.timeout(30)
async def test_a_broadcast_the_replicas_do_not_confirm_is_not_answered_200(
    make_server: Callable[..., Awaitable[ReferenceServer]], tmp_path: Path
) -> None:
    """``store_min_replicas`` 1 on a primary without a replica: ``WAIT`` times out, 503."""
    async with RedisProcess(tmp_path) as redis:
        strict = await make_server(
            store=redis.url, store_min_replicas=1, store_replica_timeout_ms=100
        )
        default = await make_server(store=redis.url)  # no replica: nothing to wait for
        async with httpx.AsyncClient(timeout=10) as http:
            refused = await http.post(f"{strict.url}/api/ws/broadcast/kpi", json=KPI)
            assert refused.status_code == 503, refused.text
            error = refused.json()["error"]
            assert (error["code"], error["retryable"]) == ("INTERNAL_ERROR", True)
            assert "replicas" in error["message"]
            sent = await http.post(f"{default.url}/api/ws/broadcast/kpi", json=KPI)
            assert sent.status_code == 200, sent.text

            # Logged though unconfirmed: a retry with its key answers that message, once.
            key = {"Idempotency-Key": "unconfirmed-1"}
            url = f"{strict.url}/api/ws/broadcast/kpi"
            first = await http.post(url, json=KPI, headers=key)
            assert first.status_code == 503, first.text
            again = await http.post(url, json=KPI, headers=key)
            assert again.status_code == 200, again.text
            logged = await strict.app.store.read_since("kpi:" + KPI["organization_id"], 0, None)
            ids = [m.envelope["id"] for m in logged.messages]
            # The refusal and the default server's message above, the keyed one: all logged
            # (one Redis); the retry added none.
            assert len(ids) == 3, ids
            assert again.json()["message_id"] == ids[-1]
