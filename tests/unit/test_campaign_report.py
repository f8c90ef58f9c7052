"""The campaigns report's figures, pure (core/campaign_report.py): a known set of attempts of an
agent campaign and a survey campaign gives known figures per interval; the abandonment rate is
the dialler's (AMD's false positives counted as abandoned, the same as the wallboard's); AMD
verdicts; dispositions; contacts left, done and closed by reason; a day across the summer-time
change; a campaign without calls is still listed; the query's checks; the CSV."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.campaign_report import (
    CampaignCall,
    CampaignInfo,
    CampaignReportError,
    amd_verdict,
    build,
    csv_rows,
    parse_request,
)
from core.dialler import AbandonCount

ZONE = ZoneInfo("Europe/Sarajevo")
SALES = CampaignInfo(1, "winter-sales", "sales", amd_false_positive_rate=0.1)
SURVEY = CampaignInfo(2, "nps-december", "survey")
CALLBACKS = CampaignInfo(3, "callbacks-general", "callbacks")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


def attempt(
    campaign: CampaignInfo,
    at: str,
    outcome: str | None,
    amd: str | None = None,
    disposition: str | None = None,
) -> CampaignCall:
    return CampaignCall(campaign.id, local(at), outcome, amd, disposition)


CALLS = [
    attempt(SALES, "2026-12-01T09:05", "connected", "HUMAN", "sale"),
    attempt(SALES, "2026-12-01T09:10", "connected", "NOTSURE", "not_interested"),
    attempt(SALES, "2026-12-01T09:15", "connected", None, "sale"),
    attempt(SALES, "2026-12-01T09:20", "abandoned", "HUMAN"),
    attempt(SALES, "2026-12-01T09:25", "machine", "MACHINE"),
    attempt(SALES, "2026-12-01T09:30", "machine"),  # its amd event not written (yet)
    attempt(SALES, "2026-12-01T09:35", "no_answer"),
    attempt(SALES, "2026-12-01T09:40", "busy"),
    attempt(SALES, "2026-12-01T10:05", "failed"),
    attempt(SALES, "2026-12-01T10:10", "invalid_number"),
    attempt(SALES, "2026-12-01T10:15", None),  # still ringing
    attempt(SURVEY, "2026-12-01T09:01", "completed", "HUMAN"),
    attempt(SURVEY, "2026-12-01T09:02", "completed"),
    attempt(SURVEY, "2026-12-01T09:03", "partial"),
    attempt(SURVEY, "2026-12-01T09:04", "refused"),
    attempt(SURVEY, "2026-12-01T09:06", "no_consent"),
    attempt(SURVEY, "2026-12-01T09:07", "machine", "MACHINE"),
    attempt(SURVEY, "2026-12-01T09:08", "no_answer"),
    CampaignCall(99, local("2026-12-01T09:00"), "connected", None, "sale"),  # not asked for
]
CONTACTS = {
    SALES.id: {"pending": 4, "dialling": 1, "done": 3, "exhausted": 2, "skipped": 1},
    SURVEY.id: {"done": 5, "invalid": 1},
}


def report() -> dict[str, Any]:
    return build(CALLS, [SALES, SURVEY, CALLBACKS], CONTACTS, interval="hour", zone=ZONE)


def by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["campaign"]: c for c in result["campaigns"]}


def test_an_agent_campaigns_known_attempts_give_known_figures() -> None:
    sales = by_name(report())["winter-sales"]
    nine, ten = sales["intervals"]
    assert (nine["start"], nine["end"]) == (
        "2026-12-01T09:00:00+01:00",
        "2026-12-01T10:00:00+01:00",
    )
    assert {k: nine[k] for k in ("dials", "live_answers", "connected", "abandoned")} == {
        "dials": 8,
        "live_answers": 4,
        "connected": 3,
        "abandoned": 1,
    }
    assert (nine["amd_human"], nine["amd_machine"], nine["amd_not_sure"]) == (2, 2, 1)
    assert (nine["machine"], nine["no_answer"], nine["busy"], nine["failed"]) == (2, 1, 1, 0)
    # The dialler's rate: (1 abandoned + 2 machines x 0.1) / (4 live + 0.2).
    assert nine["abandon_rate"] == round(1.2 / 4.2, 4)
    rate = AbandonCount(live=4, abandoned=1, machines=2).rate(0.1)
    assert rate is not None and nine["abandon_rate"] == round(rate, 4)
    assert nine["dispositions"] == {"not_interested": 1, "sale": 2}
    assert (ten["dials"], ten["failed"], ten["invalid_number"], ten["in_progress"]) == (3, 1, 1, 1)
    assert ten["abandon_rate"] is None  # no live answer: no rate
    assert sales["total"]["dials"] == 11
    assert sales["contacts"] == {
        "left": 5,
        "pending": 4,
        "in_progress": 1,
        "done": 3,
        "closed": {"exhausted": 2, "invalid": 0, "skipped": 1},
        "total": 11,
    }


def test_a_survey_campaign_counts_surveys_and_has_no_abandonment() -> None:
    survey = by_name(report())["nps-december"]
    (nine,) = survey["intervals"]
    assert {k: nine[k] for k in ("dials", "live_answers", "completed", "partial", "refused")} == {
        "dials": 7,
        "live_answers": 5,
        "completed": 2,
        "partial": 1,
        "refused": 2,
    }
    assert (nine["connected"], nine["abandoned"], nine["abandon_rate"]) == (0, 0, None)
    assert (nine["amd_human"], nine["amd_machine"], nine["machine"], nine["no_answer"]) == (
        1,
        1,
        1,
        1,
    )
    assert survey["contacts"]["left"] == 0 and survey["contacts"]["closed"]["invalid"] == 1


def test_a_campaign_without_calls_is_listed_and_others_are_not() -> None:
    campaigns = by_name(report())
    assert sorted(campaigns) == ["callbacks-general", "nps-december", "winter-sales"]
    quiet = campaigns["callbacks-general"]
    assert quiet["intervals"] == [] and quiet["total"]["dials"] == 0
    assert quiet["contacts"]["total"] == 0


def test_the_summer_time_day_is_23_hours_and_weeks_and_months_are_local() -> None:
    calls = [
        attempt(SALES, "2026-03-29T01:30", "connected"),
        attempt(SALES, "2026-03-29T23:30", "busy"),
        attempt(SALES, "2026-03-30T00:30", "busy"),  # Monday: the next week
    ]
    days = build(calls, [SALES], interval="day", zone=ZONE)["campaigns"][0]["intervals"]
    assert [(d["start"], d["end"], d["dials"]) for d in days] == [
        ("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 2),
        ("2026-03-30T00:00:00+02:00", "2026-03-31T00:00:00+02:00", 1),
    ]
    weeks = build(calls, [SALES], interval="week", zone=ZONE)["campaigns"][0]["intervals"]
    assert [w["start"] for w in weeks] == ["2026-03-23T00:00:00+01:00", "2026-03-30T00:00:00+02:00"]
    (month,) = build(calls, [SALES], interval="month", zone=ZONE)["campaigns"][0]["intervals"]
    assert (month["start"], month["end"], month["dials"]) == (
        "2026-03-01T00:00:00+01:00",
        "2026-04-01T00:00:00+02:00",
        3,
    )


def test_amd_verdicts() -> None:
    assert [amd_verdict(s, None) for s in ("HUMAN", "MACHINE", "NOTSURE", "HANGUP")] == [
        "human",
        "machine",
        "not_sure",
        "not_sure",
    ]
    assert (amd_verdict(None, "machine"), amd_verdict(None, "connected")) == ("machine", None)


def test_the_query_is_checked() -> None:
    today = date(2026, 12, 1)
    query = parse_request({}, today, "Europe/Sarajevo")
    assert (query.interval, query.since, query.until - query.since) == (
        "day",
        local("2026-12-01T00:00"),
        timedelta(days=1),
    )
    asked = parse_request(
        {"since": "2026-11-01", "until": "2026-11-30", "interval": "week", "kind": "callbacks"},
        today,
        "Europe/Sarajevo",
    )
    assert (asked.interval, asked.kind, asked.campaign) == ("week", "callbacks", None)
    for params, error_id in (
        ({"interval": "15min"}, "bad_interval"),
        ({"interval": "year"}, "bad_interval"),
        ({"since": "2026-13-01"}, "bad_date"),
        ({"since": "2026-12-02", "until": "2026-12-01"}, "bad_date"),
        ({"since": "2025-01-01", "until": "2026-12-01"}, "too_long"),
        ({"kind": "robocall"}, "bad_filter"),
        ({"campaign": "x" * 101}, "bad_filter"),
        ({"queue": "general"}, "bad_request"),
    ):
        with pytest.raises(CampaignReportError) as caught:
            parse_request(params, today, "Europe/Sarajevo")
        assert (caught.value.error_id, caught.value.status) == (error_id, 400), params


def test_the_csv_has_a_row_per_campaign_and_interval_and_a_column_per_disposition() -> None:
    hostile = CampaignInfo(4, "=HYPERLINK(1)", "leads")
    result = build(
        [*CALLS, CampaignCall(4, local("2026-12-01T11:00"), "connected", None, "wrong_number")],
        [SALES, SURVEY, hostile],
        interval="hour",
        zone=ZONE,
    )
    rows = list(csv_rows(result))
    header = rows[0]
    assert header[:6] == ["campaign", "kind", "start", "end", "dials", "in_progress"]
    assert header[-3:] == [
        "disposition:not_interested",
        "disposition:sale",
        "disposition:wrong_number",
    ]
    assert [(r[0], r[2][11:16], r[4]) for r in rows[1:]] == [
        ("'=HYPERLINK(1)", "11:00", "1"),
        ("nps-december", "09:00", "7"),
        ("winter-sales", "09:00", "8"),
        ("winter-sales", "10:00", "3"),
    ]
    nine = dict(zip(header, rows[3], strict=True))
    assert (nine["disposition:sale"], nine["abandon_rate"]) == ("2", str(round(1.2 / 4.2, 4)))
    assert dict(zip(header, rows[2], strict=True))["abandon_rate"] == ""
