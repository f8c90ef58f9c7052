"""The recording on the agent desktop in real headless Chromium, with a real call: the agent
pauses the recording while the client reads out card data and resumes it (both on the call's
trail), hangs up, and plays the last call's recording in the page (the audio element loads it
and knows its length; the server answers its Range requests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import Browser, expect
from sqlalchemy import select

from models.tables import Recording
from tests.browser.test_desktop import desk_ready, log_in, set_password, shot
from tests.integration.conftest import Callers, Server
from tests.integration.test_infoline_paths import Desk, call_and_press, events, wait_connected
from tests.integration.test_recording import AGENT_HZ, CALLER_HZ, TONE_SECONDS, write_tone
from tests.support import wait_until


async def test_agent_pauses_the_recording_then_plays_the_last_calls_recording(
    server: Server, callers: Callers, desk: Desk, browser: Browser, tmp_path: Path
) -> None:
    # Both sides speak (a Local channel that is silent sends no frames: nothing to record).
    write_tone(AGENT_HZ, 1.0)
    caller_tone = f"sound:{write_tone(CALLER_HZ, TONE_SECONDS)}"
    agent = await desk.agent("rita", ["new_clients"], context="test-agent-tone", login=False)
    await set_password(server, agent)
    page = await log_in(browser, server, agent)
    try:
        await expect(page).to_have_url(server.url + "/desk")
        await desk_ready(page)
        await page.get_by_role("button", name="Available").click()
        desk.logged_in.append(agent)
        await expect(page.locator("#state")).to_have_text("available")

        call = await call_and_press(callers, "062 555 401", "0")
        row = await wait_connected(server, call)
        await callers.ari.play(call.id, caller_tone, f"speech-{row.id}")
        pause = page.get_by_role("button", name="Pause recording")
        await expect(pause).to_be_enabled(timeout=20_000)
        await pause.click()
        await expect(page.locator("#call-msg")).to_have_text("Recording paused")
        await page.get_by_role("button", name="Resume recording").click()
        await expect(page.locator("#call-msg")).to_have_text("Recording on again")
        paused = await events(server, row.id, "recording_paused")
        assert [e["agent_id"] for e in paused] == [agent]
        await call.wait_for(
            "PlaybackFinished", where=lambda e: e["playback"]["id"] == f"speech-{row.id}"
        )

        await page.get_by_role("button", name="Hang up").click()
        await server.wait_closed(call.far_end)

        async def finished() -> Recording | None:
            async with server.db.sessions() as session:
                found = await session.scalar(select(Recording).where(Recording.call_id == row.id))
            return found if found is not None and found.ended_at is not None else None

        recording = await wait_until(finished, timeout=30, message="the recording finished")
        await expect(page.locator("#recording")).to_be_visible()
        await page.get_by_role("button", name="Play the last call's recording").click()
        player = page.locator("#rec-list audio")
        await expect(player).to_have_count(1)
        await expect(page.locator("#rec-list")).to_contain_text("paused")
        loaded: dict[str, Any] = await player.evaluate(
            """(audio) => new Promise((done, fail) => {
                audio.onloadedmetadata = () => done({duration: audio.duration, src: audio.src});
                audio.onerror = () => fail(new Error("the audio did not load"));
                audio.preload = "auto"; audio.load();
            })"""
        )
        assert loaded["src"].endswith(f"/desk/api/recordings/{recording.id}/audio")
        assert abs(loaded["duration"] - (recording.seconds or 0)) < 0.1, loaded
        ranged = await page.evaluate(
            """async (src) => {
                const r = await fetch(src, {headers: {Range: "bytes=0-99"}});
                return [r.status, (await r.arrayBuffer()).byteLength];
            }""",
            loaded["src"],
        )
        assert ranged == [206, 100]
        download = page.get_by_role("link", name="Download")
        assert (await download.get_attribute("href") or "").endswith("/audio?download=1")
        await page.screenshot(path=shot(tmp_path, "desk-recording.png", server.db.backend))
    finally:
        await page.context.close()
