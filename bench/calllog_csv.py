"""The call log's CSV export at scale: a database filled with ``--rows`` calls over a month
(bulk inserts; every tenth call with an agent put through and a hold, every fifth with a
note), then ``GET /api/reports/calls.csv`` for that month through the real route (aiohttp,
the bearer-token guard, ``web.calllog_api``) on a local port, read by a client a chunk at a
time. Prints the fill time, the rows per second of the export, and the process's peak
memory while it streamed (Linux: the resident high-water mark, reset just before the export
through /proc/self/clear_refs) next to its resident size before.

    .venv/bin/python bench/calllog_csv.py --rows 1000000
    .venv/bin/python bench/calllog_csv.py --rows 1000000 --postgres postgresql+asyncpg://...

SQLite by default (a file in a temporary directory); ``--postgres URL`` uses that database
instead and DROPS ITS SCHEMA first (give it one of its own). No Asterisk.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiohttp import ClientSession, ClientTimeout, web  # noqa: E402
from aiohttp.test_utils import TestServer  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from centrala.service import SESSIONS  # noqa: E402
from models.db import create_engine, session_factory, upgrade_async  # noqa: E402
from models.tables import Agent, AgentRole, Call, CallEvent, Interaction  # noqa: E402
from web.calllog_api import routes  # noqa: E402
from web.errors import api_guard, errors  # noqa: E402

TOKEN = "bench-calllog-token"
BATCH = 10_000
# Local midnight of a month with a daylight-saving change (its last Sunday has 25 hours).
MONTH_START = datetime(2026, 10, 1, tzinfo=ZoneInfo("Europe/Sarajevo")).astimezone(UTC)
AGENTS = [f"agent{n:02d}" for n in range(20)]
QUEUES = ["general", "loans", "cards"]
OUTCOMES = ["answered", "abandoned", "callback_requested", "after_hours"]
PATHS = [["welcome", "menu", "1"], ["welcome", "menu", "2", "loans"], ["welcome", "after_hours"]]


def _status(field: str) -> int:
    """A VmRSS/VmHWM-like field of /proc/self/status, in kB (0 where there is none)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return False
    return True


async def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def prepared(postgres: str | None, tmp: str, name: str) -> str:
    """A benchmark's database, migrated: ``postgres`` (its schema dropped first) or a SQLite
    file ``name``.db in ``tmp`` (bench/viber_fallbacks.py's too)."""
    url = postgres or f"sqlite+aiosqlite:///{tmp}/{name}.db"
    if postgres:
        await _reset_postgres(url)
    await upgrade_async(url)
    return url


def _call(n: int, rng: random.Random, seconds: int) -> dict[str, Any]:
    started = MONTH_START + timedelta(seconds=rng.randrange(seconds))
    answered = rng.random() < 0.8
    queued = started + timedelta(seconds=20)
    connected = queued + timedelta(seconds=rng.randrange(1, 60)) if answered else None
    ended = (connected or queued) + timedelta(seconds=rng.randrange(5, 300))
    return {
        "id": f"bench-{n:09d}",
        "channel_id": f"bench-chan-{n:09d}",
        "direction": "inbound" if n % 4 else "outbound",
        "handler": "ari",
        "caller_number": f"+3876{n % 10_000_000:07d}",
        "called_number": "0800100200",
        "started_at": started,
        "answered_at": started + timedelta(seconds=1),
        "ended_at": ended,
        "hangup_cause": 16,
        "outcome": OUTCOMES[n % len(OUTCOMES)] if not answered else "answered",
        "disposition": "information" if answered and n % 3 == 0 else None,
        "queue": QUEUES[n % len(QUEUES)],
        "agent_id": AGENTS[n % len(AGENTS)] if answered else None,
        "ivr_path": PATHS[n % len(PATHS)],
        "queued_at": queued,
        "connected_at": connected,
        "wait_seconds": (connected - queued).total_seconds() if connected else None,
        "talk_seconds": (ended - connected).total_seconds() if connected else None,
    }


async def fill(url: str, rows: int, days: int) -> float:
    """``rows`` calls in ``days`` days from MONTH_START; seconds it took."""
    began = time.perf_counter()
    engine = create_engine(url)
    rng = random.Random(1)
    seconds = days * 86400 - 3600  # within the local days however long they are
    async with engine.begin() as conn:
        await conn.execute(
            insert(Agent),
            [{"id": a, "name": a, "role": AgentRole.AGENT, "active": True} for a in AGENTS],
        )
    for first in range(0, rows, BATCH):
        calls = [_call(n, rng, seconds) for n in range(first, min(rows, first + BATCH))]
        events: list[dict[str, Any]] = []
        notes: list[dict[str, Any]] = []
        for n, c in enumerate(calls, first):
            if n % 10 == 0 and c["connected_at"] is not None:
                at = c["connected_at"]
                events += [
                    {"call_id": c["id"], "at": at, "kind": "agent_connected",
                     "data": {"agent_id": c["agent_id"]}},
                    {"call_id": c["id"], "at": at + timedelta(seconds=3), "kind": "held",
                     "data": {"agent_id": c["agent_id"]}},
                    {"call_id": c["id"], "at": at + timedelta(seconds=13), "kind": "resumed",
                     "data": {"agent_id": c["agent_id"]}},
                ]  # fmt: skip
            if n % 5 == 0:
                note = "=HYPERLINK(1)" if n % 50 == 0 else f"[resolved] asked about loan {n}"
                notes.append({"call_id": c["id"], "agent_id": c["agent_id"], "note": note})
        async with engine.begin() as conn:
            await conn.execute(insert(Call), calls)
            if events:
                await conn.execute(insert(CallEvent), events)
            if notes:
                await conn.execute(insert(Interaction), notes)
    await engine.dispose()
    return time.perf_counter() - began


async def export(url: str, since: str, until: str) -> dict[str, float]:
    engine = create_engine(url)
    app = web.Application(middlewares=[errors, api_guard(lambda: TOKEN)])
    app[SESSIONS] = session_factory(engine)
    app.router.add_routes(routes(SESSIONS))
    server = TestServer(app)
    await server.start_server()
    rss_before = _status("VmRSS")
    peak_reset = _reset_peak()
    lines = size = 0
    began = time.perf_counter()
    first_byte = 0.0
    try:
        async with (
            ClientSession(timeout=ClientTimeout(total=3600)) as client,
            client.get(
                server.make_url("/api/reports/calls.csv"),
                params={"since": since, "until": until},
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as resp,
        ):
            assert resp.status == 200, await resp.text()
            async for block in resp.content.iter_chunked(1 << 16):
                if not first_byte:
                    first_byte = time.perf_counter() - began
                lines += block.count(b"\n")
                size += len(block)
        elapsed = time.perf_counter() - began
    finally:
        await server.close()
        await engine.dispose()
    return {
        "rows": lines - 1,  # the header; no cell of this data holds a line break
        "seconds": elapsed,
        "first_byte": first_byte,
        "megabytes": size / 1e6,
        "rss_before_mb": rss_before / 1024,
        "peak_mb": _status("VmHWM") / 1024 if peak_reset else float("nan"),
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=31, help="spread over this many days")
    parser.add_argument("--postgres", metavar="URL", help="this PostgreSQL (schema dropped!)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = await prepared(args.postgres, tmp, "calllog")
        filled = await fill(url, args.rows, args.days)
        local = MONTH_START.astimezone(ZoneInfo("Europe/Sarajevo")).date()
        last = local + timedelta(days=args.days - 1)
        got = await export(url, local.isoformat(), last.isoformat())
    backend = "postgresql" if args.postgres else "sqlite"
    print(f"backend {backend}; {args.rows} calls filled in {filled:.1f} s")
    print(
        f"exported {got['rows']:.0f} rows ({got['megabytes']:.1f} MB) in {got['seconds']:.1f} s: "
        f"{got['rows'] / got['seconds']:.0f} rows/s; first byte after {got['first_byte']:.3f} s"
    )
    print(
        f"memory: resident {got['rss_before_mb']:.1f} MB before the export, "
        f"peak {got['peak_mb']:.1f} MB during it"
    )
    return 0 if got["rows"] > 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
