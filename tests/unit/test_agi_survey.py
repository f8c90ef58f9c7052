"""The post-call survey's AGI driver on the shipped NPS survey, with a scripted caller behind a
fake FastAGI session: the commands Asterisk gets, the answers and the final state handed out.
What the answers become in the database: tests/integration/test_survey_agi_db.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from agi.protocol import parse_reply
from agi.server import AGISession
from agi.survey import (
    DIGITS,
    AGISurveyChannel,
    SurveyAGI,
    SurveyDriver,
    recorded,
    stream_file,
    survey_request,
)
from core.media import prompt_media, sound_name
from core.surveys.followup import permission_question
from core.surveys.interpreter import Answer, Record, SurveyCall, SurveyStatus
from core.surveys.model import Survey
from tests.fake_agi import FakeSession

NPS = Survey.model_validate(
    yaml.safe_load((Path(__file__).parents[2] / "surveys" / "nps.yaml").read_text())
)
COMMENT = "survey-c1-why"
RECORD_COMMENT = f"RECORD FILE /var/spool/asterisk/recording/{COMMENT} wav # 60000 BEEP s=4"


def play(prompt: str, lang: str = "en") -> str:
    return f"STREAM FILE centrala/{lang}/{sound_name(NPS, prompt, lang)} {DIGITS}"


class Run:
    """One survey call driven to its end over a FakeSession."""

    def __init__(self, *moves: str, language: str = "en") -> None:
        self.session = FakeSession(*moves)
        self.call = SurveyCall(NPS, language=language, recording_prefix="survey-c1")
        self.answers: list[Answer] = []
        self.ended: list[SurveyStatus] = []

    async def run(self) -> SurveyStatus:
        async def on_answer(answer: Answer) -> None:
            self.answers.append(answer)

        async def on_ended(status: SurveyStatus) -> None:
            self.ended.append(status)

        driver = SurveyDriver(
            self.call,
            AGISurveyChannel(cast(AGISession, self.session)),
            media=lambda p: prompt_media(NPS, p.prompt, p.language),
            on_answer=on_answer,
            on_ended=on_ended,
        )
        status = await driver.run()
        assert not self.session.moves, "the survey ended before the caller's last move"
        return status

    @property
    def values(self) -> dict[str, int | str | None]:
        return {a.question_key: a.value for a in self.answers}


async def test_promoter_keys_nine_and_the_survey_completes() -> None:
    run = Run("1", "9", "1", "-")  # consent during the intro, 9, yes, the thanks plays
    assert await run.run() == SurveyStatus.COMPLETED
    assert run.values == {"recommend": 9, "may_call_back": 1}
    assert run.ended == [SurveyStatus.COMPLETED]
    assert run.session.commands == [
        play("intro"),
        play("recommend"),
        play("may_call_back"),
        play("thanks"),
        "HANGUP",
    ]


async def test_detractor_records_a_comment_after_the_beep() -> None:
    # 3 keyed after the prompt, in the wait; the comment ends with #; "yes" in the wait.
    run = Run("1", "-", "3", "-", "#2.5", "-", "1", "-")
    assert await run.run() == SurveyStatus.COMPLETED
    assert run.values == {"recommend": 3, "why": COMMENT, "may_call_back": 1}
    assert run.session.commands == [
        play("intro"),
        play("recommend"),
        "WAIT FOR DIGIT 7000",  # the NPS question's timeout_seconds
        play("why"),
        RECORD_COMMENT,
        play("may_call_back"),
        "WAIT FOR DIGIT 6000",
        play("thanks"),
        "HANGUP",
    ]


async def test_ten_is_keyed_digit_by_digit_within_next_digit_ms() -> None:
    run = Run("1", "1", "0", "2", "-")
    assert await run.run() == SurveyStatus.COMPLETED
    assert run.values == {"recommend": 10, "may_call_back": 0}
    assert "WAIT FOR DIGIT 1500" in run.session.commands  # waiting for a possible "0"


async def test_hang_up_mid_survey_keeps_the_answers_and_ends_partial() -> None:
    run = Run("1", "9", "hangup")
    assert await run.run() == SurveyStatus.PARTIAL
    assert run.values == {"recommend": 9}
    assert run.ended == [SurveyStatus.PARTIAL]
    assert run.session.commands[-1] == play("may_call_back")  # nothing sent after the hang-up


async def test_hang_up_while_recording_keeps_what_was_said() -> None:
    run = Run("1", "2", "-", "~3")
    assert await run.run() == SurveyStatus.PARTIAL
    assert run.values == {"recommend": 2, "why": COMMENT}
    assert run.ended == [SurveyStatus.PARTIAL]


async def test_a_silent_comment_is_left_unanswered() -> None:
    run = Run("1", "0", "-", "-", "2", "-")
    assert await run.run() == SurveyStatus.COMPLETED
    assert run.values == {"recommend": 0, "may_call_back": 0}


async def test_no_key_in_the_intro_asks_twice_then_ends_without_consent() -> None:
    run = Run("-", "-", "-", "-")  # intro, wait, intro again, wait
    assert await run.run() == SurveyStatus.NO_CONSENT
    assert run.answers == []
    assert run.session.commands[-1] == "HANGUP"


async def test_declining_hears_goodbye_and_nothing_is_asked() -> None:
    run = Run("2", "-")
    assert await run.run() == SurveyStatus.REFUSED
    assert run.session.commands == [play("intro"), play("declined"), "HANGUP"]


async def test_hang_up_in_the_intro_is_no_consent() -> None:
    run = Run("hangup")
    assert await run.run() == SurveyStatus.NO_CONSENT
    assert run.ended == [SurveyStatus.NO_CONSENT]


async def test_the_callers_language_picks_the_prompt_files() -> None:
    run = Run("1", "9", "1", "-", language="bs")
    await run.run()
    assert run.session.commands[0] == play("intro", "bs")


class NoStorage:
    """Stands in for the call log, survey log and CRM where nothing may be read or stored."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the database was used: {name}")


@pytest.mark.parametrize(
    "args", [(), ("nps",), ("nps", ""), ("nps", "x/../y"), ("Bad Survey", "c1")]
)
async def test_malformed_arguments_get_a_polite_goodbye_and_nothing_is_stored(
    args: tuple[str, ...],
) -> None:
    store: Any = NoStorage()
    script = SurveyAGI(store, store, follow_up_queue="new_clients", region="BA")
    session = FakeSession("-", args=args)
    await script(session.request, cast(AGISession, session))
    assert session.commands == ["STREAM FILE vm-goodbye", "HANGUP"]


async def test_a_caller_gone_before_the_goodbye_is_no_error() -> None:
    store: Any = NoStorage()
    script = SurveyAGI(store, store, follow_up_queue="new_clients", region="BA")
    session = FakeSession("hangup", args=("nps",))
    await script(session.request, cast(AGISession, session))
    assert session.commands == ["STREAM FILE vm-goodbye"]


# ---- replies and arguments ------------------------------------------------------------------

COMMENT_RECORD = Record(COMMENT, max_seconds=60, silence_seconds=4)


@pytest.mark.parametrize(
    ("reply", "seconds", "hung_up"),
    [
        ("200 result=35 (dtmf) endpos=20000", 2.5, False),
        ("200 result=0 (timeout) endpos=28000", 2.5, False),  # 2.5 s, then silence: 1 s kept
        ("200 result=0 (timeout) endpos=8160", 0.0, False),  # only silence
        ("200 result=0 (timeout) endpos=480000", 60.0, False),  # the limit, nothing trimmed
        ("200 result=-1 (hangup) endpos=16000", 2.0, True),
        ("200 result=-1 (randomerror) endpos=0", 0.0, True),  # hung up during the beep
        ("200 result=35 (randomerror) endpos=0", 0.0, False),  # "#" during the beep
        ("200 result=35 (dtmf) endpos=1600", 0.0, False),  # 0.2 s: nothing said
        ("200 result=-1 (writefile)", 0.0, False),
    ],
)
def test_recorded_length_from_the_record_file_reply(
    reply: str, seconds: float, hung_up: bool
) -> None:
    result = recorded(parse_reply(reply), COMMENT_RECORD)
    assert (result.seconds, result.hung_up) == (pytest.approx(seconds), hung_up)


@pytest.mark.parametrize(
    ("media", "file"),
    [
        ("sound:centrala/en/survey-nps-intro", "centrala/en/survey-nps-intro"),
        ("recording:greeting-2027", "/var/spool/asterisk/recording/greeting-2027"),
        ("number:5", None),
        ("sound:", None),
    ],
)
def test_media_uris_as_stream_file_arguments(media: str, file: str | None) -> None:
    assert stream_file(media) == file


def test_script_arguments() -> None:
    call_id = "3f0c2a9e-2f6b-4d8e-9a57-0d6a3c1b2e4f"
    assert survey_request(["nps", call_id], "nps") == survey_request(["", call_id], "nps")
    assert survey_request(["csat_short", call_id], "nps").survey == "csat_short"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["nps"],
        ["nps", ""],
        ["NPS", "c1"],
        ["nps", "../../etc/passwd"],
        ["nps", "c1 x"],
        ["nps", "c" * 65],
        ["nps\n", "c1"],
    ],
)
def test_bad_script_arguments_are_refused(args: list[str]) -> None:
    with pytest.raises(ValueError):
        survey_request(args, "nps")


def test_permission_question_only_when_the_survey_asks_it_as_yes_no() -> None:
    assert permission_question(NPS, "may_call_back") == "may_call_back"
    assert permission_question(NPS, "recommend") is None
    assert permission_question(NPS, None) is None
