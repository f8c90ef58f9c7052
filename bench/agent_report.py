"""How long the agents report takes over many calls, on SQLite and PostgreSQL, and what its
indexes (migration 0022) are worth.

    python bench/agent_report.py --calls 1000000 --backend sqlite postgresql

Fills a fresh database with ``--calls`` calls put through to 40 agents over 2026, their
shifts in the state log as the desk writes it (in at 08:00, a wrap-up after each call, a
lunch pause, out at 16:00: about two state rows a call) and a hold on a tenth of the calls,
then builds the report as `GET /api/reports/agents` does (``web.agent_report_api.report_of``:
the state rows and calls streamed from the database into ``core.agent_report.AgentReport``):
one day by 15 minutes (the spring daylight-saving day), one month by day, the year by month.
The day and the month are built first without the state log's indexes, then with them; the
year with them. Prints, per backend and report, the calls handled it counted, the seconds and
the process's peak memory. PostgreSQL: ``CENTRALA_TEST_POSTGRES_URL`` (the tests' cluster), in
a database of its own that is emptied first."""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, text

from bench.queue_report import main, peak_mb
from models.tables import Agent, AgentRole, AgentState, Call, CallEvent, Direction
from tests.conftest import make_database

AGENTS = 40
ZONE = ZoneInfo("Europe/Sarajevo")
YEAR = date(2026, 1, 1)
SHIFT = 8 * 3600
CHUNK = 10_000
INDEXES = (
    ("ix_agent_states_agent_id_at", "agent_id, at"),
    ("ix_agent_states_at", "at"),
)
Rows = dict[str, list[dict[str, Any]]]


def agent_day(agent: str, day: date, calls: int, rnd: random.Random, rows: Rows) -> None:
    """One agent's shift on ``day`` with ``calls`` calls, as the desk and the info line write
    it, appended to ``rows`` (calls, states, events)."""
    start = datetime.combine(day, datetime.min.time(), ZONE).replace(hour=8).astimezone(UTC)
    states = rows["states"]
    states.append({"agent_id": agent, "at": start, "state": "ready", "reason": None})
    slot = SHIFT / calls
    for i in range(calls):
        connected = start + timedelta(seconds=i * slot + rnd.uniform(0, slot * 0.2))
        talk = min(rnd.uniform(120, 300), slot * 0.5)
        wrap = min(rnd.uniform(20, 60), slot * 0.1)
        call_id = str(uuid.UUID(int=rnd.getrandbits(128)))
        ended = connected + timedelta(seconds=talk)
        outbound = rnd.random() < 0.2
        rows["calls"].append(
            {
                "id": call_id,
                "channel_id": f"bench-{rnd.getrandbits(64):016x}",
                "direction": Direction.OUTBOUND if outbound else Direction.INBOUND,
                "handler": "ari",
                "started_at": connected - timedelta(seconds=20),
                "answered_at": connected - timedelta(seconds=20),
                "connected_at": None if outbound else connected,
                "ended_at": ended,
                "talk_seconds": talk,
                "agent_id": agent,
                "queue": None if outbound else "general",
                "outcome": "answered",
                "disposition": rnd.choice(("information/resolved", "complaint/follow_up")),
                "ivr_path": [],
            }
        )
        if rnd.random() < 0.1:
            held = connected + timedelta(seconds=talk / 3)
            for kind, at in (("held", held), ("resumed", held + timedelta(seconds=talk / 4))):
                rows["events"].append({"call_id": call_id, "at": at, "kind": kind, "data": {}})
        free = ended + timedelta(seconds=wrap)
        states.append({"agent_id": agent, "at": ended, "state": "wrap_up", "reason": None})
        if i == calls // 2:  # lunch, before the next call
            states.append({"agent_id": agent, "at": free, "state": "paused", "reason": "lunch"})
            free += timedelta(seconds=slot * 0.2)
        states.append({"agent_id": agent, "at": free, "state": "ready", "reason": None})
    end = start + timedelta(seconds=SHIFT)
    states.append({"agent_id": agent, "at": end, "state": "logged_out", "reason": None})


def shifts(total: int, rnd: random.Random) -> Iterator[Rows]:
    """The year's shifts a chunk of rows at a time: every agent every day, as many calls a
    shift as spread ``total`` over the year (the last shifts get what is left)."""
    per_shift = max(1, math.ceil(total / (365 * AGENTS)))
    left = total
    rows: Rows = {"calls": [], "states": [], "events": []}
    day = YEAR
    while left > 0:
        for n in range(AGENTS):
            if left <= 0:
                break
            calls = min(per_shift, left)
            agent_day(f"bench-{n:02d}", day, calls, rnd, rows)
            left -= calls
            if len(rows["calls"]) >= CHUNK:
                yield rows
                rows = {"calls": [], "states": [], "events": []}
        day += timedelta(days=1)
    if rows["calls"]:
        yield rows


REPORTS = {
    "day by 15 min": {"since": "2026-03-29", "interval": "15min"},
    "month by day": {"since": "2026-03-01", "until": "2026-03-31", "interval": "day"},
    "year by month": {"since": "2026-01-01", "until": "2026-12-31", "interval": "month"},
}


async def run(backend: str, calls: int, tmp: Path) -> list[str]:
    from web.agent_report_api import report_of

    lines: list[str] = []
    say = lines.append
    db = await make_database(backend, tmp, suffix="_bench_agents")
    now = datetime(2027, 1, 1, tzinfo=UTC)  # the year is over: every shift is closed
    try:
        start = time.perf_counter()
        async with db.engine.begin() as conn:
            await conn.execute(
                insert(Agent),
                [
                    {"id": f"bench-{n:02d}", "name": f"Agent {n}", "role": AgentRole.AGENT}
                    for n in range(AGENTS)
                ],
            )
            for name, _ in INDEXES:  # filled without them; they are timed below
                await conn.execute(text(f"DROP INDEX {name}"))
            states = 0
            for rows in shifts(calls, random.Random(7)):
                await conn.execute(insert(Call), rows["calls"])
                await conn.execute(insert(AgentState), rows["states"])
                if rows["events"]:
                    await conn.execute(insert(CallEvent), rows["events"])
                states += len(rows["states"])
        filled = time.perf_counter() - start
        say(f"{backend:10} filled {calls} calls {states} states in {filled:.1f} s")

        async def timed(label: str) -> None:
            begin = time.perf_counter()
            report = await report_of(db.sessions, REPORTS[label.split(",")[0]], now=now)
            took = time.perf_counter() - begin
            read = sum(a["total"]["handled"] for a in report["agents"])
            say(
                f"{backend:10} {label:29} calls={read:8d} seconds={took:7.2f} "
                f"peak_mb={peak_mb():7.1f}"
            )

        for label in ("day by 15 min", "month by day"):
            await timed(f"{label}, no state index")
        begin = time.perf_counter()
        async with db.engine.begin() as conn:
            for name, columns in INDEXES:
                await conn.execute(text(f"CREATE INDEX {name} ON agent_states ({columns})"))
        say(f"{backend:10} state indexes made in {time.perf_counter() - begin:.1f} s")
        for label in REPORTS:
            await timed(label)
        return lines
    finally:
        await db.engine.dispose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(__doc__ or "", run)))
