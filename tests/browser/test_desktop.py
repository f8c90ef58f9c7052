"""The agent desktop and the wallboard in real headless Chromium, with real calls through the
local Asterisk: an agent logs in, a known client calls, the screen-pop shows that client's
record before the agent speaks, the agent hangs up from the browser and enters the
disposition, and the database holds it; a supervisor watches the wallboard while a caller
waits. Screenshots go to $CENTRALA_SCREENSHOT_DIR (docs/ for the README) when set.
These tests read the desk in English (their agents' language and their browsers' are set to
it); test_desk_language.py shows the Bosnian one, every agent's default."""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiohttp
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from core.enums import AgentRole, ClientType, DeskLanguage
from models.tables import Agent, Call, Callback, CallbackStatus, Client, ClientAudit, Interaction
from tests.integration.conftest import Callers, Server
from tests.integration.test_infoline_paths import Desk, call_and_press, wait_connected
from tests.support import wait_until
from web.auth import hash_password

PASSWORD = "correct horse battery"


def shot(tmp_path: Path, name: str, backend: str) -> str:
    folder = os.environ.get("CENTRALA_SCREENSHOT_DIR")
    if folder and backend == "sqlite":
        return str(Path(folder) / name)
    return str(tmp_path / name)


async def set_password(server: Server, agent_id: str) -> None:
    async with server.db.sessions() as session:
        agent = await session.get(Agent, agent_id)
        assert agent is not None
        agent.password_hash = hash_password(PASSWORD)
        await session.commit()


async def speak(server: Server, agent_id: str, language: DeskLanguage) -> None:
    """The agent's desk language, as `centrala agent language` sets it."""
    async with server.db.sessions() as session:
        agent = await session.get(Agent, agent_id)
        assert agent is not None
        agent.language = language
        await session.commit()


LOCALES = {DeskLanguage.EN: "en-GB", DeskLanguage.BS: "bs-BA"}


async def log_in(
    browser: Browser,
    server: Server,
    agent_id: str,
    *,
    width: int = 1280,
    language: DeskLanguage = DeskLanguage.EN,
) -> Page:
    """The agent's desk, logged in through the login page: both in ``language`` (the login
    page by the browser's Accept-Language, the desk by the agent's row)."""
    await speak(server, agent_id, language)
    context = await browser.new_context(
        viewport={"width": width, "height": 800}, locale=LOCALES[language]
    )
    page = await context.new_page()
    await page.goto(server.url + "/login")
    await page.get_by_label("Agent id").fill(agent_id)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    return page


async def test_agent_sees_screen_pop_hangs_up_and_enters_disposition(
    server: Server, callers: Callers, desk: Desk, browser: Browser, tmp_path: Path
) -> None:
    manager = await desk.agent("manager", [], login=False)
    agent = await desk.agent("anna", ["finance", "general"], login=False)
    await set_password(server, agent)
    client_id = await desk.client(
        "Amra Hodžić",
        "+38761000201",
        client_type=ClientType.REGULAR,
        overdue_debt=True,
        language="bs",
        assigned_manager_id=manager,
        document_expiry=date.today() + timedelta(days=10),
    )
    async with server.db.sessions() as session:
        session.add(
            Interaction(client_id=client_id, category="information", note="asked about rates")
        )
        session.add(
            Callback(
                client_id=client_id,
                number="+38761000201",
                reason="send contract copy",
                due_at=datetime.now(UTC) + timedelta(days=2),
                status=CallbackStatus.OPEN,
            )
        )
        await session.commit()

    page = await log_in(browser, server, agent)
    try:
        await _desk_call(page, server, callers, desk, agent, manager, client_id, tmp_path)
    finally:
        await page.context.close()


async def desk_ready(page: Page) -> None:
    """The desk's script runs (deferred) after the URL is already /desk: a click before it
    has no handler. Its socket's first state replaces "connecting…" once it runs."""
    await expect(page.locator("#state")).not_to_have_text("connecting…", timeout=10_000)


async def _desk_call(
    page: Page,
    server: Server,
    callers: Callers,
    desk: Desk,
    agent: str,
    manager: str,
    client_id: int,
    tmp_path: Path,
) -> None:
    await expect(page).to_have_url(server.url + "/desk")
    await desk_ready(page)
    await page.get_by_role("button", name="Available").click()
    desk.logged_in.append(agent)  # logged out of the queues at the end
    await expect(page.locator("#state")).to_have_text("available")

    call = await call_and_press(callers, "061 000 201", "2")  # 2: my loan -> finance
    pop = page.locator("#pop-body")
    await expect(pop).to_contain_text("Dobar dan, Amra Hodžić", timeout=20_000)
    row = await wait_connected(server, call)
    assert (row.client_id, row.agent_id) == (client_id, agent)
    await expect(pop).to_contain_text("overdue debt")
    await expect(pop).to_contain_text("document expiring")
    await expect(pop).to_contain_text(f"manager ({manager})")
    await expect(pop).to_contain_text("my_loan")
    # The queue and the IVR path as the call's row has them (the pop shows them from the
    # live call, before they are written).
    assert row.queue and row.ivr_path
    await expect(pop).to_contain_text(row.queue)
    await expect(pop).to_contain_text(" › ".join(row.ivr_path))
    await expect(pop).to_contain_text("asked about rates")
    await expect(pop).to_contain_text("send contract copy")
    await expect(pop).to_contain_text("Not in the CRM schema yet")
    await expect(page.locator("#pop-title")).to_have_text("On the call")
    hang_up = page.get_by_role("button", name="Hang up")
    await expect(hang_up).to_be_enabled()
    await page.screenshot(path=shot(tmp_path, "agent-desktop.png", server.db.backend))

    await hang_up.click()
    closed = await server.wait_closed(call.far_end)
    assert closed.outcome == "answered"
    await expect(page.locator("#disposition")).to_be_visible()

    # The disposition is required before the next call: "Available" is refused until then.
    await expect(page.locator("#state")).to_have_text("paused (disposition)", timeout=10_000)
    await page.get_by_role("button", name="Available").click()
    await expect(page.locator("#state-msg")).to_contain_text("disposition first")

    await page.get_by_label("complaint").check()
    await page.get_by_label("Outcome").select_option("follow_up")
    await page.get_by_label("Note", exact=True).fill("Disputes the late fee; promised a review.")
    await page.get_by_label("Follow-up task").fill("Review the late fee")
    await page.get_by_role("button", name="Save disposition").click()
    await expect(page.locator("#disp-msg")).to_have_text("Saved: complaint/follow_up")
    await expect(page.locator("#state")).to_have_text("available", timeout=5_000)

    async with server.db.sessions() as session:
        stored = await session.scalar(select(Call).where(Call.id == row.id))
        notes = list(
            await session.scalars(select(Interaction).where(Interaction.call_id == row.id))
        )
        tasks = list(await session.scalars(select(Callback).where(Callback.call_id == row.id)))
    assert stored is not None and stored.disposition == "complaint/follow_up"
    assert [(n.client_id, n.agent_id, n.category) for n in notes] == [
        (client_id, agent, "complaint")
    ]
    assert "late fee" in (notes[0].note or "")
    assert [(t.reason, t.assigned_agent_id, t.client_id) for t in tasks] == [
        ("Review the late fee", agent, client_id)
    ]


async def test_supervisor_wallboard_shows_a_waiting_caller_then_the_abandon(
    server: Server, callers: Callers, desk: Desk, browser: Browser, tmp_path: Path
) -> None:
    supervisor = await desk.agent("sup", ["supervisor"], role=AgentRole.SUPERVISOR, login=False)
    await set_password(server, supervisor)
    await desk.agent("general", ["general"])  # available, but not in new_clients
    paused = await desk.agent("lunching", ["general"])
    await desk.api("POST", f"/api/agents/{paused}/pause", {"reason": "lunch"})

    page = await log_in(browser, server, supervisor)
    try:
        await _wallboard(page, server, callers, paused, tmp_path)
    finally:
        await page.context.close()


async def _wallboard(
    page: Page, server: Server, callers: Callers, paused: str, tmp_path: Path
) -> None:
    await expect(page).to_have_url(server.url + "/wallboard")
    await expect(page.locator(f'tr[data-agent="{paused}"]')).to_contain_text("paused (lunch)")
    abandoned_before = int(await page.locator("#kpi-abandoned").inner_text())

    call = await call_and_press(callers, "+38761999202", "0")  # unknown: new_clients, nobody
    waiting = page.locator('tr[data-queue="new_clients"] .waiting')
    await expect(waiting).to_have_text("1", timeout=20_000)
    await expect(page.locator("#kpi-waiting")).to_have_text("1")
    # The longest wait counts up on the board (two seconds and more, for the picture).
    longest_wait = page.locator('tr[data-queue="new_clients"] td').nth(2)
    await expect(longest_wait).to_have_text(re.compile(r"^0:0[2-9]$"), timeout=10_000)
    await page.screenshot(path=shot(tmp_path, "wallboard.png", server.db.backend))

    await call.hangup()
    row = await server.wait_closed(call.far_end)
    assert row.outcome == "abandoned_in_queue"
    # Nobody waits and nobody serves new_clients: the queue leaves the board.
    await expect(page.locator("#kpi-waiting")).to_have_text("0", timeout=5_000)
    await expect(waiting).to_have_count(0)
    await expect(page.locator("#kpi-abandoned")).to_have_text(str(abandoned_before + 1))

    # Narrow screen: the same page, one column, still usable.
    await page.set_viewport_size({"width": 390, "height": 800})
    await expect(page.locator("#kpi-waiting")).to_be_visible()


async def test_unknown_caller_becomes_a_client_is_transferred_and_edited_with_an_audit_trail(
    server: Server, callers: Callers, desk: Desk, browser: Browser
) -> None:
    agent = await desk.agent("newdesk", ["new_clients"], login=False)
    await set_password(server, agent)
    supervisor = await desk.agent("super", ["supervisor"], role=AgentRole.SUPERVISOR)
    page = await log_in(browser, server, agent, width=390)  # a narrow screen
    try:
        await desk_ready(page)
        await page.get_by_role("button", name="Available").click()
        desk.logged_in.append(agent)
        await expect(page.locator("#state")).to_have_text("available")

        call = await call_and_press(callers, "+38761999301", "0")  # unknown: new_clients
        await expect(page.locator("#pop-body")).to_contain_text(
            "Unknown caller +38761999301", timeout=20_000
        )
        row = await wait_connected(server, call)
        form = page.locator("#new-client")
        await expect(form).to_be_visible()
        await expect(page.get_by_label("Phone", exact=True)).to_have_value("+38761999301")
        await page.get_by_label("Name", exact=True).fill("Novi Klijent")
        await page.get_by_role("button", name="Create client").click()
        await expect(page.locator("#pop-body")).to_contain_text("Dobar dan, Novi Klijent")

        # Blind transfer to the supervisor, from the browser, on the real call.
        await page.get_by_label("Transfer to").fill("supervisor")
        await page.get_by_role("button", name="Blind transfer").click()
        await expect(page.locator("#call-msg")).to_have_text("Transferred")

        async def with_supervisor() -> bool:
            async with server.db.sessions() as session:
                moved = await session.get(Call, row.id)
            return moved is not None and moved.agent_id == supervisor

        await wait_until(with_supervisor, timeout=20, message="the supervisor on the call")
        await expect(page.locator("#disposition")).to_be_visible()
        await page.get_by_label("information").check()
        await page.get_by_role("button", name="Save disposition").click()
        await expect(page.locator("#disp-msg")).to_have_text("Saved: information/resolved")

        # Search the new client and edit their contact data: each change is audited.
        await page.get_by_label("Name or phone").fill("Novi")
        await page.get_by_role("button", name="Search").click()
        await page.get_by_role("button", name="Novi Klijent · +38761999301").click()
        view = page.locator("#client-view")
        await view.get_by_label("Language").fill("en")
        await view.get_by_role("button", name="Save changes").click()
        await expect(view).to_contain_text("1 change(s) saved")
        await call.hangup()
        await server.wait_closed(call.far_end)
    finally:
        await page.context.close()

    async with server.db.sessions() as session:
        client = await session.scalar(select(Client).where(Client.name == "Novi Klijent"))
        assert client is not None and client.language == "en"
        audit = list(
            await session.scalars(
                select(ClientAudit)
                .where(ClientAudit.client_id == client.id)
                .order_by(ClientAudit.id)
            )
        )
        stored = await session.get(Call, row.id)
    assert [(a.agent_id, a.field, a.old_value, a.new_value) for a in audit] == [
        (agent, "created", None, "Novi Klijent"),
        (agent, "language", "bs", "en"),
    ]
    assert stored is not None and stored.disposition == "information/resolved"


async def test_pages_and_api_refuse_without_a_session_a_role_or_the_csrf_token(
    server: Server, desk: Desk
) -> None:
    agent = await desk.agent("plain", [], login=False)
    await set_password(server, agent)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(server.url + "/desk", allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (303, "/login")
        async with http.get(server.url + "/api/openapi.json") as resp:
            doc = await resp.json()
            assert resp.status == 200 and "/desk/api/calls/{call_id}/disposition" in doc["paths"]
        async with http.get(server.url + "/api/acd") as resp:
            assert resp.status == 401  # the machines' API still wants its token
        async with http.post(
            server.url + "/login", data={"agent_id": agent, "password": PASSWORD}
        ) as resp:
            assert resp.status == 401  # no CSRF token: refused even with the right password
        async with http.get(server.url + "/login") as resp:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
        assert csrf is not None
        form = {"csrf": csrf.group(1), "agent_id": agent, "password": "wrong password"}
        async with http.post(server.url + "/login", data=form) as resp:
            page = await resp.text()
            # No Accept-Language: the login page speaks Bosnian, the default.
            assert resp.status == 401 and "Pogrešan ID agenta ili lozinka" in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)  # each form gets a new token
        assert csrf is not None
        form["csrf"], form["password"] = csrf.group(1), PASSWORD
        async with http.post(server.url + "/login", data=form, allow_redirects=False) as resp:
            assert resp.status == 303
            cookie = resp.headers.getall("Set-Cookie")
        session_cookie = next(c for c in cookie if c.startswith("centrala_session="))
        assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie
        assert "Max-Age=" in session_cookie
        async with http.get(server.url + "/wallboard") as resp:
            assert resp.status == 403  # an agent is no supervisor
        async with http.post(server.url + "/desk/api/state", json={"state": "paused"}) as resp:
            assert resp.status == 403 and (await resp.json())["error_id"] == "csrf"
        async with http.get(server.url + "/desk/api/me") as resp:
            assert (await resp.json())["status"] == "logged_out"
