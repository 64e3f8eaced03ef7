# ruff: noqa: F704, B018
"""Notebook cells (top-level await, as in Jupyter); tests/docs/test_snippets.py runs them."""

# --8<-- [start:connect]
import os

from client_sdk import IntradayClient
from client_sdk.hooks import kpi_updates

URL = os.environ.get("INTRADAY_URL", "http://localhost:5000")

client = IntradayClient(url=URL, user_id="notebook", organization_id="acme")
await client.connect()  # no asyncio.run() in a notebook: the kernel's loop is running

support = kpi_updates(client, queue_name="support")
tile = support.subscribe(lambda m: print(m.payload.queue_name, m.payload.health_score))
await support.wait_subscribed(timeout=10)
# --8<-- [end:connect]

# --8<-- [start:latest]
support.latest  # the last update, or None until one came
# --8<-- [end:latest]

# --8<-- [start:close]
tile.dispose()  # stop printing (the last observer: unsubscribes)
await client.close()
# --8<-- [end:close]
