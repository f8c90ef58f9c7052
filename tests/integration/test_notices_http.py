"""A supervisor's notice over HTTP (web/notices_api.py) in a small aiohttp app, on SQLite and
PostgreSQL, with the e-mails sent through a real SMTP server (tests/mailserver.py): the
preview counts who would get it by which channel and who not and why, shows the real message
in each language and writes nothing; sending queues it once (a second send adds nothing, and
the preview then says they had it); the senders deliver it; the outbox lists it with its
filters and counts; bad input is a 400 naming the field, with nothing written; agents may not
look, supervisors send from the desk with the CSRF token, the page is theirs."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from centrala.service import SESSIONS, SETTINGS
from centrala.settings import Settings
from core.notices import Channel, Policy
from models.tables import Client, ContactOptOut, Loan, Notice
from tests.conftest import Database
from tests.desk_web import offline_desk_web
from tests.integration.test_notices_email import setup_for, subject, text_of
from tests.integration.test_survey_reports_http import Users
from tests.mailserver import MailServer, smtp
from usecases.notices import deliver
from web.errors import api_guard, errors
from web.http import WEB, setup_templates
from web.http import routes as desk_web_routes
from web.notice_report_api import desk_routes as report_desk_routes
from web.notice_report_api import routes as report_routes
from web.notices_api import NOTICE_SETUP, desk_routes, routes

__all__ = ["smtp"]  # the fixture
TOKEN = "notices-http-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
NEVER_QUIET = Policy(quiet_from=time(0, 0), quiet_until=time(0, 0))  # any hour of the test
OFFER = {"kind": "offer", "product": "Kredit <Zima> 2026", "channel": None}


@dataclasses.dataclass
class Http:
    client: TestClient[Any, Any]
    users: Users
    app: web.Application
    db: Database


@pytest.fixture
async def http(database: Database, tmp_path: Path, smtp: MailServer) -> AsyncIterator[Http]:
    settings = Settings(api_token=TOKEN, data_dir=tmp_path)
    app = web.Application(middlewares=[errors, api_guard(settings.effective_api_token)])
    app[SETTINGS] = settings
    app[SESSIONS] = database.sessions
    app[WEB] = offline_desk_web(database.sessions, "notices-http-secret")
    app[NOTICE_SETUP] = dataclasses.replace(setup_for(smtp, tmp_path), policy=NEVER_QUIET)
    setup_templates(app)
    app.router.add_routes(routes(SESSIONS))
    app.router.add_routes(desk_routes())
    app.router.add_routes(report_routes(SESSIONS))
    app.router.add_routes(report_desk_routes())
    app.router.add_routes(desk_web_routes())  # the desk's own: its client record, /static
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Http(client, Users(database, app[WEB].sessions, app[WEB].web_sessions), app, database)
    finally:
        await client.close()


async def seed(db: Database) -> dict[str, int]:
    """Five borrowers (segment active: an open loan): two with e-mail (bs, en), one opted
    out of e-mail, one with no address at all, one with a Ž in her name."""
    ids = {}
    async with db.sessions() as session, session.begin():
        for ext, name, language, email in (
            ("nh-amra", "Amra Hodžić", "bs", "amra@example.org"),
            ("nh-john", "John Smith", "en", "john@example.org"),
            ("nh-out", "Odjavljeni Klijent", "bs", "out@example.org"),
            ("nh-none", "Bez Adrese", "bs", None),
            ("nh-zana", "Žana Čolić", "bs", "zana@example.org"),
        ):
            row = Client(external_id=ext, name=name, language=language, email=email)
            session.add(row)
            await session.flush()
            session.add(
                Loan(
                    client_id=row.id,
                    external_id=f"L-{ext}",
                    opened_at=datetime(2024, 1, 5, tzinfo=UTC),
                )
            )
            ids[ext] = row.id
        session.add(
            ContactOptOut(
                client_id=ids["nh-out"],
                channel=str(Channel.EMAIL),
                at=datetime.now(UTC),
                source="unsubscribe",
            )
        )
    return ids


async def outbox_size(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Notice)) or 0)


async def post(http: Http, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    resp = await http.client.post(f"/api/notices{path}", json=body, headers=BEARER)
    return resp.status, await resp.json()


async def test_preview_then_send_once_then_the_senders_deliver(
    http: Http, smtp: MailServer
) -> None:
    ids = await seed(http.db)
    listed = {**OFFER, "clients": ["nh-amra", "nh-john", "nh-out", "nh-none"]}
    status, shown = await post(http, "/preview", listed)
    assert status == 200, shown
    assert shown["clients"] == 4 and shown["by_channel"] == {"email": 2}
    assert shown["skipped"] == {"opted_out": 1, "no_address": 1} and shown["already"] == 0
    samples = {s["language"]: s for s in shown["samples"]}
    assert samples["bs"]["subject"] == "Ponuda za Vas: Kredit <Zima> 2026"
    assert "Poštovani/a Amra Hodžić" in samples["bs"]["text"]
    assert "&lt;Zima&gt;" in samples["bs"]["html"]  # the product is data, never markup
    assert samples["en"]["text"].startswith("Dear John Smith, we have an offer")
    assert await outbox_size(http.db) == 0  # a preview writes nothing

    status, queued = await post(http, "", listed)
    assert status == 200 and queued == {
        "added": 2,
        "already": 0,
        "skipped": {"opted_out": 1, "no_address": 1},
    }
    status, again = await post(http, "", listed)
    assert again["added"] == 0 and again["already"] == 2
    _, shown = await post(http, "/preview", listed)
    assert shown["already"] == 2 and shown["by_channel"] == {}
    assert await outbox_size(http.db) == 2

    setup = http.app[NOTICE_SETUP]
    done = await deliver(http.db.sessions, setup, lambda: datetime.now(UTC))
    assert done.sent == 2
    mails = {m["To"]: m for m in smtp.messages()}
    assert set(mails) == {"amra@example.org", "john@example.org"}
    assert subject(mails["amra@example.org"]) == "Ponuda za Vas: Kredit <Zima> 2026"
    assert "we have an offer for you" in text_of(mails["john@example.org"])

    resp = await http.client.get(
        "/api/notices", params={"client": str(ids["nh-john"])}, headers=BEARER
    )
    (john,) = (await resp.json())["notices"]
    assert (john["kind"], john["channel"], john["state"]) == ("offer", "email", "sent")
    assert john["language"] == "en" and john["sent_at"] is not None
    resp = await http.client.get("/api/notices", params={"limit": "1"}, headers=BEARER)
    first = await resp.json()
    assert len(first["notices"]) == 1 and first["next_before"] == first["notices"][0]["id"]
    resp = await http.client.get(
        "/api/notices", params={"before": str(first["next_before"])}, headers=BEARER
    )
    rest = await resp.json()
    assert len(rest["notices"]) == 1 and rest["next_before"] is None
    assert rest["notices"][0]["id"] < first["notices"][0]["id"]
    resp = await http.client.get("/api/notices/status", headers=BEARER)
    status_json = await resp.json()
    assert status_json["outbox"] == [
        {"kind": "offer", "channel": "email", "state": "sent", "count": 2}
    ]
    assert status_json["channels"] == ["email"]

    # A segment: every borrower with an open loan, each client's channel.
    _, shown = await post(
        http, "/preview", {"kind": "announcement", "segment": "active", "message": "Novo!"}
    )
    assert shown["clients"] == 5 and shown["by_channel"] == {"email": 3}


async def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(http: Http) -> None:
    await seed(http.db)
    for body, field in (
        ({"kind": "birthday", "segment": "active", "message": "x"}, "kind"),
        ({"kind": "offer", "segment": "active"}, "product"),
        ({"kind": "offer", "segment": "active", "product": "x" * 501}, "product"),
        ({"kind": "announcement", "message": "x"}, "clients"),
        ({"kind": "announcement", "message": "x", "segment": "active", "clients": ["a"]},
         "clients"),
        ({"kind": "announcement", "message": "x", "segment": "rich"}, "segment"),
        ({"kind": "announcement", "message": "x", "segment": "new", "channel": "fax"}, "channel"),
        ({"kind": "announcement", "message": "x", "clients": "nh-amra"}, "clients"),
        ({"kind": "announcement", "message": 5, "segment": "new"}, "message"),
        ({"kind": "offer", "product": "x", "clients": ["nh-amra", "nobody"]}, "clients"),
    ):  # fmt: skip
        for path in ("/preview", ""):
            status, error = await post(http, path, body)
            assert status == 400, (body, error)
            assert error["error_id"] == "bad_notice" and error["details"] == {"field": field}
    status, error = await post(http, "", {"kind": "offer", "product": "x", "clients": ["nobody"]})
    assert "1 unknown external_id(s): nobody; nothing was sent" in error["message"]
    resp = await http.client.post("/api/notices", data=b"{not json", headers=BEARER)
    assert resp.status == 400 and (await resp.json())["error_id"] == "bad_json"
    for params in ({"kind": "letter"}, {"state": "lost"}, {"limit": "0"}, {"limit": "501"}):
        resp = await http.client.get("/api/notices", params=params, headers=BEARER)
        assert resp.status == 400 and (await resp.json())["error_id"] == "bad_filter", params
    assert await outbox_size(http.db) == 0


async def test_supervisors_send_from_the_desk_and_agents_may_not_look(http: Http) -> None:
    await seed(http.db)
    agent = await http.users.headers("agent")
    for method, path in (("GET", "/desk/api/notices"), ("GET", "/notices")):
        resp = await http.client.request(method, path, headers=agent, allow_redirects=False)
        assert resp.status == 403, path
    resp = await http.client.post(
        "/desk/api/notices/preview", json={**OFFER, "segment": "active"}, headers=agent
    )
    assert resp.status == 403
    lead = await http.users.headers("supervisor")
    page = await http.client.get("/notices", headers=lead)
    html = await page.text()
    assert page.status == 200 and 'id="n-preview"' in html and "/static/notices.js" in html
    csrf = html.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    body = {**OFFER, "clients": ["nh-zana"]}
    resp = await http.client.post("/desk/api/notices", json=body, headers=lead)
    assert resp.status == 403 and (await resp.json())["error_id"] == "csrf"
    resp = await http.client.post(
        "/desk/api/notices", json=body, headers={**lead, "X-CSRF-Token": csrf}
    )
    assert resp.status == 200 and (await resp.json())["added"] == 1
    async with http.db.sessions() as session:
        (row,) = await session.scalars(select(Notice))
        assert row.address == "zana@example.org" and "Žana Čolić" in row.body
    manager = await http.users.headers("manager")
    resp = await http.client.get("/desk/api/notices", headers=manager)
    assert resp.status == 403


async def test_an_agent_records_a_clients_opt_out_and_the_policy_keeps_it(http: Http) -> None:
    ids = await seed(http.db)
    amra = ids["nh-amra"]
    agent = await http.users.headers("agent")
    page = await http.client.get("/desk", headers=agent)
    csrf = (await page.text()).split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    desk = {**agent, "X-CSRF-Token": csrf}
    to_amra = {**OFFER, "clients": ["nh-amra"]}

    resp = await http.client.patch(
        f"/desk/api/clients/{amra}", json={"opted_out": ["email", "sms"]}, headers=desk
    )
    assert resp.status == 200 and (await resp.json())["changed"] == 1
    record = await (await http.client.get(f"/desk/api/clients/{amra}", headers=agent)).json()
    assert record["client"]["opted_out"] == ["email", "sms"]
    (entry,) = record["audit"]
    assert (entry["agent_id"], entry["field"], entry["old"], entry["new"]) == (
        "agent-1", "opted_out", "", "email;sms",
    )  # fmt: skip
    _, shown = await post(http, "/preview", to_amra)
    assert shown["skipped"] == {"opted_out": 1} and shown["by_channel"] == {}

    resp = await http.client.patch(
        f"/desk/api/clients/{amra}", json={"opted_out": ["sms"]}, headers=desk
    )
    assert (await resp.json())["changed"] == 1
    _, shown = await post(http, "/preview", to_amra)
    assert shown["by_channel"] == {"email": 1}  # she may get e-mails again
    resp = await http.client.patch(
        f"/desk/api/clients/{amra}", json={"opted_out": ["fax"]}, headers=desk
    )
    assert resp.status == 422 and (await resp.json())["details"] == {"field": "opted_out"}
    async with http.db.sessions() as session:
        kept = list(
            await session.scalars(select(ContactOptOut).where(ContactOptOut.client_id == amra))
        )
    assert [(o.channel, o.source) for o in kept] == [("sms", "agent")]


async def test_the_report_counts_what_became_of_the_days_messages(http: Http) -> None:
    """GET /api/reports/notices (and .csv, and the desk's twin) after a real send: today's
    row per kind and channel, and the opt-outs by channel and source."""
    await seed(http.db)
    await post(http, "", {**OFFER, "segment": "active"})
    setup = http.app[NOTICE_SETUP]
    assert (await deliver(http.db.sessions, setup, lambda: datetime.now(UTC))).sent == 3
    resp = await http.client.get("/api/reports/notices", headers=BEARER)
    report = await resp.json()
    assert resp.status == 200, report
    (row,) = report["rows"]
    assert (row["kind"], row["channel"]) == ("offer", "email")
    assert (row["messages"], row["sent"], row["waiting"], row["delivered"]) == (3, 3, 0, 0)
    assert [(o["channel"], o["source"], o["clients"]) for o in report["opt_outs"]] == [
        ("email", "unsubscribe", 1)
    ]
    resp = await http.client.get("/api/reports/notices.csv", headers=BEARER)
    lines = (await resp.text()).splitlines()
    assert (
        lines[0]
        == "start,end,kind,channel,source,messages,waiting,sent,delivered,failed,expired,fallbacks"
    )
    assert lines[1].endswith(",offer,email,,3,0,3,0,0,0,0")
    assert lines[2].split(",")[2:6] == ["opt_out", "email", "unsubscribe", "1"]
    resp = await http.client.get("/api/reports/notices", params={"channel": "sms"}, headers=BEARER)
    assert (await resp.json())["rows"] == []
    resp = await http.client.get(
        "/api/reports/notices", params={"interval": "hour"}, headers=BEARER
    )
    assert resp.status == 400 and (await resp.json())["error_id"] == "bad_interval"
    lead = await http.users.headers("supervisor")
    resp = await http.client.get("/desk/api/reports/notices", headers=lead)
    assert resp.status == 200 and (await resp.json())["rows"] == report["rows"]
    resp = await http.client.get(
        "/desk/api/reports/notices", headers=await http.users.headers("agent")
    )
    assert resp.status == 403
