"""``docs/snippets/plain_socketio.py``: the setting troubleshooting.md gives plain python-socketio
clients (WebSocket only) holds through a burst, as a reader would run the script.

Over long-polling python-engineio's client refuses a poll answer of more than
16 packets and reconnects: 200 broadcasts reached 0-2 (issue 21 item 7; the
server side is the issue "One way out").
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from client_sdk.testing import running_server

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = ROOT / "docs" / "snippets" / "plain_socketio.py"
BURST = 200
WAIT = 40.0  # a subprocess imports socketio on a busy 2-core machine


@pytest.mark.timeout(90)
async def test_a_plain_websocket_client_gets_a_whole_burst() -> None:
    async with running_server(admin_token="t") as server, server.admin() as admin:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(SNIPPET),
            env={**os.environ, "INTRADAY_URL": server.url, "INTRADAY_COUNT": str(BURST)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), WAIT)
            assert line.strip() == b"subscribed", line
            stamp = datetime.now(UTC).isoformat()
            kpi = {"organization_id": "acme", "queue_name": "support", "timestamp": stamp}
            # At once: many messages queue for the socket between two writes.
            await asyncio.gather(
                *(admin.publish_kpi({**kpi, "health_score": n % 100}) for n in range(BURST))
            )
            out, errors = await asyncio.wait_for(process.communicate(), WAIT)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, errors.decode()
    assert out.decode().strip() == f"received {BURST} kpi:update"
