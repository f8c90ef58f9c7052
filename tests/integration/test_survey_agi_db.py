"""The post-call survey's FastAGI script (agi/survey.py) on SQLite and PostgreSQL, a scripted
caller behind a fake session: the answers land on the info-line call's row, linked to its
client and the survey version; a detractor gets a callback; bad requests store nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import func, select

from agi.server import AGISession
from agi.survey import DIGITS, SurveyAGI
from centrala.prompts import load_survey_file
from core.enums import AgentRole
from core.media import sound_name
from models.calllog import CallLog
from models.surveys import StoredSurvey, apply_survey
from models.tables import (
    Agent,
    Call,
    Callback,
    CallEvent,
    Client,
    ClientPhone,
    Direction,
    Interaction,
    SurveyAnswer,
)
from tests.conftest import Database
from tests.fake_agi import FakeSession
from usecases.surveying import SurveyLog

NPS_FILE = Path(__file__).parents[2] / "surveys" / "nps.yaml"
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MANAGER = "manager-1"


@dataclass
class Line:
    """An info-line call that just ended with an agent, and the survey script."""

    db: Database
    calllog: CallLog
    script: SurveyAGI
    survey: StoredSurvey

    async def call(self, number: str, channel: str) -> str:
        opened = await self.calllog.open_call(
            channel_id=channel,
            linkedid=channel,
            direction=Direction.INBOUND,
            handler="ari",
            caller_number=number,
            caller_name=None,
            called_number="0800100200",
            started_at=T0,
        )
        return opened.id

    async def survey_call(self, *moves: str, args: tuple[str, ...]) -> FakeSession:
        session = FakeSession(*moves, args=args)
        await self.script(session.request, cast(AGISession, session))
        await self.calllog.flush()
        return session

    async def answers(self, call_id: str) -> list[SurveyAnswer]:
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(SurveyAnswer)
                .where(SurveyAnswer.call_id == call_id)
                .order_by(SurveyAnswer.id)
            )
            return list(rows)

    async def row(self, call_id: str) -> Call:
        async with self.db.sessions() as session:
            call = await session.get(Call, call_id)
        assert call is not None
        return call

    async def callbacks(self, call_id: str) -> list[Callback]:
        async with self.db.sessions() as session:
            return list(await session.scalars(select(Callback).where(Callback.call_id == call_id)))

    async def count(self, table: Any) -> int:
        async with self.db.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(table)) or 0)

    async def event(self, call_id: str, kind: str) -> dict[str, Any]:
        async with self.db.sessions() as session:
            data = await session.scalar(
                select(CallEvent.data).where(CallEvent.call_id == call_id, CallEvent.kind == kind)
            )
        assert data is not None, f"no {kind} event"
        return dict(data)


async def _line(database: Database) -> Line:
    async with database.sessions() as session, session.begin():
        session.add(Agent(id=MANAGER, name="Manager", role=AgentRole.MANAGER, skills=[]))
        session.add(
            Client(
                external_id="K1",
                name="Key Client",
                language="bs",
                assigned_manager_id=MANAGER,
                phones=[ClientPhone(number="+38761000101")],
            )
        )
    calllog = CallLog(database.sessions, "BA")
    script = SurveyAGI(
        SurveyLog(database.sessions, before_write=calllog.flush),
        calllog,
        follow_up_queue="new_clients",
        region="BA",
    )
    stored = await apply_survey(database.sessions, load_survey_file(NPS_FILE))
    return Line(database, calllog, script, stored)


async def test_promoter_answers_land_on_the_rated_call(database: Database) -> None:
    line = await _line(database)
    call_id = await line.call("061 000 101", "chan-promoter")

    session = await line.survey_call("1", "9", "1", "-", args=("nps", call_id))

    answers = await line.answers(call_id)
    client_id = (await line.row(call_id)).client_id
    assert client_id is not None
    assert [(a.question_key, a.value_int) for a in answers] == [
        ("recommend", 9),
        ("may_call_back", 1),
    ]
    assert {(a.survey_id, a.client_id) for a in answers} == {(line.survey.id, client_id)}
    call = await line.row(call_id)
    assert (call.survey_id, call.survey_status) == (line.survey.id, "completed")
    assert await line.callbacks(call_id) == []
    # The client's language: the prompts were Bosnian.
    assert session.commands[:2] == [
        "ANSWER",
        f"STREAM FILE centrala/bs/{sound_name(line.survey.survey, 'intro', 'bs')} {DIGITS}",
    ]
    assert (await line.event(call_id, "survey_ended"))["status"] == "completed"
    assert (await line.event(call_id, "survey_started"))["version"] == line.survey.version


async def test_detractor_with_a_comment_gets_a_callback_from_their_manager(
    database: Database,
) -> None:
    line = await _line(database)
    call_id = await line.call("+38761000101", "chan-detractor")

    await line.survey_call("1", "3", "-", "#2.5", "1", "-", args=("nps", call_id))

    answers = await line.answers(call_id)
    assert [(a.question_key, a.value_int, a.recording) for a in answers] == [
        ("recommend", 3, None),
        ("why", None, f"survey-{call_id}-why"),
        ("may_call_back", 1, None),
    ]
    [callback] = await line.callbacks(call_id)
    assert (callback.assigned_agent_id, callback.queue, callback.number, callback.reason) == (
        MANAGER,
        None,
        "+38761000101",
        "nps_detractor",
    )
    async with database.sessions() as session:
        note = await session.scalar(select(Interaction.note).where(Interaction.call_id == call_id))
    assert note == f"NPS 3 in survey nps; voice comment: survey-{call_id}-why"


async def test_unknown_detractor_goes_to_the_follow_up_queue(database: Database) -> None:
    line = await _line(database)
    call_id = await line.call("061 999 555", "chan-unknown")

    # 0, a silent comment (left unanswered), yes to a call back.
    await line.survey_call("1", "0", "-", "-", "1", "-", args=("nps", call_id))

    [callback] = await line.callbacks(call_id)
    assert (callback.client_id, callback.assigned_agent_id, callback.queue) == (
        None,
        None,
        "new_clients",
    )
    assert callback.number == "+38761999555"
    assert [a.question_key for a in await line.answers(call_id)] == ["recommend", "may_call_back"]


async def test_detractor_who_says_no_to_a_call_back_is_not_called(database: Database) -> None:
    line = await _line(database)
    call_id = await line.call("+38761000101", "chan-no")
    await line.survey_call("1", "5", "-", "-", "2", "-", args=("nps", call_id))
    assert await line.callbacks(call_id) == []


async def test_hang_up_mid_survey_keeps_the_answers_and_ends_partial(database: Database) -> None:
    line = await _line(database)
    call_id = await line.call("+38761000101", "chan-partial")

    await line.survey_call("1", "9", "hangup", args=("nps", call_id))

    assert [(a.question_key, a.value_int) for a in await line.answers(call_id)] == [
        ("recommend", 9)
    ]
    assert (await line.row(call_id)).survey_status == "partial"


async def test_language_chosen_on_the_call_wins_over_the_clients(database: Database) -> None:
    line = await _line(database)
    call_id = await line.call("+38761000101", "chan-en")
    await line.calllog.event(call_id, "language", language="en")
    await line.calllog.flush()

    session = await line.survey_call("2", "-", args=("nps", call_id))

    assert (
        session.commands[1]
        == f"STREAM FILE centrala/en/{sound_name(line.survey.survey, 'intro', 'en')} {DIGITS}"
    )
    assert (await line.row(call_id)).survey_status == "refused"


async def test_bad_requests_hear_goodbye_and_store_nothing(database: Database) -> None:
    line = await _line(database)
    surveyed = await line.call("+38761000101", "chan-done")
    await line.survey_call("1", "9", "1", "-", args=("nps", surveyed))
    fresh = await line.call("+38761000101", "chan-fresh")
    answers_before = await line.count(SurveyAnswer)

    for args in [
        (),  # no call id
        ("nps", ""),
        ("nps", "../etc"),
        ("nps", "no-such-call"),
        ("nosuchsurvey", fresh),
        ("nps", surveyed),  # surveyed already
    ]:
        session = await line.survey_call("-", args=args)
        assert session.commands == ["STREAM FILE vm-goodbye", "HANGUP"], args

    assert await line.count(SurveyAnswer) == answers_before
    assert (await line.row(fresh)).survey_status is None
    assert (await line.row(surveyed)).survey_status == "completed"
