"""The shortest end-to-end path: authenticate, subscribe, receive a broadcast."""

from __future__ import annotations

import httpx

from tests.conftest import SioClient


async def test_subscriber_receives_a_kpi_broadcast(authed, api: httpx.AsyncClient) -> None:
    client: SioClient = await authed("user_1", "org_a")
    ack = await client.call("subscribe", {"channels": ["kpi"], "queue_name": "support"})
    assert ack == {"success": True, "subscriptions": ["kpi:org:org_a:queue:support"]}
    payload = {
        "organization_id": "org_a",
        "queue_name": "support",
        "timestamp": "2026-11-25T10:30:00Z",
        "utilization": {"current_utilization": 85},
        "health_score": 90,
    }
    response = await api.post("/api/ws/broadcast/kpi", json=payload)
    assert response.status_code == 200, response.text
    assert response.json()["recipients"] == 1
    [envelope] = await client.wait_for("kpi:update")
    assert envelope["data"]["queue_name"] == "support"
    assert envelope["id"] == response.json()["message_id"]
