"""NPS, its confidence interval, rates and answer distributions (core.surveys.nps)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from core.surveys.interpreter import Answer, SurveyStatus
from core.surveys.nps import (
    ScoredResponse,
    distribution,
    nps,
    nps_by,
    nps_from_counts,
    nps_histogram,
    period_of,
    rates,
)
from hypothesis import given
from hypothesis import strategies as st

SCORES = st.lists(st.integers(0, 10), min_size=1, max_size=300)
COUNTS = st.tuples(st.integers(0, 200), st.integers(0, 200), st.integers(0, 200)).filter(
    lambda c: sum(c) > 0
)


def test_textbook_example() -> None:
    # 5 promoters, 3 passives, 2 detractors: 50% - 20% = 30
    result = nps([10, 9, 9, 10, 9, 7, 8, 8, 0, 6])
    assert (result.promoters, result.passives, result.detractors) == (5, 3, 2)
    assert result.score == pytest.approx(30.0)
    # var = (0.5 + 0.2 - 0.3^2) / 10 = 0.061
    margin = 100 * 1.959963984540054 * math.sqrt(0.061)
    assert result.ci_low == pytest.approx(30 - margin)
    assert result.ci_high == pytest.approx(min(100, 30 + margin))
    assert not result.reliable


def test_boundaries_of_the_groups() -> None:
    assert nps([6]).score == -100 and nps([7]).score == 0 and nps([8]).score == 0
    assert nps([9]).score == 100


def test_no_answers_no_score() -> None:
    result = nps([])
    assert result.responses == 0 and result.score is None and result.ci_low is None


def test_out_of_range_scores_and_negative_counts_are_rejected() -> None:
    with pytest.raises(ValueError):
        nps([11])
    with pytest.raises(ValueError):
        nps_from_counts(-1, 0, 1)


@given(SCORES)
def test_nps_is_within_minus_and_plus_hundred_and_is_100_times_p_minus_d(
    scores: list[int],
) -> None:
    result = nps(scores)
    assert result.score is not None
    assert -100 <= result.score <= 100
    p = sum(s >= 9 for s in scores)
    d = sum(s <= 6 for s in scores)
    assert result.score == pytest.approx(100 * (p - d) / len(scores))
    assert result.promoters + result.passives + result.detractors == len(scores)


@given(SCORES)
def test_interval_contains_the_score_and_stays_in_range(scores: list[int]) -> None:
    result = nps(scores)
    assert result.ci_low is not None and result.ci_high is not None and result.score is not None
    assert -100 <= result.ci_low <= result.score <= result.ci_high <= 100


@given(COUNTS, st.integers(2, 20))
def test_interval_narrows_as_n_grows_for_fixed_proportions(
    counts: tuple[int, int, int], k: int
) -> None:
    small = nps_from_counts(*counts)
    large = nps_from_counts(*(c * k for c in counts))
    assert small.score == pytest.approx(large.score)
    assert small.ci_low is not None and small.ci_high is not None
    assert large.ci_low is not None and large.ci_high is not None
    small_width = small.ci_high - small.ci_low
    large_width = large.ci_high - large.ci_low
    assert large_width <= small_width + 1e-9
    if sum(1 for c in counts if c) == 1:
        # One group only (all promoters, all passives or all detractors): the Wald interval
        # collapses to a point at every n. (Regression: all-passive answers were missed.)
        assert small_width == pytest.approx(0.0)
    elif small.ci_low > -100 and small.ci_high < 100:
        # Unclipped (so is the narrower one, around the same score): exactly by sqrt(k).
        assert large_width == pytest.approx(small_width / math.sqrt(k), rel=1e-6)
        assert large_width < small_width


def test_nps_by_segment_and_period() -> None:
    at = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)  # already the 24th in Sarajevo
    rows = [
        ScoredResponse("nps", 10, at, "new"),
        ScoredResponse("nps", 0, at, "new"),
        ScoredResponse("nps", 9, at, "active"),
    ]
    by_segment = nps_by(rows, lambda r: r.segment)
    assert by_segment["new"].score == 0 and by_segment["active"].score == 100
    by_day = nps_by(rows, lambda r: (r.survey, period_of(r.answered_at, "day")))
    assert list(by_day) == [("nps", "2026-11-24")]
    assert by_day["nps", "2026-11-24"].responses == 3


def test_periods_are_local_days_iso_weeks_and_months() -> None:
    at = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert period_of(at, "day") == "2027-01-01"
    assert period_of(at, "week") == "2026-W53"
    assert period_of(at, "month") == "2027-01"
    assert period_of(at, "month", "UTC") == "2026-12"
    with pytest.raises(ValueError):
        period_of(datetime(2026, 1, 1), "day")


def test_response_and_completion_rates() -> None:
    outcomes = [SurveyStatus.COMPLETED] * 6 + [SurveyStatus.PARTIAL] * 2
    outcomes += [SurveyStatus.REFUSED, SurveyStatus.NO_CONSENT]
    r = rates(40, outcomes)
    assert (r.contacts, r.reached, r.started) == (40, 10, 8)
    assert r.response_rate == pytest.approx(8 / 40)
    assert r.completion_rate == pytest.approx(6 / 8)
    assert r.contact_rate == pytest.approx(10 / 40)
    empty = rates(0, [])
    assert empty.response_rate is None and empty.completion_rate is None


def test_rates_reject_unfinished_surveys_and_more_surveys_than_contacts() -> None:
    with pytest.raises(ValueError):
        rates(5, [SurveyStatus.IN_PROGRESS])
    with pytest.raises(ValueError):
        rates(1, [SurveyStatus.COMPLETED, SurveyStatus.PARTIAL])


@given(st.integers(0, 50), st.lists(st.sampled_from(sorted(SurveyStatus)), max_size=50))
def test_rates_are_proportions(extra: int, outcomes: list[SurveyStatus]) -> None:
    outcomes = [o for o in outcomes if o is not SurveyStatus.IN_PROGRESS]
    r = rates(len(outcomes) + extra, outcomes)
    for value in (r.response_rate, r.completion_rate, r.contact_rate):
        assert value is None or 0 <= value <= 1


def test_distribution_per_question_in_value_order() -> None:
    answers = [
        Answer("recommend", value_int=10),
        Answer("recommend", value_int=2),
        Answer("recommend", value_int=10),
        Answer("channel", value_text="phone"),
        Answer("why", recording="r-1"),
        Answer("why", recording="r-2"),
    ]
    assert distribution(answers) == {
        "recommend": {2: 1, 10: 2},
        "channel": {"phone": 1},
        "why": {"recorded": 2},
    }
    assert list(distribution(answers)["recommend"]) == [2, 10]
    assert nps_histogram([10, 2, 10]) == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]
