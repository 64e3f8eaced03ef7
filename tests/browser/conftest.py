"""Real-browser fixtures: Debian's chromium, driven by Playwright (the Python package).

Playwright's own browser download cannot work on this project's machines, so
the system browser is launched through ``executable_path``. Without chromium
or Playwright the browser tests skip, unless ``REQUIRE_BROWSER=1`` (CI) makes
that a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

CHROMIUM_FLAGS = [
    # What keeps chromium quiet on a machine without a network or a screen:
    # without the background-networking flags it keeps dialling out and failing.
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def chromium_path() -> str | None:
    """Where Debian's chromium is, if it is installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless chromium, closed after the test."""
    executable = chromium_path()
    if executable is None:
        _unavailable("chromium is not installed (apt-get install -y chromium)")
    try:
        from playwright.async_api import async_playwright
    except ModuleNotFoundError:
        _unavailable("the playwright package is not installed (the dev extra has it)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_FLAGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    """A fresh page in its own browser context (no cookies or storage shared between tests)."""
    context = await browser.new_context()
    try:
        yield await context.new_page()
    finally:
        await context.close()
