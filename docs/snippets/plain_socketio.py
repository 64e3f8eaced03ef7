"""A plain python-socketio client of this protocol (no SDK): WebSocket only."""

import asyncio
import os

import socketio

URL = os.environ.get("INTRADAY_URL", "http://localhost:5000")
COUNT = int(os.environ.get("INTRADAY_COUNT", "10"))


async def main() -> None:
    client = socketio.AsyncClient()
    received = 0
    enough = asyncio.Event()

    async def on_kpi(envelope: dict[str, object]) -> None:
        nonlocal received
        received += 1
        if received >= COUNT:
            enough.set()

    client.on("kpi:update", on_kpi)

    # --8<-- [start:connect]
    # transports=["websocket"]: python-engineio's client gives up on a poll
    # answer of more than 16 packets (Payload.max_decode_packets) and
    # reconnects, so a burst of messages over long-polling cuts it off.
    await client.connect(URL, socketio_path="ws", transports=["websocket"])
    # --8<-- [end:connect]
    await client.call("authenticate", {"user_id": "plain", "organization_id": "acme"})
    await client.call("subscribe", {"channels": ["kpi"]})
    print("subscribed", flush=True)
    await enough.wait()
    print(f"received {received} kpi:update")
    await client.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
