"""Written inquiries over HTTP (web/contact.py, web/inquiries_api.py) on SQLite and
PostgreSQL: the public contact form stores a person's message as an inquiry and gives its
reference, thanks a bot (honeypot, too fast, a forged render time) and stores nothing,
names a person's wrong fields keeping their text, and makes an address that posts too often
wait; a Facebook or Instagram message from the webhook (wired as `serve` wires it) is one
inquiry per conversation, stored once; the inquiries API lists, shows (messages,
attachments, log, SLA), and takes an agent's reply, assignment, escalation, kind, note and
closing, refusing what is not allowed."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from centrala.meta_inbox import meta_routes
from centrala.service import SESSIONS
from centrala.settings import Settings
from core.enums import AgentRole
from core.inquiries.meta import signature
from models.inquiries import Arrival, Attachment
from models.inquiries import thread as store_thread
from models.tables import Agent, Client, Inquiry
from tests import meta_payloads as P
from tests.conftest import Database
from tests.desk_web import offline_desk_web
from tests.integration.test_survey_reports_http import Users
from usecases.inquiries import InquirySetup, receive, receive_meta
from web.contact import Limiter, stamp
from web.contact import routes as contact_routes
from web.errors import api_guard, errors
from web.http import WEB, setup_templates
from web.inquiries_api import INQUIRY_SETUP, desk_routes, routes

TOKEN = "inquiries-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "inquiries-test-secret-0123456789"
SETUP = InquirySetup(supervisor="supervisor-1")

Http = tuple[TestClient[Any, Any], Users]


@pytest.fixture
async def http(database: Database, tmp_path: Path) -> AsyncIterator[Http]:
    async with database.sessions() as session, session.begin():
        session.add(Agent(id="supervisor-1", name="Sanja", role=AgentRole.SUPERVISOR))
        session.add(Client(external_id="iq-http-1", name="Lejla Kovač", email="lejla@example.ba"))
    settings = Settings(api_token=TOKEN, data_dir=tmp_path)
    app = web.Application(middlewares=[errors, api_guard(settings.effective_api_token)])
    app[SESSIONS] = database.sessions
    app[WEB] = offline_desk_web(database.sessions, SECRET)
    app[INQUIRY_SETUP] = InquirySetup(supervisor="supervisor-1")  # the app's own: PUT changes it
    setup_templates(app)
    app.router.add_routes(routes(SESSIONS))
    app.router.add_routes(desk_routes())
    app.router.add_routes(contact_routes(SESSIONS, INQUIRY_SETUP, SECRET, Limiter(limit=4)))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, Users(database, app[WEB].sessions, app[WEB].web_sessions)
    finally:
        await client.close()


async def inquiries(database: Database) -> int:
    async with database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Inquiry)) or 0)


def form(**fields: str) -> dict[str, str]:
    return {
        "name": "Lejla Kovač",
        "email": "lejla@example.ba",
        "phone": "",
        "message": "Imam žalbu na rad poslovnice u Zenici.",
        "website": "",
        "rendered": stamp(SECRET, time.time() - 30),  # the page was read 30 s ago
        **fields,
    }


async def test_the_contact_form_stores_a_persons_message_and_thanks_a_bot(
    http: Http, database: Database
) -> None:
    client, _ = http
    page = await client.get("/contact", headers={"Accept-Language": "en"})
    assert page.status == 200 and 'name="rendered"' in await page.text()
    assert "Write to us" in await page.text()

    sent = await client.post("/contact", data=form())
    assert sent.status == 200, await sent.text()
    async with database.sessions() as session:
        stored = (await session.scalars(select(Inquiry))).one()
    assert f"#INQ-{stored.id}" in await sent.text()
    assert (stored.channel, stored.kind, stored.sender) == (
        "web_form",
        "complaint",
        "lejla@example.ba",
    )
    assert stored.client_id is not None  # Lejla is a client: by her e-mail
    thread = await store_thread(database.sessions, stored.id)
    assert thread is not None
    (receipt,) = [m for m in thread.messages if m.direction == "out"]  # her receipt, to send
    assert (receipt.automatic, receipt.send_state, receipt.author_id) == (True, "queued", None)
    assert receipt.subject == f"Primili smo Vašu poruku #INQ-{stored.id}"
    assert receipt.text.startswith("Poštovani/a Lejla Kovač,")
    assert (thread.inquiry.state, thread.inquiry.first_response_at) == ("new", None)  # no answer

    for bot in (
        form(website="http://spam.example"),  # the honeypot
        form(rendered=stamp(SECRET, time.time())),  # faster than a person types
        form(rendered=f"{int(time.time()) - 30}.0000"),  # a forged time
    ):
        thanked = await client.post("/contact", data=bot)
        assert thanked.status == 200 and "data-contact-sent" in await thanked.text()
    assert await inquiries(database) == 1  # none of them stored


async def test_a_persons_mistakes_are_named_and_an_address_posting_too_often_waits(
    http: Http, database: Database
) -> None:
    client, _ = http
    wrong = await client.post(
        "/contact?lang=en", data=form(email="not-an-address", message="Moja poruka ostaje.")
    )
    assert wrong.status == 400
    text = await wrong.text()
    assert "This is not an e-mail address." in text and "Moja poruka ostaje." in text
    as_json = await client.post(
        "/contact", data=form(email="", phone=""), headers={"Accept": "application/json"}
    )
    assert as_json.status == 400
    assert (await as_json.json())["errors"] == {"email": "contact_required"}
    ok = await client.post(
        "/contact", data=form(email="", phone="061 222 333"), headers={"Accept": "application/json"}
    )
    assert ok.status == 200 and (await ok.json())["reference"].startswith("#INQ-")
    limited = await client.post("/contact", data=form())  # the fourth from this address
    assert limited.status == 200
    waited = await client.post("/contact", data=form())
    assert waited.status == 429 and int(waited.headers["Retry-After"]) > 0
    assert await inquiries(database) == 2


async def test_the_api_shows_an_inquiry_and_takes_the_agents_moves(
    http: Http, database: Database
) -> None:
    client, users = http
    received = await receive(
        database.sessions, SETUP,
        Arrival(
            channel="email", source_key="imap:inbox:1:1", sender="lejla@example.ba",
            sender_name="Lejla Kovač", subject="Pitanje o kreditu", text="Koliki je kamata?",
            at=datetime.now(UTC), sender_email="lejla@example.ba", message_id="q1@example.ba",
            attachments=(Attachment("račun.pdf", "application/pdf", b"%PDF-1.4 x"),),
        ),
    )  # fmt: skip
    inquiry_id = received.inquiry_id
    listed = await (await client.get("/api/inquiries?state=new", headers=BEARER)).json()
    assert [i["id"] for i in listed["inquiries"]] == [inquiry_id]
    bad = await client.get("/api/inquiries?state=lost", headers=BEARER)
    assert bad.status == 400 and (await bad.json())["error_id"] == "bad_filter"

    shown = await (await client.get(f"/api/inquiries/{inquiry_id}", headers=BEARER)).json()
    assert shown["kind"] == "credit_application" and shown["sla"]["breached"] is False
    assert shown["sla"]["first_response_due"] is not None
    (message,) = shown["messages"]
    (attached,) = message["attachments"]
    assert attached["filename"] == "račun.pdf"
    got = await client.get(
        f"/api/inquiries/{inquiry_id}/attachments/{attached['id']}", headers=BEARER
    )
    assert got.status == 200 and await got.read() == b"%PDF-1.4 x"
    assert got.content_type == "application/octet-stream"  # a download, never rendered
    elsewhere = await client.get(
        f"/api/inquiries/{inquiry_id + 1}/attachments/{attached['id']}", headers=BEARER
    )
    assert elsewhere.status == 404  # another inquiry's path does not reach it
    assert got.headers["Content-Disposition"] == (
        "attachment; filename=\"ra_un.pdf\"; filename*=UTF-8''ra%C4%8Dun.pdf"
    )
    assert [e["kind"] for e in shown["log"]] == ["state", "escalate"]  # to the supervisor

    agent = await users.headers("agent")
    session_id = agent["Cookie"].split("=", 1)[1]
    csrf = users.sessions.csrf_token(users.sessions.session_id(session_id) or "")
    desk = {**agent, "X-CSRF-Token": csrf}
    taken = await client.post(f"/desk/api/inquiries/{inquiry_id}/assign", json={}, headers=desk)
    assert taken.status == 200 and (await taken.json())["owner"] == "agent-1"
    other = await client.post(
        f"/desk/api/inquiries/{inquiry_id}/assign", json={"agent_id": "supervisor-1"}, headers=desk
    )
    assert other.status == 403  # an agent takes inquiries, a supervisor gives them
    answered = await client.post(
        f"/desk/api/inquiries/{inquiry_id}/reply", json={"text": "Kamata je 9%."}, headers=desk
    )
    assert answered.status == 200 and (await answered.json())["state"] == "waiting"
    escalated = await client.post(f"/desk/api/inquiries/{inquiry_id}/escalate", headers=desk)
    assert escalated.status == 409  # the supervisor has it; Lejla has no manager
    assert (await escalated.json())["error_id"] == "already_escalated"
    kind = await client.post(
        f"/desk/api/inquiries/{inquiry_id}/kind", json={"kind": "nope"}, headers=desk
    )
    assert kind.status == 400 and (await kind.json())["error_id"] == "bad_kind"
    noted = await client.post(
        f"/desk/api/inquiries/{inquiry_id}/note", json={"text": "Zvati sutra."}, headers=desk
    )
    assert noted.status == 200
    closed = await client.post(f"/api/inquiries/{inquiry_id}/close", headers=BEARER)
    assert closed.status == 200 and (await closed.json())["state"] == "closed"
    again = await client.post(f"/api/inquiries/{inquiry_id}/close", headers=BEARER)
    assert again.status == 409 and (await again.json())["error_id"] == "inquiry_state"
    missing = await client.get("/api/inquiries/999999", headers=BEARER)
    assert missing.status == 404 and (await missing.json())["error_id"] == "not_found"

    shown = await (await client.get(f"/api/inquiries/{inquiry_id}", headers=BEARER)).json()
    assert [(m["direction"], m["text"]) for m in shown["messages"]] == [
        ("in", "Koliki je kamata?"),
        ("out", "Kamata je 9%."),
        ("note", "Zvati sutra."),
    ]
    assert shown["messages"][1]["send_state"] == "queued"
    assert shown["first_response_at"] is not None
    unauthorised = await client.get("/api/inquiries")
    assert unauthorised.status == 401


async def test_facebook_and_instagram_messages_become_inquiries_once(
    database: Database, tmp_path: Path
) -> None:
    """The webhook wired as `serve` wires it (centrala.service: receive_meta behind
    meta_routes): a person's messages are one inquiry per conversation, a redelivery and
    our own echo add nothing, and a wrong signature stores nothing."""
    settings = Settings(
        data_dir=tmp_path, meta_app_secret=P.APP_SECRET, meta_verify_token=P.VERIFY_TOKEN
    )

    async def inbox(messages: Any) -> None:
        await receive_meta(database.sessions, SETUP, messages)

    app = web.Application(middlewares=[errors])
    app.router.add_routes(meta_routes(settings, inbox))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()

    async def post(payload: dict[str, Any], secret: str = P.APP_SECRET) -> int:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()
        headers = {
            "X-Hub-Signature-256": signature(secret.encode(), body),
            "Content-Type": "application/json",
        }
        resp = await client.post("/webhooks/meta", data=body, headers=headers)
        return resp.status

    try:
        assert await post(P.page(P.TEXT)) == 200
        assert await post(P.page(P.TEXT, P.REPLY_TO, P.ECHO)) == 200  # redelivered, one new
        assert await post(P.instagram(P.IG_TEXT)) == 200
        forged = P.page(P.from_person({"message": {"mid": "m_forged", "text": "x"}}))
        assert await post(forged, secret="guess") == 403
    finally:
        await client.close()
    async with database.sessions() as session:
        rows = list(await session.scalars(select(Inquiry).order_by(Inquiry.id)))
    assert [(r.channel, r.sender, r.kind) for r in rows] == [
        ("facebook", P.PSID, "credit_application"),  # "zanima me kredit za stan"
        ("instagram", P.IGSID, rows[1].kind),
    ]
    thread = await store_thread(database.sessions, rows[0].id)
    assert thread is not None
    assert [m.text for m in thread.messages] == [
        "Dobar dan, zanima me kredit za stan. Šta mi treba?",
        "hello, world!",
    ]
    assert thread.inquiry.reply_from == P.PAGE


async def test_the_operators_token_answers_as_nobody_and_names_whom_it_gives_to(
    http: Http, database: Database
) -> None:
    client, _ = http
    received = await receive(
        database.sessions, SETUP,
        Arrival(channel="email", source_key="imap:inbox:1:9", sender="x@example.ba",
                sender_name="X", subject="Info", text="Zdravo", at=datetime.now(UTC),
                sender_email="x@example.ba"),
    )  # fmt: skip
    one = f"/api/inquiries/{received.inquiry_id}"
    taken = await client.post(f"{one}/assign", json={}, headers=BEARER)
    assert taken.status == 400 and (await taken.json())["error_id"] == "bad_agent"  # it is no agent
    nobody = await client.post(f"{one}/assign", json={"agent_id": "ghost"}, headers=BEARER)
    assert nobody.status == 400 and (await nobody.json())["error_id"] == "bad_agent"
    given = await client.post(f"{one}/assign", json={"agent_id": "supervisor-1"}, headers=BEARER)
    assert given.status == 200 and (await given.json())["owner"] == "supervisor-1"
    answered = await client.post(f"{one}/reply", json={"text": "Dobar dan."}, headers=BEARER)
    assert answered.status == 200, await answered.text()
    shown = await (await client.get(one, headers=BEARER)).json()
    assert shown["messages"][-1]["author"] is None and shown["messages"][-1]["text"] == "Dobar dan."


async def test_an_unknown_sender_is_linked_to_a_client_or_made_one(
    http: Http, database: Database
) -> None:
    client, _ = http

    async def arrive(n: int, sender: str) -> int:
        received = await receive(
            database.sessions, SETUP,
            Arrival(channel="email", source_key=f"imap:inbox:2:{n}", sender=sender,
                    sender_name="Novi Klijent", subject=f"Pitanje {n}", text="Zdravo",
                    at=datetime.now(UTC), sender_email=sender),
        )  # fmt: skip
        assert received.created
        return received.inquiry_id or 0

    first = await arrive(1, "novi@example.ba")
    one = f"/api/inquiries/{first}/client"
    for body in ({}, {"client_id": "1"}, {"new": True, "client_id": 1}, {"new": True, "name": ""}):
        bad = await client.post(one, json=body, headers=BEARER)
        assert bad.status == 400 and (await bad.json())["error_id"] == "bad_client", body
    missing = await client.post(one, json={"client_id": 999999}, headers=BEARER)
    assert missing.status == 404 and (await missing.json())["error_id"] == "not_found"
    made = await client.post(one, json={"new": True}, headers=BEARER)
    assert made.status == 200, await made.text()
    new_id = (await made.json())["client_id"]
    async with database.sessions() as session:
        row = await session.get(Client, new_id)
        assert row is not None and (row.name, row.email) == ("Novi Klijent", "novi@example.ba")
    # Their next mail links by itself.
    second = await arrive(2, "novi@example.ba")
    shown = await (await client.get(f"/api/inquiries/{second}", headers=BEARER)).json()
    assert shown["client_id"] == new_id

    # An existing client without an e-mail gets the sender's.
    async with database.sessions() as session, session.begin():
        known = Client(external_id="iq-http-2", name="Stari Klijent")
        session.add(known)
        await session.flush()
        known_id = known.id
    third = await arrive(3, "stari@example.ba")
    linked = await client.post(
        f"/api/inquiries/{third}/client", json={"client_id": known_id}, headers=BEARER
    )
    assert linked.status == 200 and (await linked.json())["client_id"] == known_id
    async with database.sessions() as session:
        row = await session.get(Client, known_id)
        assert row is not None and row.email == "stari@example.ba"


async def test_an_admin_edits_the_classification_rules_and_they_are_used(
    http: Http, database: Database
) -> None:
    client, users = http
    shown = await (await client.get("/api/inquiries/rules", headers=BEARER)).json()
    assert shown["version"] == 0 and "žalba" in shown["rules"]["keywords"]["complaint"]["bs"]
    rules = shown["rules"]
    rules["senders"] = [{"pattern": "*@banka.ba", "kind": "credit_application"}]
    saved = await client.put(
        "/api/inquiries/rules", json={"version": 0, "rules": rules}, headers=BEARER
    )
    assert saved.status == 200, await saved.text()
    assert (await saved.json())["version"] == 1
    stale = await client.put(
        "/api/inquiries/rules", json={"version": 0, "rules": rules}, headers=BEARER
    )
    assert stale.status == 409 and (await stale.json())["error_id"] == "rules_changed"
    wrong = {**rules, "senders": [{"pattern": "*", "kind": "complaint"}]}
    refused = await client.put(
        "/api/inquiries/rules", json={"version": 1, "rules": wrong}, headers=BEARER
    )
    assert refused.status == 422
    assert (await refused.json())["details"]["path"] == "senders[0]"
    agent = await users.headers("agent")
    session_id = agent["Cookie"].split("=", 1)[1]
    csrf = users.sessions.csrf_token(users.sessions.session_id(session_id) or "")
    not_admin = await client.put(
        "/desk/api/inquiries/rules",
        json={"version": 1, "rules": rules},
        headers={**agent, "X-CSRF-Token": csrf},
    )
    assert not_admin.status == 403
    # In use at once: a bank's message through the contact form is a credit application.
    sent = await client.post("/contact", data=form(email="ured@banka.ba", message="Pozdrav."))
    assert sent.status == 200
    async with database.sessions() as session:
        stored = await session.scalar(select(Inquiry).where(Inquiry.sender == "ured@banka.ba"))
    assert stored is not None and stored.kind == "credit_application"


async def test_a_double_click_is_stored_once_and_a_borrowed_post_id_loses_nothing(
    http: Http, database: Database
) -> None:
    client, _ = http
    twice = form(post_id="p-1", message="Jedna poruka.")
    for _ in range(2):
        assert (await client.post("/contact", data=twice)).status == 200
    other = form(post_id="p-1", email="drugi@example.ba", message="Druga poruka.")
    assert (await client.post("/contact", data=other)).status == 200
    assert await inquiries(database) == 2


async def test_an_answer_to_a_form_with_a_phone_only_is_refused_with_nothing_written(
    http: Http, database: Database
) -> None:
    client, _ = http
    posted = await client.post(
        "/contact", data=form(email="", phone="061 222 444"), headers={"Accept": "application/json"}
    )
    inquiry_id = int((await posted.json())["reference"].removeprefix("#INQ-"))
    refused = await client.post(
        f"/api/inquiries/{inquiry_id}/reply", json={"text": "Dobar dan."}, headers=BEARER
    )
    assert refused.status == 409 and (await refused.json())["error_id"] == "no_written_channel"
    shown = await (await client.get(f"/api/inquiries/{inquiry_id}", headers=BEARER)).json()
    assert shown["state"] == "new" and [m["direction"] for m in shown["messages"]] == ["in"]
