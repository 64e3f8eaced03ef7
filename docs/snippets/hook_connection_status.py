"""useWebSocket: the connection status, as the client reports it."""

import asyncio
import os

from client_sdk import ConnectionState, IntradayClient
from client_sdk.hooks import connection_status

URL = os.environ.get("INTRADAY_URL", "http://localhost:5000")


async def main() -> None:
    # autoConnect and autoAuthenticate: credentials in the config, `async with` connects.
    client = IntradayClient(url=URL, user_id="user_123", organization_id="acme")
    status = connection_status(client)
    with status.subscribe(lambda state: print("Status:", state)):  # disconnected, connecting...
        async with client:
            if status.latest is ConnectionState.AUTHENTICATED:  # isConnected && isAuthenticated
                print("Dashboard for socket", client.socket_id)


if __name__ == "__main__":
    asyncio.run(main())
