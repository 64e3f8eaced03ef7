"""Refusals are exceptions carrying the protocol code and whether retrying can help."""

import asyncio
import os

from client_sdk import (
    IntradayClient,
    ReconnectFailedError,
    ServerError,
    UnauthorizedError,
)

URL = os.environ.get("INTRADAY_URL", "http://localhost:5000")


async def main() -> None:
    async with IntradayClient(url=URL, user_id="user_123", organization_id="acme") as client:
        # Errors no call of yours receives (a handler that raised, a server `error`
        # event, a malformed message) are reported here; the client carries on.
        client.errors.subscribe(lambda error: print("reported:", error))

        try:
            await client.subscribe(["kpi"], organization_id="globex")
        except UnauthorizedError as error:  # one class per code, all ServerError
            print(error.code, error.retryable, error.message)
        except ServerError as error:
            print("refused:", error.code, "retry later" if error.retryable else "give up")

    # Nothing listens on port 9: two quick attempts, then the client gives up.
    offline = IntradayClient(
        url="http://127.0.0.1:9", reconnection_attempts=2, reconnection_delay=0.1
    )
    try:
        await offline.connect()
    except ReconnectFailedError as error:  # a ConnectionLostError
        print(offline.state, "-", error)


if __name__ == "__main__":
    asyncio.run(main())
