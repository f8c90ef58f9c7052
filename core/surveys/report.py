"""Over 500 lines: one report model with its figures, CSV and SVG rendering.

Survey results: what the stored answers and survey calls say. Pure: the rows come from
``models/survey_results.py``; this module decides what they mean and how they are shown.

* NPS overall, per segment, per survey version and per period (``core.surveys.nps``), the 0-10
  histogram, the response and completion rates, the answers per question;
* the figures as JSON (``SurveyReport.to_json``), as a text table (``format_table``) and as a
  dependency-free SVG chart (``chart_svg``); every answer row as CSV (``answers_csv``).

One respondent counts once: a campaign contact, however many times they were dialled, or one
post-call survey offer (its call). Their last survey call with a final state gives the rates,
as ``core.surveys.nps.rates`` expects, and their last answer to a question the NPS and the
distributions. The CSV keeps every stored row.

Dates given as YYYY-MM-DD are local days in ``REPORT_TIMEZONE`` (the periods' zone too); a
survey call belongs to the window its ``started_at`` falls in, with all its answers.
"""

from __future__ import annotations

import csv
import html
import io
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, get_args
from zoneinfo import ZoneInfo

from core.errors import DomainError
from core.surveys.interpreter import FINAL, Answer, SurveyStatus
from core.surveys.model import NPS_MAX
from core.surveys.nps import (
    DETRACTOR_MAX,
    MIN_RELIABLE,
    PROMOTER_MIN,
    NPSResult,
    Period,
    ScoredResponse,
    SurveyRates,
    distribution,
    nps,
    nps_by,
    nps_histogram,
    period_of,
    rates,
)

REPORT_TIMEZONE = "Europe/Sarajevo"  # the call centre's local time (period_of's default)
POSTCALL = "postcall"  # the segment of a survey after a call: there is no campaign contact
NO_SEGMENT = "none"  # a campaign contact selected without a segment
PERIODS: tuple[Period, ...] = get_args(Period)
MAX_NAME = 100  # surveys.name and campaigns.name are String(100)
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ReportError(DomainError):
    """A report that cannot be made as asked: a stable ``error_id`` and an HTTP status."""

    def __init__(self, error_id: str, message: str, status: int = 400) -> None:
        super().__init__(message, error_id=error_id, status=status)


# ---- what the adapter reads ---------------------------------------------------------------


@dataclass(frozen=True)
class ResultsQuery:
    """Which results: a survey's versions (all, or one), one of its campaigns or all of them
    with its post-call surveys, and survey calls started in [since, until)."""

    survey: str
    version: int | None = None
    campaign: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class SurveyCallRow:
    """A survey call and whose it was (``respondent``: "contact:<id>" or "call:<id>")."""

    call_id: str
    respondent: str
    started_at: datetime
    status: str | None  # calls.survey_status; None before the survey started


@dataclass(frozen=True)
class AnswerRow:
    """One ``survey_answers`` row with what it links to: the CSV's row."""

    answered_at: datetime
    survey: str
    survey_version: int
    call_id: str
    respondent: str
    client_id: int | None
    client_external_id: str | None
    client_name: str | None
    number: str | None
    segment: str
    campaign: str | None
    question_key: str
    question_type: str | None  # None: not in its version's definition
    value_int: int | None
    value_text: str | None
    recording: str | None

    @property
    def answer(self) -> Answer:
        return Answer(self.question_key, self.value_int, self.value_text, self.recording)


@dataclass(frozen=True)
class SurveyResults:
    query: ResultsQuery
    versions: tuple[int, ...]
    nps_questions: Mapping[int, str]  # version -> its first NPS question
    questions: Mapping[str, str]  # question key -> type, in the definitions' order
    calls: tuple[SurveyCallRow, ...]
    answers: tuple[AnswerRow, ...]
    contacts: int  # attempted contacts plus post-call survey offers


# ---- reading the request ------------------------------------------------------------------


def parse_period(text: str) -> Period:
    for period in PERIODS:
        if text == period:
            return period
    raise ReportError("bad_period", f"period must be day, week or month, not {text[:20]!r}")


def parse_day(text: str, what: str) -> date:
    if not _DAY.match(text):
        raise ReportError("bad_date", f"{what} must be a date as YYYY-MM-DD, not {text[:20]!r}")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ReportError("bad_date", f"{what}: {text} is not a date ({exc})") from exc


def report_window(
    since: str | None, until: str | None, timezone: str = REPORT_TIMEZONE
) -> tuple[datetime | None, datetime | None]:
    """Local days, both included, as [start, end) instants."""
    zone = ZoneInfo(timezone)
    start = parse_day(since, "since") if since else None
    last = parse_day(until, "until") if until else None
    if start and last and start > last:
        raise ReportError("bad_date", f"since {start} is after until {last}")
    try:
        return (
            datetime.combine(start, time(), zone).astimezone(UTC) if start else None,
            datetime.combine(last + timedelta(days=1), time(), zone).astimezone(UTC)
            if last
            else None,
        )
    except OverflowError as exc:  # 0001-01-01 or 9999-12-31: off the calendar once shifted
        raise ReportError("bad_date", "dates must be within years 0002 to 9998") from exc


def parse_request(
    survey: str, params: Mapping[str, str], timezone: str = REPORT_TIMEZONE
) -> tuple[ResultsQuery, Period]:
    """The query and period from the CLI's options or the web's query parameters (version,
    campaign, period, since, until; empty means not given)."""
    if not 0 < len(survey) <= MAX_NAME:
        raise ReportError("unknown_survey", f"no survey {survey[:MAX_NAME]!r}", 404)
    version: int | None = None
    if params.get("version"):
        text = params["version"]
        if not re.fullmatch(r"[0-9]{1,9}", text) or int(text) == 0:
            raise ReportError("bad_version", f"version must be a positive number, not {text!r}")
        version = int(text)
    campaign = params.get("campaign") or None
    if campaign is not None and len(campaign) > MAX_NAME:
        raise ReportError("unknown_campaign", "no campaign by that name", 404)
    since, until = report_window(params.get("since") or None, params.get("until") or None, timezone)
    period = parse_period(params.get("period") or "month")
    return ResultsQuery(survey, version, campaign, since, until), period


def attempted_between(
    attempts: int,
    history: Iterable[Mapping[str, Any]],
    since: datetime | None,
    until: datetime | None,
) -> bool:
    """Whether a campaign contact was dialled (in [since, until) when given), from
    ``campaign_contacts.attempts`` and ``attempt_history``; an unreadable ``at`` is skipped."""
    entries = list(history)
    if since is None and until is None:
        return attempts > 0 or bool(entries)
    for entry in entries:
        try:
            at = datetime.fromisoformat(str(entry.get("at")))
        except ValueError:
            continue
        if at.tzinfo is None:
            continue
        if (since is None or at >= since) and (until is None or at < until):
            return True
    return False


# ---- the figures --------------------------------------------------------------------------


@dataclass(frozen=True)
class SurveyReport:
    survey: str
    versions: tuple[int, ...]
    campaign: str | None
    since: datetime | None
    until: datetime | None
    period: Period
    timezone: str
    nps_question: str | None  # the newest version's
    overall: NPSResult
    by_segment: dict[str, NPSResult]
    by_version: dict[int, NPSResult]
    by_period: dict[str, NPSResult]
    histogram: list[int]
    rates: SurveyRates
    questions: dict[str, str]  # key -> type
    distribution: dict[str, dict[int | str, int]]
    respondents: int  # people with at least one answer
    answer_rows: int

    def to_json(self) -> dict[str, Any]:
        """The figures as JSON-ready data (rounded as people read them)."""
        return {
            "survey": self.survey,
            "versions": list(self.versions),
            "campaign": self.campaign,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "period": self.period,
            "timezone": self.timezone,
            "nps_question": self.nps_question,
            "nps": nps_json(self.overall),
            "by_segment": {k: nps_json(v) for k, v in self.by_segment.items()},
            "by_version": {str(k): nps_json(v) for k, v in self.by_version.items()},
            "by_period": {k: nps_json(v) for k, v in self.by_period.items()},
            "histogram": self.histogram,
            "rates": rates_json(self.rates),
            "questions": [
                {
                    "key": key,
                    "type": self.questions.get(key),
                    "answers": [{"value": v, "count": n} for v, n in counts.items()],
                }
                for key, counts in self.distribution.items()
            ],
            "respondents": self.respondents,
            "answer_rows": self.answer_rows,
        }


def _round(x: float | None, digits: int = 1) -> float | None:
    return None if x is None else round(x, digits)


def nps_json(result: NPSResult) -> dict[str, Any]:
    return {
        "responses": result.responses,
        "promoters": result.promoters,
        "passives": result.passives,
        "detractors": result.detractors,
        "nps": _round(result.score),
        "ci_low": _round(result.ci_low),
        "ci_high": _round(result.ci_high),
        "reliable": result.reliable,
    }


def rates_json(r: SurveyRates) -> dict[str, Any]:
    return {
        "contacts": r.contacts,
        "reached": r.reached,
        "started": r.started,
        "completed": r.completed,
        "partial": r.partial,
        "refused": r.refused,
        "no_consent": r.no_consent,
        "response_rate": _round(r.response_rate, 4),
        "completion_rate": _round(r.completion_rate, 4),
        "contact_rate": _round(r.contact_rate, 4),
    }


def latest_answers(rows: Iterable[AnswerRow]) -> list[AnswerRow]:
    """Each respondent's last answer to each question."""
    last: dict[tuple[str, str], AnswerRow] = {}
    for row in rows:
        key = (row.respondent, row.question_key)
        kept = last.get(key)
        if kept is None or (row.answered_at, row.call_id) > (kept.answered_at, kept.call_id):
            last[key] = row
    return sorted(last.values(), key=lambda r: (r.answered_at, r.call_id, r.question_key))


def nps_answers(results: SurveyResults) -> list[AnswerRow]:
    """One NPS answer per respondent: their last answer to their version's NPS question (a
    value outside 0-10 is not a score and is left out)."""
    last: dict[str, AnswerRow] = {}
    for row in results.answers:
        if row.question_key != results.nps_questions.get(row.survey_version):
            continue
        if row.value_int is None or not 0 <= row.value_int <= NPS_MAX:
            continue
        kept = last.get(row.respondent)
        if kept is None or (row.answered_at, row.call_id) > (kept.answered_at, kept.call_id):
            last[row.respondent] = row
    return sorted(last.values(), key=lambda r: (r.answered_at, r.call_id))


def scored_responses(results: SurveyResults) -> list[ScoredResponse]:
    return [
        ScoredResponse(results.query.survey, r.value_int, r.answered_at, r.segment)
        for r in nps_answers(results)
        if r.value_int is not None
    ]


def final_outcomes(calls: Iterable[SurveyCallRow]) -> list[SurveyStatus]:
    """Each respondent's last survey call that reached a final state."""
    last: dict[str, SurveyCallRow] = {}
    for call in calls:
        if call.status not in FINAL:
            continue  # not started, still running, or a state this version does not know
        kept = last.get(call.respondent)
        if kept is None or (call.started_at, call.call_id) > (kept.started_at, kept.call_id):
            last[call.respondent] = call
    return [SurveyStatus(c.status) for c in last.values() if c.status is not None]


def _sorted_nps(groups: Mapping[Any, NPSResult]) -> dict[Any, NPSResult]:
    return {k: groups[k] for k in sorted(groups)}


def build_report(
    results: SurveyResults, period: Period = "month", timezone: str = REPORT_TIMEZONE
) -> SurveyReport:
    responses = scored_responses(results)
    by_version: dict[int, list[int]] = {}
    for row in nps_answers(results):
        if row.value_int is not None:
            by_version.setdefault(row.survey_version, []).append(row.value_int)
    outcomes = final_outcomes(results.calls)
    # The adapter counts every respondent among the contacts; max() keeps a row written out
    # of order (a call linked to a contact after the count) from failing the whole report.
    survey_rates = rates(max(results.contacts, len(outcomes)), outcomes)
    answered = latest_answers(results.answers)
    dist = distribution(r.answer for r in answered)
    order = list(results.questions) + sorted(set(dist) - set(results.questions))
    newest = max(results.versions) if results.versions else None
    return SurveyReport(
        survey=results.query.survey,
        versions=results.versions,
        campaign=results.query.campaign,
        since=results.query.since,
        until=results.query.until,
        period=period,
        timezone=timezone,
        nps_question=results.nps_questions.get(newest) if newest is not None else None,
        overall=nps(r.score for r in responses),
        by_segment=_sorted_nps(nps_by(responses, lambda r: r.segment or NO_SEGMENT)),
        by_version=_sorted_nps({v: nps(s) for v, s in by_version.items()}),
        by_period=_sorted_nps(
            nps_by(responses, lambda r: period_of(r.answered_at, period, timezone))
        ),
        histogram=nps_histogram(r.score for r in responses),
        rates=survey_rates,
        questions={k: results.questions.get(k, "") for k in order},
        distribution={k: dist[k] for k in order if k in dist},
        respondents=len({a.respondent for a in answered}),
        answer_rows=len(results.answers),
    )


# ---- text ---------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def nps_text(result: NPSResult) -> str:
    if result.score is None or result.ci_low is None or result.ci_high is None:
        return "no answers"
    return f"{result.score:.1f} (95% CI {result.ci_low:.1f} to {result.ci_high:.1f})"


def _nps_rows(title: str, groups: Mapping[Any, NPSResult]) -> list[str]:
    if not groups:
        return []
    width = max(len(title), *(len(str(k)) for k in groups))
    lines = [
        "",
        f"{title:<{width}}  {'n':>5} {'prom':>5} {'pass':>5} {'det':>5}  {'NPS':>6}  95% CI",
    ]
    for key, r in groups.items():
        ci = f"{r.ci_low:.1f} to {r.ci_high:.1f}" if r.ci_low is not None else ""
        score = f"{r.score:.1f}" if r.score is not None else "–"
        lines.append(
            f"{key!s:<{width}}  {r.responses:>5} {r.promoters:>5} {r.passives:>5} "
            f"{r.detractors:>5}  {score:>6}  {ci}"
        )
    return lines


def format_table(report: SurveyReport) -> str:
    """The figures for people at a terminal."""
    scope = [f"survey {report.survey} (version {', '.join(map(str, report.versions))})"]
    if report.campaign:
        scope.append(f"campaign {report.campaign}")
    if report.since or report.until:
        zone = ZoneInfo(report.timezone)
        first = report.since.astimezone(zone).date().isoformat() if report.since else "…"
        last = (
            (report.until.astimezone(zone) - timedelta(days=1)).date().isoformat()
            if report.until
            else "…"
        )
        scope.append(f"{first} to {last}")
    o, r = report.overall, report.rates
    lines = [" · ".join(scope), ""]
    lines.append(f"NPS ({report.nps_question or 'no NPS question'}): {nps_text(o)}")
    lines.append(
        f"  responses {o.responses}: promoters {o.promoters}, passives {o.passives}, "
        f"detractors {o.detractors}"
        + ("" if o.reliable or not o.responses else f" (fewer than {MIN_RELIABLE}: indicative)")
    )
    lines += [
        "",
        f"contacts {r.contacts}, reached {r.reached} ({_pct(r.contact_rate)}), "
        f"took part {r.started} (response rate {_pct(r.response_rate)}), "
        f"completed {r.completed} (completion rate {_pct(r.completion_rate)})",
        f"partial {r.partial}, refused {r.refused}, no consent {r.no_consent}",
    ]
    lines += _nps_rows("segment", report.by_segment)
    if len(report.by_version) > 1:
        lines += _nps_rows("version", report.by_version)
    lines += _nps_rows(report.period, report.by_period)
    if report.distribution:
        lines += ["", "answers per question"]
        for key, counts in report.distribution.items():
            values = "  ".join(f"{v}: {n}" for v, n in counts.items())
            lines.append(f"  {key} ({report.questions.get(key) or '?'}): {values}")
    return "\n".join(lines) + "\n"


# ---- CSV ----------------------------------------------------------------------------------

CSV_COLUMNS = (
    "answered_at",
    "survey",
    "survey_version",
    "call_id",
    "client_id",
    "client_external_id",
    "client_name",
    "number",
    "segment",
    "campaign",
    "question_key",
    "question_type",
    "value",
    "recording",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str | int | None) -> str | int:
    """A cell a spreadsheet shows as text: one starting like a formula (=, +, -, @, tab, CR)
    gets a leading quote, since client names and notes come from outside. Numbers stay
    numbers; an E.164 number therefore reads '+387…."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def answers_csv(rows: Iterable[AnswerRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        value: str | int | None = r.value_int if r.value_int is not None else r.value_text
        cells: tuple[str | int | None, ...] = (
            _utc(r.answered_at),
            r.survey,
            r.survey_version,
            r.call_id,
            r.client_id,
            r.client_external_id,
            r.client_name,
            r.number,
            r.segment,
            r.campaign,
            r.question_key,
            r.question_type,
            value,
            r.recording,
        )
        writer.writerow([csv_cell(c) for c in cells])
    return out.getvalue()


# ---- SVG ----------------------------------------------------------------------------------

WIDTH = 720
LEFT, RIGHT = 56, 700
DETRACTOR, PASSIVE, PROMOTER = "#c62828", "#8d8d8d", "#2e7d32"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _text(x: float, y: float, text: object, **attrs: str | float) -> str:
    # class_ for "class"; font_size for "font-size"
    extra = "".join(f' {k.rstrip("_").replace("_", "-")}="{_e(v)}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{_e(text)}</text>'


def score_group(score: int) -> str:
    if score <= DETRACTOR_MAX:
        return "detractor"
    return "promoter" if score >= PROMOTER_MIN else "passive"


def score_colour(score: int) -> str:
    return {"detractor": DETRACTOR, "passive": PASSIVE, "promoter": PROMOTER}[score_group(score)]


# The chart's words in English (`centrala survey report --svg`); the report page passes its
# language's, the same keys in web/translations (test_i18n holds en.json to these).
CHART_ENGLISH: Mapping[str, str] = {
    "chart.title": "{survey}: NPS {nps}",
    "chart.nps": "{score} (95% CI {low} to {high})",
    "chart.no_answers": "no answers",
    "chart.histogram": "Answers to {question}, 0-10 (n={responses})",
    "chart.bar": "{score}: {count} answers",
    "chart.detractors": "detractors 0-6",
    "chart.passives": "passives 7-8",
    "chart.promoters": "promoters 9-10",
    "chart.by_period": "NPS by {period} with its 95% interval",
    "chart.no_nps": "no NPS answers",
    "chart.tip": "{period}: NPS {score} ({low} to {high}), n={responses}",
}


def _english(key: str, /, **fields: object) -> str:
    return CHART_ENGLISH[key].format(**fields)


def _one_place(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


@dataclass(frozen=True)
class ChartWords:
    """How the chart speaks: ``say(key, **fields)`` gives a text, ``number`` writes a figure
    (12.5 or 12,5), ``period`` names day, week or month."""

    say: Callable[..., str] = _english
    number: Callable[[float | None], str] = _one_place
    period: Callable[[str], str] = field(default=str)


def _histogram_svg(report: SurveyReport, top: float, words: ChartWords) -> list[str]:
    height = 170.0
    base = top + 40 + height
    slot = (RIGHT - LEFT) / len(report.histogram)
    most = max(report.histogram) or 1
    question = report.nps_question or "NPS"
    parts = [
        _text(
            LEFT,
            top + 18,
            words.say("chart.histogram", question=question, responses=report.overall.responses),
            font_weight="bold",
            font_size=15,
        ),
        f'<line x1="{LEFT}" y1="{base}" x2="{RIGHT}" y2="{base}" stroke="#444"/>',
    ]
    for score, count in enumerate(report.histogram):
        h = height * count / most
        x = LEFT + slot * score + slot * 0.15
        group = score_group(score)
        parts.append(
            f'<rect class="bar {group}" data-score="{score}" data-count="{count}" '
            f'x="{x:.1f}" y="{base - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
            f'fill="{score_colour(score)}">'
            f"<title>{_e(words.say('chart.bar', score=score, count=count))}</title></rect>"
        )
        centre = LEFT + slot * (score + 0.5)
        parts.append(_text(centre, base - h - 4, count, text_anchor="middle", class_="count"))
        parts.append(_text(centre, base + 16, score, text_anchor="middle"))
    legend_y = base + 36
    for i, (label, colour) in enumerate(
        [
            (words.say("chart.detractors"), DETRACTOR),
            (words.say("chart.passives"), PASSIVE),
            (words.say("chart.promoters"), PROMOTER),
        ]
    ):
        x = LEFT + i * 170
        parts.append(f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" fill="{colour}"/>')
        parts.append(_text(x + 18, legend_y, label))
    return parts


def _period_svg(report: SurveyReport, top: float, words: ChartWords) -> list[str]:
    height = 200.0
    y_top = top + 40

    def y(score: float) -> float:
        return y_top + height * (100 - score) / 200

    parts = [
        _text(
            LEFT,
            top + 18,
            words.say("chart.by_period", period=words.period(report.period)),
            font_weight="bold",
            font_size=15,
        ),
    ]
    for tick in (-100, -50, 0, 50, 100):
        parts.append(
            f'<line x1="{LEFT}" y1="{y(tick):.1f}" x2="{RIGHT}" y2="{y(tick):.1f}" '
            f'stroke="{"#444" if tick == 0 else "#ddd"}"/>'
        )
        parts.append(_text(LEFT - 6, y(tick) + 4, tick, text_anchor="end"))
    periods = [(k, r) for k, r in report.by_period.items() if r.score is not None]
    if not periods:
        no_nps = words.say("chart.no_nps")
        parts.append(_text((LEFT + RIGHT) / 2, y(0) - 8, no_nps, text_anchor="middle"))
        return parts
    slot = (RIGHT - LEFT) / len(periods)
    every = math.ceil(len(periods) / 12)  # at most 12 labels along the axis
    points: list[str] = []
    marks: list[str] = []
    for i, (key, r) in enumerate(periods):
        assert r.score is not None and r.ci_low is not None and r.ci_high is not None
        x, low, high, mid = LEFT + slot * (i + 0.5), y(r.ci_low), y(r.ci_high), y(r.score)
        points.append(f"{x:.1f},{mid:.1f}")
        tip = words.say(
            "chart.tip",
            period=key,
            score=words.number(r.score),
            low=words.number(r.ci_low),
            high=words.number(r.ci_high),
            responses=r.responses,
        )
        marks.append(
            f'<g class="period" data-period="{_e(key)}" data-nps="{r.score:.1f}">'
            f"<title>{_e(tip)}</title>"
            f'<line x1="{x:.1f}" y1="{low:.1f}" x2="{x:.1f}" y2="{high:.1f}" stroke="#1d3557"/>'
            f'<line x1="{x - 5:.1f}" y1="{low:.1f}" x2="{x + 5:.1f}" y2="{low:.1f}" '
            f'stroke="#1d3557"/>'
            f'<line x1="{x - 5:.1f}" y1="{high:.1f}" x2="{x + 5:.1f}" y2="{high:.1f}" '
            f'stroke="#1d3557"/>'
            f'<circle cx="{x:.1f}" cy="{mid:.1f}" r="4" fill="#1d3557"/></g>'
        )
        if len(periods) <= 12:
            marks.append(_text(x + 7, mid - 6, f"{r.score:.0f}", font_size=12))
        if i % every == 0:
            marks.append(_text(x, y_top + height + 18, key, text_anchor="middle", font_size=12))
    line = f'<polyline points="{" ".join(points)}" fill="none" stroke="#457b9d"/>'
    return [*parts, line, *marks]


def chart_svg(report: SurveyReport, words: ChartWords | None = None) -> str:
    """The histogram of scores 0-10 (detractors red, passives grey, promoters green) above the
    NPS per period with its interval, as one standalone SVG document (no scripts, no external
    references; every text escaped), in ``words``' language (English by default)."""
    words = words or ChartWords()
    height = 580
    o = report.overall
    if o.score is None or o.ci_low is None or o.ci_high is None:
        nps = words.say("chart.no_answers")
    else:
        low, high = words.number(o.ci_low), words.number(o.ci_high)
        nps = words.say("chart.nps", score=words.number(o.score), low=low, high=high)
    title = words.say("chart.title", survey=report.survey, nps=nps)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{_e(title)}" '
        f'font-family="system-ui, sans-serif" font-size="13">',
        f"<title>{_e(title)}</title>",
        f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>',
        *_histogram_svg(report, 0, words),
        *_period_svg(report, 290, words),
        "</svg>",
    ]
    return "\n".join(parts) + "\n"
