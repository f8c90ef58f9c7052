"""Printed letters from the CRM (usecases/letters.py, centrala/cli_letters.py,
web/letters_api.py), on SQLite and PostgreSQL: the README's commands (a list of clients and a
segment), each client once, in their language, a page each, the skipped counted by reason
(no postal address, opted out of letters), bad input naming its line with nothing written,
exit 1 when nobody may get a letter; each letter kept in the outbox as printed (the client's
history, the frequency cap, an offer's topic that day), the same batch again printing nobody
twice unless reprinted, two batches at once printing a letter once; and `POST /api/letters`
with the bearer token and its desk twin (a supervisor may, an agent may not), answering the
PDF or an error id."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pypdfium2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from centrala.service import SESSIONS
from centrala.settings import Settings
from core.letters import sender_lines
from core.notices import Channel, NoticeKind, Policy
from models import notices as store
from models.tables import Client, ContactOptOut, Loan
from tests.conftest import Database
from tests.desk_web import offline_desk_web
from tests.integration.test_survey_reports_http import Users
from usecases.letters import compose, record
from usecases.notices import NoticeSetup, deliver, queue
from web.errors import api_guard, errors
from web.http import WEB
from web.letters_api import LetterConfig, routes

TOKEN = "letters-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
SENDER = "Fondacija Test\\nFerhadija 1\\n71000 Sarajevo"
ADDRESS = "Ferhadija 12\n71000 Sarajevo"


async def seed(db: Database) -> dict[str, int]:
    """Ana and Bob with an address (Bob in English), Cid without one, Dan opted out of
    letters, Eve an inactive borrower (her last loan closed a year ago)."""
    now = datetime.now(UTC)
    rows = {
        "ana": Client(external_id="lt-ana", name="Ana Šarić", postal_address=ADDRESS),
        "bob": Client(
            external_id="lt-bob", name="Bob Smith", language="en", postal_address=ADDRESS
        ),
        "cid": Client(external_id="lt-cid", name="Cid Ćatić"),
        "dan": Client(external_id="lt-dan", name="Dan Đurić", postal_address=ADDRESS),
        "eve": Client(external_id="lt-eve", name="Eve Žunić", postal_address=ADDRESS),
    }
    async with db.sessions() as session, session.begin():
        session.add_all(rows.values())
        await session.flush()
        session.add(
            ContactOptOut(client_id=rows["dan"].id, channel="letter", at=now, source="agent")
        )
        session.add(
            Loan(
                client_id=rows["eve"].id,
                external_id="lt-loan-1",
                opened_at=now - timedelta(days=700),
                closed_at=now - timedelta(days=365),
            )
        )
    return {k: v.id for k, v in rows.items()}


def centrala(db: Database, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "centrala.cli", *args],
        cwd=cwd,
        env={
            **os.environ,
            "CENTRALA_DATABASE_URL": db.url,
            "CENTRALA_DATA_DIR": str(cwd / "data"),
            "CENTRALA_LETTERS_SENDER": SENDER,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def pages(pdf: bytes | Path) -> list[str]:
    return [page.get_textpage().get_text_range() for page in pypdfium2.PdfDocument(pdf)]


async def test_the_readme_commands_print_a_list_and_a_segment(
    database: Database, tmp_path: Path
) -> None:
    await seed(database)
    (tmp_path / "list.csv").write_text(
        "external_id;name\nlt-ana;Ana\nlt-bob;Bob\nlt-cid;Cid\nlt-dan;Dan\nlt-ana;Ana\n"
    )
    message = "od 1. januara radimo u Titovoj 1."
    run = ("letters", "render", "office-change", "--clients", "list.csv", "--message", message)
    done = await asyncio.to_thread(centrala, database, tmp_path, *run, "--out", "letters.pdf")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(
        r"office-change: letters 2 \(skipped: no_address 1, opted_out 1\); "
        r"letters\.pdf: 2 pages, \d+ KB\n",
        done.stdout,
    ), done.stdout
    ana, bob = pages(tmp_path / "letters.pdf")  # in the list's order, Ana once
    assert "Ana Šarić" in ana and "Obavještenje o promjeni" in ana
    assert "obavještavamo Vas: od 1. januara radimo u Titovoj 1." in ana
    assert "Fondacija Test, Ferhadija 1, 71000 Sarajevo" in ana  # the return line
    assert re.search(r"Sarajevo, \d+\. [a-z]+ 20\d\d\.", ana)
    assert "Bob Smith" in bob and "A change at our office" in bob and "Kind regards," in bob
    assert re.search(r"Sarajevo, \d+ [A-Z][a-z]+ 20\d\d", bob)

    offer = ("letters", "render", "offer", "--segment", "inactive")
    done = await asyncio.to_thread(
        centrala, database, tmp_path, *offer, "--product", "Kredit 5000 KM", "--out", "ponude.pdf"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("offer: letters 1 (skipped: none); ponude.pdf: 1 pages")
    (eve,) = pages(tmp_path / "ponude.pdf")
    assert "Eve Žunić" in eve and "Ponuda za Vas: Kredit 5000 KM" in eve


async def test_a_batch_again_prints_nobody_twice_unless_it_is_a_reprint(
    database: Database, tmp_path: Path
) -> None:
    ids = await seed(database)
    (tmp_path / "list.csv").write_text("external_id\nlt-ana\nlt-bob\nlt-cid\nlt-dan\n")
    message = "od 1. januara radimo u Titovoj 1."  # the README's commands, as it shows them
    run = ("letters", "render", "office-change", "--clients", "list.csv", "--message", message)
    first = await asyncio.to_thread(centrala, database, tmp_path, *run, "--out", "letters.pdf")
    assert first.returncode == 0, first.stderr
    printed = pages(tmp_path / "letters.pdf")
    made = (tmp_path / "letters.pdf").read_bytes()
    kept = await store.history(database.sessions, ids["ana"])
    assert [(n.channel, n.state, n.provider_id, n.kind) for n in kept] == [
        ("letter", "sent", "printed", "office_change")
    ]
    assert kept[0].address == "Ana Šarić\nFerhadija 12\n71000 Sarajevo"

    again = await asyncio.to_thread(centrala, database, tmp_path, *run, "--out", "letters.pdf")
    assert again.returncode == 1, again.stderr
    assert again.stdout == (
        "office-change: letters 0 (skipped: no_address 1, opted_out 1, printed_today 2); "
        "nothing to print, letters.pdf not written (--reprint prints them again)\n"
    )
    assert (tmp_path / "letters.pdf").read_bytes() == made  # left as it was
    assert not (tmp_path / "letters.pdf.part").exists()

    reprint = await asyncio.to_thread(
        centrala, database, tmp_path, *run, "--out", "letters.pdf", "--reprint"
    )
    assert reprint.returncode == 0, reprint.stderr
    assert reprint.stdout.startswith(
        "office-change: letters 2, 2 of them reprinted (skipped: no_address 1, opted_out 1); "
    ), reprint.stdout
    assert pages(tmp_path / "letters.pdf") == printed
    assert len(await store.history(database.sessions, ids["ana"])) == 1  # kept once

    other = ("letters", "render", "office-change", "--clients", "list.csv", "--message", "Novo")
    done = await asyncio.to_thread(centrala, database, tmp_path, *other, "--out", "new.pdf")
    assert done.returncode == 0 and done.stdout.startswith("office-change: letters 2 ("), done


async def test_a_letter_counts_as_a_contact_and_two_batches_at_once_print_it_once(
    database: Database,
) -> None:
    ids = await seed(database)
    now = datetime.now(UTC)
    policy = Policy(cap=2)

    async def batch(kind: NoticeKind, who: list[int], **text: str) -> Any:
        return await compose(
            database.sessions, kind, who, now, policy,
            sender=sender_lines(SENDER), day=now.date(), **text,
        )  # fmt: skip

    mine = await batch(NoticeKind.OFFER, [ids["ana"], ids["bob"]], product="Kredit")
    theirs = await batch(NoticeKind.OFFER, [ids["bob"]], product="Kredit")
    assert await record(database.sessions, theirs) is False  # kept first: Bob's is theirs
    assert await record(database.sessions, mine) is True  # to be made again, without Bob
    assert [x.client_id for x in mine.letters] == [ids["ana"]]
    assert mine.skipped == {"printed_today": 1}

    async def no_send(message: Any) -> str:
        raise AssertionError("queued only")

    setup = NoticeSetup(policy, {Channel.SMS: no_send, Channel.EMAIL: no_send})
    offered = await queue(
        database.sessions, setup, NoticeKind.OFFER, [ids["ana"]], now,
        occasion="x", topic="offer", product="Kredit",
    )  # fmt: skip
    assert offered.skipped == {"contacted_today": 1}  # the offer's letter covered the day
    greeted = await batch(NoticeKind.ANNOUNCEMENT, [ids["ana"]], message="Zdravo")
    assert await record(database.sessions, greeted) is False
    capped = await batch(NoticeKind.ANNOUNCEMENT, [ids["ana"]], message="Opet")
    assert capped.skipped == {"frequency_cap": 1}  # two letters this week, the cap 2


async def never(message: Any) -> str:
    raise AssertionError(f"a letter is printed, never sent: {message}")


async def queue_office_change(database: Database, ids: dict[str, int]) -> Any:
    """The notice to Ana, Bob, Cid and Dan by SMS or letter: Ana and Bob have no phone."""
    setup = NoticeSetup(Policy(), {Channel.SMS: never}, letters=True)
    now = datetime.now(UTC)
    queued = await queue(
        database.sessions, setup, NoticeKind.OFFICE_CHANGE,
        [ids["ana"], ids["bob"], ids["cid"], ids["dan"]], now,
        occasion="titova", message="od 1. januara radimo u Titovoj 1.",
    )  # fmt: skip
    assert queued.summary() == {
        "added": 2,
        "already": 0,
        "skipped": {"no_address": 1, "opted_out": 1},
    }
    # The senders never see a letter, due as it is.
    assert (await deliver(database.sessions, setup, lambda: now + timedelta(days=1))).sent == 0
    return setup


async def test_a_notice_to_a_client_whose_channel_is_a_letter_waits_to_be_printed(
    database: Database, tmp_path: Path
) -> None:
    ids = await seed(database)
    await queue_office_change(database, ids)
    (waiting,) = await store.history(database.sessions, ids["ana"])
    assert (waiting.channel, waiting.state) == ("letter", "queued")
    assert waiting.address == "Ana Šarić\nFerhadija 12\n71000 Sarajevo"  # as the window shows
    await store.opt_out(database.sessions, ids["bob"], Channel.LETTER, datetime.now(UTC), "agent")

    done = await asyncio.to_thread(
        centrala, database, tmp_path, "letters", "queued", "--out", "queued.pdf"
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(
        r"queued: letters 1 \(office_change 1\); opted out since queued: 1; "
        r"queued\.pdf: 1 pages, \d+ KB\n",
        done.stdout,
    ), done.stdout
    (ana,) = pages(tmp_path / "queued.pdf")
    assert "Ana Šarić" in ana and "obavještavamo Vas: od 1. januara radimo u Titovoj 1." in ana
    assert "Fondacija Test, Ferhadija 1, 71000 Sarajevo" in ana
    (kept,) = await store.history(database.sessions, ids["ana"])
    assert (kept.state, kept.provider_id, kept.attempts) == ("sent", "printed", 1)
    (bobs,) = await store.history(database.sessions, ids["bob"])
    assert (bobs.state, bobs.error) == ("failed", "opted out of letters")

    again = await asyncio.to_thread(
        centrala, database, tmp_path, "letters", "queued", "--out", "again.pdf"
    )
    assert again.returncode == 1, again.stderr
    assert again.stdout == "queued: letters 0 (none); nothing to print, again.pdf not written\n"
    assert not (tmp_path / "again.pdf").exists()


async def test_bad_input_names_its_line_and_nobody_to_print_is_exit_1(
    database: Database, tmp_path: Path
) -> None:
    await seed(database)
    listed = tmp_path / "list.csv"
    out = ("--out", "bad.pdf")
    run = ("letters", "render", "announcement", "--clients", "list.csv", "--message", "Zdravo")
    listed.write_text("external_id\nlt-ana\nnobody\n")
    bad = await asyncio.to_thread(centrala, database, tmp_path, *run, *out)
    assert bad.returncode == 2, bad.stderr
    assert "1 unknown external_id(s): nobody (line 3); nothing was printed" in bad.stderr
    # (The list's other faults and the options': tests/unit/test_letters_layout.py.)
    assert not (tmp_path / "bad.pdf").exists()

    listed.write_text("external_id\nlt-cid\nlt-dan\n")
    nobody = await asyncio.to_thread(centrala, database, tmp_path, *run, *out)
    assert nobody.returncode == 1, nobody.stderr
    assert nobody.stdout == (
        "announcement: letters 0 (skipped: no_address 1, opted_out 1); nothing to print, "
        "bad.pdf not written\n"
    )
    assert not (tmp_path / "bad.pdf").exists()


Http = tuple[TestClient[Any, Any], Users, dict[str, int]]


@pytest.fixture
async def http(database: Database, tmp_path: Path) -> AsyncIterator[Http]:
    ids = await seed(database)
    settings = Settings(api_token=TOKEN, data_dir=tmp_path)
    app = web.Application(middlewares=[errors, api_guard(settings.effective_api_token)])
    app[SESSIONS] = database.sessions
    app[WEB] = offline_desk_web(database.sessions, "letters-test-secret")
    app.router.add_routes(routes(SESSIONS, LetterConfig(sender_lines(SENDER), Policy())))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, Users(database, app[WEB].sessions, app[WEB].web_sessions), ids
    finally:
        await client.close()


async def test_the_api_answers_the_batch_as_a_pdf(http: Http) -> None:
    client, _, ids = http
    asked = {"kind": "offer", "clients": [ids["bob"], ids["cid"], ids["ana"]]}
    resp = await client.post("/api/letters", json={**asked, "product": "Kredit"}, headers=BEARER)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/pdf"
    assert resp.headers["Content-Disposition"].startswith('attachment; filename="letters-offer-')
    assert resp.headers["X-Centrala-Letters"] == "2"
    assert resp.headers["X-Centrala-Skipped"] == "no_address=1"
    bob, ana = pages(await resp.read())
    assert "An offer for you: Kredit" in bob and "Ponuda za Vas: Kredit" in ana
    assert resp.headers["X-Centrala-Reprinted"] == "0"

    again = await client.post("/api/letters", json={**asked, "product": "Kredit"}, headers=BEARER)
    assert again.status == 422, await again.text()
    refused = await again.json()
    assert refused["error_id"] == "nothing_to_print"
    assert refused["details"]["skipped"] == {"no_address": 1, "printed_today": 2}
    body = {**asked, "product": "Kredit", "reprint": True}
    resp = await client.post("/api/letters", json=body, headers=BEARER)
    assert resp.status == 200, await resp.text()
    assert resp.headers["X-Centrala-Letters"] == resp.headers["X-Centrala-Reprinted"] == "2"
    assert pages(await resp.read()) == [bob, ana]

    resp = await client.post(
        "/api/letters",
        json={"kind": "announcement", "segment": "inactive", "message": "Čestitamo!"},
        headers=BEARER,
    )
    assert resp.status == 200, await resp.text()
    (eve,) = pages(await resp.read())
    assert "Eve Žunić" in eve and "Čestitamo!" in eve


async def test_the_api_prints_the_queued_letters_once(http: Http, database: Database) -> None:
    client, _, ids = http
    await queue_office_change(database, ids)
    resp = await client.post("/api/letters/queued", json={"limit": 1}, headers=BEARER)
    assert resp.status == 200, await resp.text()
    assert resp.headers["X-Centrala-Letters"] == "1"
    (ana,) = pages(await resp.read())  # the oldest first
    assert "Ana Šarić" in ana
    resp = await client.post("/api/letters/queued", headers=BEARER)  # no body: all, 1000 at most
    assert resp.status == 200, await resp.text()
    (bob,) = pages(await resp.read())
    assert "Bob Smith" in bob and "A change at our office" in bob
    resp = await client.post("/api/letters/queued", headers=BEARER)
    assert resp.status == 422 and (await resp.json())["error_id"] == "nothing_to_print"
    for body, error_id in (({"limit": 0}, "bad_limit"), ({"x": 1}, "unknown_field")):
        resp = await client.post("/api/letters/queued", json=body, headers=BEARER)
        assert resp.status == 400 and (await resp.json())["error_id"] == error_id


async def test_the_api_refuses_bad_requests_with_an_error_id(http: Http) -> None:
    client, _, ids = http

    async def error(body: Any, status: int = 400) -> dict[str, Any]:
        resp = await client.post("/api/letters", json=body, headers=BEARER)
        assert resp.status == status, await resp.text()
        found: dict[str, Any] = await resp.json()
        return found

    ana = [ids["ana"]]
    assert (await error({"kind": "nope", "clients": ana}))["error_id"] == "bad_kind"
    assert (await error({"kind": "offer", "clients": ana}))["error_id"] == "needs_product"
    office = {"kind": "office_change", "message": "x"}
    assert (await error({**office, "clients": ana, "segment": "new"}))["error_id"] == "bad_clients"
    assert (await error({**office, "clients": ["1"]}))["error_id"] == "bad_clients"
    assert (await error({**office, "segment": "vip"}))["error_id"] == "bad_segment"
    assert (await error({**office, "clients": ana, "x": 1}))["error_id"] == "unknown_field"
    assert (await error({**office, "message": "x" * 501, "clients": ana}))["error_id"] == (
        "too_long"
    )
    unknown = await error({**office, "clients": [*ana, 999999]})
    assert unknown["error_id"] == "unknown_clients"
    assert unknown["details"]["client_ids"] == [999999]
    nobody = await error({**office, "clients": [ids["cid"], ids["dan"]]}, 422)
    assert nobody["error_id"] == "nothing_to_print"
    assert nobody["details"]["skipped"] == {"no_address": 1, "opted_out": 1}
    resp = await client.post("/api/letters", json={**office, "clients": ana})
    assert resp.status == 401  # no token


async def test_the_desk_twin_is_for_supervisors(http: Http) -> None:
    client, users, ids = http
    body = {"kind": "birthday", "clients": [ids["ana"]]}
    agent = await users.headers("agent")
    resp = await client.post("/desk/api/letters", json=body, headers=agent)
    assert resp.status == 403 and (await resp.json())["error_id"] == "forbidden"
    supervisor = await users.headers("supervisor")
    resp = await client.post("/desk/api/letters", json=body, headers=supervisor)
    assert resp.status == 403 and (await resp.json())["error_id"] == "csrf"
    session_id = supervisor["Cookie"].split("=", 1)[1]
    csrf = users.sessions.csrf_token(users.sessions.session_id(session_id) or "")
    resp = await client.post(
        "/desk/api/letters", json=body, headers={**supervisor, "X-CSRF-Token": csrf}
    )
    assert resp.status == 200, await resp.text()
    (ana,) = pages(await resp.read())
    assert "Ana Šarić" in ana and "Sretan rođendan, Ana!" in ana
