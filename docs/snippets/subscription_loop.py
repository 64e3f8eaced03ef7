"""The plainest way to receive: ``async for`` over a subscription."""

import asyncio
import os

from client_sdk import IntradayClient
from client_sdk.protocol import Severity

URL = os.environ.get("INTRADAY_URL", "http://localhost:5000")
COUNT = int(os.environ.get("INTRADAY_COUNT", "10"))  # stop after this many messages


async def main() -> None:
    async with (
        IntradayClient(url=URL, user_id="script", organization_id="acme") as client,
        await client.subscribe(["kpi", "alerts"], department_id="customer_care") as subscription,
    ):
        received = 0
        async for message in subscription:  # ends when the subscription is closed
            severity = getattr(message.payload, "severity", None)
            if isinstance(severity, Severity) and severity >= Severity.HIGH:
                print(f"ALERT {severity}: {message.event}")
            else:
                print(f"{message.timestamp:%H:%M:%S} {message.event} {message.target.queue_name}")
            received += 1
            if received == COUNT:
                break


if __name__ == "__main__":
    asyncio.run(main())
