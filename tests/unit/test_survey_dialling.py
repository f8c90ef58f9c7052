"""The dialler's pure decisions: what a hang-up cause or an AMD verdict means, calling
windows over several candidate zones, settings checks, channel ids, resuming a survey."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from core.surveys.campaign import (
    CampaignRules,
    CampaignSettings,
    ClientFacts,
    Contact,
    Dial,
    Outcome,
    Skip,
    calling_timezones,
    in_schedule,
    is_machine,
    next_action_in_zones,
    unanswered_outcome,
)
from core.surveys.interpreter import Answer, SurveyCall
from core.surveys.validate import check_survey
from pydantic import ValidationError

from ari_app.campaigns import channel_id_for, number_zones, parse_channel_id
from dialplan.model import WEEKDAYS, Calendar

NPS = Path(__file__).resolve().parents[2] / "surveys" / "nps.yaml"
MONDAY_NOON_UTC = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cause", "outcome"),
    [
        (17, Outcome.BUSY),
        (21, Outcome.BUSY),
        (19, Outcome.NO_ANSWER),
        (18, Outcome.NO_ANSWER),
        (16, Outcome.NO_ANSWER),
        (1, Outcome.INVALID_NUMBER),
        (34, Outcome.FAILED),
        (38, Outcome.FAILED),
        (None, Outcome.FAILED),
        (0, Outcome.FAILED),
    ],
)
def test_unanswered_outcome_reads_the_q850_cause(cause: int | None, outcome: Outcome) -> None:
    assert unanswered_outcome(cause) is outcome


def test_the_dial_status_wins_over_a_missing_cause() -> None:
    assert unanswered_outcome(0, "BUSY") is Outcome.BUSY
    assert unanswered_outcome(0, "NOANSWER") is Outcome.NO_ANSWER
    assert unanswered_outcome(17, "CHANUNAVAIL") is Outcome.FAILED
    assert unanswered_outcome(17, "ANSWER") is Outcome.BUSY  # not a failure status: the cause


@pytest.mark.parametrize(
    ("status", "machine"),
    [("MACHINE", True), ("machine ", True), ("HUMAN", False), ("NOTSURE", False), ("", False)],
)
def test_only_a_sure_machine_is_a_machine(status: str, machine: bool) -> None:
    assert is_machine(status) is machine


def test_settings_refuse_a_message_without_a_prompt_and_a_backwards_schedule() -> None:
    with pytest.raises(ValidationError, match="machine_prompt"):
        CampaignSettings(machine_action="message")
    with pytest.raises(ValidationError, match="starts_at"):
        CampaignSettings(starts_at=MONDAY_NOON_UTC, ends_at=MONDAY_NOON_UTC)
    with pytest.raises(ValidationError):
        CampaignSettings(concurrency=0)
    ok = CampaignSettings(machine_action="message", machine_prompt="declined")
    assert ok.machine_prompt == "declined"


def test_schedule_bounds() -> None:
    s = CampaignSettings(starts_at=MONDAY_NOON_UTC, ends_at=MONDAY_NOON_UTC + timedelta(hours=2))
    assert not in_schedule(s, MONDAY_NOON_UTC - timedelta(seconds=1))
    assert in_schedule(s, MONDAY_NOON_UTC)
    assert not in_schedule(s, MONDAY_NOON_UTC + timedelta(hours=2))
    assert in_schedule(CampaignSettings(), MONDAY_NOON_UTC)


def _rules(window: list[str]) -> CampaignRules:
    whole = Calendar(timezone="UTC", weekly={d: ["00:00-24:00"] for d in WEEKDAYS})
    return CampaignRules(
        window=Calendar(timezone="UTC", weekly={d: window for d in WEEKDAYS}), legal=whole
    )


def test_a_window_must_be_open_in_every_zone_the_number_can_be_in() -> None:
    contact = Contact(1, ClientFacts(client_id=None, number="+12125550100"))
    rules = _rules(["09:00-17:00"])
    # New York is 7:00 at Monday noon UTC, Los Angeles 4:00: the first time both clocks are
    # within 09-17 is 9:00 in Los Angeles = 12:00 in New York = 17:00 UTC.
    zones = ("America/New_York", "America/Los_Angeles")
    action = next_action_in_zones(contact, MONDAY_NOON_UTC, rules, zones)
    assert action == Dial(datetime(2026, 11, 23, 17, 0, tzinfo=UTC), 1)
    # One zone: that zone's window alone (New York opens at 9:00 local = 14:00 UTC).
    action = next_action_in_zones(contact, MONDAY_NOON_UTC, rules, ("America/New_York",))
    assert action == Dial(datetime(2026, 11, 23, 14, 0, tzinfo=UTC), 1)


def test_zones_that_never_share_an_open_hour_are_not_called() -> None:
    contact = Contact(1, ClientFacts(client_id=None, number="+10000000000"))
    rules = _rules(["09:00-10:00"])
    action = next_action_in_zones(contact, MONDAY_NOON_UTC, rules, ("UTC", "Etc/GMT-12"))
    assert isinstance(action, Skip)


def test_the_clients_own_zone_wins_over_the_numbers() -> None:
    facts = ClientFacts(client_id=1, number="+12125550100", timezone="Europe/Sarajevo")
    assert calling_timezones(facts, ("America/New_York",)) == ("Europe/Sarajevo",)
    bare = ClientFacts(client_id=1, number="+12125550100")
    assert calling_timezones(bare, ("America/New_York",)) == ("America/New_York",)


def test_number_zones_from_the_numbering_plan() -> None:
    assert number_zones("+38761123456") == ("Europe/Sarajevo",)
    assert "America/New_York" in number_zones("+12125550100")
    assert number_zones("not a number") == ()


def test_channel_ids_are_derived_from_the_attempt_and_read_back() -> None:
    cid = channel_id_for(3, 41, 2)
    assert cid == "survey-3-41-2"
    assert parse_channel_id(cid) == (3, 41, 2)
    for foreign in ("test-abc", "survey-3-41", "survey-3-41-2;2", "survey-a-1-1", ""):
        assert parse_channel_id(foreign) is None


def _survey_call() -> SurveyCall:
    survey = check_survey(NPS.read_text(), str(NPS))
    return SurveyCall(survey, language="en", recording_prefix="survey-x")


def test_resume_asks_the_first_unanswered_question_without_the_intro() -> None:
    call = _survey_call()
    actions = call.resume([Answer("recommend", value_int=9)])
    assert call.consented and call.question == "may_call_back"
    assert [a.prompt for a in actions if hasattr(a, "prompt")] == ["may_call_back"]
    assert call.path[-2:] == ["resumed", "may_call_back"]


def test_resume_follows_the_detractor_branch() -> None:
    call = _survey_call()
    call.resume([Answer("recommend", value_int=3)])
    assert call.question == "why"


def test_resume_with_everything_answered_thanks_and_ends() -> None:
    call = _survey_call()
    answers = [Answer("recommend", value_int=10), Answer("may_call_back", value_int=1)]
    actions = call.resume(answers)
    assert call.status.value == "completed"
    assert [a.prompt for a in actions if hasattr(a, "prompt")] == ["thanks"]


def test_resume_without_answers_starts_with_the_intro() -> None:
    call = _survey_call()
    actions = call.resume([])
    assert not call.consented
    assert [a.prompt for a in actions if hasattr(a, "prompt")] == ["intro"]
