"""Printed letters from the CRM (usecases/letters.py, centrala/cli_letters.py,
web/letters_api.py), on SQLite and PostgreSQL: the README's commands (a list of clients and a
segment), each client once, in their language, a page each, the skipped counted by reason
(no postal address, opted out of letters), bad input naming its line with nothing written,
exit 1 when nobody may get a letter; and `POST /api/letters` with the bearer token and its
desk twin (a supervisor may, an agent may not), answering the PDF or an error id."""

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
from core.notices import Policy
from models.tables import Client, ContactOptOut, Loan
from tests.conftest import Database
from tests.desk_web import offline_desk_web
from tests.integration.test_survey_reports_http import Users
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

    resp = await client.post(
        "/api/letters",
        json={"kind": "announcement", "segment": "inactive", "message": "Čestitamo!"},
        headers=BEARER,
    )
    assert resp.status == 200, await resp.text()
    (eve,) = pages(await resp.read())
    assert "Eve Žunić" in eve and "Čestitamo!" in eve


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
