"""Compare what the client wants with what the server holds for it."""

import asyncio
import os

from client_sdk import IntradayClient
from client_sdk.admin import AdminClient

URL = os.environ.get("INTRADAY_URL", "http://localhost:5000")
TOKEN = os.environ.get("INTRADAY_ADMIN_TOKEN")  # the server's --admin-token, if it has one


async def main() -> None:
    client = IntradayClient(url=URL, user_id="diagnose", organization_id="acme")
    async with client, AdminClient(URL, token=TOKEN) as admin:
        await client.subscribe(["kpi", "alerts"], queue_name="support")
        print(f"round trip: {await client.ping() * 1000:.1f} ms")

        mine = client.statistics()
        print("client state:", mine.state, "reconnects:", mine.reconnects)
        print("received:", mine.messages_received, "dropped:", mine.messages_dropped)
        print("handler errors:", mine.handler_errors, "queued:", mine.dispatch_queue_depth)

        assert client.socket_id is not None
        seen = await admin.connection(client.socket_id)  # GET /api/ws/connections/{sid}
        print("server view:", seen.status, "over", seen.transport)
        missing = sorted(set(mine.rooms) - set(seen.subscriptions))
        print("rooms the server does not hold:", missing or "none")


if __name__ == "__main__":
    asyncio.run(main())
