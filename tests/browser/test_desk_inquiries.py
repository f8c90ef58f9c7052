"""A written inquiry answered from the agent's desk, in real headless Chromium against a real
`serve` (its inquiries loop, its ACD and the desk's WebSocket), on SQLite and PostgreSQL: a
client's complaint by e-mail waits in a queue; `serve` gives it to the queue's free agent and
tells their desk; the agent opens the thread, starts from the complaint's template in the
client's language (Bosnian, whatever the desk's), sends the answer; the database holds it
queued to leave by e-mail, the inquiry waiting for the client and the agent its owner. A
supervisor's wallboard shows an inquiry past its SLA. The screenshot goes to docs/
(CENTRALA_SCREENSHOT_DIR)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import Browser, expect

from core.enums import AgentRole
from models import inquiries as store
from models.inquiries import Arrival
from tests.browser.test_desktop import desk_ready, log_in, set_password, shot
from tests.integration.conftest import Server
from tests.integration.test_infoline_paths import Desk
from usecases.inquiries import InquirySetup, receive


async def test_an_agent_answers_a_complaint_from_the_desk(
    server: Server, desk: Desk, browser: Browser, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    queue = f"written-{tag}"  # this test's own: no other agent takes its inquiry
    agent = await desk.agent("wanda", [queue])  # logged in to the ACD: free
    await set_password(server, agent)
    email = f"amra-{tag}@example.ba"
    await desk.client(
        "Amra Begić", f"+3876177{int(tag, 16) % 100000:05d}", email=email, language="bs"
    )
    page = await log_in(browser, server, agent)
    try:
        await desk_ready(page)
        received = await receive(
            server.db.sessions,
            InquirySetup(queue=queue),
            Arrival(
                channel="email", source_key=f"imap:info:1:{tag}", sender=email,
                sender_name="Amra Begić", subject="Žalba na poslovnicu",
                text="Imam žalbu: tri puta sam zvala i niko se nije javio.",
                at=datetime.now(UTC), sender_email=email, message_id=f"{tag}@example.ba",
                reply_from="info@fondacija.ba",
            ),
        )  # fmt: skip
        inquiry_id = received.inquiry_id
        # serve gives it to the free agent of its queue and tells the desk.
        await expect(page.locator("#inq-msg")).to_have_text(
            f"You got inquiry #INQ-{inquiry_id}.", timeout=20_000
        )
        mine = page.locator(f'#inq-mine button[data-inquiry="{inquiry_id}"]')
        await expect(mine).to_contain_text("complaint · Žalba na poslovnicu · open")
        await mine.click()
        await expect(page.locator("#inq-thread")).to_contain_text("niko se nije javio")
        await expect(page.locator("#inq-facts")).to_contain_text("e-mail · complaint · open")
        await expect(page.locator("#inq-link")).to_be_hidden()  # Amra is a client: linked
        await expect(page.locator("#inq-kind")).to_have_value("complaint")
        await page.locator("#inq-template").select_option(label="Complaint received")
        text = page.locator("#inq-text")
        await expect(text).to_have_value(re.compile(r"^Poštovani/a Amra Begić,\n\nžao nam je"))
        await page.get_by_role("button", name="Send the reply").click()
        await expect(page.locator("#inq-msg")).to_have_text("The answer is on its way.")
        out = page.locator('#inq-thread li[data-direction="out"]')
        await expect(out).to_contain_text("Vašu žalbu smo zaprimili")
        await expect(page.locator("#inq-facts")).to_contain_text("waiting for the client")
        await page.locator("#inq-kind").select_option("general_question")  # the agent knows better
        await expect(page.locator("#inq-facts")).to_contain_text("general question")
        await page.screenshot(
            path=shot(tmp_path, "desk-inquiry.png", server.db.backend), full_page=True
        )
    finally:
        await page.context.close()

    thread = await store.thread(server.db.sessions, inquiry_id or 0)
    assert thread is not None
    assert (thread.inquiry.owner_id, thread.inquiry.state) == (agent, "waiting")
    assert (thread.inquiry.kind, thread.inquiry.kind_by) == ("general_question", agent)
    answer = thread.messages[-1]
    assert (answer.direction, answer.author_id) == ("out", agent)
    assert answer.subject == f"Re: Žalba na poslovnicu [#INQ-{inquiry_id}]"
    assert answer.text.startswith("Poštovani/a Amra Begić,")
    # No mail server in this `serve`: the answer waits to leave, with why, none lost.
    assert answer.send_state in ("queued", "sending")


async def test_the_wallboard_shows_the_inquiries_past_their_sla(
    server: Server, desk: Desk, browser: Browser
) -> None:
    tag = uuid.uuid4().hex[:6]
    lead = await desk.agent("lead", [], role=AgentRole.SUPERVISOR, login=False)
    await set_password(server, lead)
    # Ten hours ago, in a queue nobody serves: its first answer was due in four.
    late = await receive(
        server.db.sessions,
        InquirySetup(queue=f"nobody-{tag}"),
        Arrival(
            channel="web_form", source_key=f"form:{tag}", sender=f"x-{tag}@example.ba",
            sender_name="X", subject="Žalba", text="Žalba na kašnjenje.",
            at=datetime.now(UTC) - timedelta(hours=10), sender_email=f"x-{tag}@example.ba",
        ),
    )  # fmt: skip
    page = await log_in(browser, server, lead)
    try:
        await page.goto(server.url + "/wallboard")
        row = page.locator(f'#inq-late tr[data-inquiry="{late.inquiry_id}"]')
        await expect(row).to_have_class("breached", timeout=30_000)
        await expect(row).to_contain_text("complaint")
        await expect(page.locator("#inquiries-card")).to_contain_text("past due")
        assert int(await page.locator("#inq-breached").text_content() or "0") >= 1
    finally:
        await page.context.close()
