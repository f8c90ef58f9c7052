"""Survey results as figures, CSV and a chart (core.surveys.report): pure, from hand-made rows."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from core.surveys.interpreter import SurveyStatus
from core.surveys.report import (
    CSV_COLUMNS,
    DETRACTOR,
    PASSIVE,
    POSTCALL,
    PROMOTER,
    AnswerRow,
    ReportError,
    ResultsQuery,
    SurveyCallRow,
    SurveyResults,
    answers_csv,
    attempted_between,
    build_report,
    chart_svg,
    csv_cell,
    final_outcomes,
    format_table,
    parse_request,
    report_window,
    scored_responses,
)

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
QUESTIONS = {"recommend": "nps", "why": "recording", "may_call_back": "yes_no"}


def row(
    respondent: str,
    question: str,
    value: int | None = None,
    *,
    at: datetime = T0,
    segment: str = "active",
    version: int = 1,
    call_id: str | None = None,
    text: str | None = None,
    recording: str | None = None,
    client_name: str | None = "Amra Hodžić",
    number: str | None = "+38761000111",
) -> AnswerRow:
    return AnswerRow(
        answered_at=at,
        survey="nps",
        survey_version=version,
        call_id=call_id or f"call-{respondent}",
        respondent=respondent,
        client_id=7,
        client_external_id="C7",
        client_name=client_name,
        number=number,
        segment=segment,
        campaign=None if segment == POSTCALL else "nps-nov",
        question_key=question,
        question_type=QUESTIONS.get(question),
        value_int=value,
        value_text=text,
        recording=recording,
    )


def call(
    respondent: str, status: str | None, at: datetime = T0, call_id: str = ""
) -> SurveyCallRow:
    return SurveyCallRow(call_id or f"call-{respondent}", respondent, at, status)


def results(
    answers: list[AnswerRow],
    calls: list[SurveyCallRow] | None = None,
    contacts: int = 10,
    versions: tuple[int, ...] = (1,),
) -> SurveyResults:
    return SurveyResults(
        query=ResultsQuery("nps"),
        versions=versions,
        nps_questions={v: "recommend" for v in versions},
        questions=QUESTIONS,
        calls=tuple(calls or []),
        answers=tuple(answers),
        contacts=contacts,
    )


# Three promoters, one passive, two detractors: NPS (3 - 2) / 6 = 16.7.
SIX = [
    row("contact:1", "recommend", 10, segment="active"),
    row("contact:2", "recommend", 9, segment="active", at=T0 + timedelta(hours=1)),
    row("contact:3", "recommend", 9, segment="new", at=T0 + timedelta(days=1)),
    row("contact:4", "recommend", 7, segment="new", at=datetime(2026, 12, 1, 9, tzinfo=UTC)),
    row("contact:5", "recommend", 3, segment="inactive", at=datetime(2026, 12, 2, tzinfo=UTC)),
    # 23:30 UTC on 30 November is already 1 December in Sarajevo: December's.
    row("call:p1", "recommend", 2, segment=POSTCALL, at=datetime(2026, 11, 30, 23, 30, tzinfo=UTC)),
    row("contact:5", "why", recording="survey-call-contact:5-why", segment="inactive"),
    row("contact:5", "may_call_back", 0, segment="inactive"),
    row("contact:1", "may_call_back", 1),
]


def test_nps_overall_with_counts_and_interval() -> None:
    report = build_report(results(SIX))
    o = report.overall
    assert (o.responses, o.promoters, o.passives, o.detractors) == (6, 3, 1, 2)
    assert o.score == pytest.approx(100 / 6)
    assert o.ci_low is not None and o.ci_high is not None
    assert o.ci_low < o.score < o.ci_high and not o.reliable
    assert report.to_json()["nps"]["nps"] == 16.7
    assert report.histogram == [0, 0, 1, 1, 0, 0, 0, 1, 0, 2, 1]


def test_nps_by_segment_including_post_call_surveys() -> None:
    by = build_report(results(SIX)).by_segment
    assert list(by) == ["active", "inactive", "new", "postcall"]
    assert (by["active"].promoters, by["active"].score) == (2, 100)
    assert (by["new"].promoters, by["new"].passives, by["new"].score) == (1, 1, 50)
    assert by["inactive"].score == -100 and by["postcall"].score == -100


def test_nps_by_local_month_day_and_iso_week() -> None:
    by_month = build_report(results(SIX), "month").by_period
    assert {k: (v.responses, round(v.score or 0, 1)) for k, v in by_month.items()} == {
        "2026-11": (3, 100.0),
        "2026-12": (3, -66.7),
    }
    by_day = build_report(results(SIX), "day").by_period
    assert by_day["2026-12-01"].responses == 2  # the post-call answer at 23:30 UTC
    assert list(build_report(results(SIX), "week").by_period) == ["2026-W48", "2026-W49"]


def test_a_respondent_counts_once_with_their_last_answer() -> None:
    answers = [
        row("contact:1", "recommend", 3, call_id="first", at=T0),
        row("contact:1", "recommend", 10, call_id="second", at=T0 + timedelta(days=2)),
        row("contact:2", "recommend", 6),
    ]
    report = build_report(results(answers))
    assert (report.overall.responses, report.overall.promoters) == (2, 1)
    assert report.distribution["recommend"] == {6: 1, 10: 1}
    assert report.answer_rows == 3  # the CSV keeps both of contact 1's rows


def test_scores_outside_0_to_10_and_other_questions_are_not_nps() -> None:
    answers = [
        row("contact:1", "recommend", 11),
        row("contact:2", "may_call_back", 1),
        row("contact:3", "recommend", 8),
    ]
    assert [r.score for r in scored_responses(results(answers))] == [8]


def test_each_version_its_own_nps_question() -> None:
    answers = [
        row("contact:1", "recommend", 10, version=1),
        row("contact:2", "likely", 2, version=2),
    ]
    res = SurveyResults(
        query=ResultsQuery("nps"),
        versions=(1, 2),
        nps_questions={1: "recommend", 2: "likely"},
        questions={"likely": "nps", **QUESTIONS},
        calls=(),
        answers=tuple(answers),
        contacts=2,
    )
    report = build_report(res)
    assert {v: r.score for v, r in report.by_version.items()} == {1: 100, 2: -100}
    assert report.nps_question == "likely" and report.overall.score == 0


def test_rates_take_each_respondents_last_final_call() -> None:
    calls = [
        call("contact:1", None, T0, "c1-no-answer"),
        call("contact:1", "completed", T0 + timedelta(days=1), "c1-answered"),
        call("contact:2", "partial"),
        call("contact:3", "refused"),
        call("contact:4", "no_consent"),
        call("call:p1", "completed"),
        call("call:p2", "in_progress"),  # still running: no final state yet
    ]
    assert sorted(final_outcomes(calls)) == sorted(
        [SurveyStatus.COMPLETED] * 2
        + [SurveyStatus.PARTIAL, SurveyStatus.REFUSED, SurveyStatus.NO_CONSENT]
    )
    r = build_report(results([], calls, contacts=8)).rates
    assert (r.contacts, r.reached, r.started, r.completed) == (8, 5, 3, 2)
    assert r.response_rate == pytest.approx(3 / 8) and r.completion_rate == pytest.approx(2 / 3)


def test_distribution_per_question_in_the_definitions_order() -> None:
    report = build_report(results(SIX))
    assert list(report.distribution) == ["recommend", "why", "may_call_back"]
    assert report.distribution["why"] == {"recorded": 1}
    assert report.distribution["may_call_back"] == {0: 1, 1: 1}
    questions = report.to_json()["questions"]
    assert questions[2] == {
        "key": "may_call_back",
        "type": "yes_no",
        "answers": [{"value": 0, "count": 1}, {"value": 1, "count": 1}],
    }


def test_no_answers_make_an_empty_report_not_an_error() -> None:
    report = build_report(results([], contacts=0))
    assert report.overall.score is None and report.rates.response_rate is None
    json.dumps(report.to_json())
    assert "no answers" in format_table(report)
    ET.fromstring(chart_svg(report))


def test_table_shows_nps_interval_counts_and_rates() -> None:
    calls = [call(f"contact:{i}", "completed") for i in range(1, 6)] + [call("call:p1", "partial")]
    text = format_table(build_report(results(SIX, calls, contacts=9)))
    assert "NPS (recommend): 16.7 (95% CI" in text
    assert "responses 6: promoters 3, passives 1, detractors 2" in text
    assert "response rate 66.7%" in text and "completion rate 83.3%" in text
    assert "postcall" in text and "2026-12" in text


# ---- the request -------------------------------------------------------------------------


def test_request_defaults_and_local_days() -> None:
    query, period = parse_request("nps", {})
    assert (query, period) == (ResultsQuery("nps"), "month")
    query, period = parse_request(
        "nps",
        {"version": "2", "campaign": "nps-nov", "period": "week", "since": "2026-12-01"},
    )
    assert (query.version, query.campaign, period) == (2, "nps-nov", "week")
    assert query.since == datetime(2026, 11, 30, 23, tzinfo=UTC)  # Sarajevo midnight, winter
    # Summer time, and `until` includes its whole day.
    assert report_window("2026-07-01", "2026-07-01") == (
        datetime(2026, 6, 30, 22, tzinfo=UTC),
        datetime(2026, 7, 1, 22, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("params", "error_id"),
    [
        ({"period": "year"}, "bad_period"),
        ({"since": "2026-13-01"}, "bad_date"),
        ({"since": "20261123"}, "bad_date"),
        ({"until": "yesterday"}, "bad_date"),
        ({"since": "2026-12-02", "until": "2026-12-01"}, "bad_date"),
        ({"version": "two"}, "bad_version"),
        ({"version": "0"}, "bad_version"),
        ({"version": "²"}, "bad_version"),
        ({"version": "-1"}, "bad_version"),
        ({"until": "9999-12-31"}, "bad_date"),
        ({"since": "0001-01-01"}, "bad_date"),
    ],
)
def test_bad_requests_are_400_with_a_clear_message(params: dict[str, str], error_id: str) -> None:
    with pytest.raises(ReportError) as err:
        parse_request("nps", params)
    assert (err.value.error_id, err.value.status) == (error_id, 400)
    assert str(err.value)


def test_contact_attempted_by_count_or_history_in_the_window() -> None:
    history = [{"attempt": 1, "outcome": "busy", "at": "2026-11-23T10:00:00+01:00"}]
    since, until = datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC)
    assert attempted_between(1, history, None, None)
    assert not attempted_between(0, [], None, None)
    assert attempted_between(1, history, since, until)
    assert not attempted_between(1, history, until, None)
    assert not attempted_between(1, [{"at": "garbage"}, {"at": "2026-11-23T10:00"}], since, None)


# ---- CSV ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+38761000111", "'+38761000111"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("Amra", "Amra"),
        (7, 7),
        (None, ""),
    ],
)
def test_csv_cells_that_look_like_formulas_are_quoted(
    value: str | int | None, cell: str | int
) -> None:
    assert csv_cell(value) == cell


def test_csv_has_every_row_with_its_columns_and_survives_commas_quotes_and_newlines() -> None:
    rows = [
        *SIX,
        row(
            "contact:9", "reason", text='late, "again"\nand again', client_name="=cmd|' /C calc'!A0"
        ),
    ]
    text = answers_csv(rows)
    parsed = list(csv.reader(io.StringIO(text)))
    assert tuple(parsed[0]) == CSV_COLUMNS and len(parsed) == 1 + len(rows)
    first = dict(zip(CSV_COLUMNS, parsed[1], strict=True))
    assert first["answered_at"] == "2026-11-23T09:00:00Z"
    assert (first["survey"], first["survey_version"], first["value"]) == ("nps", "1", "10")
    assert first["number"] == "'+38761000111" and first["segment"] == "active"
    why = dict(zip(CSV_COLUMNS, parsed[7], strict=True))
    assert (why["question_type"], why["value"], why["recording"]) == (
        "recording",
        "",
        "survey-call-contact:5-why",
    )
    last = dict(zip(CSV_COLUMNS, parsed[-1], strict=True))
    assert last["value"] == 'late, "again"\nand again'
    assert last["client_name"] == "'=cmd|' /C calc'!A0"
    assert last["question_type"] == ""  # not in the definition


# ---- SVG ---------------------------------------------------------------------------------


def test_chart_is_well_formed_svg_with_the_bars_counts_and_colours() -> None:
    report = build_report(results(SIX))
    root = ET.fromstring(chart_svg(report))
    assert root.tag == f"{SVG}svg"
    bars = [r for r in root.iter(f"{SVG}rect") if "bar" in r.get("class", "").split()]
    assert [int(b.get("data-count", "-1")) for b in bars] == report.histogram
    assert [b.get("fill") for b in bars] == [DETRACTOR] * 7 + [PASSIVE] * 2 + [PROMOTER] * 2
    counts = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "count"]
    assert counts == [str(n) for n in report.histogram]
    periods = [g.get("data-period") for g in root.iter(f"{SVG}g") if g.get("class") == "period"]
    assert periods == ["2026-11", "2026-12"]
    # Each period's whisker spans its interval: three lines and the point.
    first = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "period")
    assert len(first.findall(f"{SVG}line")) == 3 and first.find(f"{SVG}circle") is not None


def test_chart_escapes_names_and_keeps_many_periods_readable() -> None:
    answers = [
        row(f"contact:{i}", "recommend", i % 11, at=T0 + timedelta(days=i)) for i in range(40)
    ]
    res = results(answers)
    res = SurveyResults(
        query=ResultsQuery('<script>alert("x")</script> & co'),
        versions=res.versions,
        nps_questions={1: "recommend"},
        questions=res.questions,
        calls=(),
        answers=res.answers,
        contacts=40,
    )
    svg = chart_svg(build_report(res, "day"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    root = ET.fromstring(svg)
    assert root.findtext(f"{SVG}title", "").startswith('<script>alert("x")</script> & co')
    periods = [g for g in root.iter(f"{SVG}g") if g.get("class") == "period"]
    assert len(periods) == 40
    labels = [t.text for t in root.iter(f"{SVG}text") if (t.text or "").startswith("2026-")]
    assert 0 < len(labels) <= 14


def test_only_supervisors_and_admins_view_reports() -> None:
    from web.auth import Action, may

    assert may("supervisor", Action.VIEW_REPORTS) and may("admin", Action.VIEW_REPORTS)
    assert not may("agent", Action.VIEW_REPORTS) and not may("manager", Action.VIEW_REPORTS)
