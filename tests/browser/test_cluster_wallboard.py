"""A supervisor's wallboard lists the Asterisk nodes, which instance owns each and since
when, and the instances alive, when `serve` runs as one of several (CENTRALA_NODE)."""

from __future__ import annotations

import asyncio
import signal

from playwright.async_api import Browser, expect

from core.enums import AgentRole
from tests.browser.test_desktop import log_in, set_password
from tests.integration.conftest import Server
from tests.integration.test_infoline_paths import Desk


async def test_the_wallboard_lists_the_nodes_and_the_instances(
    server: Server, desk: Desk, browser: Browser
) -> None:
    lead = await desk.agent("lead", [], role=AgentRole.SUPERVISOR, login=False)
    await set_password(server, lead)
    before = dict(server.env)
    server.env.update(CENTRALA_NODE="pbx-wall", CENTRALA_INSTANCE_ID="wall-a")
    await server.restart(signal.SIGTERM)
    try:
        page = await log_in(browser, server, lead)
        try:
            await page.goto(server.url + "/wallboard")
            card = page.locator("#cluster-card")
            node = card.locator('#cluster-nodes tr[data-node="pbx-wall"]')
            await expect(node).to_contain_text("wall-a", timeout=30_000)
            instance = card.locator('#cluster-instances tr[data-instance="wall-a"]')
            await expect(instance).to_contain_text("pbx-wall")
            await expect(instance.locator("td.alive")).to_have_text("yes")
            await expect(card.get_by_role("heading")).to_have_text("Instances and Asterisk nodes")
        finally:
            await page.context.close()
    finally:
        server.env.clear()
        server.env.update(before)
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.proc.wait, 20)
        server.spawn()
        await server.wait_ready()
