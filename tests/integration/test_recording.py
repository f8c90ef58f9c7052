"""Call recording on the real Asterisk (issue 11): the caller reaches an agent, a tone from each
side (the caller's 1000 Hz, played over ARI; the agent's phone's steady 1600 Hz, context
test-agent-tone) is found in the recording file; the stretch the agent paused is silent; the
row's length and checksum match the file; the recording survives restarts of `serve`; the
retention job deletes an old one; the notice plays in a known client's language."""

from __future__ import annotations

import array
import hashlib
import json
import math
import re
import subprocess
import uuid
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select, update

from centrala.settings import Settings
from models.flows import apply_flow
from models.tables import Call, Recording
from tests.integration.conftest import CallerLeg, Callers, Server
from tests.integration.test_infoline_paths import (
    Desk,
    _flow,
    events,
    finish,
    open_always,
    wait_connected,
    wait_event,
)
from tests.sip.conftest import goertzel, read_wav
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
CALLER_HZ, AGENT_HZ, NEITHER_HZ = 1000, 1600, 1300
TONE_SECONDS = 2.5


def readme_commands(server: Server, call_id: str) -> list[str]:
    """The README's Recording commands, pointed at the test's `serve` (its data directory
    for var/, its port) and call."""
    text = (ROOT / "README.md").read_text().split("### Recording", 1)[1]
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block is not None, "the Recording section's commands are gone from the README"
    port = server.url.rsplit(":", 1)[1]
    return [
        line.replace("var/", f"{server.data_dir}/")
        .replace("localhost:8080", f"127.0.0.1:{port}")
        .replace("CALL_ID", call_id)
        for line in block.group(1).splitlines()
        if line.strip()
    ]


def sh(command: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done
    return done


def recordings_dir() -> Path:
    return Settings().effective_recording_dir


def rms(samples: array.array[int]) -> float:
    return math.sqrt(sum(x * x for x in samples) / max(len(samples), 1))


def write_tone(freq: int, seconds: float) -> str:
    """A sound file of ``seconds`` of ``freq`` in the PBX (as Asterisk names it)."""
    rate = 8000
    folder = Settings().pbx_root / "rootfs/usr/share/asterisk/sounds/centrala-test"
    folder.mkdir(parents=True, exist_ok=True)
    samples = array.array(
        "h",
        (int(8000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(int(rate * seconds))),
    )
    with wave.open(str(folder / f"tone{freq}.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return f"centrala-test/tone{freq}"


@pytest.fixture(scope="module")
def caller_tone() -> str:
    """The caller's tone, TONE_SECONDS long (its PlaybackFinished times the stretches of the
    call), and the agent's that test-agent-tone loops."""
    write_tone(AGENT_HZ, 1.0)
    return f"sound:{write_tone(CALLER_HZ, TONE_SECONDS)}"


@pytest.fixture
async def desk(server: Server) -> AsyncIterator[Desk]:
    await apply_flow(server.db.sessions, _flow(open_always))
    d = Desk(server)
    try:
        yield d
    finally:
        await d.close()


async def play(callers: Callers, call: CallerLeg, media: str, *, wait: bool = True) -> str:
    """The caller plays ``media`` (to its end unless not ``wait``); returns the playback id."""
    playback = f"rec-{uuid.uuid4().hex[:10]}"
    await callers.ari.play(call.id, media, playback)
    if wait:
        await played(call, playback)
    return playback


async def played(call: CallerLeg, playback: str) -> None:
    await call.wait_for(
        "PlaybackFinished", timeout=15, where=lambda e: e["playback"]["id"] == playback
    )


async def recordings(server: Server, call_id: str) -> list[Recording]:
    async with server.db.sessions() as session:
        rows = await session.scalars(
            select(Recording).where(Recording.call_id == call_id).order_by(Recording.id)
        )
        return list(rows)


async def wait_recording(server: Server, call_id: str, *, finished: bool) -> Recording:
    async def found() -> Recording | None:
        rows = await recordings(server, call_id)
        if not rows:
            return None
        row = rows[-1]
        return row if (row.ended_at is not None) == finished else None

    state = "finished" if finished else "running"
    return await wait_until(found, timeout=40, message=f"a {state} recording of {call_id}")


async def connected_call(server: Server, callers: Callers, desk: Desk, number: str) -> CallerLeg:
    """A caller (unknown: the new-client desk) with the tone agent, recorded."""
    await desk.agent("rec", ["new_clients"], context="test-agent-tone")
    call = await callers.place(caller_id=f'"Test" <{number}>')
    await call.prompt_started("recording_notice")
    await call.dtmf("0")  # skips the notice (it starts the recording) and asks for an operator
    row = await wait_connected(server, call)
    await wait_recording(server, row.id, finished=False)
    call.__dict__["row"] = row
    return call


def check_file(row: Recording) -> tuple[array.array[int], int]:
    """The file matches its row: length, size and checksum; its samples."""
    path = recordings_dir() / row.file
    data = path.read_bytes()
    assert row.sha256 == hashlib.sha256(data).hexdigest()
    assert row.size_bytes == len(data)
    samples, rate = read_wav(path)
    assert row.seconds == pytest.approx(len(samples) / rate, abs=0.002)
    return samples, rate


def silent_run(samples: array.array[int], rate: int) -> tuple[float, float]:
    """The longest stretch of the file in which nothing is heard (20 ms frames), in seconds."""
    frame = rate // 50
    best = (0, 0)
    start: int | None = None
    for i in range(0, len(samples) - frame + 1, frame):
        quiet = rms(samples[i : i + frame]) < 30
        if quiet and start is None:
            start = i
        if not quiet and start is not None:
            best = max(best, (start, i), key=lambda r: r[1] - r[0])
            start = None
    if start is not None:
        best = max(best, (start, len(samples)), key=lambda r: r[1] - r[0])
    return best[0] / rate, best[1] / rate


def check_paused(samples: array.array[int], rate: int, stretch: dict[str, float]) -> None:
    """The paused stretch is silent in the file: a silent run as long as the row says, where
    it says. Where: within two seconds, since the row's seconds are by the clock and a Local
    channel that sends no audio (between the tones) adds no time to the file (seen 1.4 s
    behind when the whole suite loads the machine)."""
    start, end = silent_run(samples, rate)
    length = stretch["to_second"] - stretch["from_second"]
    assert end - start == pytest.approx(length, abs=0.4), (start, end, stretch)
    assert start == pytest.approx(stretch["from_second"], abs=2.0), (start, end, stretch)
    assert start >= 0.6, f"too little recorded before the pause: {start:.2f} s"
    for window in ((max(0.0, start - 2.0), start - 0.1), (end + 0.2, end + 2.0)):
        both, said = tones_in(samples, rate, *window)
        assert both, f"both sides not in the recording around the pause {said}"


def tones_in(samples: array.array[int], rate: int, start: float, end: float) -> tuple[bool, str]:
    part = samples[int(start * rate) : int(end * rate)]
    caller, agent = goertzel(part, rate, CALLER_HZ), goertzel(part, rate, AGENT_HZ)
    noise = goertzel(part, rate, NEITHER_HZ)
    said = f"{start:.2f}-{end:.2f}s: {caller=:.0f} {agent=:.0f} {noise=:.1f} rms {rms(part):.0f}"
    return caller > 20 * noise and agent > 20 * noise, said


async def test_both_sides_are_recorded_from_the_notice_and_the_paused_stretch_is_silent(
    server: Server, callers: Callers, desk: Desk, caller_tone: str
) -> None:
    call = await connected_call(server, callers, desk, "+38762555301")
    row = call.__dict__["row"]
    agent = desk.id("rec")
    before = await recordings(server, row.id)
    assert len(before) == 1 and before[0].file == f"{row.id}.wav"
    assert (recordings_dir() / before[0].file).exists()  # Asterisk writes it, we find it

    await play(callers, call, caller_tone)  # both tones, recorded
    await desk.api("POST", f"/api/calls/{row.id}/recording/pause", {"agent_id": agent})
    await play(callers, call, caller_tone)  # both tones still flow, the recording is muted
    await desk.api("POST", f"/api/calls/{row.id}/recording/resume", {"agent_id": agent})
    await play(callers, call, caller_tone)  # recorded again
    await finish(server, call)

    done = await wait_recording(server, row.id, finished=True)
    samples, rate = check_file(done)
    assert len(done.paused) == 1
    stretch = done.paused[0]
    assert stretch["by"] == agent
    assert stretch["to_second"] - stretch["from_second"] >= TONE_SECONDS - 0.3, stretch
    check_paused(samples, rate, stretch)

    trail = [k for k in await server.event_kinds(row.id) if k.startswith("recording_")]
    assert trail == ["recording_started", "recording_paused", "recording_resumed"]
    assert (await events(server, row.id, "recording_paused"))[0]["agent_id"] == agent


async def test_nothing_is_recorded_while_the_notice_plays_and_a_second_pause_is_refused(
    server: Server, callers: Callers, desk: Desk, caller_tone: str
) -> None:
    await desk.agent("rec", ["new_clients"], context="test-agent-tone")
    call = await callers.place(caller_id='"Test" <+38762555302>')
    await call.prompt_started("recording_notice")
    async with server.db.sessions() as session:
        opened = await session.scalar(select(Call).where(Call.channel_id == call.far_end))
    assert opened is not None
    assert await recordings(server, opened.id) == []  # the notice has not ended yet
    await call.dtmf("0")
    row = await wait_connected(server, call)
    await wait_recording(server, row.id, finished=False)
    speaking = await play(callers, call, caller_tone, wait=False)  # audio to record
    pause, query = readme_commands(server, row.id)
    paused = sh(pause)
    assert json.loads(paused.stdout) == {"call_id": row.id, "recording": "pause"}, paused
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/api/calls/{row.id}/recording/pause", headers=desk.headers) as resp,
    ):
        assert resp.status == 409
        assert (await resp.json())["error_id"] == "recording_paused_already"
    await played(call, speaking)
    await finish(server, call)
    done = await wait_recording(server, row.id, finished=True)
    # Hung up while paused: the stretch runs to the end of the file.
    assert done.paused[0]["to_second"] == pytest.approx(done.seconds)
    check_file(done)
    if server.db.backend == "sqlite":
        listed = sh(query)
        assert f"{row.id}|{done.seconds}|{done.sha256}|" in listed.stdout, listed


async def test_a_recording_survives_a_crash_of_serve_and_is_paused_after_it(
    server: Server, callers: Callers, desk: Desk, caller_tone: str
) -> None:
    call = await connected_call(server, callers, desk, "+38762555303")
    row = call.__dict__["row"]
    # The caller speaks across the crash: a Local channel that sends nothing adds no time
    # to the file (SIP's RTP flows both ways all along), and the offsets are by the clock.
    speaking = await play(callers, call, f"sound:{write_tone(CALLER_HZ + 1, 20)}", wait=False)
    await server.crash_and_restart()  # SIGKILL: nothing tidied up
    await wait_event(server, row.id, "adopted")
    await callers.ari.stop_playback(speaking)
    await played(call, speaking)
    # The new process knows the recording from its row: the pause works.
    await desk.api("POST", f"/api/calls/{row.id}/recording/pause", {})
    await play(callers, call, caller_tone)
    await desk.api("POST", f"/api/calls/{row.id}/recording/resume", {})
    await play(callers, call, caller_tone)
    await finish(server, call)
    done = await wait_recording(server, row.id, finished=True)
    samples, rate = check_file(done)
    assert len(await recordings(server, row.id)) == 1  # one recording, not restarted
    check_paused(samples, rate, done.paused[0])


async def test_a_call_that_ends_while_serve_is_down_has_its_recording_finished_at_start(
    server: Server, callers: Callers, desk: Desk, caller_tone: str
) -> None:
    call = await connected_call(server, callers, desk, "+38762555304")
    row = call.__dict__["row"]
    await play(callers, call, caller_tone)

    async def hang_up() -> None:
        await call.hangup()

    await server.restart_stopped(hang_up)
    await server.wait_closed(call.far_end, timeout=30)
    done = await wait_recording(server, row.id, finished=True)
    samples, rate = check_file(done)
    both, said = tones_in(samples, rate, 0.2, TONE_SECONDS - 0.2)
    assert both, said


async def test_retention_deletes_an_old_recording_file_and_marks_its_row(
    server: Server, callers: Callers, desk: Desk, caller_tone: str
) -> None:
    call = await connected_call(server, callers, desk, "+38762555305")
    row = call.__dict__["row"]
    await play(callers, call, caller_tone)
    await finish(server, call)
    done = await wait_recording(server, row.id, finished=True)
    path = recordings_dir() / done.file
    assert path.exists()
    long_ago = datetime.now(UTC) - timedelta(days=Settings().recording_retention_days + 1)
    async with server.db.sessions() as session, session.begin():
        await session.execute(
            update(Recording).where(Recording.id == done.id).values(ended_at=long_ago)
        )

    async def deleted() -> Recording | None:
        rows = await recordings(server, row.id)
        return rows[0] if rows[0].deleted_at is not None else None

    gone = await wait_until(deleted, timeout=20, message="the old recording deleted")
    assert not path.exists()
    assert gone.sha256 == done.sha256  # the row stays, marked
    assert (await events(server, row.id, "recording_deleted")) == [
        {"recording_id": done.id, "reason": "retention"}
    ]
    logged = [line for line in server.log_lines() if line.get("event") == "recording_deleted"]
    assert any(line.get("call_id") == row.id for line in logged)


async def test_the_notice_plays_in_a_known_clients_language(
    server: Server, callers: Callers, desk: Desk
) -> None:
    await desk.client("English", "+38762555306", language="en")
    call = await callers.place(caller_id='"Test" <+38762555306>')
    notice = await call.prompt_started("recording_notice")
    assert "/en/" in notice["playback"]["media_uri"], notice["playback"]
    await call.hangup()
    await server.wait_closed(call.far_end)
    stranger = await callers.place(caller_id='"Test" <+38762555307>')
    notice = await stranger.prompt_started("recording_notice")
    assert "/bs/" in notice["playback"]["media_uri"], notice["playback"]
    await stranger.hangup()
    await server.wait_closed(stranger.far_end)
