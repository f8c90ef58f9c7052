"""Who may play, download and pause call recordings on the desk (web/recordings.py), on the
desk's real aiohttp app and a real database (SQLite and PostgreSQL); the info line behind it
is a fake that records the call controls it is asked for."""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from models.tables import Agent, AgentRole, Call, CallEvent, Direction, Recording
from tests.conftest import Database
from tests.faults.web_harness import (
    PASSWORD,
    DeskServer,
    FakeInfoline,
    add_agents,
    client,
    csrf_of_page,
    login,
    start_desk,
)
from web.auth import hash_password

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
ANNAS_CALL = "11111111-1111-1111-1111-111111111111"  # anna took it
TRANSFERRED = "22222222-2222-2222-2222-222222222222"  # olga took it, then passed it to anna
DELETED = "33333333-3333-3333-3333-333333333333"  # anna's, past the retention period
LIVE = "44444444-4444-4444-4444-444444444444"  # anna's, live


@dataclass
class LiveSession:
    agent_id: str | None


@dataclass
class Setup:
    server: DeskServer
    infoline: FakeInfoline
    files: Path
    ids: dict[str, int]


def write_wav(path: Path, seconds: float) -> bytes:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(range(256)) * int(seconds * 16000 / 256))
    return path.read_bytes()


@pytest.fixture
async def setup(database: Database, tmp_path: Path) -> AsyncIterator[Setup]:
    await add_agents(database)  # anna (agent), sara (supervisor)
    files = tmp_path / "recordings"
    files.mkdir()
    ids: dict[str, int] = {}
    async with database.sessions() as session, session.begin():
        for agent_id, role in (("olga", AgentRole.AGENT), ("mark", AgentRole.MANAGER)):
            session.add(
                Agent(
                    id=agent_id,
                    name=agent_id.title(),
                    role=role,
                    password_hash=hash_password(PASSWORD),
                    active=True,
                )
            )
        for n, call_id in enumerate((ANNAS_CALL, TRANSFERRED, DELETED, LIVE)):
            session.add(
                Call(
                    id=call_id,
                    channel_id=f"chan-{n}",
                    direction=Direction.INBOUND,
                    handler="ari",
                    started_at=T0,
                    ended_at=None if call_id == LIVE else T0 + timedelta(minutes=2),
                    agent_id="anna",
                )
            )
        session.add(
            CallEvent(call_id=TRANSFERRED, at=T0, kind="agent_connected", data={"agent_id": "olga"})
        )
    async with database.sessions() as session, session.begin():
        for call_id in (ANNAS_CALL, TRANSFERRED, DELETED):
            write_wav(files / f"{call_id}.wav", 1.0)
            row = Recording(
                call_id=call_id,
                file=f"{call_id}.wav",
                format="wav",
                started_at=T0,
                ended_at=T0 + timedelta(minutes=2),
                seconds=1.0,
                paused=[],
                deleted_at=T0 + timedelta(days=91) if call_id == DELETED else None,
            )
            session.add(row)
            await session.flush()
            ids[call_id] = row.id
    infoline = FakeInfoline(calls={"chan-3": LiveSession("anna")}, by_call={LIVE: "chan-3"})
    server = await start_desk(database, infoline=infoline, recordings_dir=files)
    try:
        yield Setup(server, infoline, files, ids)
    finally:
        await server.stop()


async def logged_in(setup: Setup, agent_id: str) -> aiohttp.ClientSession:
    http = client(setup.server.url)
    response = await login(http, agent_id, PASSWORD)
    assert response.status == 303, agent_id
    return http


async def status_of(http: aiohttp.ClientSession, path: str) -> int:
    async with http.get(path) as response:
        await response.read()
        return response.status


async def test_supervisor_and_the_agents_who_took_the_call_play_and_download_it(
    setup: Setup,
) -> None:
    audio = f"/desk/api/recordings/{setup.ids[ANNAS_CALL]}/audio"
    expected = (setup.files / f"{ANNAS_CALL}.wav").read_bytes()
    for agent_id in ("sara", "anna"):
        async with await logged_in(setup, agent_id) as http:
            async with http.get(f"/desk/api/calls/{ANNAS_CALL}/recordings") as listing:
                assert listing.status == 200, agent_id
                (item,) = (await listing.json())["recordings"]
                assert item["audio"] == audio and item["seconds"] == 1.0
            async with http.get(audio) as played:
                assert played.status == 200
                assert played.content_type == "audio/wav"
                assert await played.read() == expected
            async with http.get(audio + "?download=1") as downloaded:
                assert downloaded.headers["Content-Disposition"].startswith("attachment;")
                assert await downloaded.read() == expected
    # olga took the transferred call first: it is hers to hear too.
    async with await logged_in(setup, "olga") as http:
        assert await status_of(http, f"/desk/api/recordings/{setup.ids[TRANSFERRED]}/audio") == 200


async def test_an_audio_element_can_seek_with_a_range(setup: Setup) -> None:
    expected = (setup.files / f"{ANNAS_CALL}.wav").read_bytes()
    async with (
        await logged_in(setup, "anna") as http,
        http.get(
            f"/desk/api/recordings/{setup.ids[ANNAS_CALL]}/audio",
            headers={"Range": "bytes=1000-1999"},
        ) as part,
    ):
        assert part.status == 206
        assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(expected)}"
        assert await part.read() == expected[1000:2000]


async def test_other_agents_and_managers_get_403_and_strangers_401(setup: Setup) -> None:
    audio = f"/desk/api/recordings/{setup.ids[ANNAS_CALL]}/audio"
    for agent_id in ("olga", "mark"):
        async with await logged_in(setup, agent_id) as http:
            assert await status_of(http, audio) == 403, agent_id
            assert await status_of(http, f"/desk/api/calls/{ANNAS_CALL}/recordings") == 403
    async with client(setup.server.url) as http:
        assert await status_of(http, audio) == 401


async def test_a_deleted_or_unknown_recording_is_404(setup: Setup) -> None:
    async with await logged_in(setup, "sara") as http:
        deleted = f"/desk/api/recordings/{setup.ids[DELETED]}/audio"
        async with http.get(deleted) as response:
            assert response.status == 404
            assert (await response.json())["error_id"] == "recording_deleted"
        async with http.get(f"/desk/api/calls/{DELETED}/recordings") as listing:
            (item,) = (await listing.json())["recordings"]
            assert item["deleted_at"] is not None and "audio" not in item
        for path in ("/desk/api/recordings/999999/audio", "/desk/api/recordings/x/audio"):
            assert await status_of(http, path) == 404
        assert await status_of(http, "/desk/api/calls/nope/recordings") == 404


async def pause(http: aiohttp.ClientSession, call_id: str, step: str, csrf: str | None) -> int:
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    async with http.post(f"/desk/api/calls/{call_id}/recording/{step}", headers=headers) as r:
        await r.read()
        return r.status


async def test_the_agent_pauses_their_live_calls_recording_and_nobody_else_may(
    setup: Setup,
) -> None:
    async with await logged_in(setup, "olga") as http:
        assert await pause(http, LIVE, "pause", await csrf_of_page(http)) == 403
    async with await logged_in(setup, "anna") as http:
        csrf = await csrf_of_page(http)
        assert await pause(http, LIVE, "pause", None) == 403  # no CSRF token
        assert setup.infoline.controls == []
        assert await pause(http, LIVE, "pause", csrf) == 200
        assert await pause(http, ANNAS_CALL, "pause", csrf) == 404  # not live
    async with await logged_in(setup, "sara") as http:
        assert await pause(http, LIVE, "resume", await csrf_of_page(http)) == 200
    assert setup.infoline.controls == [
        (LIVE, "pause_recording", "anna"),
        (LIVE, "resume_recording", "sara"),
    ]
