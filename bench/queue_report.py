"""How long the queues report takes over many calls, on SQLite and PostgreSQL.

    python bench/queue_report.py --calls 1000000 --backend sqlite postgresql

Fills a fresh database with ``--calls`` queued calls spread over twelve months (four queues,
a realistic mix of answered, abandoned, short abandons, overflows and callbacks; each with its
``queued`` and ``agent_connected`` events, and one answered call in thirty transferred by its
agent to another queue, answered there: offered to both), then builds the report as
`GET /api/reports/queues` does (``web.queue_report_api.report_of``: the calls streamed from
the database into ``core.queue_report.QueueReport``): one month by day, one day by 15
minutes, the whole year by month. Prints, per backend and report, the calls it read, the
seconds, and the process's peak memory. ``--drop-index NAME`` (every report's benchmark takes
it) drops an index after the fill, to show what it saves. PostgreSQL:
``CENTRALA_TEST_POSTGRES_URL`` (the tests' cluster), in a database of its own that is emptied
first."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, text

from models.tables import Call, CallEvent, Direction
from tests.conftest import Database, make_database

QUEUES = ("new_clients", "general", "finance", "key_accounts")
OUTCOMES = (  # (outcome, share, wait range in seconds)
    ("answered", 0.78, (0, 120)),
    ("abandoned_in_queue", 0.10, (5, 300)),
    ("abandoned_in_queue", 0.04, (0, 4.9)),  # short abandons
    ("overflowed", 0.04, (60, 300)),
    ("callback_requested", 0.04, (10, 200)),
)
YEAR_START = datetime(2026, 1, 1, tzinfo=ZoneInfo("Europe/Sarajevo"))
CHUNK = 10_000


TRANSFERRED = 1 / 30  # of the answered calls: sent on to another queue by their agent


def rows(n: int, rnd: random.Random) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """``n`` calls and their events."""
    weights = [share for _, share, _ in OUTCOMES]
    calls: list[dict[str, object]] = []
    events: list[dict[str, object]] = []
    for _ in range(n):
        call_id = str(uuid.UUID(int=rnd.getrandbits(128)))
        queued = YEAR_START.astimezone(UTC) + timedelta(seconds=rnd.uniform(0, 365 * 86400))
        outcome, _, (low, high) = rnd.choices(OUTCOMES, weights)[0]
        wait = rnd.uniform(low, high)
        answered = outcome == "answered"
        queue = rnd.choice(QUEUES)
        connected = queued + timedelta(seconds=wait) if answered else None
        ended = queued + timedelta(seconds=wait + (180 if answered else 0))
        steps = [(queued, "queued", {"queue": queue, "position": 1})]
        if connected is not None:
            steps.append((connected, "agent_connected", {"agent_id": "a1"}))
        if connected is not None and rnd.random() < TRANSFERRED:
            moved, queue = connected + timedelta(seconds=90), rnd.choice(QUEUES)
            connected = moved + timedelta(seconds=rnd.uniform(0, 60))
            ended = connected + timedelta(seconds=120)
            steps += [
                (moved, "transferred", {"mode": "blind", "to": f"queue:{queue}"}),
                (moved, "queued", {"queue": queue, "position": 1}),
                (connected, "agent_connected", {"agent_id": "a2"}),
            ]
        calls.append(
            {
                "id": call_id,
                "channel_id": f"bench-{rnd.getrandbits(64):016x}",
                "direction": Direction.INBOUND,
                "handler": "ari",
                "started_at": queued - timedelta(seconds=20),
                "queue": queue,
                "queued_at": queued,
                "connected_at": connected,
                "ended_at": ended,
                "wait_seconds": (connected - queued).total_seconds() if connected else None,
                "outcome": outcome,
                "ivr_path": [],
            }
        )
        events += [{"call_id": call_id, "at": a, "kind": k, "data": d} for a, k, d in steps]
    return calls, events


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def fill(db: Database, calls: int) -> None:
    rnd = random.Random(7)
    async with db.engine.begin() as conn:
        for i in range(0, calls, CHUNK):  # made a chunk at a time: the peak is the report's
            made, events = rows(min(CHUNK, calls - i), rnd)
            await conn.execute(insert(Call), made)
            await conn.execute(insert(CallEvent), events)


ReportOf = Callable[[Any, dict[str, str]], Awaitable[dict[str, Any]]]
DROPPED: list[str] = []  # the indexes ``--drop-index`` names, dropped after each fill


async def measure(
    backend: str,
    calls: int,
    tmp: Path,
    fill: Callable[[Database, int], Awaitable[None]],
    report_of: ReportOf,
    reports: Sequence[tuple[str, dict[str, str]]],
    read: Callable[[dict[str, Any]], int],
    suffix: str,
) -> list[str]:
    """A fresh database filled with ``calls`` by ``fill``, then each of ``reports`` built
    by ``report_of`` and timed: the lines to print (``read``: the calls a report counted)."""
    db = await make_database(backend, tmp, suffix=suffix)
    try:
        start = time.perf_counter()
        await fill(db, calls)
        async with db.engine.begin() as conn:
            for index in DROPPED:
                await conn.execute(text(f"DROP INDEX {index}"))
            await conn.execute(text("ANALYZE"))
        filled = time.perf_counter() - start
        without = f" (without {', '.join(DROPPED)})" if DROPPED else ""
        lines = [f"{backend:10} filled {calls} calls in {filled:.1f} s{without}"]
        width = max(len(label) for label, _ in reports)
        for label, params in reports:
            start = time.perf_counter()
            report = await report_of(db.sessions, params)
            took = time.perf_counter() - start
            counted = read(report)
            lines.append(
                f"{backend:10} {label:{width}} calls={counted:8d} seconds={took:7.2f} "
                f"calls/s={counted / took if took else 0:10.0f} peak_mb={peak_mb():7.1f}"
            )
        return lines
    finally:
        await db.engine.dispose()


async def run(backend: str, calls: int, tmp: Path) -> list[str]:
    from web.queue_report_api import report_of

    reports = [
        ("month by day", {"since": "2026-03-01", "until": "2026-03-31", "interval": "day"}),
        ("day by 15 min", {"since": "2026-03-29", "interval": "15min"}),
        ("year by month", {"since": "2026-01-01", "until": "2026-12-31", "interval": "month"}),
    ]

    def read(report: dict[str, Any]) -> int:
        return sum(q["total"]["offered"] for q in report["queues"])

    return await measure(backend, calls, tmp, fill, report_of, reports, read, "_bench_queues")


async def main(
    doc: str = __doc__ or "", run: Callable[[str, int, Path], Awaitable[list[str]]] = run
) -> int:
    """The command line of a report's benchmark: ``--calls``, ``--backend``; ``run`` makes
    each backend's lines."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument(
        "--backend", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite"]
    )
    parser.add_argument(
        "--drop-index",
        nargs="+",
        default=[],
        metavar="NAME",
        help="indexes to drop after the fill, to compare the reports without them",
    )
    args = parser.parse_args()
    DROPPED[:] = args.drop_index
    if "postgresql" in args.backend:
        os.environ.setdefault(
            "CENTRALA_TEST_POSTGRES_URL",
            "postgresql+asyncpg://centrala:centrala@127.0.0.1:5432/centrala_test",
        )
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backend:
            for line in await run(backend, args.calls, Path(tmp)):
                print(line, flush=True)
    print(f"(reports as of {date.today().isoformat()}, calls spread over 2026)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
