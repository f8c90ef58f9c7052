"""Survey results read from real databases (SQLite and PostgreSQL): surveys, campaigns,
contacts, survey calls and answers seeded by hand, figures asserted exactly; the CSV, and
`centrala survey report` as operators run it."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from core.surveys.report import (
    CSV_COLUMNS,
    ReportError,
    ResultsQuery,
    answers_csv,
    build_report,
    parse_period,
)

from models.survey_results import load_results, survey_names
from models.tables import Call, Campaign, CampaignContact, Client, Direction, Survey, SurveyAnswer
from tests.conftest import Database

ROOT = Path(__file__).resolve().parents[2]
NPS_YAML = yaml.safe_load((ROOT / "surveys" / "nps.yaml").read_text(encoding="utf-8"))


def at(day: int, hour: int = 9, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


# Campaign contacts of version 1: (number, segment, [(call started, survey_status)], answers).
# Answers: question -> value (an int, or "rec" for a recording).
CONTACTS: list[tuple[str, str | None, list[tuple[datetime, str | None]], dict[str, Any]]] = [
    ("+38761000001", "active", [(at(23), "completed")], {"recommend": 10, "may_call_back": 1}),
    ("+38761000002", "active", [(at(23, 10), "completed")], {"recommend": 9}),
    ("+38761000003", "new", [(at(24), "completed")], {"recommend": 9, "may_call_back": 1}),
    ("+38761000004", "new", [(at(1, month=12), "partial")], {"recommend": 7}),
    (
        "+38761000005",
        "inactive",
        [(at(1, 10, month=12), "completed")],
        {"recommend": 3, "why": "rec", "may_call_back": 0},
    ),
    # No answer first (the survey never started), then refused.
    ("+38761000006", "inactive", [(at(23, 11), None), (at(2, month=12), "refused")], {}),
    ("+38761000007", "active", [], {}),  # on the list, never dialled
    ("+38761000008", None, [(at(25), None)], {}),  # dialled once, no answer
]


async def _call(
    session: Any, survey_id: int, started: datetime, status: str | None, **fields: Any
) -> Call:
    number = fields.get("called_number") or fields.get("caller_number")
    call = Call(
        channel_id=f"chan-{started.isoformat()}-{number}",
        handler="ari",
        started_at=started,
        survey_id=survey_id,
        survey_status=status,
        **{"direction": Direction.OUTBOUND, **fields},
    )
    session.add(call)
    await session.flush()
    return call


def _answers(
    survey_id: int, call: Call, client_id: int | None, answers: dict[str, Any]
) -> list[SurveyAnswer]:
    rows = []
    for minute, (key, value) in enumerate(answers.items()):
        rows.append(
            SurveyAnswer(
                survey_id=survey_id,
                call_id=call.id,
                client_id=client_id,
                question_key=key,
                value_int=value if isinstance(value, int) else None,
                recording=f"survey-{call.id}-{key}" if value == "rec" else None,
                answered_at=call.started_at.replace(minute=minute + 1),
            )
        )
    return rows


async def seed(database: Database) -> None:
    async with database.sessions() as session, session.begin():
        v1 = Survey(name="nps", version=1, definition=NPS_YAML, active=False)
        v2 = Survey(name="nps", version=2, definition=NPS_YAML, active=True)
        other = Survey(name="service", version=1, definition={"questions": {}}, active=True)
        session.add_all([v1, v2, other])
        await session.flush()
        nov = Campaign(name="nps-nov", kind="survey", survey_id=v1.id)
        dec = Campaign(name="nps-v2", kind="survey", survey_id=v2.id)
        session.add_all([nov, dec])
        await session.flush()
        for i, (number, segment, attempts, answers) in enumerate(CONTACTS, start=1):
            # Contact 1's name would run as a formula in a spreadsheet.
            name = '=HYPERLINK("http://evil.example","x")' if i == 1 else f"Client {i}"
            client = Client(external_id=f"C{i}", name=name)
            session.add(client)
            await session.flush()
            history, call = [], None
            for n, (started, status) in enumerate(attempts, start=1):
                call = await _call(
                    session, v1.id, started, status, called_number=number, client_id=client.id
                )
                outcome = status or "no_answer"
                history.append(
                    {
                        "attempt": n,
                        "outcome": outcome,
                        "at": started.isoformat(),
                        "call_id": call.id,
                    }
                )
            session.add(
                CampaignContact(
                    campaign_id=nov.id,
                    client_id=client.id,
                    number=number,
                    status="done" if answers or len(attempts) > 1 else "pending",
                    attempts=len(attempts),
                    last_call_id=call.id if call else None,
                    attempt_history=history,
                    segment=segment,
                )
            )
            if call is not None:
                session.add_all(_answers(v1.id, call, client.id, answers))
        # Post-call surveys after info-line calls: no campaign contact. The first at 23:30 UTC
        # on 30 November is 1 December in Sarajevo.
        caller = Client(external_id="P1", name="Caller")
        session.add(caller)
        await session.flush()
        post1 = await _call(
            session,
            v1.id,
            datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
            "completed",
            direction=Direction.INBOUND,
            caller_number="+38733111222",
            called_number="0800100200",
            client_id=caller.id,
        )
        session.add_all(_answers(v1.id, post1, None, {"recommend": 2}))
        await _call(
            session,
            v1.id,
            at(2, 12, month=12),
            "no_consent",
            direction=Direction.INBOUND,
            caller_number="+38733111333",
        )
        # Version 2: one contact, a promoter.
        c9 = CampaignContact(campaign_id=dec.id, number="+38761000009", attempts=1, segment="new")
        session.add(c9)
        call9 = await _call(session, v2.id, at(3, month=12), "completed", called_number=c9.number)
        c9.last_call_id = call9.id
        session.add_all(_answers(v2.id, call9, None, {"recommend": 10}))


def figures(nps: dict[str, Any]) -> tuple[int, int, int, int, float | None]:
    return (nps["responses"], nps["promoters"], nps["passives"], nps["detractors"], nps["nps"])


async def report_json(database: Database, period: str = "month", **query: Any) -> dict[str, Any]:
    results = await load_results(database.sessions, ResultsQuery("nps", **query))
    return build_report(results, parse_period(period)).to_json()


async def test_nps_of_one_version_with_counts_segments_and_rates(database: Database) -> None:
    await seed(database)
    report = await report_json(database, version=1)
    assert report["versions"] == [1] and report["nps_question"] == "recommend"
    # 10, 9, 9 | 7 | 3, 2: three promoters, one passive, two detractors.
    assert figures(report["nps"]) == (6, 3, 1, 2, 16.7)
    assert {k: figures(v) for k, v in report["by_segment"].items()} == {
        "active": (2, 2, 0, 0, 100.0),
        "inactive": (1, 0, 0, 1, -100.0),
        "new": (2, 1, 1, 0, 50.0),
        "postcall": (1, 0, 0, 1, -100.0),
    }
    assert {k: figures(v) for k, v in report["by_period"].items()} == {
        "2026-11": (3, 3, 0, 0, 100.0),
        "2026-12": (3, 0, 1, 2, -66.7),
    }
    # Contacts: 7 dialled of 8 listed, plus 2 post-call offers. Reached: 6 contacts + 2 callers.
    assert report["rates"] == {
        "contacts": 9,
        "reached": 8,
        "started": 6,
        "completed": 5,
        "partial": 1,
        "refused": 1,
        "no_consent": 1,
        "response_rate": round(6 / 9, 4),
        "completion_rate": round(5 / 6, 4),
        "contact_rate": round(8 / 9, 4),
    }
    assert report["histogram"] == [0, 0, 1, 1, 0, 0, 0, 1, 0, 2, 1]
    assert [(q["key"], q["type"], q["answers"]) for q in report["questions"]] == [
        (
            "recommend",
            "nps",
            [{"value": v, "count": n} for v, n in [(2, 1), (3, 1), (7, 1), (9, 2), (10, 1)]],
        ),
        ("why", "recording", [{"value": "recorded", "count": 1}]),
        ("may_call_back", "yes_no", [{"value": 0, "count": 1}, {"value": 1, "count": 2}]),
    ]
    assert report["answer_rows"] == 10


async def test_all_versions_and_one_campaign(database: Database) -> None:
    await seed(database)
    every = await report_json(database)
    assert every["versions"] == [1, 2]
    assert figures(every["nps"]) == (7, 4, 1, 2, 28.6)
    assert {k: figures(v)[4] for k, v in every["by_version"].items()} == {"1": 16.7, "2": 100.0}
    assert every["rates"]["contacts"] == 10 and every["rates"]["completed"] == 6

    nov = await report_json(database, campaign="nps-nov")
    assert figures(nov["nps"]) == (5, 3, 1, 1, 40.0)  # no post-call surveys, no version 2
    assert "postcall" not in nov["by_segment"]
    rates = nov["rates"]
    assert (rates["contacts"], rates["reached"], rates["started"], rates["completed"]) == (
        7,
        6,
        5,
        4,
    )
    assert rates["response_rate"] == round(5 / 7, 4) and rates["completion_rate"] == 0.8


async def test_since_until_are_local_days_of_the_survey_calls(database: Database) -> None:
    await seed(database)
    results = await load_results(
        database.sessions,
        ResultsQuery(
            "nps",
            version=1,
            since=datetime(2026, 11, 30, 23, tzinfo=UTC),  # 1 December in Sarajevo
        ),
    )
    report = build_report(results, "day").to_json()
    assert figures(report["nps"]) == (3, 0, 1, 2, -66.7)  # 7, 3 and the post-call 2
    assert list(report["by_period"]) == ["2026-12-01"]
    rates = report["rates"]
    # Contacts 4, 5, 6 (its second attempt) and both post-call offers.
    assert (rates["contacts"], rates["reached"], rates["completed"], rates["refused"]) == (
        5,
        5,
        2,
        1,
    )
    until = await report_json(database, version=1, until=datetime(2026, 11, 24, tzinfo=UTC))
    assert figures(until["nps"]) == (2, 2, 0, 0, 100.0)
    assert until["rates"]["contacts"] == 3  # contacts 1, 2 and 6's first attempt


async def test_csv_has_every_answer_with_its_links(database: Database) -> None:
    await seed(database)
    results = await load_results(database.sessions, ResultsQuery("nps"))
    rows = list(csv.reader(io.StringIO(answers_csv(results.answers))))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 1 + 11
    by_number = {(r[7], r[10]): dict(zip(CSV_COLUMNS, r, strict=True)) for r in rows[1:]}
    first = by_number["'+38761000001", "recommend"]  # the number is quoted: it starts with "+"
    assert first["client_name"] == '\'=HYPERLINK("http://evil.example","x")'
    assert (first["survey"], first["survey_version"], first["client_external_id"]) == (
        "nps",
        "1",
        "C1",
    )
    assert (first["segment"], first["campaign"], first["answered_at"]) == (
        "active",
        "nps-nov",
        "2026-11-23T09:01:00Z",
    )
    post = by_number[
        "'+38733111222", "recommend"
    ]  # inbound: the caller's number; client from the call
    assert (post["segment"], post["campaign"], post["client_external_id"]) == (
        "postcall",
        "",
        "P1",
    )
    assert (post["question_key"], post["question_type"], post["value"]) == ("recommend", "nps", "2")
    why = next(r for r in by_number.values() if r["question_key"] == "why")
    assert why["value"] == "" and why["recording"].startswith("survey-")
    assert {r["survey_version"] for r in by_number.values()} == {"1", "2"}


async def test_unknown_survey_version_and_campaign(database: Database) -> None:
    await seed(database)
    assert await survey_names(database.sessions) == ["nps", "service"]
    for query, error_id in [
        (ResultsQuery("nope"), "unknown_survey"),
        (ResultsQuery("nps", version=3), "unknown_survey"),
        (ResultsQuery("nps", campaign="nope"), "unknown_campaign"),
        (ResultsQuery("nps", version=2, campaign="nps-nov"), "unknown_campaign"),
    ]:
        with pytest.raises(ReportError) as err:
            await load_results(database.sessions, query)
        assert (err.value.error_id, err.value.status) == (error_id, 404)
    empty = await load_results(database.sessions, ResultsQuery("service"))
    report = build_report(empty).to_json()
    assert report["nps"]["responses"] == 0 and report["nps_question"] is None


def _centrala(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CENTRALA_DATABASE_URL": url, "CENTRALA_LOG_FORMAT": "console"}
    return subprocess.run(
        [sys.executable, "-m", "centrala.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


async def test_cli_report_table_json_csv_and_svg(database: Database, tmp_path: Path) -> None:
    await seed(database)
    csv_path, svg_path = tmp_path / "answers.csv", tmp_path / "chart.svg"
    table = await asyncio.to_thread(
        _centrala,
        database.url,
        "survey",
        "report",
        "nps",
        "--version",
        "1",
        "--csv",
        str(csv_path),
        "--svg",
        str(svg_path),
    )
    assert table.returncode == 0, table.stderr
    assert "NPS (recommend): 16.7 (95% CI" in table.stdout
    assert "response rate 66.7%" in table.stdout and "completion rate 83.3%" in table.stdout
    assert "10 answer rows written to" in table.stderr
    assert len(list(csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8"))))) == 11
    ET.fromstring(svg_path.read_text(encoding="utf-8"))

    as_json = await asyncio.to_thread(
        _centrala, database.url, "survey", "report", "nps", "--campaign", "nps-nov", "--json"
    )
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["nps"]["nps"] == 40.0

    for args, message in [
        (["nope"], "no survey 'nope'"),
        (["nps", "--since", "1.12.2026"], "since must be a date as YYYY-MM-DD"),
        (["nps", "--period", "year"], "Invalid value for '--period'"),
    ]:
        failed = await asyncio.to_thread(_centrala, database.url, "survey", "report", *args)
        assert failed.returncode != 0 and message in failed.stderr, failed.stderr
