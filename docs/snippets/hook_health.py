"""useWebSocketHealth: ping the server every few seconds, report latency."""

import asyncio
import os

from client_sdk import IntradayClient
from client_sdk.hooks import health

URL = os.environ.get("INTRADAY_URL", "http://localhost:5000")
COUNT = int(os.environ.get("INTRADAY_COUNT", "3"))  # stop after this many pings


async def main() -> None:
    client = IntradayClient(url=URL, user_id="user_123", organization_id="acme")
    async with client, health(client, interval=5.0).stream() as checks:  # ping every 5 s
        pinged = 0
        async for check in checks:
            if check.round_trip_seconds is None or check.last_pong_at is None:
                print("no answer yet; missed pings:", check.missed_pongs)  # pingError
                continue
            latency_ms = check.round_trip_seconds * 1000
            print(f"{latency_ms:.1f} ms, last ping {check.last_pong_at:%H:%M:%S}")
            pinged += 1
            if pinged == COUNT:
                break


if __name__ == "__main__":
    asyncio.run(main())
