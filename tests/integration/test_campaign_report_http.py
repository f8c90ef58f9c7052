"""The campaigns report over HTTP (core/campaign_report.py behind web/campaign_report_api.py)
on SQLite and PostgreSQL, no `centrala serve`: a known day of an agent campaign's calls (with
AMD events and dispositions) and a survey campaign's calls (the survey dialler's, their
channel ids naming the campaign, beside a post-call survey of the same version that is no
campaign's) gives known figures per campaign and hour, and the contacts left; the CSV holds
the same rows; the filters (campaign, kind, days) work; supervisors read it, agents do not;
bad queries are refused with their error ids."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from core.surveys.campaign import channel_id_for
from models.tables import (
    Call,
    CallEvent,
    Campaign,
    CampaignContact,
    CampaignStatus,
    Direction,
    Survey,
)
from tests.conftest import Database
from tests.integration.flow_site import Site, flow_site
from tests.integration.test_queue_report_http import at, get

REPORT = "/api/reports/campaigns"


@pytest.fixture
async def site(database: Database) -> AsyncIterator[Site]:
    async with flow_site(database) as made:
        yield made


async def add_call(
    site: Site,
    started: datetime,
    outcome: str | None,
    *,
    campaign_id: int | None = None,
    survey_id: int | None = None,
    amd: str | None = None,
    disposition: str | None = None,
    channel: str | None = None,
) -> str:
    call_id = str(uuid.uuid4())
    async with site.database.sessions() as session, session.begin():
        session.add(
            Call(
                id=call_id,
                channel_id=channel or f"test-{call_id}",
                direction=Direction.OUTBOUND,
                # The survey dialler's calls (their channel id names the campaign); the agent
                # dialler's carry campaign_id.
                handler="campaign" if channel else "ari",
                called_number="+38762830001",
                started_at=started,
                ended_at=None if outcome is None else started + timedelta(seconds=30),
                outcome=outcome,
                disposition=disposition,
                campaign_id=campaign_id,
                survey_id=survey_id,
            )
        )
        if amd is not None:
            session.add(
                CallEvent(
                    call_id=call_id,
                    at=started + timedelta(seconds=3),
                    kind="amd",
                    data={"status": amd, "cause": "x"},
                )
            )
    return call_id


async def a_known_day(site: Site) -> None:
    async with site.database.sessions() as session, session.begin():
        survey = Survey(name="nscp-nps", version=1, definition={}, active=True)
        session.add(survey)
        await session.flush()
        sales = Campaign(
            name="nscp-sales",
            kind="sales",
            status=CampaignStatus.RUNNING,
            settings={"queue": "general", "amd": True, "amd_false_positive_rate": 0.1},
        )
        asking = Campaign(
            name="nscp-survey", kind="survey", status=CampaignStatus.RUNNING, survey_id=survey.id
        )
        quiet = Campaign(name="nscp-callbacks", kind="callbacks", settings={"queue": "general"})
        session.add_all([sales, asking, quiet])
        await session.flush()
        ids = sales.id, asking.id, survey.id
    sales_id, survey_campaign, version = ids
    nine = at("2026-12-01T09:00:00")
    for minutes, outcome, amd, disposition in (
        (1, "connected", "HUMAN", "sale"),
        (2, "connected", "NOTSURE", "not_interested"),
        (3, "abandoned", "HUMAN", None),
        (4, "machine", "MACHINE", None),
        (5, "no_answer", None, None),
        (6, "busy", None, None),
        (62, "failed", None, None),  # the next hour
        (63, None, None, None),  # still ringing
        (-600, "connected", "HUMAN", "sale"),  # the day before: not counted
    ):
        await add_call(
            site,
            nine + timedelta(minutes=minutes),
            outcome,
            campaign_id=sales_id,
            amd=amd,
            disposition=disposition,
        )
    surveyed = [
        await add_call(
            site,
            nine + timedelta(minutes=m),
            o,
            survey_id=version,
            channel=channel_id_for(survey_campaign, contact, attempt),
        )
        for m, o, contact, attempt in (
            (10, "completed", 1, 1),
            (11, "partial", 2, 2),
            (12, "no_answer", 2, 1),
            (13, "machine", 3, 1),
        )
    ]
    # A post-call survey of the same version: the info-line's call, no campaign's.
    await add_call(site, nine + timedelta(minutes=14), "completed", survey_id=version)
    async with site.database.sessions() as session, session.begin():
        for n, status in enumerate(("pending", "pending", "dialling", "done", "exhausted")):
            session.add(
                CampaignContact(campaign_id=sales_id, number=f"+3876283000{n}", status=status)
            )
        session.add_all(
            [
                CampaignContact(
                    campaign_id=survey_campaign,
                    number="+38762831001",
                    status="done",
                    attempts=1,
                    last_call_id=surveyed[0],
                ),
                CampaignContact(
                    campaign_id=survey_campaign,
                    number="+38762831002",
                    status="done",
                    attempts=2,
                    last_call_id=surveyed[1],
                    # the first attempt's call, named by the history only
                    attempt_history=[
                        {"attempt": 1, "outcome": "no_answer", "at": "x", "call_id": surveyed[2]}
                    ],
                ),
                CampaignContact(
                    campaign_id=survey_campaign,
                    number="+38762831003",
                    status="pending",
                    attempts=1,
                    last_call_id=surveyed[3],
                ),
            ]
        )


async def test_a_known_day_gives_known_figures_and_the_same_csv(site: Site) -> None:
    await a_known_day(site)
    status, report = await get(site, f"{REPORT}?since=2026-12-01&interval=hour")
    assert status == 200, report
    assert (report["since"], report["until"], report["interval"]) == (
        "2026-12-01T00:00:00+01:00",
        "2026-12-02T00:00:00+01:00",
        "hour",
    )
    campaigns = {c["campaign"]: c for c in report["campaigns"]}
    assert sorted(campaigns) == ["nscp-callbacks", "nscp-sales", "nscp-survey"]
    sales = campaigns["nscp-sales"]
    nine, ten = sales["intervals"]
    assert (nine["start"], ten["start"]) == (
        "2026-12-01T09:00:00+01:00",
        "2026-12-01T10:00:00+01:00",
    )
    assert {k: nine[k] for k in ("dials", "live_answers", "connected", "abandoned")} == {
        "dials": 6,
        "live_answers": 3,
        "connected": 2,
        "abandoned": 1,
    }
    assert (nine["amd_human"], nine["amd_machine"], nine["amd_not_sure"]) == (2, 1, 1)
    assert (nine["machine"], nine["no_answer"], nine["busy"]) == (1, 1, 1)
    assert nine["abandon_rate"] == round((1 + 0.1) / (3 + 0.1), 4)  # the dialler's, AMD 10%
    assert nine["dispositions"] == {"not_interested": 1, "sale": 1}
    assert (ten["dials"], ten["failed"], ten["in_progress"]) == (2, 1, 1)
    assert sales["total"]["dials"] == 8
    assert sales["contacts"] == {
        "left": 3,
        "pending": 2,
        "in_progress": 1,
        "done": 1,
        "closed": {"exhausted": 1, "invalid": 0, "skipped": 0},
        "total": 5,
    }
    survey = campaigns["nscp-survey"]
    (surveyed,) = survey["intervals"]
    assert {
        k: surveyed[k] for k in ("dials", "live_answers", "completed", "partial", "no_answer")
    } == {"dials": 4, "live_answers": 2, "completed": 1, "partial": 1, "no_answer": 1}
    assert (surveyed["machine"], surveyed["abandon_rate"]) == (1, None)
    assert survey["contacts"]["left"] == 1 and survey["contacts"]["done"] == 2
    assert campaigns["nscp-callbacks"]["intervals"] == []

    status, text = await get(site, f"{REPORT}.csv?since=2026-12-01&interval=hour")
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["campaign"], r["start"], r["dials"], r["live_answers"]) for r in rows] == [
        ("nscp-sales", "2026-12-01T09:00:00+01:00", "6", "3"),
        ("nscp-sales", "2026-12-01T10:00:00+01:00", "2", "0"),
        ("nscp-survey", "2026-12-01T09:00:00+01:00", "4", "2"),
    ]
    assert (rows[0]["disposition:sale"], rows[0]["abandon_rate"]) == (
        "1",
        str(nine["abandon_rate"]),
    )

    status, only = await get(site, f"{REPORT}?since=2026-11-30&until=2026-12-01&kind=survey")
    assert [(c["campaign"], c["total"]["dials"]) for c in only["campaigns"]] == [("nscp-survey", 4)]
    status, one = await get(site, f"{REPORT}?since=2026-11-30&until=2026-12-01&campaign=nscp-sales")
    ((day_before, day),) = [c["intervals"] for c in one["campaigns"]]
    assert (day_before["start"], day_before["dials"], day["dials"]) == (
        "2026-11-30T00:00:00+01:00",
        1,
        8,
    )


async def test_supervisors_read_it_agents_do_not_and_bad_queries_are_refused(
    site: Site,
) -> None:
    await a_known_day(site)
    supervisor = await site.desk_headers("supervisor")
    status, report = await get(site, "/desk/api/reports/campaigns?since=2026-12-01", supervisor)
    assert status == 200 and len(report["campaigns"]) == 3
    agent = await site.desk_headers("agent")
    for path in ("/desk/api/reports/campaigns", "/desk/api/reports/campaigns.csv"):
        status, body = await get(site, path, agent)
        assert (status, body["error_id"]) == (403, "forbidden")
    for query, expected in (
        ("interval=15min", (400, "bad_interval")),
        ("since=2026-02-30", (400, "bad_date")),
        ("since=2025-01-01&until=2026-12-31", (400, "too_long")),
        ("kind=robocall", (400, "bad_filter")),
        ("queue=general", (400, "bad_request")),
        ("campaign=nobody", (404, "unknown_campaign")),
    ):
        status, body = await get(site, f"{REPORT}?{query}")
        assert (status, body["error_id"]) == expected, query
    status, _ = await get(site, REPORT, {})
    assert status == 401
