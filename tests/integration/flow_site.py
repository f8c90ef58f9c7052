"""An aiohttp app with the HTTP routes of the flows, the roster, the surveys, the campaigns
and the reports, the bearer guard and the desk's session check, on a test database (no
`centrala serve`, no Asterisk): what test_flow_simulate_http.py, test_flow_editing_http.py,
test_roster_http.py and test_survey_editing_http.py call. The desk's routes read the store's
database and the region only; the live parts stay out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from centrala.service import CAMPAIGNS, MAX_BODY_BYTES, SESSIONS, recording_installer
from centrala.settings import Settings
from dialplan.validate import load_flow
from models.campaigns import CampaignStore
from models.flows import apply_flow
from models.tables import Agent, AgentRole, Client, ClientPhone
from models.web_sessions import WebSessionStore
from tests.conftest import Database
from tests.desk_web import offline_desk_web
from web.admin_api import desk_routes as admin_desk_routes
from web.admin_api import routes as admin_routes
from web.agent_report_api import desk_routes as agent_report_desk_routes
from web.agent_report_api import routes as agent_report_routes
from web.auth import COOKIE, Sessions
from web.calllog_api import routes as calllog_routes
from web.campaign_api import desk_routes as campaign_desk_routes
from web.campaign_api import routes as campaign_routes
from web.campaign_report_api import desk_routes as campaign_report_desk_routes
from web.campaign_report_api import routes as campaign_report_routes
from web.errors import api_guard, errors
from web.flow_api import desk_routes, routes
from web.http import WEB
from web.ports import PROMPT_UPLOAD, PROMPTS
from web.queue_report_api import desk_routes as queue_report_desk_routes
from web.queue_report_api import routes as queue_report_routes
from web.survey_edit_api import desk_routes as survey_desk_routes
from web.survey_edit_api import routes as survey_routes

TOKEN = "simulate-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
FLOW_FILE = Path(__file__).parents[2] / "dialplan" / "infoline.yaml"
OPEN = "2026-12-01T10:00:00+01:00"  # a Tuesday morning in Sarajevo
CLOSED = "2026-12-01T20:00:00+01:00"


@dataclass
class Site:
    client: TestClient[Any, Any]
    database: Database
    sessions: Sessions
    web_sessions: WebSessionStore

    async def simulate(self, body: Any, name: str = "infoline", **kw: Any) -> tuple[int, Any]:
        kw.setdefault("headers", BEARER)
        resp = await self.client.post(f"/api/flows/{name}/simulate", json=body, **kw)
        return resp.status, await resp.json()

    async def desk_headers(
        self, role: str, *, csrf: bool = True, agent: str | None = None
    ) -> dict[str, str]:
        """A log-in of an agent with ``role`` (id ``agent``, default ROLE-1), as the desk
        makes one: a session row, its cookie, and the CSRF token its pages carry."""
        agent_id = agent or f"{role}-1"
        async with self.database.sessions() as session, session.begin():
            if await session.get(Agent, agent_id) is None:
                session.add(Agent(id=agent_id, name=agent_id, role=AgentRole(role), active=True))
        session_id = await self.web_sessions.open(agent_id, datetime.now(UTC))
        headers = {"Cookie": f"{COOKIE}={self.sessions.cookie(session_id)}"}
        if csrf:
            headers["X-CSRF-Token"] = self.sessions.csrf_token(session_id)
        return headers

    async def add_client(self, external_id: str, number: str, **facts: Any) -> int:
        async with self.database.sessions() as session, session.begin():
            client = Client(
                external_id=external_id,
                name=external_id.title(),
                phones=[ClientPhone(number=number)],
                **facts,
            )
            session.add(client)
            await session.flush()
            return client.id


@asynccontextmanager
async def flow_site(
    database: Database, sounds: Path | None = None, install: Any = None
) -> AsyncIterator[Site]:
    """``sounds``: a directory standing for the PBX's sounds/centrala, to take uploads;
    ``install``: what publishing calls to make prompts heard (web.ports.PROMPTS)."""
    await apply_flow(database.sessions, load_flow(FLOW_FILE.read_text(), str(FLOW_FILE)), "tests")
    app = web.Application(
        middlewares=[errors, api_guard(lambda: TOKEN)], client_max_size=MAX_BODY_BYTES
    )
    app[SESSIONS] = database.sessions
    app[CAMPAIGNS] = CampaignStore(database.sessions)
    if install is not None:
        app[PROMPTS] = install
    if sounds is not None:
        settings = Settings(data_dir=sounds.parent / "data", prompts_dir=sounds)
        app[PROMPT_UPLOAD] = recording_installer(settings)
    # The desk's route reads the store's database and the region only; the live parts stay out.
    app[WEB] = offline_desk_web(database.sessions, "simulate-test-secret")
    sessions, web_sessions = app[WEB].sessions, app[WEB].web_sessions
    app.router.add_routes(routes(SESSIONS, "BA"))
    app.router.add_routes(desk_routes())
    app.router.add_routes(admin_routes(SESSIONS, None))
    app.router.add_routes(admin_desk_routes())
    app.router.add_routes(survey_routes(SESSIONS))
    app.router.add_routes(survey_desk_routes())
    app.router.add_routes(campaign_routes(CAMPAIGNS))
    app.router.add_routes(campaign_desk_routes())
    app.router.add_routes(queue_report_routes(SESSIONS))
    app.router.add_routes(queue_report_desk_routes())
    app.router.add_routes(campaign_report_routes(SESSIONS))
    app.router.add_routes(campaign_report_desk_routes())
    app.router.add_routes(agent_report_routes(SESSIONS))
    app.router.add_routes(agent_report_desk_routes())
    app.router.add_routes(calllog_routes(SESSIONS))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Site(client, database, sessions, web_sessions)
    finally:
        await client.close()
