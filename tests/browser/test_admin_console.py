"""The admin console in real headless Chromium against a real `centrala serve`, on real calls
through the local Asterisk: an admin changes what key 0 does in a draft, tries it from a test
number while another caller still gets the live version, publishes; a second admin's publish
of an older draft is refused with a clear message; the next call follows the new flow; a roll
back restores the old behaviour for the next call. A problem shows at its node. A supervisor
takes an agent out of a queue and the next caller is not offered to them; the move is undone
from the agent's changes. An agent is refused
the console. An admin makes an API token on the console, sees where it was used, revokes it.
Screenshots of the editor, the diagram and the simulator go to docs/ (CENTRALA_SCREENSHOT_DIR)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from playwright.async_api import Browser, Page, expect

from core.enums import AgentRole
from tests.browser.test_desktop import log_in, set_password, shot
from tests.integration.conftest import Callers, Server
from tests.integration.test_flow_drafts_calls import heard_information, reached_operator
from tests.integration.test_infoline_paths import Desk, call_and_press, finish, wait_connected

EDITOR = "/admin/flows/infoline"
TESTER = "+38762810401"


async def _admin(browser: Browser, server: Server, desk: Desk, name: str) -> Page:
    agent_id = await desk.agent(name, [], role=AgentRole.ADMIN, login=False)
    await set_password(server, agent_id)
    page = await log_in(browser, server, agent_id)
    await page.goto(server.url + EDITOR)
    await expect(page.locator("#node-main_menu")).to_be_attached(timeout=10_000)
    return page


async def _set_key(page: Page, key: str, target: str) -> None:
    menu = page.locator("#node-main_menu")
    if not await menu.evaluate("d => d.open"):
        await menu.locator("summary").click()
    row = menu.locator(".kv-row").filter(has=page.locator(f'input.kv-key[value="{key}"]'))
    await row.locator("input.kv-value").fill(target)


async def test_an_admin_edits_tries_publishes_and_rolls_back_a_flow(
    server: Server, callers: Callers, desk: Desk, browser: Browser, tmp_path: Path
) -> None:
    await desk.agent("operator", ["new_clients"])
    first = await _admin(browser, server, desk, "admin-one")
    second = await _admin(browser, server, desk, "admin-two")
    try:
        # A problem is shown at its node, and nothing is saved.
        await _set_key(first, "0", "nowhere")
        await first.get_by_role("button", name="Check").click()
        await expect(first.locator("#status")).to_contain_text("problems")
        await expect(first.locator("#node-main_menu .node-problems")).to_contain_text("nowhere")
        await first.screenshot(
            path=shot(tmp_path, "admin-flow-editor.png", server.db.backend), full_page=True
        )

        # A file that is no sound is refused with a clear message, and changes nothing.
        bad = tmp_path / "not-a-recording.wav"
        bad.write_text("Dobar dan, ovo nije snimak.")
        welcome = first.locator("#prompt-welcome")
        await welcome.locator("summary").click()
        await welcome.get_by_label("Recording (bs)").set_input_files(bad)
        await welcome.get_by_role("button", name="Upload bs").click()
        await expect(first.locator("#status")).to_contain_text("not a sound file")
        await expect(first.locator("#draft-state")).to_contain_text("No draft yet")

        # The draft: key 0 informs; tried from the test number only.
        await _set_key(first, "0", "information")
        await first.get_by_label("Test numbers").fill(TESTER)
        await first.get_by_role("button", name="Save draft").click()
        # A trial makes its prompts first (espeak-ng and sox): allow for a busy machine.
        await expect(first.locator("#status")).to_contain_text(
            f"calls from {TESTER} run it", timeout=30_000
        )
        # The diagram of the saved draft, drawn on the server: each node a link to its form.
        diagram = first.locator("#diagram svg")
        await expect(diagram).to_be_visible()
        await diagram.locator(
            'a[href="#node-information"], a[*|href="#node-information"]'
        ).first.click()
        await expect(first.locator("#node-information")).to_have_attribute("open", "")
        await first.locator("#diagram").screenshot(
            path=shot(tmp_path, "admin-flow-diagram.png", server.db.backend)
        )
        await heard_information(server, await call_and_press(callers, TESTER, "0"))
        await reached_operator(server, await call_and_press(callers, "+38762810402", "0"))

        # The second admin's draft was taken from the same version.
        await second.locator("#node-main_menu summary").click()
        await second.locator("#node-main_menu input[data-key=timeout_seconds]").fill("6")
        await second.get_by_role("button", name="Save draft").click()
        await expect(second.locator("#status")).to_contain_text("Draft saved")

        await first.get_by_label("Note for the history").fill("0 informs")
        await first.get_by_role("button", name="Publish").click()
        await expect(first.locator("#status")).to_contain_text("is live")
        await second.get_by_role("button", name="Publish").click()
        await expect(second.locator("#status")).to_contain_text("was published by admin-one")
        await heard_information(server, await call_and_press(callers, "+38762810403", "0"))

        # Roll back: the version live before is live again for the next call.
        rows = first.locator("#versions tr")
        await expect(rows.first).to_contain_text("0 informs")
        await rows.nth(1).get_by_role("button", name="Roll back to this").click()
        await expect(first.locator("#status")).to_contain_text("is live again")
        await reached_operator(server, await call_and_press(callers, "+38762810404", "0"))

        await first.goto(server.url + "/admin/simulate/infoline")
        await first.get_by_label("Caller's number").fill("+38762810405")
        await first.get_by_label("Keys").fill("w 0")
        await first.get_by_role("button", name="Simulate").click()
        await expect(first.locator("#sim-end")).to_contain_text("new_clients")
        await expect(first.locator("#sim-path")).to_contain_text("main_menu:0 → operator")
        # Today's callers who hung up in the information prompt, counted at that node.
        left = first.locator('[data-node-live="information"] td').nth(3)
        await expect(left).not_to_have_text("0")
        await first.screenshot(
            path=shot(tmp_path, "admin-simulator.png", server.db.backend), full_page=True
        )
    finally:
        await first.context.close()
        await second.context.close()


async def test_a_supervisor_takes_an_agent_out_of_a_queue_agents_get_no_console(
    server: Server, callers: Callers, desk: Desk, browser: Browser
) -> None:
    leaving = await desk.agent("leaving", ["new_clients"])
    staying = await desk.agent("staying", ["new_clients"])
    await desk.api("PATCH", f"/api/admin/agents/{staying}", {"queues": {"new_clients": 5}})
    supervisor = await desk.agent("lead", [], role=AgentRole.SUPERVISOR, login=False)
    await set_password(server, supervisor)
    await set_password(server, leaving)
    page = await log_in(browser, server, supervisor)
    try:
        await page.goto(server.url + "/admin/agents")
        form = page.locator(f'[data-agent="{leaving}"]')
        await form.locator(":scope > summary").click()
        await form.locator("input.agent-queues").fill("")
        await form.get_by_role("button", name="Save", exact=True).click()
        await expect(page.locator("#status")).to_contain_text(f"Agent {leaving} saved")
        call = await call_and_press(callers, "+38762810411", "0")
        assert (await wait_connected(server, call)).agent_id == staying
        await finish(server, call)

        # The move is undone from the agent's changes: they are back in the queue.
        await page.goto(server.url + "/admin/agents")
        form = page.locator(f'[data-agent="{leaving}"]')
        await form.locator(":scope > summary").click()
        await form.locator("details.history > summary").click()
        change = form.locator("details.history tbody tr").first
        await expect(change).to_contain_text("new_clients")
        await change.get_by_role("button", name="Undo").click()
        await expect(page.locator("#status")).to_contain_text(f"The change of {leaving} is undone")
        agents = await desk.api("GET", "/api/admin/agents")
        back = next(a for a in agents["agents"] if a["id"] == leaving)
        assert back["queues"] == {"new_clients": 0}
    finally:
        await page.context.close()

    agent_page = await log_in(browser, server, leaving)
    try:
        response = await agent_page.goto(server.url + "/admin/agents")
        assert response is not None and response.status == 403
        response = await agent_page.goto(server.url + "/admin")
        assert response is not None and response.status == 403
    finally:
        await agent_page.context.close()


async def test_an_admin_makes_a_token_sees_its_use_and_revokes_it(
    server: Server, desk: Desk, browser: Browser
) -> None:
    admin = await desk.agent("keeper", [], role=AgentRole.ADMIN, login=False)
    await set_password(server, admin)
    page = await log_in(browser, server, admin)
    try:
        await page.goto(server.url + "/admin/tokens")
        await page.get_by_label("Name (what it is for)").fill("CRM sync")
        await page.get_by_label("Expires after days").fill("30")
        await page.get_by_role("button", name="Make a token").click()
        secret = page.locator("#token-secret")
        await expect(secret).to_contain_text("ctk_")
        token = (await secret.inner_text()).rsplit(" ", 1)[-1]

        async with aiohttp.ClientSession() as http:
            bearer = {"Authorization": f"Bearer {token}"}
            async with http.get(server.url + "/api/admin/agents", headers=bearer) as resp:
                assert resp.status == 200  # an admin's token, with the admin's role
            await page.reload()
            row = page.locator("#tokens tr", has_text="CRM sync")
            await expect(row).to_contain_text("127.0.0.1")  # last used from where
            await row.get_by_role("button", name="Revoke").click()
            await expect(page.locator("#status")).to_contain_text("revoked")
            async with http.get(server.url + "/api/admin/agents", headers=bearer) as resp:
                assert resp.status == 401
    finally:
        await page.context.close()
