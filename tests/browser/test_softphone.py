"""The browser softphone in real headless Chromium (fake microphone) through the real local
Asterisk: the agent logs in at the desk, the page's JsSIP registers over Asterisk's WebSocket
transport (Asterisk lists the contact), the agent goes available and is rung in the browser, a
caller to the info line presses 0, the page rings, the agent answers there, audio flows both
ways over DTLS-SRTP (Chromium's and Asterisk's RTP counters), mute and the desk's hold work,
the agent hangs up from the page and the call row is right. Credentials that are wrong,
replaced by a newer desk session, or of an agent who logged out are refused by Asterisk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from models.flows import apply_flow
from models.tables import Agent, DeskLanguage
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.test_desktop import PASSWORD, desk_ready, set_password, shot, speak
from tests.integration.conftest import PBX, Callers, Server, _centrala
from tests.integration.test_infoline_paths import (
    Desk,
    _flow,
    bridged_with,
    call_and_press,
    call_row,
    open_always,
    wait_connected,
    wait_queued,
    wait_status,
)
from tests.integration.test_recording import check_file, rms, wait_recording
from tests.support import wait_until
from web.auth import hash_password
from web.store import DeskStore

# Chromium's fake microphone (a beep) granted without a prompt; loopback candidates allowed in
# ICE (Chromium leaves them out otherwise: the test machine may have no other address).
MEDIA_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]

# Registers a second JsSIP user agent in the page with the given credentials; resolves to
# "registered" or the refusal's cause (the UA is stopped either way).
TRY_REGISTER = """async (c) => await new Promise((resolve) => {
  const ua = new JsSIP.UA({sockets: [new JsSIP.WebSocketInterface(c.ws_url)], uri: c.uri,
    authorization_user: c.username, password: c.password, realm: c.realm, register: true,
    register_expires: c.register_expires, session_timers: false});
  const done = (what) => { ua.removeAllListeners(); ua.stop(); resolve(what); };
  ua.on("registered", () => done("registered"));
  ua.on("registrationFailed", (e) => done(`refused: ${e.cause}`));
  ua.start();
})"""

# Chromium's RTP counters of the softphone's call.
RTP_STATS = """async () => {
  const s = window.__softphone.session; if (!s || !s.connection) return null;
  const out = {received: 0, sent: 0, codec: null, dtls: null};
  (await s.connection.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "audio") out.received += r.packetsReceived;
    if (r.type === "outbound-rtp" && r.kind === "audio") out.sent += r.packetsSent;
    if (r.type === "transport") out.dtls = r.dtlsState;
    if (r.type === "codec" && r.mimeType) out.codec = r.mimeType;
  });
  return out;
}"""


def ring_a_person(data: dict[str, Any]) -> None:
    """The tests' flow, with queues ringing an agent 20 s as a person needs, not 5 s: a
    browser on a loaded machine (or just after Asterisk restarted) may show the ring seconds
    after Asterisk sent it, and would miss a 5 s ring."""
    open_always(data)
    for queue in data["queues"].values():
        queue["ring_timeout_seconds"] = 20


@pytest.fixture
async def desk(server: Server) -> AsyncIterator[Desk]:
    """test_infoline_paths' ``desk``, on the flow of ``ring_a_person``."""
    await apply_flow(server.db.sessions, _flow(ring_a_person))
    d = Desk(server)
    try:
        yield d
    finally:
        await d.close()


@pytest.fixture(scope="module")
async def phone_browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + MEDIA_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def open_desk(
    browser: Browser, server: Server, agent_id: str, *, switch_on: bool = True
) -> Page:
    """The agent's desk; ``switch_on``: the agent switches the softphone on (it is off for
    an agent with a phone on file, as the tests' agents have). In English, as test_desktop's
    log_in: the agent's desk language and the browser's."""
    await speak(server, agent_id, DeskLanguage.EN)
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page = await context.new_page()
    await page.goto(server.url + "/login")
    await page.get_by_label("Agent id").fill(agent_id)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(server.url + "/desk")
    await desk_ready(page)
    if switch_on:
        await expect(page.locator("#phone-state")).to_have_text("off")
        await page.get_by_role("button", name="Use this browser as my phone").click()
    return page


async def rtp_stats(page: Page) -> dict[str, Any] | None:
    found: dict[str, Any] | None = await page.evaluate(RTP_STATS)
    return found


async def asterisk_rx_packets(callers: Callers, channel_id: str) -> int:
    """Packets Asterisk has received from the browser on the agent's leg (its RTCP stats)."""
    found = await callers.ari.request(
        "GET",
        f"/channels/{quote(channel_id, safe='')}/variable",
        params={"variable": "CHANNEL(rtcp,rxcount)"},
    )
    return int(found["value"] or 0)


async def test_agent_answers_an_info_line_call_in_the_browser(
    server: Server,
    callers: Callers,
    desk: Desk,
    pbx: PBX,
    phone_browser: Browser,
    tmp_path: Path,
) -> None:
    agent = await desk.agent("webby", ["new_clients"], login=False)
    await set_password(server, agent)
    async with server.db.sessions() as session:  # only a headset: no phone on file
        row = await session.get(Agent, agent)
        assert row is not None
        row.endpoint = None
        await session.commit()
    # With no phone of their own, the softphone switches itself on.
    page = await open_desk(phone_browser, server, agent, switch_on=False)
    try:
        await _softphone_call(page, server, callers, desk, pbx, agent, tmp_path)
        await _refused_credentials(page, server, pbx, agent)
    finally:
        await page.context.close()


async def _softphone_call(
    page: Page, server: Server, callers: Callers, desk: Desk, pbx: PBX, agent: str, tmp_path: Path
) -> None:
    endpoint = f"{agent}-web"
    await expect(page.locator("#phone-state")).to_have_text("registered", timeout=15_000)
    contacts = pbx.cli("pjsip show contacts")
    assert f"{endpoint}/sip:" in contacts, contacts

    # Available: the desk logs the agent in on the registered browser, not the phone on file.
    await page.get_by_role("button", name="Available").click()
    desk.logged_in.append(agent)
    await expect(page.locator("#state")).to_have_text("available")

    call = await call_and_press(callers, "+38761999731", "0")  # unknown caller: new_clients
    await expect(page.locator("#phone-ring")).to_be_visible(timeout=20_000)
    await expect(page.locator("#phone-from")).to_contain_text("38761999731")
    await page.screenshot(path=shot(tmp_path, "softphone.png", server.db.backend))
    await page.get_by_role("button", name="Answer").click()
    await expect(page.locator("#phone-state")).to_have_text("in call", timeout=10_000)

    async def connected() -> Any:
        names = await bridged_with(callers, call)
        return names if any(n.startswith(f"PJSIP/{endpoint}-") for n in names) else None

    names = await wait_until(connected, timeout=10, message="the browser's leg in the bridge")
    assert not any("@test-agent" in n for n in names), names  # the phone on file stayed quiet
    await expect(page.locator("#pop-title")).to_have_text("On the call", timeout=10_000)

    # Audio both ways: the caller speaks (a prompt played on their leg), the fake microphone
    # beeps; Chromium counts what it got, Asterisk what it got from Chromium.
    await callers.ari.request(
        "POST", f"/channels/{call.id}/play", params={"media": "sound:hello-world"}
    )
    agent_leg = next(
        ch["id"]
        for ch in await callers.ari.request("GET", "/channels")
        if ch["name"].startswith(f"PJSIP/{endpoint}-")
    )

    async def audio_both_ways() -> dict[str, Any] | None:
        stats = await rtp_stats(page)
        if not stats or stats["received"] < 50 or stats["sent"] < 50:
            return None
        return stats if await asterisk_rx_packets(callers, agent_leg) >= 50 else None

    stats = await wait_until(
        audio_both_ways,
        timeout=15,
        # Asterisk never offers 127.0.0.0/8 as an ICE candidate: a host (or network namespace)
        # with loopback only gets no media at all.
        message="RTP both ways (does this host have an address besides loopback?)",
    )
    assert stats["dtls"] == "connected", stats

    mute = page.get_by_role("button", name="Mute")
    await mute.click()
    await expect(page.get_by_role("button", name="Unmute")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert await page.evaluate("window.__softphone.session.isMuted().audio") is True
    await page.get_by_role("button", name="Unmute").click()
    assert await page.evaluate("window.__softphone.session.isMuted().audio") is False

    await page.get_by_role("button", name="Hold", exact=True).click()
    await expect(page.locator("#call-msg")).to_have_text("On hold")
    await page.get_by_role("button", name="Resume", exact=True).click()
    await expect(page.locator("#call-msg")).to_have_text("Back with the caller")

    await page.get_by_role("button", name="Hang up").click()
    row = await server.wait_closed(call.far_end)
    assert (row.handler, row.agent_id, row.queue, row.outcome) == (
        "ari",
        agent,
        "new_clients",
        "answered",
    )
    assert row.connected_at is not None and row.talk_seconds is not None
    assert row.talk_seconds > 0.5, row.talk_seconds
    # The call's recording: finished, the file as its row says (length, size, checksum),
    # sound in it (the caller's prompt, the browser's fake microphone).
    recording = await wait_recording(server, row.id, finished=True)
    samples, _rate = check_file(recording)
    assert recording.seconds is not None and recording.seconds > 0.5, recording.seconds
    assert rms(samples) > 30, rms(samples)
    await expect(page.locator("#phone-state")).to_have_text("registered", timeout=10_000)
    await expect(page.locator("#disposition")).to_be_visible()


async def _refused_credentials(page: Page, server: Server, pbx: PBX, agent: str) -> None:
    current: dict[str, Any] = await page.evaluate("window.__softphone.credentials")
    wrong = {**current, "password": current["password"][:-2] + "xx"}
    assert (await page.evaluate(TRY_REGISTER, wrong)).startswith("refused")

    # A new desk session's credentials replace these ones at once.
    newer: dict[str, Any] = await page.evaluate("api('POST', '/desk/api/softphone')")
    assert newer["password"] != current["password"]
    assert (await page.evaluate(TRY_REGISTER, current)).startswith("refused")
    assert await page.evaluate(TRY_REGISTER, newer) == "registered"

    # The agent logs out: their softphone goes with the session.
    await page.get_by_role("button", name="Log out", exact=True).click()
    await expect(page).to_have_url(server.url + "/login")
    await page.add_script_tag(url="/static/vendor/jssip.min.js")
    assert (await page.evaluate(TRY_REGISTER, newer)).startswith("refused")
    assert f"{agent}-web/" not in pbx.cli("pjsip show contacts")


async def test_a_password_change_elsewhere_takes_the_softphone_away(
    server: Server, desk: Desk, pbx: PBX, phone_browser: Browser
) -> None:
    agent = await desk.agent("revoked", ["new_clients"], login=False)
    await set_password(server, agent)
    page = await open_desk(phone_browser, server, agent)
    try:
        await expect(page.locator("#phone-state")).to_have_text("registered", timeout=15_000)
        issued: dict[str, Any] = await page.evaluate("window.__softphone.credentials")
        # What `centrala agent passwd` does: every desk session of the agent ends.
        assert await DeskStore(server.db.sessions).set_password(agent, hash_password("new one"))
        await expect(page).to_have_url(server.url + "/login", timeout=15_000)

        async def gone() -> bool:
            return f"{agent}-web/" not in await asyncio.to_thread(pbx.cli, "pjsip show contacts")

        await wait_until(gone, timeout=10, message="the revoked session's softphone removed")
        await page.add_script_tag(url="/static/vendor/jssip.min.js")
        assert (await page.evaluate(TRY_REGISTER, issued)).startswith("refused")
    finally:
        await page.context.close()


async def test_a_declined_call_waits_again_and_rings_once_the_agent_is_back(
    server: Server, callers: Callers, desk: Desk, pbx: PBX, phone_browser: Browser
) -> None:
    agent = await desk.agent("decliner", ["new_clients"], login=False)
    await set_password(server, agent)
    page = await open_desk(phone_browser, server, agent)
    try:
        await expect(page.locator("#phone-state")).to_have_text("registered", timeout=15_000)
        await page.get_by_role("button", name="Available").click()
        desk.logged_in.append(agent)
        await expect(page.locator("#state")).to_have_text("available")

        call = await call_and_press(callers, "+38761999732", "0")
        await expect(page.locator("#phone-ring")).to_be_visible(timeout=20_000)
        await page.get_by_role("button", name="Decline").click()
        # Declined like a ring-no-answer: the agent is paused, the caller waits again.
        await expect(page.locator("#state")).to_have_text("paused (no answer)", timeout=10_000)
        await expect(page.locator("#phone-ring")).to_be_hidden()
        await wait_queued(server, call)
        row = await call_row(server, call)
        assert row is not None and row.connected_at is None and row.ended_at is None

        await page.get_by_role("button", name="Available").click()
        await expect(page.locator("#phone-ring")).to_be_visible(timeout=20_000)
        await page.get_by_role("button", name="Answer").click()
        connected = await wait_connected(server, call)
        assert connected.agent_id == agent
        await expect(page.get_by_role("button", name="Hang up")).to_be_enabled(timeout=10_000)
        await page.get_by_role("button", name="Hang up").click()
        closed = await server.wait_closed(call.far_end)
        assert (closed.agent_id, closed.outcome) == (agent, "answered")

        # Switched off: un-registered, and the endpoint taken away.
        issued: dict[str, Any] = await page.evaluate("window.__softphone.credentials")
        await page.get_by_role("button", name="Stop using this browser").click()
        await expect(page.locator("#phone-state")).to_have_text("off")
        assert f"{agent}-web/" not in pbx.cli("pjsip show contacts")
        assert (await page.evaluate(TRY_REGISTER, issued)).startswith("refused")
    finally:
        await page.context.close()


async def test_a_nailed_up_browser_gets_each_caller_without_ringing(
    server: Server, callers: Callers, desk: Desk, phone_browser: Browser
) -> None:
    agent = await desk.agent("nailweb", ["new_clients"], login=False)
    await set_password(server, agent)
    page = await open_desk(phone_browser, server, agent)
    try:
        state = page.locator("#phone-state")
        await expect(state).to_have_text("registered", timeout=15_000)
        # The shift's one leg to the browser: rung once, answered, then kept up.
        # As the README shows it: centrala agent login ID --endpoint PJSIP/ID-web --mode nailed
        login = ("agent", "login", agent, "--endpoint", f"PJSIP/{agent}-web", "--mode", "nailed")
        await asyncio.to_thread(_centrala, *login, env=server.env)
        desk.logged_in.append(agent)
        await expect(page.locator("#phone-ring")).to_be_visible(timeout=20_000)
        await page.get_by_role("button", name="Answer").click()
        await expect(state).to_have_text("in call", timeout=10_000)
        await wait_status(desk, agent, "available", message="the nailed leg up")

        for number in ("+38761999733", "+38761999734"):
            call = await call_and_press(callers, number, "0")
            row = await wait_connected(server, call)
            assert row.agent_id == agent
            assert any(
                n.startswith(f"PJSIP/{agent}-web-") for n in await bridged_with(callers, call)
            )
            await expect(page.locator("#phone-ring")).to_be_hidden()  # no ringing: bridged in
            await call.hangup()
            closed = await server.wait_closed(call.far_end)
            assert (closed.agent_id, closed.outcome) == (agent, "answered")
            await expect(state).to_have_text("in call")  # the leg stays up
            # The desk holds the agent for the disposition, then they are free again.
            await page.get_by_label("complaint").check()
            await page.get_by_role("button", name="Save disposition").click()
            await wait_status(desk, agent, "available", message="the nailed agent free again")

        await desk.api("POST", f"/api/agents/{agent}/logout", {})
        desk.logged_in.remove(agent)
        await expect(state).to_have_text("registered", timeout=10_000)  # the leg hung up
    finally:
        await page.context.close()
