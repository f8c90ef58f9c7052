"""The survey dialler on a fake ARI: a tick places the calls, ``FakeARI`` plays the clients
(answering, AMD's verdict, keys, a busy line) and the contacts' rows and call rows come out.

The dialler runs with its real parts (``CampaignDialler``, the real CallLog, SurveyLog and
CampaignStore on a migrated SQLite file, the shipped NPS survey applied) and is driven only
through its entry points (``tick``, ``reconcile``, ARI events), as ``centrala serve`` drives
it, so a refactor of its insides leaves these tests standing."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from ari_app.campaigns import CampaignDialler, Phase
from ari_app.testing import FakeARI
from core.media import sound_name
from core.surveys.campaign import CampaignRules, CampaignSettings, RetryRule
from core.surveys.validate import load_survey
from dialplan.model import WEEKDAYS, Calendar
from models.calllog import CallLog
from models.campaigns import CampaignStore, NewContact
from models.db import create_engine, session_factory
from models.surveys import active_survey, apply_survey
from models.tables import Call, CampaignContact, CampaignStatus, SurveyAnswer
from tests.conftest import make_database
from usecases.surveying import SurveyLog

APP = "centrala-survey"
SURVEY_FILE = Path(__file__).parents[2] / "surveys" / "nps.yaml"
NPS = load_survey(SURVEY_FILE.read_text(), str(SURVEY_FILE))
ALL_DAY = Calendar(timezone="UTC", weekly={d: ["00:00-24:00"] for d in WEEKDAYS})


def settings(**overrides: object) -> CampaignSettings:
    """Open all day (a test must not depend on the time of day), AMD on, hang up on machines."""
    rules = CampaignRules(
        window=ALL_DAY,
        legal=ALL_DAY,
        retries={
            "busy": RetryRule(delay_minutes=15, max_attempts=3),
            "no_answer": RetryRule(delay_minutes=120, max_attempts=3),
            "machine": RetryRule(delay_minutes=240, max_attempts=2),
            "failed": RetryRule(delay_minutes=30, max_attempts=3),
        },
    )
    values: dict[str, object] = {"rules": rules, "concurrency": 5, "ring_seconds": 5}
    return CampaignSettings.model_validate({**values, **overrides})


@pytest.fixture(scope="module")
async def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated once, the NPS survey applied; each test gets a copy of the file."""
    tmp = tmp_path_factory.mktemp("dialler-template")
    db = await make_database("sqlite", tmp)
    try:
        await apply_survey(db.sessions, load_survey(SURVEY_FILE.read_text(), str(SURVEY_FILE)))
    finally:
        await db.engine.dispose()
    return tmp / "centrala.db"


@dataclass
class Dialler:
    """The dialler wired as `centrala serve` wires it, on a fake ARI."""

    ari: FakeARI
    app: CampaignDialler
    calllog: CallLog
    surveys: SurveyLog
    store: CampaignStore

    async def settle(self) -> None:
        await self.ari.settle()
        await self.calllog.flush()

    def new_process(self) -> CampaignDialler:
        """``serve`` restarted: the PBX keeps its calls; a new dialler attaches."""
        self.ari.new_process()
        self.app = CampaignDialler(
            self.ari,
            self.calllog,
            self.surveys,
            self.store,
            app=APP,
            dial="PJSIP/{number}@trunk",
            caller_id="033000000",
        )
        self.ari.on_event(self.app.on_event)
        return self.app

    async def campaign(self, *numbers: str) -> int:
        stored = await active_survey(self.store.sessions, "nps")
        assert stored is not None
        campaign_id, count = await self.store.create(
            "nps-test", stored.id, settings(), [NewContact(n, timezone="UTC") for n in numbers]
        )
        assert count == len(numbers)
        await self.store.set_status(campaign_id, CampaignStatus.RUNNING)
        return campaign_id

    async def place(self) -> list[str]:
        """One tick; the channels it originated."""
        await self.app.tick()
        await self.settle()
        return [c.id for c in self.ari.originated()]

    async def contact(self, number: str) -> CampaignContact:
        async with self.store.sessions() as session:
            row = await session.scalar(
                select(CampaignContact).where(CampaignContact.number == number)
            )
        assert row is not None, number
        return row

    async def call_row(self, channel_id: str) -> Call:
        await self.calllog.flush()
        async with self.store.sessions() as session:
            row = await session.scalar(select(Call).where(Call.channel_id == channel_id))
        assert row is not None, channel_id
        return row

    async def answers(self, call_id: str) -> list[tuple[str, int | None]]:
        """Every answer row of the call (a question answered twice shows twice)."""
        async with self.store.sessions() as session:
            rows = await session.scalars(
                select(SurveyAnswer).where(SurveyAnswer.call_id == call_id)
            )
            return sorted((a.question_key, a.value_int) for a in rows)

    async def answer_as_person(self, channel_id: str) -> None:
        """The client picks up; AMD hears a person."""
        self.ari.pick_up(channel_id)
        await self.settle()
        self.ari.stasis_start(channel_id, ["amd", "HUMAN", "HUMAN-1-1"])
        await self.settle()

    async def press(self, channel_id: str, keys: str) -> None:
        self.ari.dtmf(channel_id, keys)
        await self.settle()


@pytest.fixture
async def dialler(template_db: Path, tmp_path: Path) -> AsyncIterator[Dialler]:
    shutil.copy(template_db, tmp_path / "centrala.db")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'centrala.db'}")
    sessions = session_factory(engine)
    calllog = CallLog(sessions, "BA")
    surveys = SurveyLog(sessions, before_write=calllog.flush)
    store = CampaignStore(sessions)
    ari = FakeARI([APP])
    app = CampaignDialler(
        ari, calllog, surveys, store, app=APP, dial="PJSIP/{number}@trunk", caller_id="033000000"
    )
    ari.on_event(app.on_event)
    await ari.start()
    d = Dialler(ari, app, calllog, surveys, store)
    try:
        await d.app.reconcile()  # as at connect: nothing under way yet
        yield d
    finally:
        await ari.settle()
        await d.app.stop()
        await ari.stop()
        await calllog.aclose()
        await engine.dispose()


async def test_a_person_goes_through_amd_and_the_survey_and_is_done(dialler: Dialler) -> None:
    await dialler.campaign("+38761000001")
    (channel,) = await dialler.place()
    assert channel.startswith("survey-") and channel.endswith("-1")
    assert dialler.ari.live_channels[channel].endpoint == "PJSIP/+38761000001@trunk"

    dialler.ari.pick_up(channel)
    await dialler.settle()
    # Answered: off to Asterisk's AMD in the dialplan, nothing played yet.
    (amd,) = dialler.ari.requests_to("POST", f"/channels/{channel}/continue")
    assert amd.params == {"context": "centrala-amd", "extension": "s", "priority": 1}
    assert dialler.ari.playing(channel) == []

    dialler.ari.stasis_start(channel, ["amd", "HUMAN", "HUMAN-1-1"])
    await dialler.settle()
    assert [p.media for p in dialler.ari.playing(channel)] == [
        [f"sound:centrala/bs/{sound_name(NPS, 'intro', 'bs')}"]
    ]
    await dialler.press(channel, "1")  # takes part
    await dialler.press(channel, "10")  # recommends: a promoter, no "why?"
    await dialler.press(channel, "1")  # may be called back
    (thanks,) = dialler.ari.playing(channel)
    assert thanks.media == [f"sound:centrala/bs/{sound_name(NPS, 'thanks', 'bs')}"]
    dialler.ari.finish_playback(thanks.id)
    await dialler.settle()

    assert channel not in dialler.ari.live_channels  # thanked, then hung up on
    contact = await dialler.contact("+38761000001")
    assert (contact.status, contact.last_outcome, contact.attempts) == ("done", "completed", 1)
    row = await dialler.call_row(channel)
    assert (row.outcome, row.survey_status) == ("completed", "completed")
    assert row.ended_at is not None and row.answered_at is not None
    assert await dialler.answers(row.id) == [("may_call_back", 1), ("recommend", 10)]
    assert dialler.app.calls == {}


async def test_a_busy_line_is_recorded_as_busy_and_retried_later(dialler: Dialler) -> None:
    await dialler.campaign("+38761000002")
    (channel,) = await dialler.place()
    dialler.ari.emit(
        {
            "type": "Dial",
            "application": APP,
            "peer": dialler.ari.live_channels[channel].to_json(),
            "dialstatus": "BUSY",
        }
    )
    dialler.ari.hang_up(channel, cause=17, cause_txt="User busy")
    await dialler.settle()

    contact = await dialler.contact("+38761000002")
    assert (contact.status, contact.last_outcome, contact.attempts) == ("pending", "busy", 1)
    assert contact.next_attempt_at is not None
    due_in = (contact.next_attempt_at.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()
    assert 14 * 60 < due_in <= 15 * 60  # the busy rule: again in 15 minutes
    row = await dialler.call_row(channel)
    assert (row.outcome, row.answered_at, row.survey_status) == ("busy", None, None)
    assert await dialler.place() == []  # not rung again on the next tick


async def test_a_restart_adopts_a_call_in_the_survey_where_its_answers_end(
    dialler: Dialler,
) -> None:
    await dialler.campaign("+38761000003")
    (channel,) = await dialler.place()
    await dialler.answer_as_person(channel)
    await dialler.press(channel, "1")
    await dialler.press(channel, "10")  # recommend is stored; may_call_back is being asked

    app = dialler.new_process()
    await app.reconcile()
    await dialler.settle()
    assert app.calls[channel].phase is Phase.SURVEY
    # The survey goes on at the first unanswered question, on the same call: nobody is dialled.
    assert [r for r in dialler.ari.requests if "endpoint" in r.params] == []
    assert [p.media for p in dialler.ari.playing(channel)][-1] == [
        f"sound:centrala/bs/{sound_name(NPS, 'may_call_back', 'bs')}"
    ]
    await dialler.press(channel, "2")
    dialler.ari.finish_playback(dialler.ari.playing(channel)[-1].id)  # the thanks
    await dialler.settle()

    assert channel not in dialler.ari.live_channels
    contact = await dialler.contact("+38761000003")
    assert (contact.status, contact.last_outcome, contact.attempts) == ("done", "completed", 1)
    row = await dialler.call_row(channel)
    # Asked once each: the restart repeated no question.
    assert await dialler.answers(row.id) == [("may_call_back", 0), ("recommend", 10)]
    assert row.outcome == "completed" and row.ended_at is not None
