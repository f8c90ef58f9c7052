"""How fast written inquiries come in by e-mail: a mailbox of ``--mails`` messages read over
IMAP from a real Dovecot (tests/mailsystem.py) and stored as `serve` stores them
(``centrala.inquiring.mail_arrival`` and ``usecases.inquiries.receive``: each parsed, its
quote set apart, classified, threaded or opening an inquiry linked to its client, stored once
with its attachments, and only then marked read).

    python bench/inquiries_mail.py --mails 10000

The mailbox, as after a weekend: seven in ten new inquiries from clients (a third of them
known to the CRM by their e-mail), two in ten answers to earlier ones (In-Reply-To), one in
ten out-of-office replies; Bosnian text; one in twenty with a PDF attached. Prints the mails
read per second, what became of them, and the process's peak memory. PostgreSQL:
``--postgres URL`` (its schema is dropped first). Needs root (Dovecot) as the tests do."""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select

from centrala.inquiring import mail_arrival
from centrala.logs import configure_logging
from mail.imap import Fetched, MailboxReader
from models.db import create_engine, session_factory, upgrade_async
from models.tables import Client, Inquiry, InquiryMessage
from tests.conftest import _reset_postgres, ensure_postgres_database
from tests.mailsystem import INQUIRIES, MailSystem
from usecases.inquiries import InquirySetup, receive

PDF = b"%PDF-1.4\n" + b"0" * 20_000 + b"\n%%EOF\n"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mail(n: int) -> tuple[EmailMessage, str]:
    """The ``n``-th mail of the weekend and what it is (new, answer, machine)."""
    message = EmailMessage()
    message["To"] = INQUIRIES
    message["Message-ID"] = f"<bench-{n}@klijent.test>"
    kind = "machine" if n % 10 == 9 else "answer" if n % 10 >= 7 and n >= 10 else "new"
    sender = f"klijent{n}@klijent.test" if kind != "answer" else f"klijent{n - 7}@klijent.test"
    message["From"] = f"Klijent Čolić {n} <{sender}>"
    if kind == "machine":
        message["Subject"] = "Automatski odgovor: nisam u uredu"
        message["Auto-Submitted"] = "auto-replied"
        message.set_content("Nisam u uredu do ponedjeljka.")
    elif kind == "answer":
        message["Subject"] = f"Re: Upit {n - 7}"
        message["In-Reply-To"] = f"<bench-{n - 7}@klijent.test>"
        message.set_content(f"Hvala na odgovoru.\n\n> Upit broj {n - 7}.\n")
    else:
        topic = ("žalba na poslovnicu", "zahtjev za kredit", "promjena adrese", "pitanje")[n % 4]
        message["Subject"] = f"Upit {n}"
        message.set_content(f"Poštovani,\nimam {topic}. Upit broj {n}.\n\nLijep pozdrav,\nKlijent")
    if n % 20 == 0 and kind == "new":
        message.add_attachment(
            PDF, maintype="application", subtype="pdf", filename=f"izvod-{n}.pdf"
        )
    return message, kind


async def run(url: str, mails: int) -> None:
    await upgrade_async(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    async with engine.begin() as conn:  # a third of the senders known to the CRM
        rows = [
            {
                "external_id": f"bench-{n}",
                "name": f"Klijent Čolić {n}",
                "email": f"klijent{n}@klijent.test",
            }
            for n in range(0, mails, 3)
        ]
        for start in range(0, len(rows), 5000):
            await conn.execute(insert(Client), rows[start : start + 5000])
    system = MailSystem([INQUIRIES])
    await system.start()
    try:
        started = time.perf_counter()
        kinds: Counter[str] = Counter()
        raws = []
        for n in range(mails):
            message, kind = mail(n)
            kinds[kind] += 1
            raws.append(bytes(message))
        system.dovecot.drop_many(INQUIRIES, raws)
        print(f"mailbox: {mails} mails dropped in {time.perf_counter() - started:.1f} s "
              f"({dict(kinds)})", flush=True)  # fmt: skip
        mailbox = system.mailbox(INQUIRIES)
        setup = InquirySetup()
        outcome: Counter[str] = Counter()

        async def handle(fetched: Fetched) -> None:
            arrival = mail_arrival(mailbox, INQUIRIES, fetched, datetime.now(UTC))
            if arrival is None:
                outcome["machine"] += 1
                return
            received = await receive(sessions, setup, arrival)
            outcome["new" if received.created else "again" if received.duplicate else "answer"] += 1

        reader = MailboxReader(mailbox)
        started = time.perf_counter()
        try:
            while sum(outcome.values()) < mails:
                result = await reader.read_new(handle)
                if result.failed:
                    raise SystemExit(f"a message failed: {result}")
        finally:
            await reader.close()
        took = time.perf_counter() - started
        async with sessions() as session:
            inquiries = await session.scalar(select(func.count()).select_from(Inquiry))
            linked = await session.scalar(
                select(func.count()).select_from(Inquiry).where(Inquiry.client_id.is_not(None))
            )
            stored = await session.scalar(select(func.count()).select_from(InquiryMessage))
        print(
            f"read {mails} mails in {took:.1f} s: {mails / took:.0f} mails/s; "
            f"{inquiries} inquiries ({linked} linked to clients), {stored} messages stored, "
            f"{outcome['machine']} from machines left out",
            flush=True,
        )
        if stored != kinds["new"] + kinds["answer"] or inquiries != kinds["new"]:
            raise SystemExit(f"stored {stored}, inquiries {inquiries}: expected {dict(kinds)}")
    finally:
        system.stop()
        await engine.dispose()
    print(f"peak memory {peak_mb():.1f} MB", flush=True)


def main() -> None:
    configure_logging("json", "WARNING")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--mails", type=int, default=10_000)
    parser.add_argument("--postgres", help="a PostgreSQL URL (its schema is dropped first)")
    args = parser.parse_args()
    if args.postgres:
        url = args.postgres

        async def reset() -> None:
            await ensure_postgres_database(url)
            await _reset_postgres(url)

        asyncio.run(reset())
        print("backend postgresql", flush=True)
        asyncio.run(run(url, args.mails))
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-inquiries-") as tmp:
        print("backend sqlite", flush=True)
        asyncio.run(run(f"sqlite+aiosqlite:///{tmp}/bench.db", args.mails))


if __name__ == "__main__":
    main()
