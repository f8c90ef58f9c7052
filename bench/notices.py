"""How fast the notices go out: a day's birthday greetings to many clients, queued into the
outbox and sent by SMS through an SMPP gateway on loopback, with the delivery receipts
applied.

    python bench/notices.py --clients 100000 --workers 8

Fills a fresh database with ``--clients`` clients born today (half Bosnian, their greeting
in UCS-2 in two parts; half English, one GSM part), each with a number of their own, and
starts the tests' SMSC (tests/smsc.py, its own process: it takes each part and sends a
delivery receipt for it). Then, as `serve` does each morning: queues the day's greetings
(``usecases.notices.birthdays``: the contact policy read per client, the templates merged,
the rows written once each), sends them with ``--workers`` messages in flight
(``usecases.notices.deliver``, each claimed by its own conditional write), and waits until
every message's receipt has marked it delivered (``--send N``: the first N of them only).
Prints messages per second for each step, the SMS parts the SMSC took, and the process's
peak memory. Quiet hours and the frequency cap
are set out of the way (every client is due now).
PostgreSQL: ``--postgres URL`` (its schema is dropped first)."""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select

from centrala.logs import configure_logging
from centrala.noticing import notice_setup, sms_gateway
from centrala.settings import Settings
from models.db import create_engine, session_factory, upgrade_async
from models.tables import Client, ClientPhone, Notice
from tests.conftest import _reset_postgres, ensure_postgres_database
from tests.smsc import SmscProcess
from usecases.notices import birthdays, deliver

ZONE = ZoneInfo("Europe/Sarajevo")
CHUNK = 5000


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def fill(url: str, clients: int, today: date) -> None:
    engine = create_engine(url)
    born = date(1980, today.month, today.day)
    try:
        for start in range(0, clients, CHUNK):
            ids = range(start + 1, min(start + CHUNK, clients) + 1)
            async with engine.begin() as conn:
                await conn.execute(
                    insert(Client),
                    [
                        {
                            "id": i,
                            "external_id": f"bench-{i}",
                            "name": f"Klijent Čelić {i}" if i % 2 else f"Client Smith {i}",
                            "language": "bs" if i % 2 else "en",
                            "birthday": born,
                            "timezone": "Europe/Sarajevo",
                        }
                        for i in ids
                    ],
                )
                await conn.execute(
                    insert(ClientPhone),
                    [{"client_id": i, "number": f"+3876{i:08d}"} for i in ids],
                )
    finally:
        await engine.dispose()


async def run(url: str, clients: int, workers: int, send: int | None, work: Path) -> None:
    today = datetime.now(ZONE).date()
    await upgrade_async(url)
    started = time.perf_counter()
    await fill(url, clients, today)
    print(f"filled {clients} clients in {time.perf_counter() - started:.1f} s", flush=True)
    smsc = SmscProcess(work / "smsc")
    await smsc.start()
    settings = Settings(
        data_dir=work / "data",
        web_secret="bench-notices-secret-0123456789",
        sms_smpp_host="127.0.0.1",
        sms_smpp_port=smsc.port,
        sms_smpp_system_id=smsc.system_id,
        sms_smpp_password=smsc.password,
        notices_quiet_from="00:00",  # none: every client is due now
        notices_quiet_until="00:00",
        notices_cap=100,
        notices_workers=workers,
    )
    engine = create_engine(url)
    sessions = session_factory(engine)
    gateway = sms_gateway(settings, sessions)
    try:
        await gateway.start()
        setup = notice_setup(settings, gateway)
        started = time.perf_counter()
        queued = await birthdays(sessions, setup, today, datetime.now(UTC))
        took = time.perf_counter() - started
        print(
            f"queued {queued.added} in {took:.1f} s: {queued.added / took:.0f} messages/s "
            f"(skipped {dict(queued.skipped)})",
            flush=True,
        )
        started = time.perf_counter()
        done = await deliver(sessions, setup, lambda: datetime.now(UTC), limit=send)
        took = time.perf_counter() - started
        print(
            f"sent {done.sent} in {took:.1f} s with {workers} workers: "
            f"{done.sent / took:.0f} messages/s (to retry {done.retried}, failed {done.failed})",
            flush=True,
        )
        while True:  # the receipts come in on the gateway's connection
            async with sessions() as session:
                delivered = await session.scalar(
                    select(func.count()).select_from(Notice).where(Notice.state == "delivered")
                )
            if delivered == done.sent:
                break
            await asyncio.sleep(0.2)
        took = time.perf_counter() - started
        parts = len(smsc.submitted())
        print(
            f"delivered {delivered} (receipts applied) {took:.1f} s after the first send: "
            f"{done.sent / took:.0f} messages/s; the SMSC took {parts} parts",
            flush=True,
        )
    finally:
        await gateway.stop()
        await engine.dispose()
        smsc.stop()
    print(f"peak memory {peak_mb():.1f} MB", flush=True)


def main() -> None:
    configure_logging("json", "WARNING")  # the figures on stdout, a failure's line on stderr
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--send", type=int, help="send only this many of them (default: all)")
    parser.add_argument("--postgres", help="a PostgreSQL URL (its schema is dropped first)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-notices-") as tmp:
        work = Path(tmp)
        if args.postgres:
            url = args.postgres

            async def reset() -> None:
                await ensure_postgres_database(url)
                await _reset_postgres(url)

            asyncio.run(reset())
        else:
            url = f"sqlite+aiosqlite:///{work / 'bench.db'}"
        print(f"backend {'postgresql' if args.postgres else 'sqlite'}", flush=True)
        asyncio.run(run(url, args.clients, args.workers, args.send, work))


if __name__ == "__main__":
    main()
