"""useAlertNotifications: a toast per alert, an unread count, and its reset."""

import asyncio
import os

from reactivex import operators as ops

from client_sdk import IntradayClient, Message
from client_sdk.hooks import alert_notifications
from client_sdk.protocol import AlertPayload

URL = os.environ.get("INTRADAY_URL", "http://localhost:5000")
COUNT = int(os.environ.get("INTRADAY_COUNT", "3"))  # stop after this many alerts


def show_toast(message: Message[AlertPayload]) -> None:
    print(f"Alert: {message.payload.rule_name} ({message.payload.severity})")


async def main() -> None:
    async with IntradayClient(url=URL, user_id="user_123", organization_id="acme") as client:
        bell = alert_notifications(client, organization_id="acme")
        with bell.subscribe(show_toast):
            await bell.pipe(ops.take(COUNT))
        print("Bell badge:", bell.alert_count)  # alertCount
        if bell.latest is not None:  # latestAlert
            print("Latest:", bell.latest.payload.alert_id, bell.latest.event)
        bell.clear_count()  # clearAlertCount, when the user opens the list


if __name__ == "__main__":
    asyncio.run(main())
