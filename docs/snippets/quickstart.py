"""Print the next KPI updates of one department, then exit."""

import asyncio
import os

from client_sdk import IntradayClient
from client_sdk.hooks import kpi_updates

URL = os.environ.get("INTRADAY_URL", "http://localhost:5000")
COUNT = int(os.environ.get("INTRADAY_COUNT", "10"))  # stop after this many updates


async def main() -> None:
    async with IntradayClient(url=URL, user_id="quickstart", organization_id="acme") as client:
        updates = kpi_updates(client, department_id="customer_care")
        async with updates.stream() as stream:  # subscribed from here on
            received = 0
            async for message in stream:
                kpi = message.payload
                print(f"{message.timestamp:%H:%M:%S} {kpi.queue_name}: health {kpi.health_score}")
                received += 1
                if received == COUNT:
                    break


if __name__ == "__main__":
    asyncio.run(main())
