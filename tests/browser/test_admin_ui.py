"""The admin UI in a real chromium, against a real server with real clients.

An operator logs in (a wrong token is refused first), sees the connection a
client made, sends a notification the subscribed client receives, and
disconnects it (the client sees the disconnect). The page is photographed on
the way: ``WRITE_DOCS_SCREENSHOT=1`` refreshes the one the docs show.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reference_server.app import ReferenceServer

from ..conftest import ServerFactory, SioClient

TOKEN = "admin-ui-token"
DOCS_SCREENSHOT = Path(__file__).parents[2] / "docs" / "images" / "admin-ui.png"
WAIT_MS = 10_000


async def test_an_operator_logs_in_sees_notifies_and_disconnects_a_client(
    page: Any,
    make_server: ServerFactory,
    make_client: Callable[[ReferenceServer], SioClient],
    tmp_path: Path,
) -> None:
    from playwright.async_api import expect

    server = await make_server(admin_token=TOKEN)
    client = make_client(server)
    await client.connect()
    assert (await client.authenticate("ana", "acme"))["success"] is True
    assert (await client.call("subscribe", {"channels": ["notifications"]}))["success"] is True
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations

    await page.goto(f"{server.url}/admin")
    await page.fill("#token", "not-the-token")
    await page.click("#login button")
    await expect(page.locator("#login-error")).to_contain_text("refused", timeout=WAIT_MS)
    await expect(page.locator("#dashboard")).to_be_hidden()

    await page.fill("#token", TOKEN)
    await page.click("#login button")
    row = page.locator("#connections tr", has_text="ana")
    await expect(row).to_contain_text("acme", timeout=WAIT_MS)
    assert TOKEN not in page.url

    await page.fill("#s-org", "acme")
    await page.fill("#s-title", "Heads up")
    await page.fill("#s-message", "Queue review at 15:00")
    await page.click("#send button")
    await expect(page.locator("#s-result")).to_contain_text("1 socket", timeout=WAIT_MS)
    [notification] = await client.wait_for("system:notification")
    assert notification["data"]["message"] == "Queue review at 15:00"

    await row.click()
    await expect(page.locator("#d-rooms")).to_contain_text("notifications:org:acme")
    await page.screenshot(path=str(tmp_path / "admin-ui.png"), full_page=True)
    if os.environ.get("WRITE_DOCS_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(DOCS_SCREENSHOT), full_page=True)
    await page.click("#disconnect")
    await client.disconnected.wait()
    assert client.disconnect_reason == "server disconnect"
    await expect(page.locator("#connections")).to_contain_text("no connection", timeout=WAIT_MS)


async def test_the_page_loads_nothing_from_another_origin(
    page: Any, make_server: ServerFactory
) -> None:
    server = await make_server(admin_token=TOKEN)
    origins: set[str] = set()
    page.on("request", lambda request: origins.add(request.url.split("/")[2]))
    await page.goto(f"{server.url}/admin/")
    await page.wait_for_load_state("networkidle")
    assert origins == {server.url.split("/")[2]}
