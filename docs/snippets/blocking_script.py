"""The quickstart without asyncio: a blocking iterator over live messages."""

import os

from client_sdk.blocking import BlockingClient
from client_sdk.protocol import KpiPayload

URL = os.environ.get("INTRADAY_URL", "http://localhost:5000")
COUNT = int(os.environ.get("INTRADAY_COUNT", "10"))  # stop after this many messages


def main() -> None:
    with (
        BlockingClient(url=URL, user_id="script", organization_id="acme") as client,
        client.messages(["kpi"], department_id="customer_care", timeout=30) as messages,
    ):
        for received, message in enumerate(messages, start=1):
            kpi = message.payload
            if isinstance(kpi, KpiPayload):  # the kpi channel also carries kpi:alert
                print(f"{kpi.queue_name}: health {kpi.health_score}")
            if received == COUNT:
                break


if __name__ == "__main__":
    main()
