"""Your own tests of your server, beside the protocol's contract suite.

The contract suite checks what every server must do; tests like these check
what *your* server promises on top (here: extra KPI fields that your
dashboards rely on). They use the same ``--intraday-*`` options through the
fixtures of ``conftest.py`` and the SDK's typed clients.
"""

from __future__ import annotations

import asyncio

import pytest

from client_sdk import AdminClient, IntradayClient, Message
from client_sdk.protocol import KpiPayload

pytestmark = pytest.mark.asyncio  # needs pytest-asyncio


async def test_my_server_is_healthy(server_url: str) -> None:
    async with AdminClient(server_url) as admin:  # health needs no token
        health = await admin.health()
    assert health.status == "ok"


async def test_my_extra_kpi_fields_reach_subscribers(
    server_url: str, admin_token: str | None, organization: str
) -> None:
    # In jwt mode, also pass token=... (a JWT for this user) to the client.
    async with (
        IntradayClient(
            url=server_url, user_id="my-test-user", organization_id=organization
        ) as client,
        AdminClient(server_url, token=admin_token) as admin,
    ):
        received: asyncio.Future[Message[KpiPayload]] = asyncio.get_running_loop().create_future()

        def on_kpi(message: Message[KpiPayload]) -> None:
            if message.payload.queue_name == "my-test-queue" and not received.done():
                received.set_result(message)

        client.on(on_kpi_update=on_kpi)
        async with await client.subscribe(["kpi"], queue_name="my-test-queue"):
            await admin.publish_kpi(
                {
                    "organization_id": organization,
                    "queue_name": "my-test-queue",
                    "timestamp": "2026-11-25T10:30:00Z",
                    "health_score": 90,
                    "forecast_accuracy": 97.5,  # ours: not in the protocol, must pass through
                }
            )
            message = await asyncio.wait_for(received, timeout=5)

    assert message.payload.health_score == 90
    assert message.payload.model_extra == {"forecast_accuracy": 97.5}
