"""The desk in Bosnian, every agent's default, in real headless Chromium against a real
`centrala serve`: the login page in the browser's language (bs-BA), the desk's own texts and
the ones its script writes (states, pause reasons, messages) in Bosnian, then the agent picks
English in the state bar and the page comes back in English, kept on the agent's row. No
script error on the way (a text missing from the page's dictionary throws)."""

from __future__ import annotations

from playwright.async_api import Browser, Error, expect

from models.tables import Agent, DeskLanguage
from tests.browser.test_desktop import PASSWORD, set_password
from tests.integration.conftest import Server
from tests.integration.test_infoline_paths import Desk
from web.i18n import t


async def test_a_bosnian_desk_then_english_at_the_agents_choice(
    server: Server, desk: Desk, browser: Browser
) -> None:
    # No language set: Bosnian. A queue of its own: no other test's preview campaign is in it.
    agent = await desk.agent("lejla", ["languages"], login=False)
    await set_password(server, agent)
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="bs-BA")
    page = await context.new_page()
    errors: list[Error] = []
    # A function of our own: Playwright marks the handler, which a bound builtin cannot take.
    page.on("pageerror", lambda error: errors.append(error))
    try:
        await page.goto(server.url + "/login")
        await expect(page.locator("html")).to_have_attribute("lang", "bs")
        await page.get_by_label(t("bs", "login.agent_id")).fill(agent)
        await page.get_by_label(t("bs", "login.password")).fill(PASSWORD)
        await page.get_by_role("button", name=t("bs", "login.submit")).click()
        await expect(page).to_have_url(server.url + "/desk")
        await expect(page.locator("html")).to_have_attribute("lang", "bs")

        # The script's first state replaces "povezivanje…": logged out, in Bosnian.
        state = page.locator("#state")
        await expect(state).to_have_text("van redova čekanja", timeout=10_000)
        await page.get_by_role("button", name="Primam pozive").click()
        desk.logged_in.append(agent)  # logged out of the queues at the end
        await expect(state).to_have_text("na raspolaganju")
        await page.locator("#pause-reason").select_option("lunch")
        await page.get_by_role("button", name="Pauza", exact=True).click()
        await expect(state).to_have_text("pauza (ručak)")
        await page.get_by_role("button", name="Sljedeći kontakt").click()
        await expect(page.locator("#preview-msg")).to_have_text("Trenutno nema koga pozvati")

        await page.locator("#desk-language").select_option("en")  # the page loads again
        await expect(page.locator("html")).to_have_attribute("lang", "en", timeout=10_000)
        await expect(state).to_have_text("paused (lunch)", timeout=10_000)
        await expect(page.get_by_role("button", name="Available")).to_be_visible()
        await expect(page.locator("#desk-language")).to_have_value("en")
    finally:
        await context.close()
    async with server.db.sessions() as session:
        row = await session.get(Agent, agent)
    assert row is not None and row.language is DeskLanguage.EN
    assert errors == []
