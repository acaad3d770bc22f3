"""Browser fixtures for the dashboard tests: Debian's Chromium driven by Playwright (sync API).

The stack fixtures (`aws_stack`, `api_server`, `web_server`, `worker`) live in tests/conftest.py.
Never `playwright install`: the browser is the system's /usr/bin/chromium (CHROMIUM_PATH overrides).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, Playwright, ViewportSize, expect, sync_playwright

from devstack import REPO_ROOT

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT_DIR = REPO_ROOT / "artifacts" / "screenshots"
# `make screenshots` sets it: the tests that show a documented view write it there (docs/screenshots).
DOCS_SCREENSHOTS = "DOCS_SCREENSHOTS"
DESKTOP: ViewportSize = {"width": 1100, "height": 800}

# The API and the page answer in well under a second; a loaded CI machine gets some slack.
# Waits for the worker (processing a clip) pass their own, longer timeout.
expect.set_options(timeout=10_000)


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(path).exists():
        pytest.skip(f"no Chromium at {path} (apt-get install chromium, or set CHROMIUM_PATH)")
    return path


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def page(browser: Browser, web_server: str) -> Iterator[Page]:
    """A fresh context (own sessionStorage) on the dashboard's origin; uncaught page errors fail the test."""
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True, base_url=web_server)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[..., Path]:
    """screenshot(page, "name"): a full-page PNG in artifacts/screenshots/ (git-ignored)."""

    def take(page: Page, name: str) -> Path:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
        path = SCREENSHOT_DIR / f"{safe}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def docs_screenshot() -> Callable[[Locator, str], Path | None]:
    """docs_screenshot(element, "name"): with DOCS_SCREENSHOTS=<dir> (`make screenshots`), the
    element as <dir>/<name>.png, the picture the docs show; without it, nothing (the suite leaves
    the committed pictures alone)."""

    def take(element: Locator, name: str) -> Path | None:
        directory = os.environ.get(DOCS_SCREENSHOTS)
        if not directory:
            return None
        path = Path(directory) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        element.screenshot(path=str(path), animations="disabled")
        return path

    return take
