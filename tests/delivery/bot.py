"""A bot for the offline-resume test: handles alerts, one line per alert, resumes from a file.

``python -m tests.delivery.bot URL RESUME_FILE``: connects as ``bot@org_a``
with ``resume_store=RESUME_FILE``, prints ``subscribed``, then the ``n`` of
every alert it handles and whether it came as a replay (``n 0|1``, one per
line, flushed), and stops cleanly on SIGTERM. Started again with the same
file, it resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from client_sdk import IntradayClient, Message
from client_sdk.protocol import AlertPayload


def handle(message: Message[AlertPayload]) -> None:
    print((message.payload.model_extra or {})["n"], int(message.replayed), flush=True)


async def main(url: str, resume_file: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    client = IntradayClient(
        url=url,
        user_id="bot",
        organization_id="org_a",
        resume_store=resume_file,
        reconnection_attempts=None,
        reconnection_delay=0.05,
        reconnection_delay_max=0.2,
    )
    client.on(on_alert_triggered=handle)
    async with client:
        await client.subscribe(["alerts"])
        print("subscribed", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
