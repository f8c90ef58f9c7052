"""Attacks on the FastAGI server (issue 10), each against the real server over TCP with the real
info-line and post-call survey scripts on a real (SQLite) call log. The attacker plays Asterisk,
or Asterisk's caller; each test asserts the refusal and that the real calls are still served.
The same injection through the real Asterisk is test_fastagi_hostile_caller_on_asterisk.py."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import func, select

from agi.infoline import InfolineAGI
from agi.server import FastAGIServer
from agi.survey import SurveyAGI
from centrala.prompts import load_survey_file
from core.agi_gate import SessionLimits
from models.calllog import CallLog
from models.surveys import apply_survey
from models.tables import Call, Direction, SurveyAnswer
from tests.conftest import Database, make_database
from tests.fake_agi import SECRET, AsteriskClient, asterisk_header
from tests.support import wait_until
from usecases.surveying import SurveyLog

NPS_FILE = Path(__file__).parents[2] / "surveys" / "nps.yaml"
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
VICTIM_CHANNEL = "1764400000.7"  # another caller, still talking on the info line


@dataclass
class Line:
    db: Database
    calllog: CallLog
    server: FastAGIServer
    victim_id: str

    async def row(self, **where: Any) -> Call | None:
        async with self.db.sessions() as session:
            return await session.scalar(select(Call).filter_by(**where))

    async def answers(self) -> int:
        async with self.db.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(SurveyAnswer)) or 0)


@pytest.fixture
async def line(tmp_path: Path) -> AsyncIterator[Line]:
    db = await make_database("sqlite", tmp_path)
    calllog = CallLog(db.sessions, "BA")
    survey = SurveyAGI(
        SurveyLog(db.sessions, before_write=calllog.flush),
        calllog,
        follow_up_queue="new_clients",
        region="BA",
    )
    await apply_survey(db.sessions, load_survey_file(NPS_FILE))
    victim = await calllog.open_call(
        channel_id=VICTIM_CHANNEL,
        linkedid=VICTIM_CHANNEL,
        direction=Direction.INBOUND,
        handler="ari",
        caller_number="+38761000101",
        caller_name="Victim",
        called_number="0800100200",
        started_at=T0,
    )
    server = FastAGIServer(
        {"infoline": InfolineAGI(calllog, "sound:hello-world"), "survey": survey},
        "127.0.0.1",
        0,
        secret=SECRET,
        command_timeout=0.5,
        refusal_log_interval=0.3,
    )
    await server.start()
    try:
        yield Line(db, calllog, server, victim.id)
    finally:
        await server.stop()
        await db.engine.dispose()


REPLIES = {
    "ANSWER": "200 result=0",
    "STREAM FILE": "200 result=0 endpos=8000",
    "WAIT FOR DIGIT": "200 result=0",
    "HANGUP": "200 result=1",
    "GET VARIABLE HANGUPCAUSE": "200 result=1 (16)",
}


async def play_asterisk(client: AsteriskClient) -> list[str]:
    """Answer every command as Asterisk would for a caller who listens and presses nothing;
    the commands, once the server closes the session."""
    commands: list[str] = []
    while (command := await client.command()) is not None:
        commands.append(command)
        reply = next(r for prefix, r in REPLIES.items() if command.startswith(prefix))
        await client.reply(reply)
    return commands


async def test_caller_name_injecting_a_script_and_a_uniqueid_is_served_by_the_info_line(
    line: Line,
) -> None:
    name = f"Ana\nagi_network_script: survey\nagi_uniqueid: {VICTIM_CHANNEL}"
    client = await AsteriskClient.connect(
        line.server.port,
        asterisk_header(uniqueid="1764500000.1", calleridname=name, args=(SECRET, "L1")),
    )
    commands = await play_asterisk(client)

    assert commands[0] == "ANSWER"  # the info line's script, not the survey's
    assert commands[1].startswith("STREAM FILE hello-world")
    row = await wait_until(lambda: line.row(channel_id="1764500000.1"))
    assert row is not None
    assert (row.handler, row.linkedid, row.outcome) == ("agi", "L1", "completed")
    victim = await line.row(id=line.victim_id)
    assert victim is not None
    assert (victim.ended_at, victim.outcome, victim.survey_status) == (None, None, None)


async def test_forged_client_without_the_secret_cannot_store_an_nps(line: Line) -> None:
    await line.calllog.close(line.victim_id, at=T0, cause=16, cause_text=None, outcome="completed")
    with structlog.testing.capture_logs() as logs:
        for args in [("nps", line.victim_id), ("guessed-secret-012345", "nps", line.victim_id)]:
            forged = await AsteriskClient.connect(
                line.server.port, asterisk_header("survey", args=args)
            )
            assert await forged.closed() == b""  # not one command: no handler ran
    assert await line.answers() == 0
    victim = await line.row(id=line.victim_id)
    assert victim is not None and victim.survey_status is None
    assert {e.get("reason") for e in logs if e["event"] == "agi.connections_refused"} <= {
        "unauthenticated",
        None,
    }
    # Asterisk, which has the secret, still reaches the survey.
    real = await AsteriskClient.connect(
        line.server.port, asterisk_header("survey", args=(SECRET, "nps", line.victim_id))
    )
    assert await real.command() == "ANSWER"
    real.close()


async def test_idle_flood_from_one_address_leaves_asterisk_its_sessions(line: Line) -> None:
    per_peer = SessionLimits().per_peer  # the shipped limits
    flood = [await AsteriskClient.connect(line.server.port, source="127.0.0.2") for _ in range(300)]
    await wait_until(lambda: line.server.active_sessions == per_peer, timeout=10)

    # Asterisk's own connection, from the PBX's address, during the flood.
    client = await AsteriskClient.connect(
        line.server.port, asterisk_header(uniqueid="1764500000.2", args=(SECRET, "L2"))
    )
    assert (await play_asterisk(client))[0] == "ANSWER"
    row = await wait_until(lambda: line.row(channel_id="1764500000.2"))
    assert row is not None
    assert row.outcome == "completed"
    assert line.server.active_sessions == per_peer  # the flood's share, still held
    for idle in flood:
        idle.close()


async def test_peer_that_stops_answering_is_recorded_as_timeout_not_completed(
    line: Line,
) -> None:
    client = await AsteriskClient.connect(
        line.server.port, asterisk_header(uniqueid="1764500000.3", args=(SECRET, "L3"))
    )
    assert await client.command() == "ANSWER"  # ... and never a reply
    assert await client.closed() == b""  # the command timeout (0.5 s here) closed it

    row = await wait_until(lambda: line.row(channel_id="1764500000.3", outcome="timeout"))
    assert row is not None
    assert row.ended_at is not None and row.answered_at is None


async def test_flood_of_refused_connections_logs_a_summary_not_a_line_each(line: Line) -> None:
    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        for _ in range(100):
            junk = await AsteriskClient.connect(line.server.port, b"GET / HTTP/1.1\r\n\r\n")
            await junk.closed()

        def refused() -> list[MutableMapping[str, Any]]:
            return [e for e in logs if e["event"] == "agi.connections_refused"]

        await wait_until(lambda: sum(sum(e["counts"].values()) for e in refused()) == 100)
    # A line when the flood starts, then one a refusal interval (0.3 s) at most: however
    # long 100 connections take on a loaded machine (1.2 s seen on CI: 4 lines), not 100.
    intervals = (time.monotonic() - started) / 0.3
    assert len(refused()) <= 2 + intervals, (len(refused()), intervals)
    assert len(refused()) < 100
    assert refused()[0]["counts"] == {"bad_header": 1}
