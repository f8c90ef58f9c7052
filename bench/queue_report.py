"""How long the queues report takes over many calls, on SQLite and PostgreSQL.

    python bench/queue_report.py --calls 1000000 --backend sqlite postgresql

Fills a fresh database with ``--calls`` queued calls spread over twelve months (four queues,
a realistic mix of answered, abandoned, short abandons, overflows and callbacks), then builds
the report as `GET /api/reports/queues` does (``web.queue_report_api.report_of``: the calls
streamed from the database into ``core.queue_report.QueueReport``): one month by day, one day
by 15 minutes, the whole year by month. Prints, per backend and report, the calls it read,
the seconds, and the process's peak memory. PostgreSQL: ``CENTRALA_TEST_POSTGRES_URL`` (the
tests' cluster), in a database of its own that is emptied first."""

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
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from models.tables import Call, Direction
from tests.conftest import make_database

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


def rows(n: int, rnd: random.Random) -> list[dict[str, object]]:
    weights = [share for _, share, _ in OUTCOMES]
    out = []
    for _ in range(n):
        queued = YEAR_START.astimezone(UTC) + timedelta(seconds=rnd.uniform(0, 365 * 86400))
        outcome, _, (low, high) = rnd.choices(OUTCOMES, weights)[0]
        wait = rnd.uniform(low, high)
        answered = outcome == "answered"
        out.append(
            {
                "id": str(uuid.UUID(int=rnd.getrandbits(128))),
                "channel_id": f"bench-{rnd.getrandbits(64):016x}",
                "direction": Direction.INBOUND,
                "handler": "ari",
                "started_at": queued - timedelta(seconds=20),
                "queue": rnd.choice(QUEUES),
                "queued_at": queued,
                "connected_at": queued + timedelta(seconds=wait) if answered else None,
                "ended_at": queued + timedelta(seconds=wait + (180 if answered else 0)),
                "wait_seconds": wait if answered else None,
                "outcome": outcome,
                "ivr_path": [],
            }
        )
    return out


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def run(backend: str, calls: int, tmp: Path) -> list[str]:
    from web.queue_report_api import report_of

    db = await make_database(backend, tmp, suffix="_bench_queues")
    try:
        start = time.perf_counter()
        rnd = random.Random(7)
        async with db.engine.begin() as conn:
            for i in range(0, calls, CHUNK):  # made a chunk at a time: the peak is the report's
                await conn.execute(insert(Call), rows(min(CHUNK, calls - i), rnd))
        filled = time.perf_counter() - start
        lines = [f"{backend:10} filled {calls} calls in {filled:.1f} s"]
        for label, params in (
            ("month by day", {"since": "2026-03-01", "until": "2026-03-31", "interval": "day"}),
            ("day by 15 min", {"since": "2026-03-29", "interval": "15min"}),
            ("year by month", {"since": "2026-01-01", "until": "2026-12-31", "interval": "month"}),
        ):
            start = time.perf_counter()
            report = await report_of(db.sessions, params)
            took = time.perf_counter() - start
            read = sum(q["total"]["offered"] for q in report["queues"])
            lines.append(
                f"{backend:10} {label:14} calls={read:8d} seconds={took:7.2f} "
                f"calls/s={read / took if took else 0:10.0f} peak_mb={peak_mb():7.1f}"
            )
        return lines
    finally:
        await db.engine.dispose()


Run = Callable[[str, int, Path], Awaitable[None]]


async def main_for(doc: str, run: Run, footer: str) -> int:
    """A report's benchmark: ``--calls`` and ``--backend`` from the command line, ``run`` for
    each backend in a scratch directory (PostgreSQL: the tests' cluster unless said), then
    ``footer``. Shared with bench/agent_report.py."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument(
        "--backend", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite"]
    )
    args = parser.parse_args()
    if "postgresql" in args.backend:
        os.environ.setdefault(
            "CENTRALA_TEST_POSTGRES_URL",
            "postgresql+asyncpg://centrala:centrala@127.0.0.1:5432/centrala_test",
        )
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backend:
            await run(backend, args.calls, Path(tmp))
    print(footer)
    return 0


async def main() -> int:
    async def printed(backend: str, calls: int, tmp: Path) -> None:
        for line in await run(backend, calls, tmp):
            print(line, flush=True)

    footer = f"(reports as of {date.today().isoformat()}, calls spread over 2026)"
    return await main_for(__doc__, printed, footer)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
