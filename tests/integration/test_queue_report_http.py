"""The queues report over HTTP (core/queue_report.py behind web/queue_report_api.py) on SQLite
and PostgreSQL, no `centrala serve`: a known day of call rows and callback tasks gives known
figures per queue and hour, with a queue's own service-level threshold from its settings;
the CSV holds the same rows; a call outside the days asked is not counted; a call transferred
to another queue after midnight is offered to each queue on its own day; the summer-time day
has 23 hours; supervisors read it, agents do not."""

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

from models.tables import Call, Callback, CallbackStatus, CallEvent, Direction, Queue
from tests.conftest import Database
from tests.integration.flow_site import BEARER, Site, flow_site

ZONE = ZoneInfo("Europe/Sarajevo")
REPORT = "/api/reports/queues"


@pytest.fixture
async def site(database: Database) -> AsyncIterator[Site]:
    async with flow_site(database) as made:
        yield made


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


async def add_call(site: Site, queue: str, queued: datetime, wait: float, outcome: str) -> None:
    answered = outcome == "answered"
    async with site.database.sessions() as session, session.begin():
        session.add(
            Call(
                channel_id=f"test-{uuid.uuid4()}",
                direction=Direction.INBOUND,
                handler="ari",
                started_at=queued - timedelta(seconds=20),
                queue=queue,
                queued_at=queued,
                connected_at=queued + timedelta(seconds=wait) if answered else None,
                ended_at=queued + timedelta(seconds=wait + (120 if answered else 0)),
                wait_seconds=wait,
                outcome=outcome,
            )
        )


async def get(site: Site, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    resp = await site.client.get(path, headers=BEARER if headers is None else headers)
    body = await resp.json() if resp.content_type == "application/json" else await resp.text()
    return resp.status, body


async def a_known_day(site: Site) -> None:
    # new_clients answers within 30 s; general keeps the default 20 s.
    async with site.database.sessions() as session, session.begin():
        queue = await session.get(Queue, "new_clients")
        assert queue is not None
        await session.execute(
            update(Queue)
            .where(Queue.id == "new_clients")
            .values(settings={**queue.settings, "service_level_seconds": 30})
        )
    nine = at("2026-12-01T09:00:00")
    for minutes, queue, wait, outcome in (
        (1, "new_clients", 10, "answered"),
        (2, "new_clients", 25, "answered"),  # in time for this queue's 30 s
        (3, "new_clients", 45, "answered"),
        (4, "new_clients", 3, "abandoned_in_queue"),  # short
        (5, "new_clients", 70, "abandoned_in_queue"),
        (6, "new_clients", 200, "overflowed"),
        (7, "new_clients", 12, "callback_requested"),
        (61, "new_clients", 5, "answered"),  # the next hour
        (2, "general", 25, "answered"),  # late for general's 20 s
        (-600, "new_clients", 5, "answered"),  # the day before: not counted
    ):
        await add_call(site, queue, nine + timedelta(minutes=minutes), wait, outcome)
    async with site.database.sessions() as session, session.begin():
        for status in (CallbackStatus.DONE, CallbackStatus.OPEN):
            session.add(
                Callback(
                    number="+38761000001",
                    queue="new_clients",
                    due_at=nine,
                    status=status,
                    created_at=nine + timedelta(minutes=7),
                )
            )


async def test_a_known_day_gives_known_figures_and_the_same_csv(site: Site) -> None:
    await a_known_day(site)
    status, report = await get(site, f"{REPORT}?since=2026-12-01&interval=hour")
    assert status == 200, report
    assert (report["since"], report["until"]) == (
        "2026-12-01T00:00:00+01:00",
        "2026-12-02T00:00:00+01:00",
    )
    queues = {q["queue"]: q for q in report["queues"]}
    assert sorted(queues) == ["general", "new_clients"]
    new = queues["new_clients"]
    assert new["service_level_seconds"] == 30
    nine, ten = new["intervals"]
    assert (nine["start"], ten["start"]) == (
        "2026-12-01T09:00:00+01:00",
        "2026-12-01T10:00:00+01:00",
    )
    assert {k: nine[k] for k in ("offered", "answered", "answered_in_time", "abandoned")} == {
        "offered": 7,
        "answered": 3,
        "answered_in_time": 2,
        "abandoned": 1,
    }
    assert (nine["short_abandoned"], nine["overflowed"], nine["callback_requested"]) == (1, 1, 1)
    assert (nine["service_level"], nine["abandon_rate"]) == (round(2 / 6, 4), round(1 / 6, 4))
    assert (nine["average_wait"], nine["p90_wait"], nine["longest_wait"]) == (
        round((10 + 25 + 45) / 3, 1),
        45.0,
        200.0,
    )
    assert (nine["callbacks_requested"], nine["callbacks_done"]) == (2, 1)
    assert (ten["offered"], ten["answered"], ten["service_level"]) == (1, 1, 1.0)
    assert new["total"]["offered"] == 8
    assert queues["general"]["total"]["service_level"] == 0.0

    status, text = await get(site, f"{REPORT}.csv?since=2026-12-01&interval=hour")
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["queue"], r["start"], r["offered"]) for r in rows] == [
        ("general", "2026-12-01T09:00:00+01:00", "1"),
        ("new_clients", "2026-12-01T09:00:00+01:00", "7"),
        ("new_clients", "2026-12-01T10:00:00+01:00", "1"),
    ]
    assert rows[1]["service_level"] == str(round(2 / 6, 4))

    status, only = await get(site, f"{REPORT}?since=2026-12-01&interval=day&queue=general")
    assert [(q["queue"], q["total"]["offered"]) for q in only["queues"]] == [("general", 1)]
    (day,) = only["queues"][0]["intervals"]
    assert (day["start"], day["end"]) == ("2026-12-01T00:00:00+01:00", "2026-12-02T00:00:00+01:00")


async def test_a_call_transferred_after_midnight_is_offered_to_each_queue_on_its_day(
    site: Site,
) -> None:
    queued = at("2026-11-30T23:59:50")
    answered = queued + timedelta(seconds=8)
    moved = at("2026-12-01T00:00:30")  # the agent sends the caller on to finance
    taken = moved + timedelta(seconds=6)
    async with site.database.sessions() as session, session.begin():
        call = Call(
            channel_id=f"test-{uuid.uuid4()}",
            direction=Direction.INBOUND,
            handler="ari",
            started_at=queued - timedelta(seconds=20),
            queue="finance",  # where it ended
            queued_at=queued,
            connected_at=taken,
            ended_at=taken + timedelta(seconds=60),
            wait_seconds=(taken - queued).total_seconds(),
            outcome="answered",
        )
        session.add(call)
        await session.flush()
        for when, kind, data in (
            (queued, "queued", {"queue": "new_clients", "position": 1}),
            (answered, "agent_connected", {"agent_id": "ana"}),
            (moved, "transferred", {"mode": "blind", "from_agent": "ana", "to": "queue:finance"}),
            (moved, "queued", {"queue": "finance", "position": 1}),
            (taken, "agent_connected", {"agent_id": "fran"}),
        ):
            session.add(CallEvent(call_id=call.id, at=when, kind=kind, data=data))

    async def totals(day: str) -> dict[str, tuple[int, int, float]]:
        status, report = await get(site, f"{REPORT}?since={day}&interval=day")
        assert status == 200, report
        return {
            q["queue"]: (q["total"]["offered"], q["total"]["answered"], q["total"]["longest_wait"])
            for q in report["queues"]
        }

    assert await totals("2026-11-30") == {"new_clients": (1, 1, 8.0)}
    assert await totals("2026-12-01") == {"finance": (1, 1, 6.0)}
    status, only = await get(site, f"{REPORT}?since=2026-11-30&until=2026-12-01&queue=finance")
    assert status == 200
    assert [(q["queue"], q["total"]["offered"]) for q in only["queues"]] == [("finance", 1)]


async def test_the_summer_time_day_has_23_hours(site: Site) -> None:
    await add_call(site, "general", at("2026-03-29T01:30:00"), 4, "answered")
    await add_call(site, "general", at("2026-03-29T03:30:00"), 4, "answered")
    status, report = await get(site, f"{REPORT}?since=2026-03-29&interval=hour")
    assert status == 200
    assert [r["start"] for r in report["queues"][0]["intervals"]] == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:00 did not happen
    ]
    status, days = await get(site, f"{REPORT}?since=2026-03-29&interval=day")
    (day,) = days["queues"][0]["intervals"]
    assert (day["start"], day["end"], day["offered"]) == (
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
        2,
    )


async def test_supervisors_read_it_agents_do_not_and_bad_queries_are_refused(
    site: Site,
) -> None:
    await a_known_day(site)
    supervisor = await site.desk_headers("supervisor")
    status, report = await get(site, "/desk/api/reports/queues?since=2026-12-01", supervisor)
    assert status == 200 and report["queues"]
    agent = await site.desk_headers("agent")
    for path in ("/desk/api/reports/queues", "/desk/api/reports/queues.csv"):
        status, body = await get(site, path, agent)
        assert (status, body["error_id"]) == (403, "forbidden")
    status, body = await get(site, f"{REPORT}?since=2026-12-01&interval=year")
    assert (status, body["error_id"]) == (400, "bad_interval")
    status, body = await get(site, f"{REPORT}?since=2026-01-01&until=2026-12-31&interval=15min")
    assert (status, body["error_id"]) == (400, "too_long")
    status, _ = await get(site, REPORT, {})
    assert status == 401
