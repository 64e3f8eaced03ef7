"""useWebSocketSubscription: channels and a filter, subscribed while observed."""

import asyncio
import os

from reactivex import operators as ops

from client_sdk import IntradayClient
from client_sdk.hooks import subscription

URL = os.environ.get("INTRADAY_URL", "http://localhost:5000")
COUNT = int(os.environ.get("INTRADAY_COUNT", "5"))  # stop after this many messages


async def main() -> None:
    async with IntradayClient(url=URL, user_id="user_123", organization_id="acme") as client:
        feed = subscription(client, ["kpi", "alerts"], organization_id="acme", queue_name="support")
        with feed.subscribe(lambda m: print(m.event, m.target.queue_name)):  # enabled
            await feed.wait_subscribed(timeout=10)  # raises the server's refusal, if any
            print("isSubscribed:", feed.subscribed, "error:", feed.error)
            await feed.pipe(ops.take(COUNT))
        print("isSubscribed:", feed.subscribed)  # False: the last observer left


if __name__ == "__main__":
    asyncio.run(main())
