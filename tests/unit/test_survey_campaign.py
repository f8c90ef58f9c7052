"""Survey campaign rules (core.surveys.campaign) and the detractor follow-up (core.surveys.followup)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from core.surveys.campaign import (
    CampaignRules,
    ClientFacts,
    Contact,
    ContactStatus,
    Dial,
    Done,
    Outcome,
    RetryRule,
    Segment,
    SegmentRules,
    Skip,
    after_attempt,
    calling_calendar,
    counted_segment,
    dialling,
    history_from_json,
    history_to_json,
    how_many_to_dial,
    mark_skipped,
    next_action,
    segments_of,
)
from core.surveys.followup import follow_up_for
from core.surveys.interpreter import Answer
from core.surveys.validate import load_survey
from hypothesis import given, settings
from hypothesis import strategies as st

from dialplan.hours import is_open
from dialplan.model import Calendar

SARAJEVO = ZoneInfo("Europe/Sarajevo")
# Monday 23 November 2026, 10:00 in Sarajevo
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=SARAJEVO).astimezone(UTC)
RULES = CampaignRules()
CLIENT = ClientFacts(client_id=7, number="+38761000111", open_loans=1)
NPS = load_survey(
    (Path(__file__).parents[2] / "surveys" / "nps.yaml").read_text(encoding="utf-8"), "nps.yaml"
)


def contact(**changes: object) -> Contact:
    return replace(Contact(contact_id=1, client=CLIENT), **changes)  # type: ignore[arg-type]


def local(at: datetime, tz: str = "Europe/Sarajevo") -> datetime:
    return at.astimezone(ZoneInfo(tz))


# ---- segments -----------------------------------------------------------------------------


def test_segments_new_active_inactive() -> None:
    rules = SegmentRules()
    now = MONDAY_10
    new = ClientFacts(1, "+1", first_loan_at=now - timedelta(days=30), open_loans=1)
    assert segments_of(new, now, rules) == {Segment.NEW, Segment.ACTIVE}
    old_active = ClientFacts(1, "+1", first_loan_at=now - timedelta(days=400), open_loans=2)
    assert segments_of(old_active, now, rules) == {Segment.ACTIVE}
    gone = ClientFacts(1, "+1", last_loan_closed_at=now - timedelta(days=200))
    assert segments_of(gone, now, rules) == {Segment.INACTIVE}
    recent = ClientFacts(1, "+1", last_loan_closed_at=now - timedelta(days=30))
    assert segments_of(recent, now, rules) == frozenset()
    assert segments_of(ClientFacts(1, "+1"), now, rules) == frozenset()  # never borrowed
    assert segments_of(gone, now, SegmentRules(inactive_days=365)) == frozenset()


def test_a_contact_is_counted_in_the_first_wanted_segment_that_applies() -> None:
    rules = SegmentRules()
    now = MONDAY_10
    new_and_active = ClientFacts(1, "+1", first_loan_at=now - timedelta(days=30), open_loans=1)
    assert counted_segment(new_and_active, now, rules) is Segment.NEW
    assert counted_segment(new_and_active, now, rules, {Segment.ACTIVE}) is Segment.ACTIVE
    assert counted_segment(new_and_active, now, rules, [Segment.INACTIVE]) is None
    gone = ClientFacts(1, "+1", last_loan_closed_at=now - timedelta(days=200))
    assert counted_segment(gone, now, rules) is Segment.INACTIVE
    assert counted_segment(ClientFacts(1, "+1"), now, rules) is None


def test_contact_outside_the_campaigns_segments_is_skipped() -> None:
    rules = CampaignRules(segments=[Segment.INACTIVE])
    assert next_action(contact(), MONDAY_10, rules) == Skip("not_in_segment")


# ---- windows ------------------------------------------------------------------------------


def test_within_legal_hours_dial_now_as_attempt_one() -> None:
    assert next_action(contact(), MONDAY_10, RULES) == Dial(MONDAY_10, 1)


def test_evening_contact_waits_for_nine_next_morning() -> None:
    evening = datetime(2026, 11, 23, 20, 30, tzinfo=SARAJEVO)
    action = next_action(contact(), evening, RULES)
    assert isinstance(action, Dial)
    assert local(action.at) == datetime(2026, 11, 24, 9, 0, tzinfo=SARAJEVO)


def test_no_calls_on_sunday_or_on_holidays() -> None:
    saturday_night = datetime(2026, 11, 28, 21, 0, tzinfo=SARAJEVO)
    action = next_action(contact(), saturday_night, RULES)
    assert isinstance(action, Dial)
    assert local(action.at).date() == date(2026, 11, 30)  # Monday
    legal = RULES.legal.model_copy(update={"holidays": [date(2026, 11, 30)]})
    action = next_action(contact(), saturday_night, RULES.model_copy(update={"legal": legal}))
    assert isinstance(action, Dial) and local(action.at).date() == date(2026, 12, 1)


def test_client_time_zone_decides_the_local_hour() -> None:
    # 10:00 in Sarajevo is 04:00 in New York: wait for 09:00 there.
    far = contact(client=replace(CLIENT, timezone="America/New_York"))
    action = next_action(far, MONDAY_10, RULES)
    assert isinstance(action, Dial)
    assert local(action.at, "America/New_York") == datetime(
        2026, 11, 23, 9, 0, tzinfo=ZoneInfo("America/New_York")
    )


def test_unknown_time_zone_is_never_guessed() -> None:
    odd = contact(client=replace(CLIENT, timezone="Mars/Olympus"))
    assert next_action(odd, MONDAY_10, RULES) == Skip("unknown_timezone")


def test_campaign_window_narrows_the_legal_hours() -> None:
    window = Calendar(weekly={"mon": ["08:00-10:00", "17:00-22:00"], "tue": ["12:00-13:00"]})
    rules = RULES.model_copy(update={"window": window})
    cal = calling_calendar(rules, "Europe/Sarajevo")
    assert cal.weekly == {"mon": ["09:00-10:00", "17:00-20:00"], "tue": ["12:00-13:00"]}
    action = next_action(contact(), MONDAY_10, rules)
    assert isinstance(action, Dial)
    assert local(action.at) == datetime(2026, 11, 23, 17, 0, tzinfo=SARAJEVO)


def test_never_open_window_skips() -> None:
    window = Calendar(weekly={"sun": ["10:00-12:00"]})
    rules = RULES.model_copy(update={"window": window})
    assert next_action(contact(), MONDAY_10, rules) == Skip("no_calling_window")


HHMM = st.integers(0, 47).map(lambda h: f"{h // 2:02d}:{30 * (h % 2):02d}")
RANGES = st.lists(
    st.tuples(HHMM, HHMM).filter(lambda r: r[0] < r[1]).map(lambda r: f"{r[0]}-{r[1]}"),
    max_size=3,
)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["mon", "tue", "sat", "sun"]), RANGES),
    st.dictionaries(st.sampled_from(["mon", "tue", "sat", "sun"]), RANGES),
    st.datetimes(datetime(2026, 1, 1), datetime(2027, 1, 1), timezones=st.just(UTC)),
)
def test_calling_calendar_is_open_exactly_when_both_are(
    window: dict[str, list[str]], legal: dict[str, list[str]], at: datetime
) -> None:
    rules = CampaignRules(window=Calendar(weekly=window), legal=Calendar(weekly=legal))
    both = is_open(rules.window, at) and is_open(rules.legal, at)
    assert is_open(calling_calendar(rules, "Europe/Sarajevo"), at) == both


# ---- do not call, frequency cap -----------------------------------------------------------


def test_do_not_call_skips_until_the_entry_expires() -> None:
    dnc = {CLIENT.number: MONDAY_10 + timedelta(days=1)}
    assert next_action(contact(), MONDAY_10, RULES, dnc) == Skip("do_not_call")
    later = MONDAY_10 + timedelta(days=7)
    assert isinstance(next_action(contact(), later, RULES, dnc), Dial)
    assert next_action(contact(), later, RULES, {CLIENT.number: None}) == Skip("do_not_call")


def test_client_surveyed_recently_is_skipped() -> None:
    recent = contact(client=replace(CLIENT, last_surveyed_at=MONDAY_10 - timedelta(days=10)))
    assert next_action(recent, MONDAY_10, RULES) == Skip("surveyed_recently")
    long_ago = contact(client=replace(CLIENT, last_surveyed_at=MONDAY_10 - timedelta(days=91)))
    assert isinstance(next_action(long_ago, MONDAY_10, RULES), Dial)
    no_cap = RULES.model_copy(update={"survey_cap_days": 0})
    assert isinstance(next_action(recent, MONDAY_10, no_cap), Dial)


def test_final_skip_marks_the_contact_and_a_passing_one_does_not() -> None:
    skipped = mark_skipped(contact(), Skip("do_not_call"))
    assert skipped.status is ContactStatus.SKIPPED and skipped.last_outcome == "do_not_call"
    assert next_action(skipped, MONDAY_10, RULES) == Done(ContactStatus.SKIPPED)
    assert mark_skipped(contact(), Skip("attempt_in_progress", final=False)) == contact()


# ---- attempts -----------------------------------------------------------------------------


def test_busy_is_retried_after_its_delay() -> None:
    after = after_attempt(contact(), 1, Outcome.BUSY, MONDAY_10, RULES, call_id="c1")
    assert after.status is ContactStatus.PENDING and after.attempts == 1
    assert after.next_attempt_at == MONDAY_10 + timedelta(minutes=15)
    assert after.history[0].call_id == "c1" and after.last_outcome == "busy"
    assert next_action(after, MONDAY_10, RULES) == Dial(MONDAY_10 + timedelta(minutes=15), 2)


def test_retry_due_after_hours_moves_to_the_next_window() -> None:
    late = datetime(2026, 11, 23, 19, 30, tzinfo=SARAJEVO)
    after = after_attempt(contact(), 1, Outcome.NO_ANSWER, late, RULES)
    action = next_action(after, late, RULES)
    assert isinstance(action, Dial)
    assert local(action.at) == datetime(2026, 11, 24, 9, 0, tzinfo=SARAJEVO)


def test_same_attempt_applied_twice_changes_nothing() -> None:
    once = after_attempt(contact(), 1, Outcome.BUSY, MONDAY_10, RULES)
    twice = after_attempt(once, 1, Outcome.BUSY, MONDAY_10 + timedelta(minutes=1), RULES)
    assert twice == once
    # Even a different (late, contradictory) report of attempt 1 is ignored.
    assert after_attempt(once, 1, Outcome.COMPLETED, MONDAY_10, RULES) == once


def test_an_attempt_that_skips_a_number_is_an_error() -> None:
    with pytest.raises(ValueError, match="attempt 3 after 0"):
        after_attempt(contact(), 3, Outcome.BUSY, MONDAY_10, RULES)


def test_survey_outcomes_end_the_contact_and_invalid_numbers_too() -> None:
    for outcome in (Outcome.COMPLETED, Outcome.PARTIAL, Outcome.REFUSED, Outcome.NO_CONSENT):
        after = after_attempt(contact(), 1, outcome, MONDAY_10, RULES)
        assert after.status is ContactStatus.DONE and after.next_attempt_at is None
        assert next_action(after, MONDAY_10, RULES) == Done(ContactStatus.DONE)
    invalid = after_attempt(contact(), 1, Outcome.INVALID_NUMBER, MONDAY_10, RULES)
    assert invalid.status is ContactStatus.INVALID


def test_machine_is_retried_once_then_exhausted() -> None:
    first = after_attempt(contact(), 1, Outcome.MACHINE, MONDAY_10, RULES)
    assert first.status is ContactStatus.PENDING
    second = after_attempt(first, 2, Outcome.MACHINE, MONDAY_10, RULES)
    assert second.status is ContactStatus.EXHAUSTED
    assert next_action(second, MONDAY_10, RULES) == Done(ContactStatus.EXHAUSTED)


def test_overall_maximum_caps_mixed_outcomes() -> None:
    rules = CampaignRules(max_attempts=3)
    c = contact()
    for n, outcome in enumerate([Outcome.BUSY, Outcome.NO_ANSWER, Outcome.FAILED], start=1):
        c = after_attempt(c, n, outcome, MONDAY_10, rules)
    assert c.status is ContactStatus.EXHAUSTED and c.attempts == 3


def test_outcome_without_a_retry_rule_is_not_retried() -> None:
    rules = CampaignRules(retries={"busy": RetryRule(delay_minutes=5, max_attempts=2)})
    after = after_attempt(contact(), 1, Outcome.NO_ANSWER, MONDAY_10, rules)
    assert after.status is ContactStatus.EXHAUSTED


def test_dialling_marks_the_attempt_under_way_once() -> None:
    busy = dialling(contact(), 1)
    assert busy.status is ContactStatus.DIALLING
    assert next_action(busy, MONDAY_10, RULES) == Skip("attempt_in_progress", final=False)
    assert dialling(busy, 1) == busy and dialling(contact(), 2) == contact()
    done = after_attempt(busy, 1, Outcome.COMPLETED, MONDAY_10, RULES)
    assert done.status is ContactStatus.DONE


def test_result_for_a_contact_skipped_meanwhile_is_recorded_but_it_stays_skipped() -> None:
    skipped = mark_skipped(dialling(contact(), 1), Skip("do_not_call"))
    after = after_attempt(skipped, 1, Outcome.BUSY, MONDAY_10, RULES)
    assert after.status is ContactStatus.SKIPPED and after.attempts == 1
    assert after.next_attempt_at is None and len(after.history) == 1


OUTCOMES = st.lists(st.sampled_from(sorted(Outcome)), min_size=1, max_size=12)


@given(OUTCOMES, st.data())
def test_any_sequence_of_results_is_idempotent_and_bounded(
    outcomes: list[Outcome], data: st.DataObject
) -> None:
    c = contact()
    for outcome in outcomes:
        action = next_action(c, MONDAY_10, RULES)
        if not isinstance(action, Dial):
            assert isinstance(action, Done)
            break
        c2 = after_attempt(c, action.attempt, outcome, MONDAY_10, RULES)
        replayed = data.draw(st.integers(1, c2.attempts))
        assert after_attempt(c2, replayed, outcome, MONDAY_10, RULES) == c2
        c = c2
    assert c.attempts <= RULES.max_attempts
    assert [r.attempt for r in c.history] == list(range(1, c.attempts + 1))
    if c.status is ContactStatus.PENDING:
        assert c.next_attempt_at is not None


def test_attempt_history_round_trips_through_json() -> None:
    c = after_attempt(contact(), 1, Outcome.BUSY, MONDAY_10, RULES, call_id="c1")
    c = after_attempt(c, 2, Outcome.COMPLETED, MONDAY_10 + timedelta(hours=1), RULES)
    rows = history_to_json(c.history)
    assert rows[0] == {
        "attempt": 1,
        "outcome": "busy",
        "at": "2026-11-23T09:00:00+00:00",
        "call_id": "c1",
    }
    assert history_from_json(rows) == c.history


# ---- pacing -------------------------------------------------------------------------------


def test_pacing_fills_free_channels_with_due_contacts() -> None:
    assert how_many_to_dial(active_calls=3, limit=10, due_contacts=100) == 7
    assert how_many_to_dial(active_calls=3, limit=10, due_contacts=2) == 2
    assert how_many_to_dial(active_calls=12, limit=10, due_contacts=5) == 0
    assert how_many_to_dial(0, 10, 100, max_per_tick=4) == 4


@given(st.integers(-5, 50), st.integers(0, 50), st.integers(-5, 200), st.integers(0, 20))
def test_pacing_never_exceeds_the_limit_or_the_due(
    active: int, limit: int, due: int, per_tick: int
) -> None:
    n = how_many_to_dial(active, limit, due, per_tick)
    assert 0 <= n <= max(0, due) and n <= per_tick
    assert max(0, active) + n <= max(limit, max(0, active))


# ---- detractor follow-up ------------------------------------------------------------------


def answers(score: int, may_call: int | None = None, comment: bool = False) -> list[Answer]:
    out = [Answer("recommend", value_int=score)]
    if comment:
        out.append(Answer("why", recording="survey-c1-why"))
    if may_call is not None:
        out.append(Answer("may_call_back", value_int=may_call))
    return out


def test_detractor_gets_a_callback_from_their_own_manager() -> None:
    client = replace(CLIENT, assigned_manager="m1")
    task = follow_up_for(answers(3, comment=True), client, survey=NPS, queue="care", now=MONDAY_10)
    assert task is not None
    assert (task.assigned_agent_id, task.queue) == ("m1", None)
    assert task.reason == "nps_detractor" and task.number == CLIENT.number
    assert "NPS 3" in task.note and "survey-c1-why" in task.note


def test_detractor_without_a_manager_goes_to_the_campaigns_queue() -> None:
    task = follow_up_for(answers(6), CLIENT, survey=NPS, queue="care", now=MONDAY_10)
    assert task is not None and (task.assigned_agent_id, task.queue) == (None, "care")
    assert task.due_at == MONDAY_10


def test_passives_promoters_and_silence_get_no_callback() -> None:
    for score in (7, 8, 9, 10):
        assert follow_up_for(answers(score), CLIENT, survey=NPS, queue="q", now=MONDAY_10) is None
    assert follow_up_for([], CLIENT, survey=NPS, queue="q", now=MONDAY_10) is None


def test_detractor_who_said_no_to_a_call_back_is_not_called() -> None:
    def task_for(given: list[Answer], permission: str = "may_call_back") -> object:
        return follow_up_for(
            given, CLIENT, survey=NPS, queue="q", now=MONDAY_10, permission_question=permission
        )

    assert task_for(answers(2, may_call=0)) is None
    assert task_for(answers(2, may_call=1)) is not None
    assert task_for(answers(2)) is not None  # not answering is not a no
    with pytest.raises(ValueError, match="not a yes/no question"):
        task_for(answers(2), permission="why")


def test_callback_due_moves_to_the_queues_next_opening() -> None:
    hours = Calendar(weekly={"mon": ["12:00-16:00"]})
    task = follow_up_for(
        answers(0),
        CLIENT,
        survey=NPS,
        queue="q",
        now=MONDAY_10,
        delay=timedelta(minutes=30),
        calendar=hours,
    )
    assert task is not None
    assert local(task.due_at) == datetime(2026, 11, 23, 12, 0, tzinfo=SARAJEVO)
