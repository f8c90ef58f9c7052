"""Notices to clients by e-mail (core/notices.py, usecases/notices.py, models/notices.py) through
a real SMTP server (tests/mailserver.py), on SQLite and PostgreSQL: the birthday job sends to
exactly the clients born that day, in their language, and a second run sends nothing; a
client who opted out or has no address is skipped and counted; quiet hours hold on the
client's clock; a mail server that is down gets the message later, once; a sending whose
`serve` died is sent once after the lease; the unsubscribe link opts the client out and
their next notice is not sent; the desk's client record lists the messages; `centrala notices
run birthday` and `status` (README)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from centrala.noticing import notice_setup
from centrala.settings import Settings
from core.desk.screenpop import build_screenpop
from core.notices import Channel, NoticeKind
from models import notices as store
from models.tables import Call, Campaign, Client, ClientPhone, ContactOptOut, Direction, Notice
from tests.conftest import Database
from tests.mailserver import MailServer, smtp
from usecases.notices import NoticeSetup, birthdays, deliver, queue
from web.http import setup_templates
from web.store import DeskStore
from web.unsubscribe import routes as unsubscribe_routes

__all__ = ["smtp"]  # the fixture
ZONE = ZoneInfo("Europe/Sarajevo")
DAY = date(2026, 12, 2)
SECRET = "notices-test-secret-0123456789"
SESSIONS: web.AppKey[Any] = web.AppKey("sessions")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


def setup_for(server: MailServer, tmp_path: Path, **settings: Any) -> NoticeSetup:
    return notice_setup(
        Settings(
            data_dir=tmp_path / "data",
            smtp_host="127.0.0.1",
            smtp_port=server.port,
            smtp_security="none",
            smtp_from="notices@fondacija.example.org",
            web_secret=SECRET,
            public_url="https://centrala.example.org",
            **settings,
        )
    )


async def client(
    db: Database,
    name: str,
    born: str | None,
    *,
    email: str | None = None,
    language: str = "bs",
    phone: str | None = None,
    zone: str | None = None,
) -> int:
    async with db.sessions() as session, session.begin():
        row = Client(
            external_id=f"nt-{name.split()[0].lower()}",
            name=name,
            language=language,
            birthday=date.fromisoformat(born) if born else None,
            email=email,
            timezone=zone,
            phones=[ClientPhone(number=phone)] if phone else [],
        )
        session.add(row)
        await session.flush()
        return row.id


def subject(message: Message) -> str:
    return str(make_header(decode_header(message["Subject"])))


def text_of(message: Message, kind: str = "plain") -> str:
    for part in message.walk():
        if part.get_content_type() == f"text/{kind}":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError(f"no text/{kind} part")


def at(moment: datetime) -> Any:
    return lambda: moment


async def test_the_birthday_job_mails_exactly_those_born_today_in_their_language_once(
    database: Database, smtp: MailServer, tmp_path: Path
) -> None:
    ana = await client(database, "Ana Kovač", "1980-12-02", email="ana@x.org")
    bob = await client(database, "Bob <b>Smith</b>", "1975-12-02", email="bob@x.org", language="en")
    await client(database, "Cid", "1990-12-01", email="cid@x.org")  # yesterday
    dan = await client(database, "Dan", "1985-12-02", email="dan@x.org")
    await client(database, "Eve", "1999-12-02", phone="+38761000111")  # no e-mail
    await client(database, "Fay", None, email="fay@x.org")
    await store.opt_out(database.sessions, dan, Channel.EMAIL, local("2026-11-01T10:00"), "agent")
    setup = setup_for(smtp, tmp_path)
    now = local("2026-12-02T10:00:00")

    queued = await birthdays(database.sessions, setup, DAY, now)
    assert (queued.added, queued.already, dict(queued.skipped)) == (
        2,
        0,
        {"opted_out": 1, "no_address": 1},
    )
    done = await deliver(database.sessions, setup, at(now))
    assert (done.sent, done.retried, done.failed) == (2, 0, 0)
    by_address = {m["X-RcptTo"]: m for m in smtp.messages()}
    assert sorted(by_address) == ["ana@x.org", "bob@x.org"]
    assert subject(by_address["ana@x.org"]) == "Sretan rođendan, Ana!"
    assert "sretan rođendan" in text_of(by_address["ana@x.org"])
    assert subject(by_address["bob@x.org"]) == "Happy birthday, Bob!"
    # A name is data: escaped in the HTML, as written in the text.
    assert "<b>" not in text_of(by_address["bob@x.org"], "html")
    for message in by_address.values():
        assert message["From"] == "notices@fondacija.example.org"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = message["List-Unsubscribe"].strip("<>")
        assert link.startswith("https://centrala.example.org/unsubscribe/")
        assert link in text_of(message)

    # The job again (serve restarted, the CLI run by hand): nothing new, nothing sent.
    again = await birthdays(database.sessions, setup, DAY, now + timedelta(hours=1))
    assert (again.added, again.already) == (0, 2)
    assert (await deliver(database.sessions, setup, at(now + timedelta(hours=1)))).sent == 0
    assert len(smtp.messages()) == 2
    async with database.sessions() as session:
        rows = list(await session.scalars(select(Notice).order_by(Notice.client_id)))
    assert [(r.client_id, r.state, r.language, r.kind) for r in rows] == [
        (ana, "sent", "bs", "birthday"),
        (bob, "sent", "en", "birthday"),
    ]
    assert all(r.provider_id == f"<notice-{r.id}@fondacija.example.org>" for r in rows)
    assert await store.counts(database.sessions) == {("birthday", "email", "sent"): 2}

    # On the desk, the client's record lists the message beside the calls.
    found = await DeskStore(database.sessions).client_rows(ana)
    assert found is not None
    record = build_screenpop(found, "record", DAY)
    assert [(m["channel"], m["kind"], m["subject"], m["state"]) for m in record["messages"]] == [
        ("email", "birthday", "Sretan rođendan, Ana!", "sent")
    ]


async def test_quiet_hours_a_mail_server_down_and_a_dead_sender_each_send_once(
    database: Database, tmp_path: Path
) -> None:
    smtp = MailServer(tmp_path / "mail")  # down at first
    setup = setup_for(smtp, tmp_path)
    await client(database, "Ivo", "1970-12-02", email="ivo@x.org", zone="Europe/Sarajevo")
    # Queued at 22:00 on the client's clock: not before nine the next morning.
    night = local("2026-12-02T22:00:00")
    assert (await birthdays(database.sessions, setup, DAY, night)).added == 1
    assert (await deliver(database.sessions, setup, at(night))).sent == 0
    nine = local("2026-12-03T09:00:00")
    async with database.sessions() as session:
        row = await session.scalar(select(Notice))
    assert row is not None and row.not_before == nine

    # Nine o'clock, the mail server down: tried again 30 s later, not before.
    done = await deliver(database.sessions, setup, at(nine))
    assert (done.sent, done.retried) == (0, 1)
    await smtp.start()
    try:
        assert (await deliver(database.sessions, setup, at(nine + timedelta(seconds=10)))).sent == 0
        assert smtp.messages() == []
        done = await deliver(database.sessions, setup, at(nine + timedelta(seconds=30)))
        assert done.sent == 1
        assert [m["X-RcptTo"] for m in smtp.messages()] == ["ivo@x.org"]

        # A `serve` that claimed a message and died before sending it: the next one sends it
        # once the claim's lease (5 minutes) is over, not before.
        eva = await client(database, "Eva", "1990-12-03", email="eva@x.org")
        assert (await birthdays(database.sessions, setup, date(2026, 12, 3), nine)).added == 1
        claimed = await store.claim_due(database.sessions, nine, 10)
        assert [c.client_id for c in claimed] == [eva]
        assert (await deliver(database.sessions, setup, at(nine + timedelta(minutes=1)))).sent == 0
        done = await deliver(database.sessions, setup, at(nine + timedelta(minutes=6)))
        assert done.sent == 1
        assert sorted(m["X-RcptTo"] for m in smtp.messages()) == ["eva@x.org", "ivo@x.org"]
    finally:
        smtp.stop()


async def test_the_unsubscribe_link_opts_out_and_the_next_notice_is_not_sent(
    database: Database, smtp: MailServer, tmp_path: Path
) -> None:
    setup = setup_for(smtp, tmp_path)
    mia = await client(database, "Mia", "1991-12-02", email="mia@x.org")
    now = local("2026-12-02T11:00:00")
    await birthdays(database.sessions, setup, DAY, now)
    await deliver(database.sessions, setup, at(now))
    (message,) = smtp.messages()
    path = urlsplit(message["List-Unsubscribe"].strip("<>")).path

    app = web.Application()
    app[SESSIONS] = database.sessions
    setup_templates(app)
    app.router.add_routes(unsubscribe_routes(SESSIONS, SECRET))
    http = TestClient(TestServer(app))
    await http.start_server()
    try:
        asked = await http.get(path)  # a mail scanner opening the link changes nothing
        assert asked.status == 200
        assert "Odjavi me" in await asked.text()
        async with database.sessions() as session:
            assert await session.get(ContactOptOut, (mia, "email")) is None
        done = await http.post(path, data={"List-Unsubscribe": "One-Click"})
        assert done.status == 200
        assert "više Vam nećemo slati" in await done.text()
        forged = await http.post(path[:-3] + "abc")
        assert forged.status == 404
    finally:
        await http.close()
    async with database.sessions() as session:
        out = await session.get(ContactOptOut, (mia, "email"))
    assert out is not None and out.source == "unsubscribe"

    office = await queue(
        database.sessions,
        setup,
        NoticeKind.OFFICE_CHANGE,
        [mia],
        now + timedelta(days=1),
        occasion="office-2026-12",
        message="we moved to Titova 1.",
    )
    assert (office.added, dict(office.skipped)) == (0, {"opted_out": 1})
    assert len(smtp.messages()) == 1


def centrala(database: Database, tmp_path: Path, *args: str, **env: str) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "centrala.cli", *args],
        env={
            **os.environ,
            "CENTRALA_DATABASE_URL": database.url,
            "CENTRALA_DATA_DIR": str(tmp_path / "data"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_readme_commands_run_the_birthday_job_and_count_the_outbox(
    database: Database, smtp: MailServer, tmp_path: Path
) -> None:
    await client(database, "Lea", "1988-12-02", email="lea@x.org", language="en")
    env = {
        **smtp.env(),
        "CENTRALA_SMTP_FROM": "notices@fondacija.example.org",
        # No quiet hours (they start and end together): the test may run at night.
        "CENTRALA_NOTICES_QUIET_FROM": "00:00",
        "CENTRALA_NOTICES_QUIET_UNTIL": "00:00",
    }
    run = ("notices", "run", "birthday", "--date", "2026-12-02")
    done = await asyncio.to_thread(centrala, database, tmp_path, *run, **env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "birthday 2026-12-02: queued 1 (already 0, skipped: none); sent 1, to retry 0, failed 0"
    )
    done = await asyncio.to_thread(centrala, database, tmp_path, *run, **env)
    assert "queued 0 (already 1, skipped: none); sent 0" in done.stdout, done.stderr
    assert [m["X-RcptTo"] for m in smtp.messages()] == ["lea@x.org"]

    status = await asyncio.to_thread(centrala, database, tmp_path, "notices", "status", "--json")
    assert json.loads(status.stdout) == [
        {"kind": "birthday", "channel": "email", "state": "sent", "count": 1}
    ]
    status = await asyncio.to_thread(centrala, database, tmp_path, "notices", "status")
    assert status.stdout.split() == ["birthday", "email", "sent", "1"]

    bad = await asyncio.to_thread(centrala, database, tmp_path, *run[:3], "--date", "2-12", **env)
    assert bad.returncode == 2 and "--date" in bad.stderr
    unset = await asyncio.to_thread(centrala, database, tmp_path, *run)
    assert unset.returncode == 1 and "no channel is configured" in unset.stderr


async def test_a_supervisors_offer_to_a_list_and_the_expiring_documents_job(
    database: Database, smtp: MailServer, tmp_path: Path
) -> None:
    """`centrala notices send offer --clients FILE` (README): each listed client once, in
    their language, not one called by a sales campaign today; the same again adds nothing;
    an unknown client in the list sends nothing at all. `run document-expiry`: the clients
    whose document expires in 30 days."""
    ana = await client(database, "Ana", None, email="ana@x.org")
    await client(database, "Bob", None, email="bob@x.org", language="en")
    cid = await client(database, "Cid", None, email="cid@x.org")
    async with database.sessions() as session, session.begin():
        sales = Campaign(name="nt-sales", kind="sales", settings={"queue": "general"})
        session.add(sales)
        await session.flush()
        session.add(
            Call(
                channel_id=f"nt-{cid}",
                direction=Direction.OUTBOUND,
                handler="ari",
                client_id=cid,
                campaign_id=sales.id,
                started_at=datetime.now(UTC),  # today, wherever the clock is
            )
        )
    listed = tmp_path / "clients.csv"
    listed.write_text("external_id;name\nnt-ana;Ana\nnt-bob;Bob\nnt-cid;Cid\nnt-ana;Ana\n")
    env = {
        **smtp.env(),
        "CENTRALA_SMTP_FROM": "notices@fondacija.example.org",
        "CENTRALA_NOTICES_QUIET_FROM": "00:00",  # none: the test may run at night
        "CENTRALA_NOTICES_QUIET_UNTIL": "00:00",
    }
    offer = ("notices", "send", "offer", "--clients", str(listed), "--product", "Kredit 5000 KM")

    done = await asyncio.to_thread(centrala, database, tmp_path, *offer, **env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "offer: queued 2 (already 0, skipped: contacted_today 1); sent 2, to retry 0, failed 0"
    )
    subjects = {m["X-RcptTo"]: subject(m) for m in smtp.messages()}
    assert subjects == {
        "ana@x.org": "Ponuda za Vas: Kredit 5000 KM",
        "bob@x.org": "An offer for you: Kredit 5000 KM",
    }
    # Again: nothing; Ana and Bob had this very offer (not "contacted today": their copy).
    done = await asyncio.to_thread(centrala, database, tmp_path, *offer, **env)
    assert "offer: queued 0 (already 2, skipped: contacted_today 1); sent 0" in done.stdout

    # Bad input: a clear error, nothing sent.
    listed.write_text("external_id\nnt-ana\nnobody\n")
    bad = await asyncio.to_thread(centrala, database, tmp_path, *offer, **env)
    assert bad.returncode == 2, bad.stderr
    assert "1 unknown external_id(s): nobody (line 3); nothing was sent" in bad.stderr
    no_product = await asyncio.to_thread(
        centrala, database, tmp_path, *offer[:5], "--channel", "email", **env
    )
    assert no_product.returncode == 2 and "offer needs --product" in no_product.stderr
    both = await asyncio.to_thread(
        centrala, database, tmp_path, *offer, "--segment", "active", **env
    )
    assert both.returncode == 2 and "give --segment or --clients" in both.stderr
    assert len(smtp.messages()) == 2

    # Documents expiring in 30 days (the default), from the day given.
    async with database.sessions() as session, session.begin():
        row = await session.get(Client, ana)
        assert row is not None
        row.document_expiry = date(2027, 1, 1)
    run = ("notices", "run", "document-expiry", "--date", "2026-12-02")
    done = await asyncio.to_thread(centrala, database, tmp_path, *run, **env)
    assert done.returncode == 0, done.stderr
    assert "queued 1 (already 0, skipped: none); sent 1" in done.stdout
    assert subject(smtp.messages()[-1]) == "Vaš dokument ističe 01.01.2027"
    done = await asyncio.to_thread(
        centrala, database, tmp_path, "notices", "run", "document-expiry", "--date", "2026-12-01"
    )
    assert done.returncode == 1  # no channel without the settings: nothing sent
    assert len(smtp.messages()) == 3
