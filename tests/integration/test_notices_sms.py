"""Notices to clients by SMS (usecases/notices.py through centrala/noticing.py's SMPP gateway)
with the tests' own SMSC (tests/smsc.py, its own process), on SQLite and PostgreSQL: the
birthday job sends each client born that day one SMS in their language (Bosnian in UCS-2, in
two concatenated parts; English in GSM 7-bit); the SMSC's delivery receipts mark the outbox
delivered or failed; a client's STOP reply opts them out of SMS and Viber, and their next
notice is not sent; an SMSC that is down gets the message once it is back, once; a receipt
that comes before its sending is recorded is applied; `serve` and `centrala notices run
birthday` send the day's by themselves."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import select

from centrala.noticing import notice_setup, sms_gateway
from centrala.settings import Settings
from core.notices import NoticeKind, NoticeState
from models import notices as store
from models.tables import Client, ClientPhone, ContactOptOut, Notice
from sms.smpp import SmppGateway
from tests.conftest import Database
from tests.integration import live
from tests.integration.conftest import start_serve, without_asterisk
from tests.smsc import SmscProcess
from tests.support import running, wait_until
from usecases.notices import birthdays, deliver, queue

ZONE = ZoneInfo("Europe/Sarajevo")
DAY = date(2026, 12, 2)
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=ZONE)
ANA, BOB = "+38761000201", "+38761000202"


@pytest.fixture
async def smsc(tmp_path: Path) -> AsyncIterator[SmscProcess]:
    async with running(SmscProcess(tmp_path / "smsc")) as server:
        yield server


def settings(smsc: SmscProcess, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        web_secret="notices-sms-test-secret-0123456789",
        sms_smpp_host="127.0.0.1",
        sms_smpp_port=smsc.port,
        sms_smpp_system_id=smsc.system_id,
        sms_smpp_password=smsc.password,
        sms_reconnect_max_seconds=0.5,  # the SMSC back: bound again within a second
    )


@pytest.fixture
async def gateway(
    database: Database, smsc: SmscProcess, tmp_path: Path
) -> AsyncIterator[SmppGateway]:
    gw = sms_gateway(settings(smsc, tmp_path), database.sessions)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


async def client(db: Database, name: str, number: str, language: str) -> int:
    async with db.sessions() as session, session.begin():
        row = Client(
            external_id=f"ns-{name.lower()}",
            name=name,
            language=language,
            birthday=date(1980, 12, 2),
            phones=[ClientPhone(number=number)],
        )
        session.add(row)
        await session.flush()
        return row.id


async def states(db: Database) -> dict[int, str]:
    async with db.sessions() as session:
        return {c: s for c, s in await session.execute(select(Notice.client_id, Notice.state))}


def at(moment: datetime) -> Any:
    return lambda: moment


async def test_birthdays_by_sms_with_receipts_a_stop_reply_and_an_smsc_down(
    database: Database, smsc: SmscProcess, gateway: SmppGateway, tmp_path: Path
) -> None:
    ana = await client(database, "Ana Đurić", ANA, "bs")
    bob = await client(database, "Bob", BOB, "en")
    smsc.answer(BOB, receipt="UNDELIV")
    setup = notice_setup(settings(smsc, tmp_path), gateway)

    queued = await birthdays(database.sessions, setup, DAY, NOW)
    assert queued.added == 2  # Viber is not configured: SMS, the birthday's next channel
    assert (await deliver(database.sessions, setup, at(NOW))).sent == 2
    by_number: dict[str, list[dict[str, Any]]] = {}
    for pdu in smsc.submitted():
        by_number.setdefault(pdu["destination"], []).append(pdu)
    # Bosnian (đ, ć): UCS-2, longer than 70 units, so two parts with one reference.
    assert [p["data_coding"] for p in by_number[ANA.lstrip("+")]] == [8, 8]
    udhs = [bytes.fromhex(p["udh"]) for p in by_number[ANA.lstrip("+")]]
    assert [u[3] for u in udhs] == [udhs[0][3]] * 2 and [(u[4], u[5]) for u in udhs] == [
        (2, 1),
        (2, 2),
    ]
    text = b"".join(bytes.fromhex(p["payload"]) for p in by_number[ANA.lstrip("+")])
    assert text.decode("utf-16-be").startswith("Dragi/a Ana, sretan rođendan!")
    # English: GSM 7-bit, one part.
    assert [p["data_coding"] for p in by_number[BOB.lstrip("+")]] == [0]

    # The receipts: delivered to Ana, not to Bob.
    async def receipts() -> bool:
        return await states(database) == {ana: "delivered", bob: "failed"}

    await wait_until(receipts, timeout=20, message="both receipts applied")

    # Ana answers STOP: no more SMS or Viber; her next notice has no channel left.
    smsc.mo(ANA, "Stop.")

    async def opted_out() -> bool:
        async with database.sessions() as session:
            rows = await session.scalars(
                select(ContactOptOut.channel).where(ContactOptOut.client_id == ana)
            )
            return sorted(rows) == ["sms", "viber"]

    await wait_until(opted_out, timeout=20, message="Ana opted out by her STOP")
    later = NOW + timedelta(days=1)
    office = await queue(
        database.sessions,
        setup,
        NoticeKind.OFFICE_CHANGE,
        [ana, bob],
        later,
        occasion="office-2026-12",
        message="we moved to Titova 1.",
    )
    assert (office.added, dict(office.skipped)) == (1, {"opted_out": 1})

    # The SMSC down when Bob's notice is due: tried again later, sent once it is back.
    smsc.stop()
    done = await deliver(database.sessions, setup, at(later))
    assert (done.sent, done.retried) == (0, 1)
    await smsc.start()
    await wait_until(lambda: gateway.bound, timeout=20, message="the gateway bound again")
    done = await deliver(database.sessions, setup, at(later + timedelta(seconds=30)))
    assert done.sent == 1
    office_pdus = [
        p for p in smsc.submitted() if "Titova" in bytes.fromhex(p["payload"]).decode("latin-1")
    ]
    assert [p["destination"] for p in office_pdus] == [BOB.lstrip("+")]


async def test_a_receipt_before_its_sending_is_recorded_is_applied_once(
    database: Database,
) -> None:
    """The SMSC's receipt can come in before `sent` records its id: kept, then applied; a
    repeated or contrary late report changes nothing."""
    lea = await client(database, "Lea", "+38761000203", "en")
    async with database.sessions() as session, session.begin():
        session.add(
            Notice(
                key=f"birthday:{lea}:2026",
                client_id=lea,
                kind="birthday",
                channel="sms",
                language="en",
                address="+38761000203",
                subject="s",
                body="b",
                html="",
                state="sending",
                attempts=1,
                not_before=NOW,
                created_at=NOW,
            )
        )
    (row,) = await store.history(database.sessions, lea)
    delivered_at = NOW + timedelta(seconds=2)
    assert not await store.report(
        database.sessions, "p-1", NoticeState.DELIVERED, delivered_at, None
    )
    assert await states(database) == {lea: "sending"}
    await store.sent(database.sessions, row.id, NOW + timedelta(seconds=1), "p-1")
    assert await states(database) == {lea: "delivered"}
    assert await store.report(database.sessions, "p-1", NoticeState.DELIVERED, delivered_at, None)
    assert await store.report(database.sessions, "p-1", NoticeState.FAILED, NOW, "late")
    (row,) = await store.history(database.sessions, lea)
    assert (row.state, row.final_at, row.error) == ("delivered", delivered_at, None)


async def test_serve_and_the_command_send_the_days_birthdays_by_sms(
    database: Database, smsc: SmscProcess, tmp_path: Path
) -> None:
    """`serve` with an SMSC set queues today's birthdays by itself and sends them, the
    receipts come back to it (without Asterisk: its ports are closed ones); `centrala notices
    run birthday` (README) then finds nothing left to send."""
    today = datetime.now(ZONE).date()
    async with database.sessions() as session, session.begin():
        session.add(
            Client(
                external_id="ns-today",
                name="Tea",
                language="en",
                birthday=today.replace(year=1988),  # a leap year: any day of today's exists
                phones=[ClientPhone(number="+38761000204")],
            )
        )
    env = {
        **smsc.env(),
        # No quiet hours (they start and end together): the test may run at night.
        "CENTRALA_NOTICES_QUIET_FROM": "00:00",
        "CENTRALA_NOTICES_QUIET_UNTIL": "00:00",
    }
    srv = start_serve(
        database,
        tmp_path,
        **env,
        CENTRALA_NOTICES_CHECK_SECONDS="0.2",
        **without_asterisk(),
    )
    try:

        async def delivered() -> bool:
            assert srv.proc.poll() is None, srv.log_path.read_text()[-3000:]
            return list((await states(database)).values()) == ["delivered"]

        await wait_until(delivered, timeout=60, message="serve's birthday SMS delivered")

        # /metrics: the outbox backlog, counted by the notices' loop (nothing left waiting).
        async def scraped() -> str | None:
            async with aiohttp.ClientSession() as http, http.get(srv.url + "/metrics") as resp:
                text = await resp.text()
            return (
                text
                if 'centrala_outbox_messages{channel="sms",state="queued"} 0.0' in text
                else None
            )

        await wait_until(scraped, timeout=30, message="the outbox backlog on /metrics")
    finally:
        assert live.stop_server(srv.proc) == 0, srv.log_path.read_text()[-3000:]
    assert [p["destination"] for p in smsc.submitted()] == ["38761000204"]

    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "centrala.cli", "notices", "run", "birthday"],
        env={**os.environ, **srv.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "queued 0 (already 1, skipped: none); sent 0" in done.stdout
    assert len(smsc.submitted()) == 1
