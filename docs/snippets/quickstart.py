"""Print the next KPI updates of one department, every queue's, then exit."""

import asyncio
import os

from client_sdk import IntradayClient
from client_sdk.hooks import BUFFER, kpi_updates

URL = os.environ.get("INTRADAY_URL", "http://localhost:5000")
COUNT = int(os.environ.get("INTRADAY_COUNT", "10"))  # stop after this many updates


async def main() -> None:
    async with IntradayClient(url=URL, user_id="quickstart", organization_id="acme") as client:
        updates = kpi_updates(client, department_id="customer_care")
        # BUFFER(100): every update waits its turn while a line is printed. The
        # hook's default, KEEP_LATEST (for a tile), would keep only the newest
        # of each burst: one queue of three, the others counted as dropped.
        async with updates.stream(BUFFER(100)) as stream:  # subscribed from here on
            received = 0
            async for message in stream:
                kpi = message.payload
                print(f"{message.timestamp:%H:%M:%S} {kpi.queue_name}: health {kpi.health_score}")
                received += 1
                if received == COUNT:
                    break


if __name__ == "__main__":
    asyncio.run(main())
