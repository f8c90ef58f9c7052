"""The console's survey editor and campaigns page in real headless Chromium against a real
`centrala serve`: a new survey's editor opens on the server's starter; an admin breaks a
question's `next` in the nps survey and Check shows the problem at that question; fixed, with
a prompt's text changed, the survey is published with a note, the versions list shows it, the
diff against the live version shows the new text, and a roll back makes a newer version. On
the campaigns page an admin changes a survey campaign's concurrency (a new revision with its
history entry); concurrency 0 is refused at its field and nothing is saved; a save onto
settings someone else changed meanwhile is refused with the reason. A supervisor sees the
campaigns without edit controls and is refused the survey editor. Screenshots go to docs/
(CENTRALA_SCREENSHOT_DIR)."""

from __future__ import annotations

import random
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from core.enums import AgentRole
from tests.browser.test_desktop import log_in, set_password, shot
from tests.integration.conftest import Server
from tests.integration.test_campaign_calls import api
from tests.integration.test_infoline_paths import Desk

EDITOR = "/admin/surveys/nps"


async def _logged_in(
    browser: Browser, server: Server, desk: Desk, name: str, role: AgentRole
) -> Page:
    agent_id = await desk.agent(name, [], role=role, login=False)
    await set_password(server, agent_id)
    return await log_in(browser, server, agent_id)


async def _opened(page: Page, selector: str) -> None:
    box = page.locator(selector)
    if not await box.evaluate("d => d.open"):
        await box.locator("summary").click()


async def test_an_admin_checks_publishes_compares_and_rolls_back_a_survey(
    server: Server, desk: Desk, browser: Browser, tmp_path: Path
) -> None:
    page = await _logged_in(browser, server, desk, "surveyor", AgentRole.ADMIN)
    try:
        # A new survey starts from the server's starter, unpublished.
        await page.goto(server.url + "/admin/surveys")
        await page.get_by_label("Name (lowercase letters").fill(f"ui_{desk.tag}")
        await page.get_by_role("button", name="Open the editor").click()
        await expect(page).to_have_url(f"{server.url}/admin/surveys/ui_{desk.tag}")
        await expect(page.locator("#draft-state")).to_contain_text("A new survey")
        await expect(page.locator("#questions [data-node]")).not_to_have_count(0)
        await expect(page.locator("#versions tr")).to_have_count(0)

        await page.goto(server.url + "/admin/surveys")
        await expect(page.locator('#surveys tr[data-survey="nps"]')).to_be_visible()
        await page.get_by_role("link", name="nps", exact=True).click()
        await expect(page).to_have_url(server.url + EDITOR)
        why = page.locator("#node-why")
        await expect(why).to_be_attached(timeout=10_000)
        rows = page.locator("#versions tr")
        await expect(rows.first).to_contain_text("live")
        live = int(await rows.first.get_attribute("data-version") or "0")

        # A `next` to a question that does not exist: the problem is shown at that question.
        await _opened(page, "#node-why")
        await why.locator("input[data-key=next]").fill("nowhere")
        await page.get_by_role("button", name="Check").click()
        await expect(page.locator("#status")).to_contain_text("problems")
        await expect(why.locator(".node-problems")).to_contain_text("nowhere")
        await expect(page.locator("#node-recommend .node-problems")).to_be_empty()
        await page.screenshot(
            path=shot(tmp_path, "admin-survey-editor.png", server.db.backend), full_page=True
        )

        # Fixed, and the thank-you said differently in English.
        await why.locator("input[data-key=next]").fill("may_call_back")
        await page.get_by_role("button", name="Check").click()
        await expect(page.locator("#status")).to_have_text("The survey has no problems.")
        await expect(why.locator(".node-problems")).to_be_empty()
        text = f"Thank you, goodbye from {desk.tag}."
        await _opened(page, "#prompt-thanks")
        english = page.locator("#prompt-thanks .kv-row").filter(
            has=page.locator('input.kv-key[value="en"]')
        )
        await english.locator("input.kv-value").fill(text)
        await page.get_by_label("Note for the history").fill(f"shorter thanks {desk.tag}")
        await page.get_by_role("button", name="Publish").click()
        await expect(page.locator("#status")).to_have_text(f"Version {live + 1} is live.")

        # The versions, newest first: the new one with its note; the diff shows the new text.
        await expect(rows.first).to_have_attribute("data-version", str(live + 1))
        await expect(rows.first).to_contain_text(f"shorter thanks {desk.tag}")
        previous = page.locator(f'#versions tr[data-version="{live}"]')
        await previous.get_by_role("button", name="Compare with live").click()
        await expect(page.locator("#diff-changes")).to_contain_text(text)
        await expect(page.locator("#diff")).to_contain_text(text)

        # Roll back: the old text is live again, as a newer version.
        await page.get_by_label("Note for the history").fill("back to the old thanks")
        await previous.get_by_role("button", name="Roll back to this").click()
        await expect(page.locator("#status")).to_contain_text(
            f"Version {live} is live again, as version {live + 2}."
        )
        await expect(rows.first).to_have_attribute("data-version", str(live + 2))
        await expect(rows.first).to_contain_text("live")
        await expect(rows.first).to_contain_text("back to the old thanks")
        status, shown = await api(server, "GET", "/api/surveys/nps/versions")
        assert status == 200, shown
        assert [v["version"] for v in shown["versions"] if v["active"]] == [live + 2]
    finally:
        await page.context.close()


async def test_an_admin_edits_a_campaigns_settings_a_supervisor_only_sees_them(
    server: Server, desk: Desk, browser: Browser, tmp_path: Path
) -> None:
    name = f"ui-settings-{desk.tag}"
    status, made = await api(
        server,
        "POST",
        "/api/campaigns",
        {
            "name": name,
            "survey": "nps",
            "contacts_csv": f"number\n+38761{random.randrange(10**5, 10**6)}\n",
            "settings": {"concurrency": 5},
        },
    )
    assert status == 200, made
    campaign_id = made["id"]
    status, before = await api(server, "GET", f"/api/campaigns/{campaign_id}/settings")
    assert status == 200 and before["settings"]["concurrency"] == 5, before
    revision = before["revision"]

    page = await _logged_in(browser, server, desk, "planner", AgentRole.ADMIN)
    try:
        await page.goto(server.url + "/admin/campaigns")
        row = page.locator(f'#campaigns tr[data-campaign="{campaign_id}"]')
        await expect(row).to_contain_text("draft")
        await expect(row.get_by_role("button", name="Start")).to_be_visible()
        await row.get_by_role("link", name=name).click()
        concurrency = page.locator("#settings [data-key=concurrency]")
        await expect(concurrency).to_have_value("5")
        for fixed in before["fixed"]:  # kept as made: shown, not editable
            await expect(page.locator(f'#settings [data-key="{fixed}"]')).not_to_be_editable()

        await concurrency.fill("7")
        await page.get_by_label("Note for the history").fill("more lines")
        await page.get_by_role("button", name="Save settings").click()
        await expect(page.locator("#status")).to_contain_text(f"revision {revision + 1}")
        await expect(page.locator("#campaign-state")).to_contain_text(f"revision {revision + 1}")
        entry = page.locator("#settings-history tr", has_text="more lines")
        await expect(entry).to_contain_text("concurrency: 5 → 7")
        await expect(entry.locator("td").first).to_have_text(str(revision + 1))

        # Zero lines: refused, the problem at its field, nothing saved.
        await concurrency.fill("0")
        await page.get_by_role("button", name="Save settings").click()
        problem = page.locator('#settings .field-problem[data-for="concurrency"]')
        await expect(problem).to_be_visible()
        await expect(concurrency).to_have_attribute("aria-invalid", "true")
        await expect(page.locator("#status")).to_have_class("error")
        await page.screenshot(
            path=shot(tmp_path, "admin-campaigns.png", server.db.backend), full_page=True
        )
        status, after = await api(server, "GET", f"/api/campaigns/{campaign_id}/settings")
        assert status == 200, after
        assert after["revision"] == revision + 1 and after["settings"]["concurrency"] == 7

        # Someone else saves meanwhile: this page's save is refused with the reason, and the
        # other's settings stand.
        status, other = await api(
            server,
            "PUT",
            f"/api/campaigns/{campaign_id}/settings",
            {"settings": {**after["settings"], "concurrency": 8}, "revision": revision + 1},
        )
        assert status == 200 and other["revision"] == revision + 2, other
        await concurrency.fill("9")
        await page.get_by_role("button", name="Save settings").click()
        await expect(page.locator("#status")).to_contain_text("someone else")
        await expect(problem).to_have_count(0)
        status, after = await api(server, "GET", f"/api/campaigns/{campaign_id}/settings")
        assert after["revision"] == revision + 2 and after["settings"]["concurrency"] == 8
        await page.reload()
        await row.get_by_role("link", name=name).click()
        await expect(concurrency).to_have_value("8")
    finally:
        await page.context.close()

    supervisor = await _logged_in(browser, server, desk, "overseer", AgentRole.SUPERVISOR)
    try:
        await supervisor.goto(server.url + "/admin/campaigns")
        row = supervisor.locator(f'#campaigns tr[data-campaign="{campaign_id}"]')
        await expect(row).to_contain_text(name)
        await expect(row.get_by_role("button")).to_have_count(0)
        await row.get_by_role("link", name=name).click()
        concurrency = supervisor.locator("#settings [data-key=concurrency]")
        await expect(concurrency).to_have_value("8")
        await expect(concurrency).not_to_be_editable()
        await expect(supervisor.get_by_role("button", name="Save settings")).to_be_hidden()
        await expect(supervisor.locator("#settings-history")).to_contain_text("more lines")
        for path in (EDITOR, "/admin/surveys"):
            response = await supervisor.goto(server.url + path)
            assert response is not None and response.status == 403, path
    finally:
        await supervisor.context.close()
        await api(server, "POST", f"/api/campaigns/{campaign_id}/stop")
