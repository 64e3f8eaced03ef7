"""useKPIUpdates: a callback for each update, and the latest one."""

import asyncio
import os

from reactivex import operators as ops

from client_sdk import IntradayClient, Message
from client_sdk.hooks import kpi_updates
from client_sdk.protocol import KpiPayload

URL = os.environ.get("INTRADAY_URL", "http://localhost:5000")
COUNT = int(os.environ.get("INTRADAY_COUNT", "5"))  # how long the widget stays "mounted"


def on_update(message: Message[KpiPayload]) -> None:
    print("New KPI data:", message.payload.queue_name, message.payload.health_score)


async def main() -> None:
    async with IntradayClient(url=URL, user_id="user_123", organization_id="acme") as client:
        widget = kpi_updates(client, organization_id="acme", queue_name="support")
        with widget.subscribe(on_update):  # mount: subscribes kpi for the queue
            await widget.pipe(ops.take(COUNT))  # ... until COUNT updates came
        latest = widget.latest  # latestUpdate; the widget unmounted (unsubscribed)
        if latest is None or latest.payload.utilization is None:
            print("Waiting for updates...")
        else:
            print("Utilization:", latest.payload.utilization.current_utilization, "%")
            print("Health:", latest.payload.health_score)


if __name__ == "__main__":
    asyncio.run(main())
