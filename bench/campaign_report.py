"""How long the campaigns report takes over many calls, on SQLite and PostgreSQL.

    python bench/campaign_report.py --calls 1000000 --backend sqlite postgresql

Fills a fresh database with ``--calls`` campaign calls spread over twelve months: six agent
campaigns (sales, leads, procedural, callbacks; a realistic mix of connected, abandoned,
machine, no answer, busy and failed attempts, an AMD verdict on a third of the answered
ones, a disposition on each connected call) and two survey campaigns (their calls named by
their channel ids and their contacts' attempts, as the dialler leaves them), plus a quarter
as many other calls (inbound, no campaign's), which the report must pass over. Then builds
the report as `GET /api/reports/campaigns` does (``web.campaign_report_api.report_of``): one
month by day, one day by hour, the whole year by month, and one campaign's year by week.
Prints, per backend and report, the calls it read, the seconds, and the process's peak
memory.
PostgreSQL: ``CENTRALA_TEST_POSTGRES_URL`` (the tests' cluster), in a database of its own
that is emptied first."""

from __future__ import annotations

import asyncio
import itertools
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from bench.queue_report import main, measure
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

AGENT_CAMPAIGNS = (
    ("bench-sales-1", "sales"),
    ("bench-sales-2", "sales"),
    ("bench-leads", "leads"),
    ("bench-procedural", "procedural"),
    ("bench-callbacks-1", "callbacks"),
    ("bench-callbacks-2", "callbacks"),
)
SURVEY_CAMPAIGNS = ("bench-nps-1", "bench-nps-2")
AGENT_OUTCOMES = (  # (outcome, share)
    ("connected", 0.35),
    ("abandoned", 0.01),
    ("machine", 0.12),
    ("no_answer", 0.30),
    ("busy", 0.12),
    ("failed", 0.08),
    ("invalid_number", 0.02),
)
SURVEY_OUTCOMES = (
    ("completed", 0.30),
    ("partial", 0.08),
    ("refused", 0.05),
    ("machine", 0.12),
    ("no_answer", 0.30),
    ("busy", 0.10),
    ("failed", 0.05),
)
DISPOSITIONS = ("sale", "interested", "not_interested", "callback_queue", "wrong_number")
SURVEY_SHARE = 0.25  # of the campaign calls
OTHERS = 0.25  # inbound calls, no campaign's, per campaign call
CONTACTS_PER_SURVEY_CALLS = 3  # a survey contact's attempts: up to three calls each
SURVEY_CALL_NUMBERS = itertools.count()
YEAR_START = datetime(2026, 1, 1, tzinfo=ZoneInfo("Europe/Sarajevo"))
CHUNK = 10_000


def _when(rnd: random.Random) -> datetime:
    return YEAR_START.astimezone(UTC) + timedelta(seconds=rnd.uniform(0, 365 * 86400))


def _call(
    rnd: random.Random, started: datetime, outcome: str | None, **extra: Any
) -> dict[str, Any]:
    return {
        "id": str(uuid.UUID(int=rnd.getrandbits(128))),
        "channel_id": f"bench-{rnd.getrandbits(64):016x}",
        "direction": Direction.OUTBOUND,
        "handler": "ari",
        "started_at": started,
        "ended_at": started + timedelta(seconds=rnd.uniform(5, 300)),
        "outcome": outcome,
        "ivr_path": [],
        # Every row the same keys: one INSERT for the whole chunk.
        "campaign_id": None,
        "survey_id": None,
        "disposition": None,
        "queue": None,
        **extra,
    }


def chunk(
    n: int, rnd: random.Random, agents: list[int], surveys: list[tuple[int, int]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[int, str]]]:
    """``n`` campaign calls and as many other calls, the AMD events, and each survey call's
    (campaign, call id) for its contact."""
    calls, events, survey_calls = [], [], []
    agent_weights = [share for _, share in AGENT_OUTCOMES]
    survey_weights = [share for _, share in SURVEY_OUTCOMES]
    for _ in range(n):
        started = _when(rnd)
        if rnd.random() < SURVEY_SHARE:
            campaign_id, version = rnd.choice(surveys)
            outcome = rnd.choices(SURVEY_OUTCOMES, survey_weights)[0][0]
            # The survey dialler's call: its channel id names campaign, contact and attempt.
            contact, attempt = divmod(next(SURVEY_CALL_NUMBERS), CONTACTS_PER_SURVEY_CALLS)
            row = _call(
                rnd,
                started,
                outcome,
                survey_id=version,
                handler="campaign",
                channel_id=channel_id_for(campaign_id, contact, attempt + 1),
            )
            survey_calls.append((campaign_id, row["id"]))
        else:
            outcome = rnd.choices(AGENT_OUTCOMES, agent_weights)[0][0]
            disposition = rnd.choice(DISPOSITIONS) if outcome == "connected" else None
            row = _call(
                rnd, started, outcome, campaign_id=rnd.choice(agents), disposition=disposition
            )
        calls.append(row)
        answered = ("connected", "abandoned", "completed", "partial", "refused")
        if outcome == "machine" or (outcome in answered and rnd.random() < 0.33):
            status = "MACHINE" if outcome == "machine" else rnd.choice(("HUMAN", "NOTSURE"))
            events.append(
                {
                    "call_id": row["id"],
                    "at": started + timedelta(seconds=4),
                    "kind": "amd",
                    "data": {"status": status, "cause": "bench"},
                }
            )
        if rnd.random() < OTHERS:  # someone else's call: the report must pass over it
            calls.append(
                {
                    **_call(rnd, _when(rnd), "answered"),
                    "direction": Direction.INBOUND,
                    "queue": "general",
                }
            )
    return calls, events, survey_calls


async def fill(db: Database, calls: int) -> None:
    rnd = random.Random(7)
    async with db.engine.begin() as conn:
        survey_ids = []
        for n, _ in enumerate(SURVEY_CAMPAIGNS):
            result = await conn.execute(
                insert(Survey).values(name=f"bench-nps-{n}", version=1, definition={}, active=True)
            )
            survey_ids.append(int(result.inserted_primary_key[0]))
        agents = []
        for name, kind in AGENT_CAMPAIGNS:
            result = await conn.execute(
                insert(Campaign).values(
                    name=name,
                    kind=kind,
                    status=CampaignStatus.RUNNING,
                    settings={"queue": "general", "amd": True},
                )
            )
            agents.append(int(result.inserted_primary_key[0]))
        surveys = []
        for name, version in zip(SURVEY_CAMPAIGNS, survey_ids, strict=True):
            result = await conn.execute(
                insert(Campaign).values(
                    name=name, kind="survey", status=CampaignStatus.RUNNING, survey_id=version
                )
            )
            surveys.append((int(result.inserted_primary_key[0]), version))
        contact = 0
        for i in range(0, calls, CHUNK):  # made a chunk at a time: the peak is the report's
            rows, events, survey_calls = chunk(min(CHUNK, calls - i), rnd, agents, surveys)
            await conn.execute(insert(Call), rows)
            if events:
                await conn.execute(insert(CallEvent), events)
            contacts = []
            for j in range(0, len(survey_calls), CONTACTS_PER_SURVEY_CALLS):
                mine = survey_calls[j : j + CONTACTS_PER_SURVEY_CALLS]
                contact += 1
                contacts.append(
                    {
                        "campaign_id": mine[0][0],
                        "number": f"+3876283{contact:07d}",
                        "status": rnd.choice(("pending", "done", "done", "exhausted")),
                        "attempts": len(mine),
                        "last_call_id": mine[-1][1],
                        "attempt_history": [
                            {"attempt": k + 1, "outcome": "x", "at": "x", "call_id": call_id}
                            for k, (_, call_id) in enumerate(mine)
                        ],
                    }
                )
            if contacts:
                await conn.execute(insert(CampaignContact), contacts)


async def run(backend: str, calls: int, tmp: Path) -> list[str]:
    from web.campaign_report_api import report_of

    year = {"since": "2026-01-01", "until": "2026-12-31"}
    reports = [
        ("month by day", {"since": "2026-03-01", "until": "2026-03-31", "interval": "day"}),
        ("day by hour", {"since": "2026-03-29", "interval": "hour"}),
        ("year by month", {**year, "interval": "month"}),
        ("1 campaign, year", {**year, "interval": "week", "campaign": "bench-sales-1"}),
    ]

    def read(report: dict[str, Any]) -> int:
        return sum(c["total"]["dials"] for c in report["campaigns"])

    return await measure(backend, calls, tmp, fill, report_of, reports, read, "_bench_campaigns")


if __name__ == "__main__":
    sys.exit(asyncio.run(main(__doc__ or "", run)))
