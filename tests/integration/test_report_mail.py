"""The morning e-mail of the reports (usecases/morning_reports.py, mail/smtp.py) through a
real SMTP server (tests/mailserver.py: aiosmtpd in its own process), on SQLite and
PostgreSQL: a known day of calls and campaigns is mailed the next morning to the list, its
four CSV files the very rows the API's CSVs give; it is mailed once, however often `serve`
looks and however many instances look at once; the next morning mails the next day. A mail
server that is down in the morning gets the reports when it is back; a sending whose `serve`
died is taken over. `centrala reports mail` (the README's command) sends a day now, and
`serve` mails yesterday's by itself."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from email.header import decode_header, make_header
from email.message import Message
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from core.report_mail import RETRY_WAITS
from mail.smtp import SmtpServer, send
from models import report_mailings
from models.tables import ReportMailing
from tests.conftest import Database
from tests.integration import live
from tests.integration.conftest import start_serve, without_asterisk
from tests.integration.flow_site import BEARER, Site, flow_site
from tests.integration.test_campaign_report_http import a_known_day as campaigns_day
from tests.integration.test_queue_report_http import a_known_day as queues_day
from tests.mailserver import MailServer, smtp
from tests.support import wait_until
from usecases.morning_reports import MorningMail, mail_due
from web import i18n

__all__ = ["smtp"]  # the fixture
ZONE = ZoneInfo("Europe/Sarajevo")
DAY = date(2026, 12, 1)
LIST = ("manager@example.org", "qa@example.org")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


MORNING = local("2026-12-02T07:00:30")  # the reports of 1 December are due from 07:00


@pytest.fixture
async def site(database: Database) -> AsyncIterator[Site]:
    async with flow_site(database) as made:
        yield made


def morning_mail() -> MorningMail:
    return MorningMail(
        recipients=LIST,
        at=time(7, 0),
        zone=ZONE,
        sender="centrala@example.org",
        domain="example.org",
        t=partial(i18n.t, "en"),
    )


def sender(server: MailServer):  # type: ignore[no-untyped-def]
    return partial(send, SmtpServer("127.0.0.1", server.port, security="none", timeout=10))


def attachments(message: Message) -> dict[str, str]:
    found = {}
    for part in message.walk():
        name = part.get_filename()
        if name:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            found[name] = payload.decode()
    return found


def body(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.get_filename():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no text part")


async def api_csv(site: Site, path: str, **params: str) -> str:
    resp = await site.client.get(path, params=params, headers=BEARER)
    assert resp.status == 200, await resp.text()
    return await resp.text()


async def test_the_morning_mail_carries_the_days_reports_as_the_api_gives_them_once(
    site: Site, smtp: MailServer
) -> None:
    await queues_day(site)
    await campaigns_day(site)
    mail, sessions = morning_mail(), site.database.sessions
    await report_mailings.record_sent(sessions, date(2026, 11, 30), MORNING, ", ".join(LIST))

    # Before seven nothing is due (30 November went yesterday); at seven 1 December goes.
    assert await mail_due(sessions, mail, sender(smtp), local("2026-12-02T06:59:00")) == []
    assert smtp.messages() == []
    assert await mail_due(sessions, mail, sender(smtp), MORNING) == [DAY]
    (message,) = smtp.messages()
    assert message["Subject"] == "Centrala: the reports of 2026-12-01"
    assert message["From"] == "centrala@example.org"
    assert message["To"] == "manager@example.org, qa@example.org"
    assert message["X-RcptTo"] == "manager@example.org, qa@example.org"  # the envelope
    assert message["Message-ID"] == "<reports-2026-12-01@example.org>"

    day = {"since": "2026-12-01", "until": "2026-12-01"}
    files = attachments(message)
    assert sorted(files) == [
        "agents-2026-12-01.csv",
        "calls-2026-12-01.csv",
        "campaigns-2026-12-01.csv",
        "queues-2026-12-01.csv",
    ]
    for name in ("queues", "agents", "campaigns"):
        given = await api_csv(site, f"/api/reports/{name}.csv", **day, interval="hour")
        assert files[f"{name}-2026-12-01.csv"] == given, name
    calls = await api_csv(site, "/api/reports/calls.csv", **day)
    assert files["calls-2026-12-01.csv"] == calls
    assert len(calls.splitlines()) > 10  # the known days' calls, not an empty file

    # The text: each queue's day in a line, from the same report.
    resp = await site.client.get("/api/reports/queues", params=day, headers=BEARER)
    for queue in (await resp.json())["queues"]:
        total = queue["total"]
        assert (
            f"{queue['queue']}: {total['offered']} offered, {total['answered']} answered, "
            f"{total['abandoned']} abandoned" in body(message)
        )

    # Looked at again and again, and by two instances at once: still the one message.
    later = MORNING + timedelta(hours=1)
    assert await mail_due(sessions, mail, sender(smtp), later) == []
    both = await asyncio.gather(
        mail_due(sessions, mail, sender(smtp), later), mail_due(sessions, mail, sender(smtp), later)
    )
    assert both == [[], []]
    assert len(smtp.messages()) == 1
    row = await report_mailings.mailing(sessions, DAY)
    assert row is not None and (row.state, row.attempts) == ("sent", 1)

    # The next morning, the next day (no calls: a line says so); two instances, one mail.
    next_morning = MORNING + timedelta(days=1)
    both = await asyncio.gather(
        mail_due(sessions, mail, sender(smtp), next_morning),
        mail_due(sessions, mail, sender(smtp), next_morning),
    )
    assert sorted(both) == [[], [date(2026, 12, 2)]]
    assert len(smtp.messages()) == 2
    second = smtp.messages()[1]
    assert second["Subject"] == "Centrala: the reports of 2026-12-02"
    assert "No calls reached a queue that day." in body(second)


async def test_a_mail_server_down_in_the_morning_gets_the_reports_once_it_is_back(
    site: Site, tmp_path: Path
) -> None:
    await queues_day(site)
    mail, sessions = morning_mail(), site.database.sessions
    smtp = MailServer(tmp_path / "mail")  # not started: nothing listens on its port

    assert await mail_due(sessions, mail, sender(smtp), MORNING) == []
    row = await report_mailings.mailing(sessions, DAY)
    assert row is not None
    assert (row.state, row.attempts) == ("failed", 1)
    assert row.last_error is not None and "MailNotSent" not in row.last_error
    assert "SMTPConnect" in row.last_error, row.last_error  # the server's absence, in words
    assert row.next_attempt_at == MORNING + timedelta(seconds=RETRY_WAITS[0])

    # Not before its time; then the server is back and the day goes out, once.
    await smtp.start()
    try:
        assert await mail_due(sessions, mail, sender(smtp), MORNING + timedelta(seconds=30)) == []
        assert smtp.messages() == []
        back = MORNING + timedelta(seconds=RETRY_WAITS[0])
        assert await mail_due(sessions, mail, sender(smtp), back) == [DAY]
        assert [m["Subject"] for m in smtp.messages()] == ["Centrala: the reports of 2026-12-01"]
        row = await report_mailings.mailing(sessions, DAY)
        assert row is not None and (row.state, row.attempts, row.last_error) == ("sent", 2, None)

        # A `serve` that claimed the next day and died mid-sending: taken over after the
        # lease (ten minutes), not before.
        claimed = MORNING + timedelta(days=1)
        assert await report_mailings.claim(sessions, date(2026, 12, 2), claimed, "x@y.org") == 1
        soon = claimed + timedelta(minutes=5)
        assert await mail_due(sessions, mail, sender(smtp), soon) == []
        late = claimed + timedelta(minutes=11)
        assert await mail_due(sessions, mail, sender(smtp), late) == [date(2026, 12, 2)]
        row = await report_mailings.mailing(sessions, date(2026, 12, 2))
        assert row is not None and (row.state, row.attempts) == ("sent", 2)
        assert len(smtp.messages()) == 2
    finally:
        smtp.stop()

    # A day that fails every time is given up after the last retry (and logged so).
    given = date(2026, 12, 3)
    async with sessions() as session, session.begin():
        session.add(
            ReportMailing(
                day=given,
                state="failed",
                attempts=len(RETRY_WAITS),
                next_attempt_at=MORNING,
                recipients="",
            )
        )
    at = MORNING + timedelta(days=2)
    assert await mail_due(sessions, mail, sender(smtp), at) == []
    row = await report_mailings.mailing(sessions, given)
    assert row is not None
    assert (row.state, row.attempts, row.next_attempt_at) == (
        "given_up",
        len(RETRY_WAITS) + 1,
        None,
    )
    async with sessions() as session, session.begin():  # tidy: not in the next test's way
        await session.execute(update(ReportMailing).values(state="sent"))


def centrala(database: Database, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "centrala.cli", *args],
        env={**os.environ, "CENTRALA_DATABASE_URL": database.url, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_readme_command_mails_a_day_now(site: Site, smtp: MailServer) -> None:
    await queues_day(site)
    env = {**smtp.env(), "CENTRALA_REPORTS_MAIL_TO": "boss@example.org"}

    done = await asyncio.to_thread(
        centrala, site.database, "reports", "mail", "--day", "2026-12-01", **env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sent the reports of 2026-12-01 to boss@example.org"
    (message,) = smtp.messages()
    assert message["X-RcptTo"] == "boss@example.org"
    assert "queues-2026-12-01.csv" in attachments(message)
    subject = str(make_header(decode_header(message["Subject"])))
    assert subject == "Centrala: izvještaji za 2026-12-01"  # Bosnian by default
    row = await report_mailings.mailing(site.database.sessions, DAY)
    assert row is not None and row.state == "sent"  # the morning will not mail it again

    # A copy elsewhere: sent, not logged.
    done = await asyncio.to_thread(
        centrala, site.database, "reports", "mail", "--day", "2026-11-30", "--to", "me@x.org", **env
    )
    assert done.returncode == 0, done.stderr
    assert smtp.messages()[-1]["X-RcptTo"] == "me@x.org"
    assert await report_mailings.mailing(site.database.sessions, date(2026, 11, 30)) is None

    # Bad input: a clear error, nothing sent.
    for args, words in (
        (("--to", "me@x.org\r\nBcc: all@x.org"), "not an e-mail address"),
        (("--day", "2026-13-01"), "month must be in 1..12"),
    ):
        done = await asyncio.to_thread(centrala, site.database, "reports", "mail", *args, **env)
        assert done.returncode == 2 and words in done.stderr, done.stderr
    assert len(smtp.messages()) == 2

    # The mail server down: exit 1 with its error.
    smtp.stop()
    done = await asyncio.to_thread(
        centrala, site.database, "reports", "mail", "--day", "2026-12-01", **env
    )
    assert done.returncode == 1 and "not sent: SMTPConnect" in done.stderr, done.stderr


async def test_serve_mails_yesterdays_reports_by_itself(
    database: Database, smtp: MailServer, tmp_path: Path
) -> None:
    """`serve` with a list and a time already past today: yesterday's reports go out at
    start, without Asterisk (the mail does not wait for the PBX)."""
    srv = start_serve(
        database,
        tmp_path,
        **smtp.env(),
        CENTRALA_REPORTS_MAIL_TO="boss@example.org",
        CENTRALA_REPORTS_MAIL_AT="00:00",
        CENTRALA_REPORTS_MAIL_LANGUAGE="en",
        CENTRALA_REPORTS_MAIL_CHECK_SECONDS="0.2",
        CENTRALA_SMTP_FROM="reports@centrala.example.org",
        **without_asterisk(),
    )
    try:

        def mailed() -> list[Message]:
            assert srv.proc.poll() is None, srv.log_path.read_text()[-3000:]
            return smtp.messages()

        (message,) = await wait_until(mailed, timeout=60, message="the morning mail")
        yesterday = datetime.now(ZONE).date() - timedelta(days=1)
        assert message["Subject"] == f"Centrala: the reports of {yesterday.isoformat()}"
        assert message["From"] == "reports@centrala.example.org"
        row = await report_mailings.mailing(database.sessions, yesterday)
        assert row is not None and row.state == "sent"
    finally:
        assert live.stop_server(srv.proc) == 0, srv.log_path.read_text()[-3000:]
