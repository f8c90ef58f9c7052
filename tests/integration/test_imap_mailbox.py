"""The IMAP reader (mail/imap.py) against a real mail system (tests/mailsystem.py): a message
our SMTP client sends is delivered by LMTP into Dovecot and read over IMAP once, whole; it is
marked seen only after the handler returned (one that raised leaves it unseen, read again);
IDLE wakes the reader when mail comes; Dovecot stopped and started, the reading loop connects
again by itself and reads what came meanwhile. One mail system for the module, a mailbox
(user) per test. No Asterisk, no database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import make_msgid

import aioimaplib
import pytest

from mail.imap import (
    Fetched,
    ImapMailbox,
    MailboxLoginRefused,
    MailboxReader,
    MailboxUnavailable,
    run_mailbox,
)
from mail.inbound import parse_mail
from tests.mailsystem import MailSystem
from tests.support import wait_until

USERS = ["upiti@centrala.test", "failing@centrala.test", "idle@centrala.test"]
USERS += ["restart@centrala.test", "loop@centrala.test", "poll@centrala.test"]
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture(scope="module")
async def mail_system() -> AsyncIterator[MailSystem]:
    system = MailSystem(USERS)
    try:
        await system.start()
        yield system
    finally:
        system.stop()


def letter(to: str, subject: str, text: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Ana Šarić <ana.saric@example.ba>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="example.ba")
    message.set_content(text)
    return message


class Handler:
    """Takes what the reader hands over; raises for the first ``failures`` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[Fetched] = []
        self.kept: list[Fetched] = []

    async def __call__(self, fetched: Fetched) -> None:
        self.calls.append(fetched)
        if len(self.calls) <= self.failures:
            raise RuntimeError("the database is away")
        self.kept.append(fetched)


async def unseen(mailbox: ImapMailbox) -> list[int]:
    """The folder's unseen UIDs, asked on a connection of the test's own (aioimaplib)."""
    client = aioimaplib.IMAP4(mailbox.host, mailbox.port, timeout=10)
    await client.wait_hello_from_server()
    assert (await client.login(mailbox.user, mailbox.password)).result == "OK"
    await client.select(mailbox.folder)
    response = await client.uid_search("UNSEEN", charset=None)
    await client.logout()
    return [int(u) for u in response.lines[0].split()]


async def read_until(reader: MailboxReader, handler: Handler, count: int) -> None:
    """Reads until ``handler`` kept ``count`` messages (delivery takes a moment)."""

    async def kept() -> bool:
        await reader.read_new(handler)
        return len(handler.kept) >= count

    await wait_until(kept, timeout=15, interval=0.1, message=f"{count} messages read")


async def test_a_message_sent_over_smtp_is_read_once_with_its_parts(
    mail_system: MailSystem,
) -> None:
    box = mail_system.mailbox("upiti@centrala.test")
    message = letter(box.user, "Upit o kreditu – čekam odgovor", "Poštovani,\nželim kredit.\n")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="Izvod računa.pdf")
    await mail_system.send(message)
    reader = MailboxReader(box)
    handler = Handler()
    try:
        await read_until(reader, handler, 1)
        [fetched] = handler.kept
        assert reader.uidvalidity is not None and reader.uidvalidity > 0
        assert fetched.uidvalidity == reader.uidvalidity
        assert fetched.uid >= 1 and not fetched.truncated and fetched.size == len(fetched.raw)
        mail = parse_mail(fetched.raw)
        assert mail.message_id == message["Message-ID"].strip("<>")
        assert mail.subject == "Upit o kreditu – čekam odgovor"
        assert (mail.from_name, mail.from_address) == ("Ana Šarić", "ana.saric@example.ba")
        assert mail.to == ("upiti@centrala.test",)
        assert mail.text == "Poštovani,\nželim kredit.\n"
        assert [(a.filename, a.content_type, a.data) for a in mail.attachments] == [
            ("Izvod računa.pdf", "application/pdf", PDF)
        ]
        # Read once: seen on the server, so neither this reader nor a new one reads it again.
        assert (await reader.read_new(handler)).handled == 0
        assert await unseen(box) == []
        other = MailboxReader(box)
        assert (await other.read_new(handler)).handled == 0
        assert other.uidvalidity == reader.uidvalidity  # the folder's, stable across logins
        await other.close()
        assert len(handler.calls) == 1
    finally:
        await reader.close()


async def test_a_message_whose_handling_failed_stays_unseen_and_is_read_again(
    mail_system: MailSystem,
) -> None:
    box = mail_system.mailbox("failing@centrala.test")
    await mail_system.send(letter(box.user, "Prvi", "prvi"))
    reader = MailboxReader(box)
    handler = Handler(failures=1)
    try:

        async def tried() -> bool:
            return bool((await reader.read_new(handler)).failed)

        await wait_until(tried, timeout=15, interval=0.1, message="the failed handling")
        assert handler.kept == []
        uid = handler.calls[0].uid
        assert await unseen(box) == [uid]  # fetched, yet not marked: BODY.PEEK
        outcome = await reader.read_new(handler)
        assert (outcome.handled, outcome.failed) == (1, 0)
        assert [f.uid for f in handler.calls] == [uid, uid]
        assert handler.calls[0].raw == handler.calls[1].raw
        assert await unseen(box) == []
        assert (await reader.read_new(handler)).handled == 0
    finally:
        await reader.close()


async def test_idle_wakes_the_reader_when_mail_arrives(mail_system: MailSystem) -> None:
    box = mail_system.mailbox("idle@centrala.test")
    reader = MailboxReader(box)
    handler = Handler()
    try:
        await reader.read_new(handler)
        started = time.monotonic()
        assert await reader.wait_for_mail(1) is False  # nothing came: the wait ends
        assert time.monotonic() - started >= 0.9
        waiting = asyncio.ensure_future(reader.wait_for_mail(60))
        await wait_until(lambda: reader.idling, message="the reader in IDLE")
        started = time.monotonic()
        await mail_system.send(letter(box.user, "Novo", "novo"))
        assert await asyncio.wait_for(waiting, 15) is True
        woke = time.monotonic() - started
        assert woke < 10, woke
        assert not reader.idling
        assert (await reader.read_new(handler)).handled == 1
        print(f"IDLE woke the reader {woke * 1000:.0f} ms after the SMTP send returned")
    finally:
        await reader.close()


async def test_without_idle_the_reader_polls_for_new_mail(mail_system: MailSystem) -> None:
    box = mail_system.mailbox("poll@centrala.test")
    polled = ImapMailbox(
        box.host, box.port, box.user, box.password, tls=False, timeout=10, poll_seconds=0.2
    )
    reader = MailboxReader(polled, use_idle=False)
    handler = Handler()
    try:
        await reader.read_new(handler)
        waiting = asyncio.ensure_future(reader.wait_for_mail(60))
        await wait_until(lambda: reader.polling, message="the reader polling")
        await mail_system.send(letter(box.user, "Bez IDLE", "anketiranje"))
        assert await asyncio.wait_for(waiting, 15) is True
        assert not reader.idling and not reader.polling
        assert (await reader.read_new(handler)).handled == 1
        assert await reader.wait_for_mail(0.5) is False
    finally:
        await reader.close()


async def test_mail_that_came_just_before_idle_is_not_waited_for(
    mail_system: MailSystem,
) -> None:
    box = mail_system.mailbox("idle@centrala.test")
    reader = MailboxReader(box)
    handler = Handler()
    try:
        await reader.read_new(handler)
        await mail_system.send(letter(box.user, "Između", "između čitanja i IDLE"))
        await wait_until(lambda: unseen(box), message="the message delivered")
        started = time.monotonic()
        assert await reader.wait_for_mail(30) is True
        assert time.monotonic() - started < 5
        assert (await reader.read_new(handler)).handled == 1
    finally:
        await reader.close()


async def test_the_loop_reconnects_after_dovecot_restarts_and_reads_what_came(
    mail_system: MailSystem,
) -> None:
    box = mail_system.mailbox("restart@centrala.test")
    reader = MailboxReader(box)
    handler = Handler()
    stop = asyncio.Event()
    loop = asyncio.ensure_future(run_mailbox(reader, handler, stop=stop, retry=lambda attempt: 0.2))
    try:
        await mail_system.send(letter(box.user, "Prije", "prije"))
        await wait_until(lambda: len(handler.kept) == 1, message="the first message read")
        await wait_until(lambda: reader.idling, message="the loop in IDLE")
        validity = reader.uidvalidity
        # In a thread: the loop reads the server's goodbye while Dovecot shuts down.
        await asyncio.to_thread(mail_system.dovecot.stop)
        await wait_until(lambda: not reader.idling, message="the loop noticing")
        later = letter(box.user, "Dok je server bio dolje", "meanwhile")
        mail_system.dovecot.drop(box.user, bytes(later))
        with pytest.raises(MailboxUnavailable):
            await MailboxReader(box).read_new(handler)
        await mail_system.dovecot.start()
        await wait_until(lambda: len(handler.kept) == 2, message="the message of meanwhile")
        assert parse_mail(handler.kept[1].raw).subject == "Dok je server bio dolje"
        assert handler.kept[1].uidvalidity == validity  # the same folder, its mail kept
        # Back in IDLE on the new connection: new mail still wakes it.
        await wait_until(lambda: reader.idling, message="the loop in IDLE again")
        await mail_system.send(letter(box.user, "Poslije", "poslije"))
        await wait_until(lambda: len(handler.kept) == 3, message="the message after")
        assert len(handler.calls) == 3
    finally:
        stop.set()
        await asyncio.wait_for(loop, 15)
    assert await unseen(box) == []


async def test_the_loop_reads_a_failed_message_again_after_its_back_off(
    mail_system: MailSystem,
) -> None:
    box = mail_system.mailbox("loop@centrala.test")
    handler = Handler(failures=2)
    attempts: list[int] = []

    def retry(attempt: int) -> float:
        attempts.append(attempt)
        return 0.1

    stop = asyncio.Event()
    loop = asyncio.ensure_future(run_mailbox(MailboxReader(box), handler, stop=stop, retry=retry))
    try:
        await mail_system.send(letter(box.user, "Tri puta", "treći put sretno"))
        await wait_until(lambda: handler.kept, message="the message kept at last")
        assert [f.uid for f in handler.calls] == [handler.kept[0].uid] * 3
        assert attempts == [1, 2]
    finally:
        stop.set()
        await asyncio.wait_for(loop, 15)
    assert await unseen(box) == []


async def test_a_wrong_password_is_a_refused_login(mail_system: MailSystem) -> None:
    box = mail_system.mailbox("upiti@centrala.test")
    wrong = ImapMailbox(box.host, box.port, box.user, "wrong", tls=False, timeout=10)
    with pytest.raises(MailboxLoginRefused, match="refused the login"):
        await MailboxReader(wrong).read_new(Handler())
    assert "wrong" not in repr(wrong)
    # A folder name that would end the command and start another is refused at once.
    with pytest.raises(ValueError, match="line break"):
        ImapMailbox(box.host, box.port, box.user, box.password, folder="INBOX\r\nA1 DELETE INBOX")
