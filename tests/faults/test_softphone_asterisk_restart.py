"""Asterisk is killed (SIGKILL) while an agent's browser softphone is registered and the agent
is available on it, then started again. Asterisk forgets the web endpoint (it lives in its
memory, pushed through ARI); the browser's WebSocket comes back, its REGISTER is refused, the
desk asks for new credentials and registers again, and the next info-line caller rings in the
browser, is answered there and hung up, with the row right."""

from __future__ import annotations

import asyncio
import os
import signal

from playwright.async_api import Browser, expect

from centrala.pbx import LocalPBX
from tests.browser.test_desktop import set_password
from tests.browser.test_softphone import desk, open_desk, phone_browser
from tests.integration.conftest import PBX, Callers, Server
from tests.integration.test_infoline_paths import Desk, call_and_press, wait_connected

__all__ = ["desk", "phone_browser"]


async def test_a_restarted_asterisk_gets_the_browser_back_and_it_rings_again(
    server: Server,
    callers: Callers,
    pbx: PBX,
    desk: Desk,
    phone_browser: Browser,
) -> None:
    before = await server.wait_ready()
    agent = await desk.agent("crashy", ["new_clients"], login=False)
    await set_password(server, agent)
    page = await open_desk(phone_browser, server, agent)
    try:
        state = page.locator("#phone-state")
        await expect(state).to_have_text("registered", timeout=15_000)
        first = await page.evaluate("window.__softphone.credentials.password")
        await page.get_by_role("button", name="Available").click()
        desk.logged_in.append(agent)
        await expect(page.locator("#state")).to_have_text("available")

        for pid in LocalPBX(pbx.settings).processes_in_root():
            os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(pbx.up)
        await server.wait_ready(timeout=30, min_connects=before["ari"]["connects"] + 1)
        await callers.ari.wait_connected(30)

        # JsSIP reconnects (2 s, then further apart), is refused (Asterisk forgot the
        # endpoint), the desk re-issues: registered again, with a new password.
        await expect(state).to_have_text("registered", timeout=40_000)
        assert await page.evaluate("window.__softphone.credentials.password") != first
        assert f"{agent}-web/" in pbx.cli("pjsip show contacts")

        call = await call_and_press(callers, "+38761999735", "0")
        await expect(page.locator("#phone-ring")).to_be_visible(timeout=20_000)
        await page.get_by_role("button", name="Answer").click()
        row = await wait_connected(server, call)
        assert row.agent_id == agent
        await expect(page.get_by_role("button", name="Hang up")).to_be_enabled(timeout=10_000)
        await page.get_by_role("button", name="Hang up").click()
        closed = await server.wait_closed(call.far_end)
        assert (closed.agent_id, closed.outcome) == (agent, "answered")
    finally:
        await page.context.close()
