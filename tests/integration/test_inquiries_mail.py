"""Written inquiries by e-mail, end to end, on SQLite and PostgreSQL: a real `serve` (without
Asterisk) reads the inquiries mailbox of a real mail system (Dovecot, with an SMTP server
delivering into it: tests/mailsystem.py) and sends its answers through that SMTP server.

A client's complaint becomes an inquiry linked to them, escalated to the supervisor on the
record and told by e-mail; an auto-reply opens none (and is marked read, never read again);
the agent's answer arrives in the client's own mailbox with our token and In-Reply-To, and
the client's answer to it threads back into the same inquiry, open again. `serve` killed
while it reads a full mailbox, and started again: every message is stored once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.enums import AgentRole
from mail.imap import Fetched, MailboxReader
from mail.inbound import parse_mail
from models import inquiries as store
from models.tables import Agent, Client, Inquiry, InquiryMessage
from tests.conftest import Database
from tests.integration.conftest import start_serve, without_asterisk
from tests.mailsystem import INQUIRIES, PASSWORD, MailSystem
from tests.support import wait_until
from usecases.inquiries import reply

AMRA = "amra@klijent.test"
EVE = "eve@klijent.test"
BULK = "masovno@centrala.test"
SANJA = "sanja@centrala.test"  # the supervisor's own mailbox
USERS = [INQUIRIES, AMRA, EVE, BULK, SANJA]


@pytest.fixture(scope="module")
async def mail_system() -> AsyncIterator[MailSystem]:
    system = MailSystem(USERS)
    try:
        await system.start()
        yield system
    finally:
        system.stop()


def letter(sender: str, to: str, subject: str, text: str, **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="klijent.test")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(text)
    return message


def serve_env(mail_system: MailSystem, box: str) -> dict[str, str]:
    return {
        **without_asterisk(),
        "CENTRALA_IMAP_HOST": "127.0.0.1",
        "CENTRALA_IMAP_PORT": str(mail_system.dovecot.imap_port),
        "CENTRALA_IMAP_USER": box,
        "CENTRALA_IMAP_PASSWORD": PASSWORD,
        "CENTRALA_IMAP_TLS": "false",
        "CENTRALA_SMTP_HOST": "127.0.0.1",
        "CENTRALA_SMTP_PORT": str(mail_system.smtp.port),
        "CENTRALA_SMTP_SECURITY": "none",
        "CENTRALA_INQUIRIES_SUPERVISOR": "iq-mail-sup",
        "CENTRALA_INQUIRIES_CHECK_SECONDS": "0.3",
    }


async def mailbox_of(mail_system: MailSystem, user: str) -> list[Fetched]:
    """Everything new in ``user``'s INBOX, read (and marked read) as our reader reads."""
    kept: list[Fetched] = []

    async def keep(fetched: Fetched) -> None:
        kept.append(fetched)

    reader = MailboxReader(mail_system.mailbox(user))
    try:
        await reader.read_new(keep)
    finally:
        await reader.close()
    return kept


async def test_a_clients_mail_is_answered_and_their_answer_threads_back(
    database: Database, tmp_path: Path, mail_system: MailSystem
) -> None:
    async with database.sessions() as session, session.begin():
        session.add(Agent(id="iq-mail-sup", name="Sanja", role=AgentRole.SUPERVISOR, email=SANJA))
        session.add(Agent(id="iq-mail-ana", name="Ana", role=AgentRole.AGENT))
        session.add(Client(external_id="iq-mail-amra", name="Amra Hodžić", email=AMRA))
    server = start_serve(database, tmp_path, **serve_env(mail_system, INQUIRIES))
    try:
        auto = letter(EVE, INQUIRIES, "Automatski odgovor: van ureda", "Nisam tu do 5. 1.",
                      Auto_Submitted="auto-replied")  # fmt: skip
        await mail_system.send(auto)
        await mail_system.send(
            letter(f"Amra Hodžić <{AMRA}>", INQUIRIES, "Žalba na poslovnicu",
                   "Imam žalbu: tri puta sam zvala, niko se nije javio.")
        )  # fmt: skip

        async def opened() -> Inquiry | None:
            assert server.proc.poll() is None, server.log_path.read_text()[-3000:]
            async with database.sessions() as session:
                return await session.scalar(select(Inquiry).where(Inquiry.sender == AMRA))

        inquiry = await wait_until(opened, timeout=30, message="Amra's complaint stored")
        thread = await store.thread(database.sessions, inquiry.id)
        assert thread is not None
        assert (thread.inquiry.kind, thread.inquiry.reply_from) == ("complaint", INQUIRIES)
        assert thread.client_name == "Amra Hodžić"
        assert [(e.kind, e.data.get("to")) for e in thread.log] == [
            ("state", None),
            ("escalate", "iq-mail-sup"),
        ]
        assert thread.messages[0].text == "Imam žalbu: tri puta sam zvala, niko se nije javio."

        async def escalation_mailed() -> list[Fetched] | None:
            return await mailbox_of(mail_system, SANJA) or None

        (told,) = await wait_until(escalation_mailed, timeout=30, message="Sanja told by e-mail")
        told_mail = parse_mail(told.raw)
        assert told_mail.subject == f"Eskaliran upit #INQ-{inquiry.id}: complaint"
        assert told_mail.is_auto_reply()  # Auto-Submitted: no out-of-office answers it
        thread = await store.thread(database.sessions, inquiry.id)
        assert thread is not None
        assert [e.notified_at is not None for e in thread.log if e.kind == "escalate"] == [True]

        await reply(database.sessions, inquiry.id, "iq-mail-ana", "Žao nam je, zovemo Vas danas.",
                    datetime.now(UTC))  # fmt: skip

        async def answer_arrived() -> list[Fetched] | None:
            return await mailbox_of(mail_system, AMRA) or None

        (arrived,) = await wait_until(
            answer_arrived, timeout=30, message="the answer in Amra's mailbox"
        )
        ours = parse_mail(arrived.raw)
        assert ours.from_address == INQUIRIES
        assert ours.subject == f"Re: Žalba na poslovnicu [#INQ-{inquiry.id}]"
        assert ours.in_reply_to == thread.messages[0].message_id
        assert ours.text.startswith("Žao nam je, zovemo Vas danas.")

        theirs = f"<{ours.message_id}>"
        answer = letter(AMRA, INQUIRIES, f"Re: Žalba na poslovnicu [#INQ-{inquiry.id}]",
                        "Hvala, čekam poziv.\n\n> Žao nam je, zovemo Vas danas.\n",
                        In_Reply_To=theirs, References=theirs)  # fmt: skip
        await mail_system.send(answer)

        async def threaded() -> bool:
            found = await store.thread(database.sessions, inquiry.id)
            return found is not None and len(found.messages) == 3

        await wait_until(threaded, timeout=30, message="Amra's answer in the same inquiry")
        thread = await store.thread(database.sessions, inquiry.id)
        assert thread is not None and thread.inquiry.state == "open"
        assert [(m.direction, m.send_state) for m in thread.messages] == [
            ("in", None), ("out", "sent"), ("in", None),
        ]  # fmt: skip
        assert thread.messages[2].text == "Hvala, čekam poziv."  # the quote set apart
        async with database.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Inquiry)) == 1  # no Eve
        assert (
            await mailbox_of(mail_system, INQUIRIES) == []
        )  # every message read, the auto-reply too
    finally:
        server.stop()


async def test_serve_killed_while_it_reads_stores_each_message_once(
    database: Database, tmp_path: Path, mail_system: MailSystem
) -> None:
    count = 300
    mail_system.dovecot.drop_many(  # already in the mailbox, as after a night
        BULK,
        (
            bytes(letter(f"klijent{n}@klijent.test", BULK, f"Pitanje {n}", f"Pitanje broj {n}."))
            for n in range(count)
        ),
    )
    env = serve_env(mail_system, BULK)
    first = start_serve(database, tmp_path, **env)

    async def stored() -> int:
        async with database.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(InquiryMessage)) or 0)

    try:

        async def some() -> bool:
            assert first.proc.poll() is None, first.log_path.read_text()[-3000:]
            return await stored() > 0

        await wait_until(some, timeout=30, interval=0.01, message="the first messages stored")
        first.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.proc.wait, 20)
        at_kill = await stored()
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
    assert at_kill < count  # killed mid-way
    second = start_serve(database, tmp_path, **env)
    try:

        async def all_stored() -> bool:
            assert second.proc.poll() is None, second.log_path.read_text()[-3000:]
            return await stored() >= count

        await wait_until(all_stored, timeout=90, message="every message after the restart")
    finally:
        second.stop()
    async with database.sessions() as session:
        senders = list(await session.scalars(select(Inquiry.sender)))
        keys = list(await session.scalars(select(InquiryMessage.source_key)))
    assert len(senders) == len(set(senders)) == count  # each once
    assert len(keys) == len(set(keys)) == count
