"""The agents report over HTTP (core/agent_report.py behind web/agent_report_api.py) on SQLite
and PostgreSQL, no `centrala serve`: a known day of state rows, calls and hold events gives
known figures per agent, by day and by hour; the CSV holds the same rows; the day before is
not counted; a deactivated agent keeps their history; the agent and queue filters; the
autumn day has 25 hours; supervisors read it, agents do not; bad queries are refused."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from models.tables import (
    Agent,
    AgentRole,
    AgentState,
    Call,
    CallEvent,
    Direction,
    QueueMember,
)
from tests.conftest import Database
from tests.integration.flow_site import BEARER, Site, flow_site

ZONE = ZoneInfo("Europe/Sarajevo")
REPORT = "/api/reports/agents"
ANA, BOB = "nsag-ana", "nsag-bob"


@pytest.fixture
async def site(database: Database) -> AsyncIterator[Site]:
    async with flow_site(database) as made:
        async with database.sessions() as session, session.begin():
            session.add(
                Agent(
                    id=ANA,
                    name="Ana Test",
                    role=AgentRole.AGENT,
                    memberships=[QueueMember(queue_id="general")],
                )
            )
            session.add(Agent(id=BOB, name="Bob Test", role=AgentRole.AGENT))
        yield made


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


async def states(site: Site, agent: str, *changes: tuple[str, str, str | None]) -> None:
    async with site.database.sessions() as session, session.begin():
        for when, state, reason in changes:
            session.add(AgentState(agent_id=agent, at=at(when), state=state, reason=reason))


async def add_call(
    site: Site,
    agent: str,
    start: str,
    talk: float,
    *,
    outbound: bool = False,
    queue: str | None = None,
    disposition: str | None = None,
    hold: tuple[str, str] | None = None,
) -> None:
    begin = at(start)
    async with site.database.sessions() as session, session.begin():
        call = Call(
            channel_id=f"test-{uuid.uuid4()}",
            direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
            handler="ari",
            started_at=begin - timedelta(seconds=15),
            answered_at=begin if outbound else begin - timedelta(seconds=15),
            connected_at=None if outbound else begin,
            ended_at=begin + timedelta(seconds=talk),
            talk_seconds=talk,
            agent_id=agent,
            queue=queue,
            disposition=disposition,
            outcome="answered",
        )
        session.add(call)
        await session.flush()
        if hold is not None:
            for kind, when in zip(("held", "resumed"), hold, strict=True):
                session.add(CallEvent(call_id=call.id, at=at(when), kind=kind, data={}))


async def get(site: Site, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    resp = await site.client.get(path, headers=BEARER if headers is None else headers)
    body = await resp.json() if resp.content_type == "application/json" else await resp.text()
    return resp.status, body


async def a_known_day(site: Site) -> None:
    day = "2026-11-10T"
    await states(
        site,
        ANA,
        ("2026-11-09T07:00:00", "ready", None),  # the day before: not counted
        ("2026-11-09T15:00:00", "logged_out", None),
        (day + "08:00:00", "ready", None),
        (day + "08:15:00", "wrap_up", None),
        (day + "08:16:30", "ready", None),
        (day + "12:00:00", "paused", "lunch"),
        (day + "12:30:00", "ready", None),
        (day + "16:00:00", "logged_out", None),
    )
    await states(
        site, BOB, (day + "09:00:00", "ready", None), (day + "10:00:00", "logged_out", None)
    )
    await add_call(site, ANA, "2026-11-09T08:00:00", 100, queue="general")  # the day before
    await add_call(
        site,
        ANA,
        day + "08:10:00",
        300,
        queue="general",
        disposition="resolved",
        hold=(day + "08:12:00", day + "08:13:00"),
    )
    await add_call(site, BOB, day + "09:05:00", 120, outbound=True, disposition="sale")
    async with site.database.sessions() as session, session.begin():  # bob leaves
        await session.execute(update(Agent).where(Agent.id == BOB).values(active=False))


async def test_a_known_day_gives_known_figures_and_the_same_csv(site: Site) -> None:
    await a_known_day(site)
    status, report = await get(site, f"{REPORT}?since=2026-11-10&interval=day")
    assert status == 200, report
    assert (report["since"], report["until"], report["timezone"]) == (
        "2026-11-10T00:00:00+01:00",
        "2026-11-11T00:00:00+01:00",
        "Europe/Sarajevo",
    )
    agents = {a["agent"]: a for a in report["agents"]}
    assert sorted(agents) == [ANA, BOB]
    ana, bob = agents[ANA], agents[BOB]
    assert (ana["name"], bob["name"]) == ("Ana Test", "Bob Test")  # bob deactivated: kept
    (day,) = ana["intervals"]
    assert day == {**ana["total"], "start": day["start"], "end": day["end"]}
    assert day["logged_in"] == 8 * 3600
    assert (day["talk"], day["hold"], day["wrap_up"]) == (240, 60, 90)
    assert day["paused"] == 1800 and day["pause_by_reason"] == {"lunch": 1800}
    assert day["idle"] == 8 * 3600 - 1800 - 390
    assert (day["handled"], day["inbound"], day["outbound"]) == (1, 1, 0)
    assert day["average_handle"] == 390
    assert day["occupancy"] == round(390 / (8 * 3600 - 1800), 4)
    assert day["dispositions"] == {"resolved": 1}
    assert {k: bob["total"][k] for k in ("logged_in", "talk", "handled", "outbound")} == {
        "logged_in": 3600,
        "talk": 120,
        "handled": 1,
        "outbound": 1,
    }
    assert bob["total"]["occupancy"] == round(120 / 3600, 4)
    assert bob["total"]["dispositions"] == {"sale": 1}

    status, hours = await get(site, f"{REPORT}?since=2026-11-10&interval=hour&agent={ANA}")
    (only,) = hours["agents"]
    by_hour = {r["start"][11:16]: r for r in only["intervals"]}
    assert sorted(by_hour) == [f"{h:02d}:00" for h in range(8, 16)]
    assert (by_hour["08:00"]["talk"], by_hour["08:00"]["wrap_up"]) == (240, 90)
    assert by_hour["12:00"]["pause_by_reason"] == {"lunch": 1800}
    assert sum(r["logged_in"] for r in only["intervals"]) == 8 * 3600

    status, text = await get(site, f"{REPORT}.csv?since=2026-11-10&interval=day")
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["agent"], r["name"], r["logged_in"], r["handled"]) for r in rows] == [
        (ANA, "Ana Test", "28800.0", "1"),
        (BOB, "Bob Test", "3600.0", "1"),
    ]
    assert (rows[0]["pause:lunch"], rows[0]["disposition:resolved"]) == ("1800.0", "1")
    assert (rows[1]["pause:lunch"], rows[1]["disposition:sale"]) == ("0", "1")


async def test_the_queue_filter_keeps_its_members_and_its_calls(site: Site) -> None:
    await a_known_day(site)
    status, report = await get(site, f"{REPORT}?since=2026-11-10&interval=day&queue=general")
    assert status == 200
    (ana,) = report["agents"]
    assert (ana["agent"], ana["total"]["handled"], ana["total"]["talk"]) == (ANA, 1, 240)
    status, none = await get(site, f"{REPORT}?since=2026-11-10&queue=finance")
    assert (status, none["agents"]) == (200, [])


async def test_the_autumn_day_has_25_hours(site: Site) -> None:
    await states(
        site,
        ANA,
        ("2026-10-24T22:00:00", "ready", None),
        ("2026-10-26T01:00:00", "logged_out", None),
    )
    status, report = await get(site, f"{REPORT}?since=2026-10-24&until=2026-10-26&interval=day")
    assert status == 200
    (ana,) = report["agents"]
    assert [(r["start"], r["logged_in"]) for r in ana["intervals"]] == [
        ("2026-10-24T00:00:00+02:00", 2 * 3600),
        ("2026-10-25T00:00:00+02:00", 25 * 3600),
        ("2026-10-26T00:00:00+01:00", 3600),
    ]


async def test_supervisors_read_it_agents_do_not_and_bad_queries_are_refused(
    site: Site,
) -> None:
    await a_known_day(site)
    supervisor = await site.desk_headers("supervisor")
    status, report = await get(site, "/desk/api/reports/agents?since=2026-11-10", supervisor)
    assert status == 200 and report["agents"]
    agent = await site.desk_headers("agent")
    for path in ("/desk/api/reports/agents", "/desk/api/reports/agents.csv"):
        status, body = await get(site, path, agent)
        assert (status, body["error_id"]) == (403, "forbidden")
    for query, error in (
        ("interval=year", "bad_interval"),
        ("since=2026-11-31", "bad_date"),
        (f"agent={'a' * 65}", "bad_agent"),
        ("shift=night", "bad_request"),
        ("since=2026-01-01&until=2026-12-31&interval=15min", "too_long"),
    ):
        status, body = await get(site, f"{REPORT}?{query}")
        assert (status, body["error_id"]) == (400, error), query
    status, _ = await get(site, REPORT, {})
    assert status == 401
