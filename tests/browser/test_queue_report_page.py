"""The queues report's page in real headless Chromium against a real `centrala serve`, after
calls through the real Asterisk: a supervisor opens it from the survey results' page, sees the
queue's chart and its row for the hour, downloads the CSV with the same filters; a bad filter
gets a clear message; an agent is refused. The screenshot goes to docs/
(CENTRALA_SCREENSHOT_DIR)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.async_api import Browser, expect

from core.enums import AgentRole
from tests.browser.test_desktop import log_in, set_password, shot
from tests.integration.conftest import Callers, Server
from tests.integration.test_infoline_paths import (
    Desk,
    call_and_press,
    finish,
    wait_connected,
    wait_queued,
)


async def test_a_supervisor_reads_the_queues_report(
    server: Server, callers: Callers, desk: Desk, browser: Browser, tmp_path: Path
) -> None:
    agent = await desk.agent("taker", ["new_clients"])
    answered = await call_and_press(callers, "+38762811511", "0")
    await wait_connected(server, answered)
    await finish(server, answered)
    await desk.api("POST", f"/api/agents/{agent}/logout")
    desk.logged_in.remove(agent)
    left = await call_and_press(callers, "+38762811512", "0")
    await wait_queued(server, left)
    await finish(server, left)

    lead = await desk.agent("report-lead", [], role=AgentRole.SUPERVISOR, login=False)
    await set_password(server, lead)
    page = await log_in(browser, server, lead)
    try:
        await page.goto(server.url + "/reports/surveys")
        await page.get_by_role("link", name="Queues report").click()
        section = page.locator('[data-queue-report="new_clients"]')
        await expect(section).to_be_visible()
        await expect(section.locator("svg rect").first).to_be_attached()
        total = section.locator("tfoot tr")
        await expect(total).to_contain_text("Total")
        offered = int(await total.locator("td").first.inner_text())
        assert offered >= 2  # this test's two calls, and any earlier test's today
        await page.screenshot(
            path=shot(tmp_path, "report-queues.png", server.db.backend), full_page=True
        )

        await page.locator('select[name="interval"]').select_option("day")
        await page.get_by_role("button", name="Show").click()
        await expect(page).to_have_url(re.compile(r"interval=day"))
        # Today's report: from today to today (the window ends at the midnight after it).
        today = datetime.now(ZoneInfo("Europe/Sarajevo")).date().isoformat()
        await expect(page.get_by_text(f"From {today} to {today}")).to_be_visible()
        link = page.get_by_role("link", name="these rows as CSV")
        assert "interval=day" in (await link.get_attribute("href") or "")
        async with page.expect_download() as download:
            await link.click()
        csv_text = Path(await (await download.value).path()).read_text(encoding="utf-8")
        assert csv_text.splitlines()[0].startswith("queue,start,end,offered")
        assert any(line.startswith("new_clients,") for line in csv_text.splitlines())

        await page.goto(server.url + "/reports/queues?interval=year")
        await expect(page.locator("p.error")).to_contain_text("interval")
    finally:
        await page.context.close()

    await set_password(server, agent)
    agent_page = await log_in(browser, server, agent)
    try:
        response = await agent_page.goto(server.url + "/reports/queues")
        assert response is not None and response.status == 403
    finally:
        await agent_page.context.close()
