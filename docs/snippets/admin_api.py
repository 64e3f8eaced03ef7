"""The management API from Python: health, publishing, stats and connections."""

import asyncio
import os

from client_sdk.admin import AdminClient
from client_sdk.protocol import KpiPayload, utc_now

URL = os.environ.get("INTRADAY_URL", "http://localhost:5000")
TOKEN = os.environ.get("INTRADAY_ADMIN_TOKEN")  # the server's --admin-token, if it has one


async def main() -> None:
    async with AdminClient(URL, token=TOKEN) as admin:
        health = await admin.health()  # the one route that needs no token
        print("server:", health.status, health.auth_mode, health.connections, "connections")

        update = KpiPayload(
            organization_id="acme", queue_name="support", timestamp=utc_now(), health_score=42
        )
        result = await admin.publish_kpi(update, requires_ack=True)  # acks feed the latency stats
        print("published", result.message_id, "to", result.recipients, "sockets")

        stats = await admin.stats()
        print("messages:", stats.total_messages, "latency (ms):", stats.average_latency_ms)
        for connection in (await admin.connections("acme")).connections:
            print(connection.user_id, connection.transport, connection.subscriptions)


if __name__ == "__main__":
    asyncio.run(main())
