"""The survey report's routes in a minimal aiohttp app (no `centrala serve`, no Asterisk): the
bearer-token API (JSON and CSV) behind serve's own guard, and the desk's page and CSV behind
the session cookie and the supervisor's role. On SQLite and PostgreSQL, seeded by hand."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from centrala.service import SESSIONS, SETTINGS
from centrala.settings import Settings
from models.tables import Agent, AgentRole
from models.web_sessions import WebSessionStore
from tests.conftest import Database
from tests.desk_web import offline_desk_web
from tests.integration.test_survey_results_db import seed
from web.auth import COOKIE, Sessions
from web.errors import api_guard, errors
from web.http import WEB, setup_templates
from web.reports import routes as desk_report_routes
from web.survey_api import routes as report_routes

TOKEN = "report-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Users:
    """Log-ins as the desk makes them: an agent of the role, a session row, its cookie."""

    database: Database
    sessions: Sessions
    web_sessions: WebSessionStore

    async def headers(self, role: str) -> dict[str, str]:
        agent_id = f"{role}-1"
        async with self.database.sessions() as session, session.begin():
            if await session.get(Agent, agent_id) is None:
                session.add(Agent(id=agent_id, name=agent_id, role=AgentRole(role), active=True))
        session_id = await self.web_sessions.open(agent_id, datetime.now(UTC))
        return {"Cookie": f"{COOKIE}={self.sessions.cookie(session_id)}"}


@pytest.fixture
async def http(
    database: Database, tmp_path: Path
) -> AsyncIterator[tuple[TestClient[Any, Any], Users]]:
    await seed(database)
    settings = Settings(api_token=TOKEN, data_dir=tmp_path)
    app = web.Application(middlewares=[errors, api_guard(settings.effective_api_token)])
    app[SETTINGS] = settings
    app[SESSIONS] = database.sessions
    # The report pages use the desk's store and sessions only; the live-call parts stay out.
    app[WEB] = offline_desk_web(database.sessions, "report-test-secret")
    sessions, web_sessions = app[WEB].sessions, app[WEB].web_sessions
    setup_templates(app)
    app.router.add_routes(report_routes(SESSIONS))
    app.router.add_routes(desk_report_routes())
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, Users(database, sessions, web_sessions)
    finally:
        await client.close()


async def test_api_needs_the_bearer_token(http: tuple[TestClient[Any, Any], Users]) -> None:
    client, _ = http
    for path in ("/api/surveys/nps/report", "/api/surveys/nps/answers.csv"):
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            resp = await client.get(path, headers=headers)
            assert resp.status == 401
            assert (await resp.json())["error_id"] == "unauthorized"


async def test_api_report_as_json(http: tuple[TestClient[Any, Any], Users]) -> None:
    client, _ = http
    resp = await client.get(
        "/api/surveys/nps/report", params={"version": "1", "period": "week"}, headers=BEARER
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["nps"]["nps"] == 16.7 and body["nps"]["responses"] == 6
    assert list(body["by_period"]) == ["2026-W48", "2026-W49"]
    assert body["rates"]["completion_rate"] == round(5 / 6, 4)


@pytest.mark.parametrize(
    ("path", "params", "status", "error_id"),
    [
        ("/api/surveys/nope/report", {}, 404, "unknown_survey"),
        ("/api/surveys/nope/answers.csv", {}, 404, "unknown_survey"),
        ("/api/surveys/nps/report", {"version": "9"}, 404, "unknown_survey"),
        ("/api/surveys/nps/report", {"campaign": "nope"}, 404, "unknown_campaign"),
        ("/api/surveys/nps/report", {"period": "year"}, 400, "bad_period"),
        ("/api/surveys/nps/report", {"since": "01.12.2026"}, 400, "bad_date"),
        ("/api/surveys/nps/answers.csv", {"until": "2026-02-30"}, 400, "bad_date"),
    ],
)
async def test_api_errors_are_json_with_an_error_id(
    http: tuple[TestClient[Any, Any], Users],
    path: str,
    params: dict[str, str],
    status: int,
    error_id: str,
) -> None:
    client, _ = http
    resp = await client.get(path, params=params, headers=BEARER)
    assert resp.status == status
    body = await resp.json()
    assert body["error_id"] == error_id and body["message"]


async def test_api_answers_as_csv_attachment(http: tuple[TestClient[Any, Any], Users]) -> None:
    client, _ = http
    resp = await client.get("/api/surveys/nps/answers.csv", headers=BEARER)
    assert resp.status == 200
    assert resp.content_type == "text/csv" and resp.charset == "utf-8"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="nps-answers.csv"'
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[0][:3] == ["answered_at", "survey", "survey_version"] and len(rows) == 12


async def test_desk_page_for_supervisors_with_figures_chart_and_csv_link(
    http: tuple[TestClient[Any, Any], Users],
) -> None:
    client, users = http
    resp = await client.get(
        "/reports/surveys/nps",
        params={"version": "1", "period": "month"},
        headers=await users.headers("supervisor"),
    )
    assert resp.status == 200
    page = await resp.text()
    # The supervisor's language: Bosnian, the default (test_desk_language_http shows English).
    assert '<html lang="bs">' in page and "Rezultati anketa" in page
    assert "kritičari 0–6" in page  # the chart too
    assert '<span class="kpi" id="nps">16,7</span>' in page
    assert "<svg" in page and 'class="bar promoter"' in page
    assert 'href="/desk/api/surveys/nps/answers.csv?version=1&amp;period=month"' in page
    listing = await client.get("/reports/surveys", headers=await users.headers("admin"))
    assert listing.status == 200 and 'href="/reports/surveys/nps"' in await listing.text()


async def test_desk_page_refuses_agents_and_sends_strangers_to_log_in(
    http: tuple[TestClient[Any, Any], Users],
) -> None:
    client, users = http
    agent = await client.get("/reports/surveys/nps", headers=await users.headers("agent"))
    assert agent.status == 403
    stranger = await client.get("/reports/surveys/nps", allow_redirects=False)
    assert stranger.status == 303 and stranger.headers["Location"] == "/login"


async def test_desk_page_unknown_survey_and_bad_dates_say_why_escaped(
    http: tuple[TestClient[Any, Any], Users],
) -> None:
    client, users = http
    headers = await users.headers("supervisor")
    unknown = await client.get("/reports/surveys/%3Cscript%3Ex", headers=headers)
    assert unknown.status == 404
    text = await unknown.text()
    assert "no survey" in text and "<script>x" not in text and "&lt;script&gt;x" in text
    bad = await client.get("/reports/surveys/nps", params={"since": "soon"}, headers=headers)
    assert bad.status == 400 and "since must be a date as YYYY-MM-DD" in await bad.text()


async def test_desk_csv_needs_a_supervisors_session(
    http: tuple[TestClient[Any, Any], Users],
) -> None:
    client, users = http
    path = "/desk/api/surveys/nps/answers.csv"
    assert (await client.get(path)).status == 401
    agent = await client.get(path, headers=await users.headers("agent"))
    assert agent.status == 403 and (await agent.json())["error_id"] == "forbidden"
    ok = await client.get(
        path, params={"campaign": "nps-nov"}, headers=await users.headers("supervisor")
    )
    assert ok.status == 200 and ok.content_type == "text/csv"
    assert len(list(csv.reader(io.StringIO(await ok.text())))) == 1 + 9
    unknown = await client.get(
        "/desk/api/surveys/nope/answers.csv", headers=await users.headers("supervisor")
    )
    assert unknown.status == 404 and (await unknown.json())["error_id"] == "unknown_survey"
