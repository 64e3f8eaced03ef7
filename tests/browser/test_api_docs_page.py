"""The API docs page (Swagger UI) in a real chromium: a browser can try the protected routes.

A browser cannot add a bearer header to a page it opens, so the page is
public and holds no data: it asks for the admin token, fetches the
description with it, and authorizes Swagger UI with it, whose Authorize
button shows the bearer scheme the description declares (issue 21 item 10).
"""

from __future__ import annotations

from typing import Any

from tests.conftest import ServerFactory

TOKEN = "docs-page-token"
WAIT_MS = 15_000


async def test_a_browser_tries_a_protected_route_with_the_token_it_typed(
    page: Any, make_server: ServerFactory
) -> None:
    from playwright.async_api import expect

    server = await make_server(admin_token=TOKEN)
    await page.goto(f"{server.url}/api/ws/docs")
    await page.fill("#token", "not-the-token")
    await page.click("#token-form button")
    await expect(page.locator("#token-error")).to_contain_text("refused", timeout=WAIT_MS)

    await page.fill("#token", TOKEN)
    await page.click("#token-form button")
    operation = page.locator("#operations-default-getStats")
    await operation.wait_for(timeout=WAIT_MS)
    assert TOKEN not in page.url
    # Swagger UI's own Authorize button: the bearer scheme, already authorized.
    await page.click("button.authorize")
    dialog = page.locator(".auth-container")
    await expect(dialog).to_contain_text("adminToken", timeout=WAIT_MS)
    await expect(dialog).to_contain_text("Bearer")
    await expect(dialog.locator("button", has_text="Logout")).to_be_visible()
    await page.click("button.close-modal")

    await operation.locator(".opblock-summary").click()
    await operation.locator("button.try-out__btn").click()
    await operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    await expect(status).to_have_text("200", timeout=WAIT_MS)


async def test_without_a_token_the_page_shows_the_api_at_once(
    page: Any, make_server: ServerFactory
) -> None:
    from playwright.async_api import expect

    server = await make_server()
    await page.goto(f"{server.url}/api/ws/docs")
    await expect(page.locator("#operations-default-getStats")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#token-form")).to_be_hidden()
