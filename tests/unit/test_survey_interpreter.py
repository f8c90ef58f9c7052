"""The survey interpreter on the shipped NPS survey (and small variants): events in, actions
out, answers ready to store."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from core.ivr import CancelTimer, HangupCall, PlayPrompt, StartTimer, StopPlayback
from core.surveys.interpreter import (
    Answer,
    Record,
    SaveAnswer,
    SurveyAction,
    SurveyCall,
    SurveyEnded,
    SurveyStatus,
)
from core.surveys.model import Survey
from core.surveys.validate import validate
from hypothesis import given, settings
from hypothesis import strategies as st

NPS_FILE = Path(__file__).parents[2] / "surveys" / "nps.yaml"
BASE: dict[str, Any] = yaml.safe_load(NPS_FILE.read_text(encoding="utf-8"))
NPS = Survey.model_validate(BASE)


def variant(**changes: Any) -> Survey:
    data = copy.deepcopy(BASE)
    data.update(changes)
    survey = Survey.model_validate(data)
    assert validate(survey) == []
    return survey


def prompts(actions: list[SurveyAction]) -> list[str]:
    return [a.prompt for a in actions if isinstance(a, PlayPrompt)]


def saved(actions: list[SurveyAction]) -> list[Answer]:
    return [a.answer for a in actions if isinstance(a, SaveAnswer)]


def ended(actions: list[SurveyAction]) -> list[SurveyStatus]:
    return [a.status for a in actions if isinstance(a, SurveyEnded)]


def finish(call: SurveyCall, actions: list[SurveyAction]) -> list[SurveyAction]:
    """Let the last prompt of ``actions`` play to its end."""
    plays = [a for a in actions if isinstance(a, PlayPrompt)]
    assert plays, actions
    return call.on_playback_finished(plays[-1].playback_id)


def timer(actions: list[SurveyAction]) -> StartTimer:
    timers = [a for a in actions if isinstance(a, StartTimer)]
    assert timers, actions
    return timers[-1]


def consented(call: SurveyCall | None = None) -> tuple[SurveyCall, list[SurveyAction]]:
    """A call past the intro and consent, the NPS question playing."""
    call = call or SurveyCall(NPS, language="en", recording_prefix="survey-c1")
    finish(call, call.start())
    return call, call.on_dtmf("1")


def keys(call: SurveyCall, digits: str) -> list[SurveyAction]:
    out: list[SurveyAction] = []
    for d in digits:
        out += call.on_dtmf(d)
    return out


# ---- intro and consent --------------------------------------------------------------------


def test_intro_plays_in_the_clients_language_and_waits_for_consent() -> None:
    call = SurveyCall(NPS, language="en")
    first = call.start()
    assert first == [PlayPrompt("intro", "en", "p1")]
    assert finish(call, first) == [StartTimer("t2", 6)]


def test_language_the_survey_does_not_speak_falls_back_to_the_default() -> None:
    call = SurveyCall(NPS, language="de")
    assert call.language == "bs"
    assert [a.language for a in call.start() if isinstance(a, PlayPrompt)] == ["bs"]


def test_pressing_one_gives_consent_and_asks_the_nps_question() -> None:
    call, actions = consented()
    assert call.consented and call.question == "recommend"
    assert prompts(actions) == ["recommend"]


def test_consent_key_during_the_intro_interrupts_it() -> None:
    call = SurveyCall(NPS)
    call.start()
    actions = call.on_dtmf("1")
    assert actions[0] == StopPlayback("p1")
    assert prompts(actions) == ["recommend"]


def test_pressing_two_refuses_hears_goodbye_and_is_hung_up() -> None:
    call = SurveyCall(NPS)
    finish(call, call.start())
    actions = call.on_dtmf("2")
    assert ended(actions) == [SurveyStatus.REFUSED]
    assert prompts(actions) == ["declined"]
    assert finish(call, actions) == [HangupCall()]
    assert call.answers == [] and call.status is SurveyStatus.REFUSED


def test_refusal_without_a_goodbye_prompt_hangs_up_at_once() -> None:
    call = SurveyCall(variant(consent={"key": "1", "decline_key": "2"}))
    wait = finish(call, call.start())
    assert call.on_dtmf("2") == [
        CancelTimer(timer(wait).timer_id),
        SurveyEnded(SurveyStatus.REFUSED),
        HangupCall(),
    ]


def test_silence_through_intro_and_retry_ends_without_consent() -> None:
    call = SurveyCall(NPS)
    wait = finish(call, call.start())
    again = call.on_timer(timer(wait).timer_id)
    assert prompts(again) == ["intro"]
    actions = call.on_timer(timer(finish(call, again)).timer_id)
    assert actions == [SurveyEnded(SurveyStatus.NO_CONSENT), HangupCall()]
    assert not call.consented


def test_wrong_key_at_consent_hears_invalid_then_the_intro_again() -> None:
    call = SurveyCall(NPS)
    finish(call, call.start())
    assert prompts(call.on_dtmf("7")) == ["invalid_answer"]


def test_survey_without_consent_starts_after_the_intro_and_a_key_answers_early() -> None:
    survey = variant(consent=None)
    call = SurveyCall(survey)
    assert prompts(finish(call, call.start())) == ["recommend"]
    early = SurveyCall(survey)
    early.start()
    actions = early.on_dtmf("9")
    assert saved(actions) == [Answer("recommend", value_int=9)]
    assert early.consented


# ---- the NPS number -----------------------------------------------------------------------


def test_one_then_zero_within_the_wait_is_ten() -> None:
    call, asking = consented()
    wait = call.on_dtmf("1")
    assert wait == [StopPlayback(prompts_id(asking)), StartTimer(timer(wait).timer_id, 1.5)]
    actions = call.on_dtmf("0")
    assert CancelTimer(timer(wait).timer_id) in actions
    assert saved(actions) == [Answer("recommend", value_int=10)]


def test_one_alone_is_one_when_the_wait_runs_out() -> None:
    call, _ = consented()
    wait = call.on_dtmf("1")
    actions = call.on_timer(timer(wait).timer_id)
    assert saved(actions) == [Answer("recommend", value_int=1)]
    assert call.question == "why"  # a detractor


def test_hash_ends_the_number_at_once() -> None:
    call, _ = consented()
    call.on_dtmf("1")
    assert saved(call.on_dtmf("#")) == [Answer("recommend", value_int=1)]


def test_digits_that_cannot_grow_are_taken_at_once() -> None:
    for digit in "023456789":
        call, _ = consented()
        actions = call.on_dtmf(digit)
        assert saved(actions) == [Answer("recommend", value_int=int(digit))]


def test_eleven_is_invalid_and_re_prompts() -> None:
    call, _ = consented()
    actions = keys(call, "11")
    assert saved(actions) == []
    assert prompts(actions) == ["invalid_answer"]
    assert prompts(finish(call, actions)) == ["recommend"]


def test_hash_without_a_number_and_star_behave() -> None:
    call, _ = consented()
    assert prompts(call.on_dtmf("#")) == ["invalid_answer"]
    assert prompts(call.on_dtmf("*")) == ["recommend"]  # repeats, not counted as a try


def test_typeahead_during_the_question_answers_it() -> None:
    call, asking = consented()
    actions = call.on_dtmf("9")
    assert StopPlayback(prompts_id(asking)) in actions
    assert saved(actions) == [Answer("recommend", value_int=9)]


def prompts_id(actions: list[SurveyAction]) -> str:
    return next(a.playback_id for a in actions if isinstance(a, PlayPrompt))


def test_no_answer_after_retries_leaves_it_unanswered_and_takes_the_default() -> None:
    call, asking = consented()
    actions = asking
    for _ in range(3):  # first try and two retries
        actions = call.on_timer(timer(finish(call, actions)).timer_id)
    assert prompts(actions) == ["may_call_back"]  # not "why": no answer is no detractor
    assert call.answers == []
    assert "recommend:timeout" in call.path


# ---- branching, recording, thanks ---------------------------------------------------------


def test_detractor_is_asked_why_and_recorded_then_asked_may_we_call() -> None:
    call, _ = consented()
    asking_why = call.on_dtmf("3")
    assert prompts(asking_why) == ["why"]
    record = finish(call, asking_why)
    assert record == [Record("survey-c1-why", 60, 4)]
    after = call.on_recording_finished("survey-c1-why", 12.5)
    assert saved(after) == [Answer("why", recording="survey-c1-why")]
    assert prompts(after) == ["may_call_back"]


def test_promoter_and_passive_skip_the_why() -> None:
    for digit in "789":
        call, _ = consented()
        assert prompts(call.on_dtmf(digit)) == ["may_call_back"]


def test_empty_recording_is_no_answer_and_the_survey_goes_on() -> None:
    call, _ = consented()
    finish(call, call.on_dtmf("0"))
    after = call.on_recording_finished("survey-c1-why", 0)
    assert saved(after) == [] and prompts(after) == ["may_call_back"]


def test_key_during_the_why_prompt_starts_recording_and_stray_events_are_ignored() -> None:
    call, _ = consented()
    call.on_dtmf("0")
    actions = call.on_dtmf("5")
    assert isinstance(actions[-1], Record)
    assert call.on_dtmf("#") == []  # the adapter's recording ends on #
    assert call.on_recording_finished("someone-else", 3) == []
    assert call.on_timer("t999") == [] and call.on_playback_finished("p999") == []


def test_full_survey_completes_with_answers_ready_to_store() -> None:
    call, _ = consented()
    finish(call, call.on_dtmf("4"))
    call.on_recording_finished("survey-c1-why", 8)
    actions = call.on_dtmf("1")
    assert ended(actions) == [SurveyStatus.COMPLETED]
    assert prompts(actions) == ["thanks"]
    assert finish(call, actions) == [HangupCall()]
    assert call.answers == [
        Answer("recommend", value_int=4),
        Answer("why", recording="survey-c1-why"),
        Answer("may_call_back", value_int=1),
    ]
    assert call.status is SurveyStatus.COMPLETED


def test_no_to_may_we_call_is_zero() -> None:
    call, _ = consented()
    call.on_dtmf("9")
    assert saved(call.on_dtmf("2")) == [Answer("may_call_back", value_int=0)]


def test_choice_and_scale_questions() -> None:
    survey = variant(
        questions={
            "recommend": {
                "type": "scale",
                "prompt": "recommend",
                "min": 1,
                "max": 5,
                "next": [{"when": {"min": 1, "max": 2}, "next": "why"}, {"next": "channel"}],
            },
            "why": {"type": "recording", "prompt": "why", "next": "channel"},
            "channel": {
                "type": "choice",
                "prompt": "may_call_back",
                "options": {"1": "phone", "2": "email"},
                "next": "end",
            },
        }
    )
    call, _ = consented(SurveyCall(survey))
    assert prompts(call.on_dtmf("6")) == ["invalid_answer"]  # above the scale
    call, _ = consented(SurveyCall(survey))
    assert prompts(call.on_dtmf("0")) == ["invalid_answer"]  # below it
    call, _ = consented(SurveyCall(survey))
    assert prompts(call.on_dtmf("4")) == ["may_call_back"]
    actions = call.on_dtmf("2")
    assert saved(actions) == [Answer("channel", value_text="email")]
    assert ended(actions) == [SurveyStatus.COMPLETED]


def test_two_digit_scale_waits_only_while_a_longer_number_fits() -> None:
    survey = variant(
        questions={
            "recommend": {
                "type": "scale",
                "prompt": "recommend",
                "min": 1,
                "max": 20,
                "next": "end",
            },
        }
    )
    call, _ = consented(SurveyCall(survey))
    assert isinstance(call.on_dtmf("2")[-1], StartTimer)  # 20 still fits
    assert saved(call.on_dtmf("0")) == [Answer("recommend", value_int=20)]
    call, _ = consented(SurveyCall(survey))
    assert saved(call.on_dtmf("3")) == [Answer("recommend", value_int=3)]


# ---- hang-up ------------------------------------------------------------------------------


def test_hangup_mid_survey_keeps_answers_and_is_partial() -> None:
    call, _ = consented()
    call.on_dtmf("9")
    actions = call.on_hangup()
    assert ended(actions) == [SurveyStatus.PARTIAL]
    assert call.answers == [Answer("recommend", value_int=9)]
    assert call.on_hangup() == []  # told twice, ended once


def test_hangup_in_the_intro_is_no_consent() -> None:
    call = SurveyCall(NPS)
    call.start()
    assert ended(call.on_hangup()) == [SurveyStatus.NO_CONSENT]


def test_hangup_during_thanks_stays_completed() -> None:
    call, _ = consented()
    call.on_dtmf("9")
    call.on_dtmf("1")
    assert ended(call.on_hangup()) == []
    assert call.status is SurveyStatus.COMPLETED


def test_hangup_while_a_number_is_pending_drops_it_and_cancels_the_wait() -> None:
    call, _ = consented()
    wait = call.on_dtmf("1")
    actions = call.on_hangup()
    assert CancelTimer(timer(wait).timer_id) in actions
    assert call.answers == [] and call.status is SurveyStatus.PARTIAL
    assert call.on_timer(timer(wait).timer_id) == []


def test_hangup_while_recording_keeps_the_comment_when_asterisk_reports_it() -> None:
    call, _ = consented()
    finish(call, call.on_dtmf("2"))
    assert ended(call.on_hangup()) == [SurveyStatus.PARTIAL]
    late = call.on_recording_finished("survey-c1-why", 20)
    assert late == [SaveAnswer(Answer("why", recording="survey-c1-why"))]
    assert [a.question_key for a in call.answers] == ["recommend", "why"]


# ---- any sequence of events ---------------------------------------------------------------

EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("dtmf"), st.sampled_from("0123456789*#")),
        st.tuples(st.just("play"), st.just("")),
        st.tuples(st.just("timer"), st.just("")),
        st.tuples(st.just("recorded"), st.sampled_from([0.0, 5.0])),
        st.tuples(st.just("hangup"), st.just("")),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(EVENTS)
def test_any_event_sequence_keeps_answers_valid_and_ends_once(events: list[Any]) -> None:
    call = SurveyCall(NPS, recording_prefix="r")
    out = call.start()
    playing: str | None = "p1"
    timer_id: str | None = None
    recording: str | None = None
    for kind, arg in events:
        if kind == "dtmf":
            actions = call.on_dtmf(arg)
        elif kind == "play":
            actions = call.on_playback_finished(playing or "none")
        elif kind == "timer":
            actions = call.on_timer(timer_id or "none")
        elif kind == "recorded":
            actions = call.on_recording_finished(recording or "none", arg)
        else:
            actions = call.on_hangup()
        out += actions
        for a in actions:
            if isinstance(a, PlayPrompt):
                playing = a.playback_id
            elif isinstance(a, StartTimer):
                timer_id = a.timer_id
            elif isinstance(a, Record):
                recording = a.name
    assert len(ended(out)) <= 1
    keys_ = [a.question_key for a in call.answers]
    assert len(keys_) == len(set(keys_))  # one answer per question: the table's unique key
    assert saved(out) == call.answers
    for answer in call.answers:
        if answer.question_key == "recommend":
            assert answer.value_int is not None and 0 <= answer.value_int <= 10
        elif answer.question_key == "may_call_back":
            assert answer.value_int in (0, 1)
        else:
            assert answer.recording == "r-why"
    if call.answers:
        assert call.consented
        assert call.status in (
            SurveyStatus.IN_PROGRESS,
            SurveyStatus.PARTIAL,
            SurveyStatus.COMPLETED,
        )
    if ended(out):
        assert ended(out)[0] is call.status
