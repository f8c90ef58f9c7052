"""The notices page in real headless Chromium, on the notices' HTTP app (tests/integration/
test_notices_http.py: its clients, a real SMTP server behind the e-mail channel), on SQLite
and PostgreSQL: a supervisor writes an offer to listed clients, Send waits for a preview;
the preview counts who gets it and who not and why, and shows the message in Bosnian and
English; a change to the text asks for a new preview; Send queues exactly what was
previewed, the outbox shows it, and nothing is queued twice. The screenshot goes to docs/
(CENTRALA_SCREENSHOT_DIR)."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect
from sqlalchemy import func, select

from models.tables import Agent, Notice
from tests.browser.test_desktop import shot
from tests.integration.test_notices_http import Http, http, seed
from tests.mailserver import smtp
from web.auth import COOKIE

__all__ = ["http", "smtp"]  # the fixtures


async def test_a_supervisor_previews_an_offer_then_sends_it_once(
    http: Http, browser: Browser, tmp_path: Path
) -> None:
    await seed(http.db)
    cookie = (await http.users.headers("supervisor"))["Cookie"].split("=", 1)[1]
    async with http.db.sessions() as session, session.begin():
        lead = await session.get(Agent, "supervisor-1")
        assert lead is not None
        lead.language = "en"  # the page in the supervisor's language
    base = str(http.client.make_url("/")).rstrip("/")
    context = await browser.new_context(locale="en-GB")
    await context.add_cookies([{"name": COOKIE, "value": cookie, "url": base}])
    page = await context.new_page()
    try:
        await page.goto(base + "/notices")
        await expect(page).to_have_title("Notices to clients · Centrala")
        await expect(page.locator("#n-channels")).to_contain_text("e-mail")
        await expect(page.locator("#n-clients")).to_be_hidden()  # a segment, by default
        await page.locator("#n-kind").select_option("offer")
        await expect(page.locator("#n-message")).to_be_hidden()  # an offer has its product
        await page.locator("#n-segment").select_option("")
        await page.locator("#n-clients").fill("nh-amra\nnh-john\nnh-out\nnh-none")
        await page.locator("#n-product").fill("Kredit Zima")
        send = page.get_by_role("button", name="Send")
        await expect(send).to_be_disabled()
        await page.get_by_role("button", name="Preview").click()
        figures = page.locator("#n-figures")
        await expect(figures).to_contain_text("4 clients")
        await expect(figures).to_contain_text("e-mail: 2")
        await expect(figures).to_contain_text("not messaged, opted out: 1")
        await expect(figures).to_contain_text("not messaged, no address for the channel: 1")
        bosnian = page.locator('article.sample[data-language="bs"]')
        await expect(bosnian.locator(".subject")).to_have_text("Ponuda za Vas: Kredit Zima")
        await expect(bosnian.locator(".text")).to_contain_text("Poštovani/a Amra Hodžić")
        await expect(page.locator('article.sample[data-language="en"] .text')).to_contain_text(
            "Dear John Smith"
        )
        await expect(send).to_be_enabled()
        await page.screenshot(
            path=shot(tmp_path, "notices-preview.png", http.db.backend), full_page=True
        )

        await page.locator("#n-product").fill("Kredit Proljeće")  # changed: preview again
        await expect(send).to_be_disabled()
        await page.get_by_role("button", name="Preview").click()
        await expect(bosnian.locator(".subject")).to_have_text("Ponuda za Vas: Kredit Proljeće")
        await send.click()
        await expect(page.locator("#n-result")).to_have_text(
            "Queued 2 (already 0); the senders send them now."
        )
        await expect(page.locator("#n-latest tbody tr")).to_have_count(2)
        await expect(page.locator("#n-outbox tbody")).to_contain_text("offer")
        await expect(send).to_be_disabled()  # sent: the next needs its own preview
        report = page.locator("#r-rows tbody tr")
        await expect(report).to_have_count(1)  # today: the offers by e-mail
        await expect(report.locator("td").nth(3)).to_have_text("2")
        await expect(page.locator("#r-opt-outs")).to_contain_text(
            "1 opted out of e-mail (the unsubscribe link)"
        )
        await page.get_by_role("button", name="Preview").click()
        await expect(figures).to_contain_text("already had it: 2")
        async with http.db.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Notice)) == 2
            subjects = set(await session.scalars(select(Notice.subject)))
        assert subjects == {"Ponuda za Vas: Kredit Proljeće", "An offer for you: Kredit Proljeće"}
    finally:
        await context.close()
