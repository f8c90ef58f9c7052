"""Viber's fallback to SMS at scale: ``--messages`` Viber messages sent and never reported on
(a provider that went silent on a whole day's birthdays), each of another client, then one
sweep of ``usecases.notices.fallbacks`` past their wait: each marked expired and its SMS
queued under the contact policy, in batches. Prints the sweep's time and messages per
second, and a second sweep's (it finds nothing: each is decided once).

    .venv/bin/python bench/viber_fallbacks.py --messages 100000
    .venv/bin/python bench/viber_fallbacks.py --messages 100000 --postgres postgresql+asyncpg://...

SQLite by default (a file in a temporary directory); ``--postgres URL`` uses that database
instead and DROPS ITS SCHEMA first (give it one of its own). No Asterisk, no provider.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calllog_csv import prepared  # noqa: E402  (bench/ is the script's own directory)
from sqlalchemy import func, insert, select  # noqa: E402

from centrala.logs import configure_logging  # noqa: E402
from core.notices import Channel, Policy  # noqa: E402
from models.db import create_engine, session_factory  # noqa: E402
from models.notices import Claimed  # noqa: E402
from models.tables import Client, ClientPhone, Notice  # noqa: E402
from usecases.notices import NoticeSetup, fallbacks  # noqa: E402

BATCH = 10_000
SENT = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


async def fill(url: str, messages: int) -> float:
    """``messages`` clients, each with a number and a Viber message sent at SENT."""
    engine = create_engine(url)
    started = time.perf_counter()
    async with engine.begin() as conn:
        for first in range(1, messages + 1, BATCH):
            ids = range(first, min(first + BATCH, messages + 1))
            await conn.execute(
                insert(Client), [{"id": i, "external_id": f"vb-{i}", "name": f"K {i}"} for i in ids]
            )
            await conn.execute(
                insert(ClientPhone), [{"client_id": i, "number": f"+3876607{i:07d}"} for i in ids]
            )
            await conn.execute(
                insert(Notice),
                [
                    {
                        "key": f"birthday:{i}:2026",
                        "client_id": i,
                        "kind": "birthday",
                        "channel": "viber",
                        "language": "bs",
                        "address": f"+3876607{i:07d}",
                        "subject": "Sretan rođendan",
                        "body": "Dragi/a K, sretan rođendan!",
                        "html": "",
                        "state": "sent",
                        "attempts": 1,
                        "not_before": SENT,
                        "created_at": SENT,
                        "sent_at": SENT,
                        "provider_id": f"notice-{i}",
                    }
                    for i in ids
                ],
            )
    await engine.dispose()
    return time.perf_counter() - started


async def _not_sent(message: Claimed) -> str:
    raise AssertionError("the benchmark sends nothing")


async def sweep(url: str) -> tuple[float, int, float, int, int]:
    """The sweep past the wait, a second one, and the SMS queued."""
    engine = create_engine(url)
    sessions = session_factory(engine)
    # SMS and Viber configured; no quiet hours (they start and end together).
    policy = Policy(quiet_from=datetime.min.time(), quiet_until=datetime.min.time())
    setup = NoticeSetup(policy, {Channel.SMS: _not_sent, Channel.VIBER: _not_sent})
    later = SENT + setup.fallback_after + timedelta(seconds=1)
    started = time.perf_counter()
    first = await fallbacks(sessions, setup, later)
    took = time.perf_counter() - started
    started = time.perf_counter()
    second = await fallbacks(sessions, setup, later + timedelta(minutes=1))
    again = time.perf_counter() - started
    async with sessions() as session:
        texts = await session.scalar(
            select(func.count()).select_from(Notice).where(Notice.fallback_of.is_not(None))
        )
    await engine.dispose()
    return took, first.queued, again, second.queued, int(texts or 0)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--postgres", metavar="URL", help="this PostgreSQL (schema dropped!)")
    args = parser.parse_args()
    configure_logging("console", "WARNING")  # not a line per message
    with tempfile.TemporaryDirectory() as tmp:
        url = await prepared(args.postgres, tmp, "fallbacks")
        filled = await fill(url, args.messages)
        took, queued, again, queued_again, texts = await sweep(url)
    backend = "postgresql" if args.postgres else "sqlite"
    print(f"backend {backend}; {args.messages} silent Viber messages filled in {filled:.1f} s")
    print(
        f"swept: {queued} SMS queued in {took:.2f} s, {queued / took:.0f} messages/s; "
        f"a second sweep: {queued_again} in {again * 1000:.0f} ms; SMS in the outbox {texts}"
    )
    return 0 if queued == texts == args.messages and queued_again == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
