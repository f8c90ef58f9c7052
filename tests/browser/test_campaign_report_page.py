"""The campaigns report's page in real headless Chromium against a real `centrala serve`: a
week of an agent campaign's and a survey campaign's attempts (rows as the dialler leaves
them) is on the database; a supervisor opens the page from the reports page, sees the
campaigns side by side and each one's dials and answers per day, the totals the rows make,
the dispositions and contacts left, downloads the CSV with the same filters; a bad filter gets
a clear message; an agent is refused. The screenshot goes to docs/ (CENTRALA_SCREENSHOT_DIR)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.async_api import Browser, expect

from core.enums import AgentRole
from core.surveys.campaign import channel_id_for
from models.surveys import active_survey
from models.tables import Call, CallEvent, Campaign, CampaignContact, CampaignStatus, Direction
from tests.browser.test_desktop import log_in, set_password, shot
from tests.integration.conftest import Server
from tests.integration.test_infoline_paths import Desk

ZONE = ZoneInfo("Europe/Sarajevo")
# Per day (oldest first): connected, abandoned, machine, no answer, busy; a sale on the first
# connected call of each day.
WEEK = [(6, 0, 2, 5, 2), (8, 1, 3, 6, 1), (5, 0, 1, 4, 3), (9, 0, 2, 7, 2), (7, 1, 2, 5, 1)]
SURVEY_WEEK = [
    (3, 1, 4),
    (4, 2, 3),
    (2, 1, 5),
    (5, 1, 4),
    (4, 0, 3),
]  # completed, partial, no answer


def _call(started: datetime, outcome: str, channel: str | None = None, **extra: object) -> Call:
    call_id = str(uuid.uuid4())
    return Call(
        id=call_id,
        channel_id=channel or f"test-{call_id}",
        direction=Direction.OUTBOUND,
        handler="campaign" if channel else "ari",  # the survey dialler's, by its channel id
        called_number="+38762838000",
        started_at=started,
        ended_at=started + timedelta(seconds=40),
        outcome=outcome,
        **extra,
    )


async def a_week_of_attempts(server: Server, tag: str) -> tuple[str, str, int]:
    """The two campaigns' names and the agent campaign's dials."""
    today = datetime.now(ZONE).date()
    stored = await active_survey(server.db.sessions, "nps")
    assert stored is not None
    async with server.db.sessions() as session, session.begin():
        sales = Campaign(
            name=f"nscp-winter-sales-{tag}",
            kind="sales",
            # Paused, not running: the shard's `serve` is live and would dial the pending
            # contacts, taking the agents and lines of the dialler tests that follow.
            status=CampaignStatus.PAUSED,
            settings={"queue": "outbound_sales", "amd": True},
        )
        asking = Campaign(
            name=f"nscp-nps-{tag}",
            kind="survey",
            status=CampaignStatus.PAUSED,
            survey_id=stored.id,
        )
        session.add_all([sales, asking])
        await session.flush()
        for n, status in enumerate(["pending"] * 12 + ["dialling"] * 2 + ["done"] * 30):
            session.add(
                CampaignContact(campaign_id=sales.id, number=f"+38762839{n:03d}", status=status)
            )
        dials = 0
        for back, (connected, abandoned, machine, no_answer, busy) in enumerate(reversed(WEEK)):
            day = datetime.combine(today - timedelta(days=back), time(9), ZONE)
            outcomes = (
                ["connected"] * connected
                + ["abandoned"] * abandoned
                + ["machine"] * machine
                + ["no_answer"] * no_answer
                + ["busy"] * busy
            )
            for i, outcome in enumerate(outcomes):
                call = _call(
                    day + timedelta(minutes=7 * i),
                    outcome,
                    campaign_id=sales.id,
                    disposition="sale" if i == 0 else "not_interested" if i == 1 else None,
                )
                session.add(call)
                if outcome in ("connected", "machine"):
                    status = "MACHINE" if outcome == "machine" else "HUMAN"
                    session.add(
                        CallEvent(
                            call=call, at=call.started_at, kind="amd", data={"status": status}
                        )
                    )
                dials += 1
        for back, (completed, partial, no_answer) in enumerate(reversed(SURVEY_WEEK)):
            day = datetime.combine(today - timedelta(days=back), time(10), ZONE)
            outcomes = ["completed"] * completed + ["partial"] * partial + ["no_answer"] * no_answer
            for i, outcome in enumerate(outcomes):
                contact = CampaignContact(
                    campaign_id=asking.id,
                    number=f"+3876283{back}{i:03d}",
                    status="done" if outcome != "no_answer" else "pending",
                    attempts=1,
                )
                session.add(contact)
                await session.flush()
                call = _call(
                    day + timedelta(minutes=5 * i),
                    outcome,
                    channel_id_for(asking.id, contact.id, 1),
                    survey_id=stored.id,
                )
                session.add(call)
                await session.flush()
                contact.last_call_id = call.id
        return sales.name, asking.name, dials


async def test_a_supervisor_reads_the_campaigns_report(
    server: Server, desk: Desk, browser: Browser, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    sales, survey, dials = await a_week_of_attempts(server, tag)
    today = datetime.now(ZONE).date()
    week = f"since={(today - timedelta(days=4)).isoformat()}&until={today.isoformat()}"

    lead = await desk.agent("camp-lead", [], role=AgentRole.SUPERVISOR, login=False)
    await set_password(server, lead)
    page = await log_in(browser, server, lead)
    try:
        await page.goto(server.url + "/reports/surveys")
        await page.get_by_role("link", name="Campaigns report").click()
        await expect(page).to_have_url(re.compile(r"/reports/campaigns$"))
        await expect(page.locator("[data-campaign-bars] svg rect").first).to_be_attached()

        await page.goto(server.url + f"/reports/campaigns?{week}&interval=day")
        section = page.locator(f'[data-campaign-report="{sales}"]')
        await expect(section).to_be_visible()
        await expect(section.locator("svg polyline")).to_have_count(2)  # dials, live answers
        await expect(section.locator("tbody tr")).to_have_count(len(WEEK))
        total = section.locator("tfoot tr td")
        await expect(total.nth(0)).to_have_text(str(dials))
        live = sum(c + a for c, a, *_ in WEEK)
        await expect(total.nth(1)).to_have_text(str(live))
        await expect(total.nth(4)).to_have_text(str(sum(a for _, a, *_ in WEEK)))
        await expect(section.locator("[data-dispositions]")).to_contain_text(f"sale: {len(WEEK)}")
        await expect(section.locator("[data-contacts]")).to_contain_text("Contacts left: 14")
        surveyed = page.locator(f'[data-campaign-report="{survey}"] tfoot tr td')
        await expect(surveyed.nth(3)).to_have_text(
            f"{sum(c for c, _, _ in SURVEY_WEEK)}/{sum(p for _, p, _ in SURVEY_WEEK)}"
        )
        await page.screenshot(
            path=shot(tmp_path, "report-campaigns.png", server.db.backend), full_page=True
        )

        await page.locator('select[name="interval"]').select_option("week")
        await page.locator('select[name="kind"]').select_option("sales")
        await page.get_by_role("button", name="Show").click()
        await expect(page).to_have_url(re.compile(r"interval=week"))
        await expect(page.locator(f'[data-campaign-report="{survey}"]')).to_have_count(0)
        link = page.get_by_role("link", name="these rows as CSV")
        assert "kind=sales" in (await link.get_attribute("href") or "")
        async with page.expect_download() as download:
            await link.click()
        lines = Path(await (await download.value).path()).read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith("campaign,kind,start,end,dials,")
        mine = [line for line in lines if line.startswith(f"{sales},sales,")]
        assert sum(int(line.split(",")[4]) for line in mine) == dials

        await page.goto(server.url + "/reports/campaigns?interval=15min")
        await expect(page.locator("p.error")).to_contain_text("interval")
    finally:
        await page.context.close()

    agent = await desk.agent("camp-agent", [], login=False)
    await set_password(server, agent)
    agent_page = await log_in(browser, server, agent)
    try:
        response = await agent_page.goto(server.url + "/reports/campaigns")
        assert response is not None and response.status == 403
    finally:
        await agent_page.context.close()
