"""The browser tier works: a real chromium renders what the reference server serves."""

from __future__ import annotations

import json
from typing import Any

from client_sdk.testing import running_server


async def test_chromium_reads_the_health_of_a_running_server(page: Any) -> None:
    async with running_server() as server:
        response = await page.goto(f"{server.url}/api/ws/health")
        assert response is not None
        assert response.status == 200
        body = json.loads(await page.inner_text("body"))
        assert body["status"] == "ok"
        assert body["auth_mode"] == "trust"
