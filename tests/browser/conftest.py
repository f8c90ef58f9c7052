"""Browser tests: real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright's
Python API; never `playwright install`) against a real `centrala serve` on the local
Asterisk. The PBX, server, callers and clean-up fixtures are the integration tests' own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from tests.integration.conftest import ami, callers, no_leftovers, pbx, server
from tests.integration.test_infoline_paths import desk

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

__all__ = ["ami", "browser", "callers", "desk", "no_leftovers", "pbx", "server"]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()
