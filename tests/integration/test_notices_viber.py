"""Notices by Viber with our fallback to one SMS (usecases/notices.py through
centrala/noticing.py's Infobip sender and the webhook of web/viber_hooks.py), with the tests'
own Viber provider (tests/viberprovider.py) and SMSC (tests/smsc.py), each its own process,
on SQLite and PostgreSQL: a message delivered by Viber gets no SMS; one the provider refuses,
or reports undeliverable or expired, gets exactly one SMS, delivered, and none when the
client opted out of SMS; one with no report gets its SMS once its validity and the grace are
over, marked expired, and a late report then changes nothing; a sweep or a report again adds
nothing; a provider that is down or in trouble gets the message later, and no SMS is sent
meanwhile; `serve` takes the reports at its own webhook and sends the fallback SMS by
itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from centrala.noticing import notice_setup, sms_gateway
from centrala.settings import Settings
from core.notices import Channel
from core.surveys.report import REPORT_TIMEZONE
from models.tables import Client, ClientPhone, ContactOptOut, Notice
from sms.smpp import SmppGateway
from tests.conftest import Database
from tests.integration import live
from tests.integration.conftest import start_serve, without_asterisk
from tests.smsc import SmscProcess
from tests.support import free_port, running, wait_until
from tests.viberprovider import ViberProvider
from usecases.notices import NoticeSetup, birthdays, deliver, fallbacks
from usecases.reports import notices as notices_report
from web.notices_api import NOTICE_SETUP
from web.viber_hooks import routes as hook_routes

DAY = date(2026, 12, 2)
TOKEN = "viber-hook-token-0123456789"
# The stand-in's scenario is the number's last digit: 1 delivered, 2 refused, 3 undeliverable,
# 4 silent, 5 the provider in trouble, 6 expired.
DELIVERED, REFUSED, UNDELIVERABLE, SILENT = (
    "+387660770011",
    "+387660770012",
    "+387660770013",
    "+387660770014",
)
EXPIRED = "+387660770016"
OPTED_OUT = "+387660770023"  # undeliverable too; opted out of SMS


@pytest.fixture(scope="module")
async def provider(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ViberProvider]:
    async with running(ViberProvider(tmp_path_factory.mktemp("viber"))) as server:
        yield server


@pytest.fixture(scope="module")
async def smsc(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SmscProcess]:
    async with running(SmscProcess(tmp_path_factory.mktemp("smsc"))) as server:
        yield server


@dataclass
class Rig:
    setup: NoticeSetup
    hook: str  # the webhook's URL


def settings(provider: ViberProvider, smsc: SmscProcess, tmp: Path, hook_port: int) -> Settings:
    return Settings(
        data_dir=tmp / "data",
        web_secret="notices-viber-test-secret-0123456789",
        public_url=f"http://127.0.0.1:{hook_port}",
        viber_base_url=provider.url,
        viber_api_key=provider.api_key,
        viber_sender="Fondacija",
        viber_callback_token=TOKEN,
        sms_smpp_host="127.0.0.1",
        sms_smpp_port=smsc.port,
        sms_smpp_system_id=smsc.system_id,
        sms_smpp_password=smsc.password,
        sms_reconnect_max_seconds=0.5,
        # No quiet hours (they start and end together): the webhook's own sweep runs on the
        # clock, and the test may run at night.
        notices_quiet_from="00:00",
        notices_quiet_until="00:00",
    )


@pytest.fixture
async def rig(
    database: Database, provider: ViberProvider, smsc: SmscProcess, tmp_path: Path
) -> AsyncIterator[Rig]:
    """The SMS gateway bound, the senders of the settings, and the webhook served as `serve`
    serves it (its route, the sessions, the setup its fallbacks use)."""
    port = free_port()
    s = settings(provider, smsc, tmp_path, port)
    gateway: SmppGateway = sms_gateway(s, database.sessions)
    await gateway.start()
    setup = notice_setup(s, gateway)
    sessions_key = web.AppKey("sessions", type(database.sessions))
    app = web.Application()
    app[sessions_key] = database.sessions
    app[NOTICE_SETUP] = setup
    app.router.add_routes(hook_routes(sessions_key, TOKEN))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Rig(setup, f"http://127.0.0.1:{port}/hooks/viber/{TOKEN}")
    finally:
        await runner.cleanup()
        await gateway.stop()


async def client(db: Database, name: str, number: str, born: date = date(1980, 12, 2)) -> int:
    async with db.sessions() as session, session.begin():
        row = Client(
            external_id=f"nv-{number}",
            name=name,
            language="en",
            birthday=born,
            phones=[ClientPhone(number=number)],
        )
        session.add(row)
        await session.flush()
        return row.id


async def outbox(db: Database) -> list[Notice]:
    async with db.sessions() as session:
        return list(await session.scalars(select(Notice).order_by(Notice.id)))


def by(rows: list[Notice], channel: Channel) -> dict[str, Notice]:
    return {r.address: r for r in rows if r.channel == channel}


def at(moment: datetime) -> Any:
    return lambda: moment


async def post(url: str, body: object) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
        return resp.status, await resp.json()


async def test_viber_delivered_refused_undelivered_and_silent_with_their_sms(
    database: Database, provider: ViberProvider, smsc: SmscProcess, rig: Rig
) -> None:
    ids = {
        number: await client(database, name, number)
        for name, number in [
            ("Dea", DELIVERED),
            ("Ref", REFUSED),
            ("Una", UNDELIVERABLE),
            ("Sil", SILENT),
            ("Opo", OPTED_OUT),
            ("Exp", EXPIRED),
        ]
    }
    now = datetime.now(UTC)  # the webhook sweeps on the clock: the test's times are near it
    async with database.sessions() as session, session.begin():
        session.add(ContactOptOut(client_id=ids[OPTED_OUT], channel="sms", at=now, source="t"))
    asked_before, texts_before = len(provider.messages()), len(smsc.submitted())
    reports_before = len(provider.reports())

    queued = await birthdays(database.sessions, rig.setup, DAY, now)
    assert queued.added == 6  # Viber: the birthday's first channel
    done = await deliver(database.sessions, rig.setup, at(now))
    assert (done.sent, done.failed, done.retried) == (5, 1, 0)  # the refused one: failed
    asked = provider.messages()[asked_before:]
    assert sorted(m["to"] for m in asked) == sorted(n.lstrip("+") for n in ids)
    first = next(m for m in asked if m["to"] == DELIVERED.lstrip("+"))
    assert first["message"]["sender"] == "Fondacija"
    assert first["message"]["webhooks"]["delivery"]["url"] == rig.hook
    assert first["message"]["options"]["validityPeriod"] == {"amount": 600, "timeUnit": "SECONDS"}
    assert first["message"]["content"]["text"].startswith("Dear Dea, happy birthday!")

    # The reports come to the webhook: delivered, two undeliverable and one expired (their
    # SMS queued then).
    # The provider records each once the webhook has answered it.
    def posted() -> list[dict[str, Any]]:
        found = provider.reports()[reports_before:]
        return found if len(found) == 4 else []

    reports = await wait_until(posted, timeout=20, message="the Viber reports posted")
    assert [r["answer"] for r in reports] == [200] * 4
    viber = by(await outbox(database), Channel.VIBER)
    assert {n: r.state for n, r in viber.items()} == {
        DELIVERED: "delivered",
        REFUSED: "failed",
        UNDELIVERABLE: "failed",
        SILENT: "sent",
        OPTED_OUT: "failed",
        EXPIRED: "expired",
    }
    # The refused one's SMS and the reported ones' (the webhook's own sweep may have
    # queued them already: once either way); none to the client opted out of SMS.
    await fallbacks(database.sessions, rig.setup, now)
    rows = await outbox(database)
    sms, viber = by(rows, Channel.SMS), by(rows, Channel.VIBER)
    assert sorted(sms) == sorted([REFUSED, UNDELIVERABLE, EXPIRED])
    for number in sms:
        assert sms[number].fallback_of == viber[number].id
        assert sms[number].key == viber[number].key + ":sms"
        assert sms[number].body == viber[number].body
    assert viber[OPTED_OUT].fallback_at is not None  # decided: no SMS

    done = await deliver(database.sessions, rig.setup, at(datetime.now(UTC)))
    assert done.sent == 3

    async def texts_delivered() -> bool:
        found = by(await outbox(database), Channel.SMS)
        return all(r.state == "delivered" for r in found.values())

    await wait_until(texts_delivered, timeout=20, message="the fallback SMS delivered")

    # The silent one: nothing before its wait is over, then its SMS, once; the Viber
    # message expired (its validity is over: it can no longer reach the client).
    wait = rig.setup.fallback_after
    assert (
        await fallbacks(database.sessions, rig.setup, now + wait - timedelta(seconds=1))
    ).queued == 0
    assert (await fallbacks(database.sessions, rig.setup, now + wait)).queued == 1
    assert (await fallbacks(database.sessions, rig.setup, now + wait * 2)).queued == 0
    silent = by(await outbox(database), Channel.VIBER)[SILENT]
    assert (silent.state, silent.error) == ("expired", "no delivery report in time")

    # A late report on it, and a repeated one on the undeliverable one: nothing changes.
    late = {"results": [dict(r["body"]["results"][0]) for r in reports]}
    for result in late["results"]:
        if result["to"] == UNDELIVERABLE.lstrip("+"):
            silent_result = dict(result, messageId=silent.provider_id, to=SILENT.lstrip("+"))
            silent_result["status"] = dict(result["status"], groupName="DELIVERED")
            late["results"].append(silent_result)
            break
    assert await post(rig.hook, late) == (200, {"applied": len(late["results"])})
    rows = await outbox(database)
    assert sorted(by(rows, Channel.SMS)) == sorted([REFUSED, UNDELIVERABLE, EXPIRED, SILENT])
    assert by(rows, Channel.VIBER)[SILENT].state == "expired"
    assert by(rows, Channel.VIBER)[DELIVERED].state == "delivered"

    assert (await deliver(database.sessions, rig.setup, at(now + wait))).sent == 1
    texts = [p["destination"] for p in smsc.submitted()[texts_before:]]
    assert sorted(texts) == sorted(n.lstrip("+") for n in (REFUSED, UNDELIVERABLE, EXPIRED, SILENT))

    # The notices report counts the four SMS as fallbacks, beside the Viber messages.
    day = now.astimezone(ZoneInfo(REPORT_TIMEZONE)).date().isoformat()
    shown = await notices_report(database.sessions, {"since": day})
    counts = {(r["kind"], r["channel"]): r for r in shown["rows"]}
    assert counts[("birthday", "sms")]["fallbacks"] == 4
    assert counts[("birthday", "viber")]["fallbacks"] == 0
    assert counts[("birthday", "viber")]["delivered"] == 1


async def test_a_provider_down_or_in_trouble_is_tried_again_and_nothing_falls_back(
    database: Database, provider: ViberProvider, rig: Rig
) -> None:
    now = datetime.now(UTC)
    await client(database, "Dan", "+387660770031")  # delivered, once the provider is back
    await client(database, "Tru", "+387660770035")  # the provider answers 503 for it
    await birthdays(database.sessions, rig.setup, DAY, now)
    provider.stop()
    try:
        done = await deliver(database.sessions, rig.setup, at(now))
        assert (done.sent, done.retried, done.failed) == (0, 2, 0)
    finally:
        await provider.start()
    later = now + timedelta(hours=2)
    assert (await fallbacks(database.sessions, rig.setup, later)).queued == 0
    done = await deliver(database.sessions, rig.setup, at(now + timedelta(seconds=30)))
    assert (done.sent, done.retried) == (1, 1)  # the 503: again later
    troubled = by(await outbox(database), Channel.VIBER)["+387660770035"]
    assert (troubled.state, troubled.attempts) == ("queued", 2)
    assert "503" in (troubled.error or "")

    async def delivered() -> bool:
        return by(await outbox(database), Channel.VIBER)["+387660770031"].state == "delivered"

    await wait_until(delivered, timeout=20, message="the Viber report once the provider is back")
    assert (await fallbacks(database.sessions, rig.setup, later)).queued == 0
    assert by(await outbox(database), Channel.SMS) == {}


async def test_the_webhook_refuses_a_wrong_token_and_bad_reports(rig: Rig) -> None:
    wrong = rig.hook.replace(TOKEN, "x" * len(TOKEN))
    async with aiohttp.ClientSession() as http:
        async with http.post(wrong, json={"results": []}) as resp:
            assert resp.status == 404
        async with http.post(rig.hook, data=b"{not json") as resp:
            assert resp.status == 400
            assert (await resp.json())["error_id"] == "bad_report"
        async with http.post(rig.hook, json={"results": [{"messageId": "m"}]}) as resp:
            assert resp.status == 400
            assert "status.groupName" in (await resp.json())["message"]
        async with http.post(rig.hook, data=b"[" * (2 * 1024 * 1024)) as resp:
            assert resp.status == 413


async def test_serve_falls_back_on_the_report_its_webhook_takes(
    database: Database, provider: ViberProvider, smsc: SmscProcess, tmp_path: Path
) -> None:
    """`serve` with Viber and an SMSC set sends today's birthdays by Viber; the provider posts
    its reports to serve's own webhook (the notify URL it was given: the public URL and the
    hook's path); the undeliverable one's SMS goes, and is delivered; the delivered one's
    not (without Asterisk: its ports are closed ones)."""
    today = datetime.now(ZoneInfo("Europe/Sarajevo")).date()
    born = today.replace(year=1988)  # a leap year: any day of today's exists
    for name, number in (("Vid", "+387660770051"), ("Una", "+387660770053")):
        await client(database, name, number, born)
    texts_before = len(smsc.submitted())
    srv = start_serve(
        database,
        tmp_path,
        spawn=False,
        **provider.env(),
        CENTRALA_VIBER_CALLBACK_TOKEN=TOKEN,
        **smsc.env(),
        CENTRALA_NOTICES_QUIET_FROM="00:00",
        CENTRALA_NOTICES_QUIET_UNTIL="00:00",
        CENTRALA_NOTICES_CHECK_SECONDS="0.2",
        **without_asterisk(),
    )
    srv.env["CENTRALA_PUBLIC_URL"] = srv.url
    srv.spawn()
    try:

        async def settled() -> dict[tuple[str, str], str]:
            assert srv.proc.poll() is None, srv.log_path.read_text()[-3000:]
            found = {(r.channel, r.address): r.state for r in await outbox(database)}
            return found if found.get(("sms", "+387660770053")) == "delivered" else {}

        found = await wait_until(settled, timeout=60, message="serve's fallback SMS delivered")
    finally:
        assert live.stop_server(srv.proc) == 0, srv.log_path.read_text()[-3000:]
    assert found == {
        ("viber", "+387660770051"): "delivered",
        ("viber", "+387660770053"): "failed",
        ("sms", "+387660770053"): "delivered",
    }
    assert [p["destination"] for p in smsc.submitted()[texts_before:]] == ["387660770053"]
