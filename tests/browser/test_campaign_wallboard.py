"""The supervisor's wallboard shows the agent campaigns live, in real headless Chromium with real
calls through the real Asterisk: a progressive campaign's row (pacing, agents, lines, the agent
on the call, abandonment) and the chart of lines per agent and abandonment."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect
from sqlalchemy import select

from ari_app.ami import AMIClient
from core.enums import AgentRole
from models.tables import Call, Interaction
from tests.browser.test_desktop import desk_ready, log_in, set_password, shot
from tests.integration.conftest import Server
from tests.integration.test_agent_dialler import (  # stop_campaigns: autouse
    api,
    calls_of,
    create,
    nailed_agent,
    number,
    person,
    stop_campaigns,  # noqa: F401
)
from tests.integration.test_infoline_paths import Desk


async def test_wallboard_shows_a_running_campaign_live(
    server: Server, desk: Desk, browser: Browser, ami: AMIClient, tmp_path: Path
) -> None:
    supervisor = await desk.agent("boss", ["supervisor"], role=AgentRole.SUPERVISOR, login=False)
    await set_password(server, supervisor)
    page = await log_in(browser, server, supervisor)
    try:
        await nailed_agent(desk, "carl")
        client = number()
        await person(ami, client, delay=1, talk=6)
        name = f"board-{client[-6:]}"
        campaign_id = await create(server, name, "progressive", [client])
        status, _ = await api(server, "POST", f"/api/campaigns/{campaign_id}/start")
        assert status == 200

        row = page.locator(f'tr[data-campaign="{name}"]')
        await expect(row).to_be_visible(timeout=15_000)
        await expect(row.locator("td").nth(1)).to_have_text("progressive")
        await expect(row.locator("td").nth(2)).to_have_text("1")  # the nailed-up agent
        # On the call: the agent is on it, no line rings, nobody abandoned.
        await expect(row.locator("td").nth(5)).to_have_text("1", timeout=15_000)
        await expect(row.locator(".abandoned")).to_have_text("0% / 0%")
        await expect(page.locator("#campaign-chart polyline")).to_have_count(2)
        await page.screenshot(path=shot(tmp_path, "wallboard-campaign.png", server.db.backend))
        # The call ends, nobody is left to call: the campaign is finished and leaves the board.
        await expect(row).to_have_count(0, timeout=20_000)
    finally:
        await page.context.close()


async def test_agent_previews_calls_and_gives_the_campaign_disposition_on_the_desk(
    server: Server, desk: Desk, browser: Browser, ami: AMIClient, tmp_path: Path
) -> None:
    """An agent with a nailed-up phone and the desk open: Next contact shows the previewed
    client, Call puts them through, the screen-pop shows the campaign, and once the client
    hangs up the desk asks for the campaign's disposition; saved, it is on the call row."""
    agent = await nailed_agent(desk, "dora")
    await set_password(server, agent)
    client = number()
    await person(ami, client, delay=1, talk=3)
    await desk.client("Dino Delić", client, language="bs")
    name = f"desk-{client[-6:]}"
    campaign_id = await create(server, name, "preview", [client])
    status, _ = await api(server, "POST", f"/api/campaigns/{campaign_id}/start")
    assert status == 200
    page = await log_in(browser, server, agent)
    try:
        await desk_ready(page)
        await page.get_by_role("button", name="Next contact").click()
        body = page.locator("#preview-body")
        await expect(body).to_contain_text(client)
        await expect(body).to_contain_text(name)
        await page.get_by_role("button", name="Call this contact").click()
        pop = page.locator("#pop-body")
        await expect(page.locator("#pop-title")).to_have_text("Outbound call", timeout=20_000)
        await expect(pop).to_contain_text(name)
        await expect(pop).to_contain_text("Dino Delić")
        await page.screenshot(path=shot(tmp_path, "desk-campaign-call.png", server.db.backend))
        form = page.locator("#campaign-disposition")
        await expect(form).to_be_visible(timeout=20_000)  # the client hung up
        await page.get_by_label("Result").select_option("interested")
        await form.locator("#cdisp-note").fill("wants an offer by mail")
        await form.get_by_role("button", name="Save disposition").click()
        await expect(page.locator("#cdisp-msg")).to_have_text("Saved: interested")
    finally:
        await page.context.close()
    calls = await calls_of(server, campaign_id)
    (call,) = calls[client]
    async with server.db.sessions() as session:
        row = await session.get(Call, call.id)
        notes = list(
            await session.scalars(select(Interaction.note).where(Interaction.call_id == call.id))
        )
    assert row is not None and row.disposition == "interested" and row.agent_id == agent
    assert notes == ["[interested] wants an offer by mail"]
