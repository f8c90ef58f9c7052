"""The agents report's page in real headless Chromium against a real `centrala serve`: a day of
four agents' shifts (state rows and calls, as the desk and the info line write them) is on
the page a supervisor opens from the survey results' page: a bar per agent (talk, hold,
wrap-up, pause, idle), each agent's table with the totals, the CSV with the same filters; a
bad filter gets a clear message; an agent is refused. The screenshot goes to docs/
(CENTRALA_SCREENSHOT_DIR). (The figures themselves: tests/integration/test_agent_report_*.)"""

from __future__ import annotations

import random
import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.async_api import Browser, expect
from sqlalchemy import update

from core.enums import AgentRole
from models.tables import Agent, AgentState, Call, CallEvent, Direction
from tests.browser.test_desktop import log_in, set_password, shot
from tests.integration.conftest import Server
from tests.integration.test_infoline_paths import Desk

DAY = "2026-11-10"
ZONE = ZoneInfo("Europe/Sarajevo")


def at(clock: str) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{clock}").replace(tzinfo=ZONE)


async def a_shift(server: Server, agent: str, rnd: random.Random, pause: str) -> int:
    """The agent's day: in at 08:00, calls with holds and a minute's wrap-up each, a pause
    for lunch at noon and one of ``pause``, out at 16:00. Returns the calls taken."""
    states: list[tuple[datetime, str, str | None]] = [(at("08:00:00"), "ready", None)]
    taken = 0
    async with server.db.sessions() as session, session.begin():
        for first, last in ((at("08:05:00"), at("11:50:00")), (at("12:35:00"), at("14:50:00"))):
            start = first + timedelta(minutes=rnd.uniform(0, 6))
            while start < last:
                talk = rnd.uniform(120, 420)
                call = Call(
                    channel_id=f"nsag-page-{uuid.uuid4()}",
                    direction=Direction.INBOUND if rnd.random() < 0.8 else Direction.OUTBOUND,
                    handler="ari",
                    started_at=start - timedelta(seconds=20),
                    answered_at=start - timedelta(seconds=20),
                    connected_at=start,
                    ended_at=start + timedelta(seconds=talk),
                    talk_seconds=talk,
                    agent_id=agent,
                    outcome="answered",
                    disposition=rnd.choice(("information/resolved", "complaint/follow_up")),
                )
                session.add(call)
                await session.flush()
                if rnd.random() < 0.4:
                    held = start + timedelta(seconds=talk / 3)
                    session.add(CallEvent(call_id=call.id, at=held, kind="held", data={}))
                    resumed = held + timedelta(seconds=rnd.uniform(20, 90))
                    session.add(CallEvent(call_id=call.id, at=resumed, kind="resumed", data={}))
                end = start + timedelta(seconds=talk)
                wrap = timedelta(seconds=rnd.uniform(30, 90))
                states += [(end, "wrap_up", None), (end + wrap, "ready", None)]
                taken += 1
                start = end + wrap + timedelta(minutes=rnd.uniform(2, 15))
        states += [
            (at("12:00:00"), "paused", "lunch"),
            (at("12:30:00"), "ready", None),
            (at("15:00:00"), "paused", pause),
            (at("15:20:00"), "ready", None),
            (at("16:00:00"), "logged_out", None),
        ]
        for when, state, reason in sorted(states, key=lambda s: s[0]):
            session.add(AgentState(agent_id=agent, at=when, state=state, reason=reason))
    return taken


async def test_a_supervisor_reads_the_agents_report(
    server: Server, desk: Desk, browser: Browser, tmp_path: Path
) -> None:
    rnd = random.Random(14)
    names = ("Amra Hodžić", "Emir Begić", "Lejla Kovač", "Tarik Mujić")
    taken = {}
    for name, pause in zip(names, ("break", "training", "break", "meeting"), strict=True):
        agent = await desk.agent(name.split()[0].lower(), [], login=False)
        async with server.db.sessions() as session, session.begin():
            await session.execute(update(Agent).where(Agent.id == agent).values(name=name))
        taken[agent] = await a_shift(server, agent, rnd, pause)
    amra = desk.id("amra")

    lead = await desk.agent("report-lead", [], role=AgentRole.SUPERVISOR, login=False)
    await set_password(server, lead)
    page = await log_in(browser, server, lead)
    try:
        await page.goto(server.url + "/reports/surveys")
        await page.get_by_role("link", name="Agents report").click()
        await expect(page).to_have_url(re.compile(r"/reports/agents$"))
        await page.goto(server.url + f"/reports/agents?since={DAY}&interval=day")
        chart = page.get_by_role("figure", name=re.compile("logged-in time"))
        for name in names:  # a bar per agent, named
            await expect(chart.locator("text", has_text=name)).to_have_count(1)
        assert await chart.locator("svg rect title").count() >= 5 * len(names)
        section = page.locator(f'[data-agent-report="{amra}"]')
        total = section.locator("tfoot tr")
        await expect(total).to_contain_text("Total")
        cells = total.locator("td")
        assert await cells.nth(0).inner_text() == "8:00:00"  # logged in 08:00-16:00
        assert await cells.nth(4).inner_text() == "0:50:00\nbreak: 0:20:00\nlunch: 0:30:00"
        assert (await cells.nth(6).inner_text()).startswith(f"{taken[amra]} (")
        await page.screenshot(
            path=shot(tmp_path, "report-agents.png", server.db.backend), full_page=True
        )

        await page.locator('input[name="agent"]').fill(amra)
        await page.get_by_role("button", name="Show").click()
        await expect(page).to_have_url(re.compile(rf"agent={amra}"))
        link = page.get_by_role("link", name="these rows as CSV")
        assert f"agent={amra}" in (await link.get_attribute("href") or "")
        async with page.expect_download() as download:
            await link.click()
        csv_text = Path(await (await download.value).path()).read_text(encoding="utf-8")
        header, *rows = csv_text.splitlines()
        assert header.startswith("agent,name,start,end,logged_in,talk,hold,wrap_up,paused")
        assert [r.split(",")[:5] for r in rows] == [
            [amra, names[0], f"{DAY}T00:00:00+01:00", "2026-11-11T00:00:00+01:00", "28800.0"]
        ]

        await page.goto(server.url + "/reports/agents?interval=year")
        await expect(page.locator("p.error")).to_contain_text("interval")
    finally:
        await page.context.close()

    await set_password(server, amra)
    agent_page = await log_in(browser, server, amra)
    try:
        response = await agent_page.goto(server.url + "/reports/agents")
        assert response is not None and response.status == 403
    finally:
        await agent_page.context.close()
