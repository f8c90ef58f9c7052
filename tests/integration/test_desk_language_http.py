"""The agent's language on the desk's pages, in a minimal aiohttp app (no `centrala serve`, no
Asterisk) on SQLite and PostgreSQL: the login page goes by the browser's Accept-Language, the
desk, the wallboard and the reports by the agent's row; the agent changes it on the desk
(session + CSRF, a language not shipped refused) and an admin with the README's `centrala
agent language` commands."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from models.tables import Agent, AgentRole, DeskLanguage
from models.web_sessions import WebSessionStore
from tests.conftest import Database
from tests.desk_web import offline_desk_web
from tests.integration.test_loans_db import centrala
from web import i18n
from web.auth import COOKIE, Sessions
from web.errors import errors
from web.http import WEB, routes, setup_templates
from web.reports import routes as report_routes

README = Path(__file__).resolve().parents[2] / "README.md"


@dataclass
class Desk:
    client: TestClient[Any, Any]
    database: Database
    sessions: Sessions
    web_sessions: WebSessionStore

    async def log_in(self, agent_id: str) -> tuple[dict[str, str], str]:
        """The session cookie header and the CSRF token, as the desk's log-in makes them."""
        session_id = await self.web_sessions.open(agent_id, datetime.now(UTC))
        cookie = {"Cookie": f"{COOKIE}={self.sessions.cookie(session_id)}"}
        return cookie, self.sessions.csrf_token(session_id)

    async def language(self, agent_id: str) -> str:
        async with self.database.sessions() as session:
            agent = await session.get(Agent, agent_id)
        assert agent is not None
        return str(agent.language)


@pytest.fixture
async def desk(database: Database) -> AsyncIterator[Desk]:
    async with database.sessions() as session, session.begin():
        session.add_all(
            [
                Agent(id="amra", name="Amra Hodžić", role=AgentRole.AGENT, endpoint="PJSIP/101"),
                Agent(
                    id="sam",
                    name="Sam",
                    role=AgentRole.SUPERVISOR,
                    endpoint="PJSIP/102",
                    language=DeskLanguage.EN,
                ),
            ]
        )
    app = web.Application(middlewares=[errors])
    # The pages and the language route use the store and the sessions only.
    app[WEB] = offline_desk_web(database.sessions, "language-test-secret")
    sessions, web_sessions = app[WEB].sessions, app[WEB].web_sessions
    setup_templates(app)
    app.router.add_routes(routes())
    app.router.add_routes(report_routes())
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Desk(client, database, sessions, web_sessions)
    finally:
        await client.close()


def _lang(page: str) -> str:
    found = re.search(r'<html lang="([a-z]+)">', page)
    assert found is not None
    return found.group(1)


def _embedded(page: str) -> dict[str, str]:
    found = re.search(r'<script type="application/json" id="i18n">(.*?)</script>', page, re.S)
    assert found is not None
    texts: dict[str, str] = json.loads(found.group(1))
    return texts


@pytest.mark.parametrize(
    ("accept", "language", "words"),
    [
        (None, "bs", ["Prijava", "Lozinka", "Prijavi se"]),
        ("en-GB,en;q=0.9", "en", ["Log in", "Password"]),
        ("hr-HR,hr;q=0.9,en;q=0.5", "bs", ["Prijava"]),
    ],
)
async def test_the_login_page_speaks_the_browsers_language(
    desk: Desk, accept: str | None, language: str, words: list[str]
) -> None:
    headers = {"Accept-Language": accept} if accept else {}
    resp = await desk.client.get("/login", headers=headers)
    page = await resp.text()
    assert resp.status == 200 and _lang(page) == language
    assert resp.headers["Vary"] == "Accept-Language"
    for word in words:
        assert word in page


async def test_a_failed_log_in_says_so_in_the_browsers_language(desk: Desk) -> None:
    for accept, said in (("bs", "Pogrešan ID agenta ili lozinka."), ("en", "Wrong agent id")):
        form_page = await (await desk.client.get("/login")).text()
        csrf = re.search(r'name="csrf" value="([^"]+)"', form_page)
        assert csrf is not None
        resp = await desk.client.post(
            "/login",
            data={"csrf": csrf.group(1), "agent_id": "amra", "password": "not the password"},
            headers={"Accept-Language": accept},
        )
        assert resp.status == 401 and said in await resp.text()


async def test_the_desk_speaks_the_agents_language_whatever_the_browser_asks(
    desk: Desk,
) -> None:
    cookie, _ = await desk.log_in("amra")
    resp = await desk.client.get("/desk", headers={**cookie, "Accept-Language": "en"})
    page = await resp.text()
    assert resp.status == 200 and _lang(page) == "bs"
    assert "Primam pozive" in page and "Radno mjesto · Amra Hodžić" in page
    texts = _embedded(page)
    assert texts["desk.hang_up"] == "Prekini" and texts["format.locale"] == "hr-HR"
    assert not any(k.startswith("wallboard.") for k in texts)

    cookie, _ = await desk.log_in("sam")
    english = await (await desk.client.get("/desk", headers=cookie)).text()
    assert _lang(english) == "en" and "Available" in english
    board = await (await desk.client.get("/wallboard", headers=cookie)).text()
    assert _lang(board) == "en" and "Longest wait" in board
    assert _embedded(board)["wallboard.updated"] == "Updated {time}"
    reports = await (await desk.client.get("/reports/surveys", headers=cookie)).text()
    assert _lang(reports) == "en" and "No survey has been applied yet." in reports


async def test_the_agent_chooses_their_language_on_the_desk(desk: Desk) -> None:
    cookie, csrf = await desk.log_in("amra")
    path = "/desk/api/me/language"
    refused = await desk.client.post(path, json={"language": "en"}, headers=cookie)
    assert refused.status == 403 and (await refused.json())["error_id"] == "csrf"
    stranger = await desk.client.post(path, json={"language": "en"})
    assert stranger.status == 401
    headers = {**cookie, "X-CSRF-Token": csrf}
    for wrong in ("de", "", None, 1):
        bad = await desk.client.post(path, json={"language": wrong}, headers=headers)
        body = await bad.json()
        assert (bad.status, body["error_id"], body["field"]) == (422, "bad_field", "language")
    assert await desk.language("amra") == "bs"

    ok = await desk.client.post(path, json={"language": "en"}, headers=headers)
    assert ok.status == 200 and await ok.json() == {"agent_id": "amra", "language": "en"}
    assert await desk.language("amra") == "en"
    page = await (await desk.client.get("/desk", headers=cookie)).text()
    assert _lang(page) == "en" and "Hang up" in page
    # The same session, no new log-in: the next page already speaks it.
    back = await desk.client.post(path, json={"language": "bs"}, headers=headers)
    assert back.status == 200
    page = await (await desk.client.get("/desk", headers=cookie)).text()
    assert _lang(page) == "bs" and i18n.t("bs", "desk.hang_up") in page


def readme_language_commands() -> list[list[str]]:
    """The commands of the README's languages block, split as a shell would."""
    text = README.read_text().split("### Languages: Bosnian and English", 1)[1]
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block is not None, "the languages' command block is gone from the README"
    lines = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("centrala ")]


async def test_the_readme_language_commands(desk: Desk) -> None:
    to_english, to_bosnian = readme_language_commands()
    assert to_english[:2] == ["agent", "language"] and to_english[2] == "amra"
    code, out, err = await centrala(desk.database, *to_english)
    assert code == 0, err
    assert out.strip() == "language of amra: en"
    assert await desk.language("amra") == "en"
    code, out, err = await centrala(desk.database, *to_bosnian)
    assert code == 0 and await desk.language("amra") == "bs", err

    code, _, err = await centrala(desk.database, "agent", "language", "nobody", "en")
    assert code == 1 and "no agent 'nobody'" in err
    code, _, err = await centrala(desk.database, "agent", "language", "amra", "de")
    assert code == 2 and "'de' is not one of 'bs', 'en'" in err
    assert await desk.language("amra") == "bs"
