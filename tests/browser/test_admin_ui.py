"""The admin UI in a real chromium, against a real server with real clients.

An operator logs in (a wrong token is refused first), sees the connection a
client made, sends a notification the subscribed client receives, and
disconnects it (the client sees the disconnect). The page is photographed on
the way: ``WRITE_DOCS_SCREENSHOT=1`` refreshes the one the docs show.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reference_server.app import ReferenceServer
from reference_server.operator_routes import ADMIN_UI_DIR

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


def test_the_login_form_cannot_put_the_token_in_a_url() -> None:
    # Issue 22 item 11: name="token" and no method: submitted before the
    # deferred script ran, or without JavaScript, the token went into the URL.
    page = (ADMIN_UI_DIR / "index.html").read_text()
    form = re.search(r"<form id=\"login\"[^>]*>", page)
    assert form is not None
    assert 'method="post"' in form.group(0)
    token_input = re.search(r"<input id=\"token\"[^>]*>", page)
    assert token_input is not None
    assert "name=" not in token_input.group(0)


async def test_without_javascript_a_submitted_token_goes_nowhere(
    browser: Any, make_server: ServerFactory
) -> None:
    server = await make_server(admin_token=TOKEN)
    context = await browser.new_context(java_script_enabled=False)
    try:
        page = await context.new_page()
        sent: list[str] = []
        page.on("request", lambda request: sent.append(f"{request.url} {request.post_data}"))
        await page.goto(f"{server.url}/admin/")
        await page.fill("#token", TOKEN)
        async with page.expect_navigation():
            await page.click("#login button")
        assert TOKEN not in page.url
        assert sent
        assert not [request for request in sent if TOKEN in request]
    finally:
        await context.close()


async def test_a_server_without_a_token_says_its_api_is_open(
    page: Any, make_server: ServerFactory
) -> None:
    # Issue 21 item 8: /admin on such a server took any string as a token, silently.
    from playwright.async_api import expect

    server = await make_server()
    await page.goto(f"{server.url}/admin/")
    await expect(page.locator("[data-testid=open-warning]")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#dashboard")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#login-view")).to_be_hidden()


async def test_wrong_logins_are_not_client_errors_and_the_chart_has_axes(
    page: Any, make_server: ServerFactory
) -> None:
    # Issue 21 item 8: a wrong login counted among client errors; the chart had no axis values.
    from playwright.async_api import expect

    server = await make_server(admin_token=TOKEN)
    await page.goto(f"{server.url}/admin/")
    await expect(page.locator("[data-testid=open-warning]")).to_be_hidden()
    await page.fill("#token", "not-the-token")
    await page.click("#login button")
    await expect(page.locator("#login-error")).to_contain_text("refused", timeout=WAIT_MS)
    await page.fill("#token", TOKEN)
    await page.click("#login button")
    await expect(page.locator("#t-errors")).to_have_text("0", timeout=WAIT_MS)
    await expect(page.locator("#errors")).to_contain_text("none")
    await expect(page.locator("[data-testid=admin-refused]")).to_contain_text(
        "wrong admin token", timeout=WAIT_MS
    )
    labels = page.locator("#chart text.axis")
    await expect(labels.filter(has_text="now")).to_have_count(1, timeout=WAIT_MS)
    assert await labels.count() >= 9  # three values on each y axis, three times
