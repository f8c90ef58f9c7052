"""A harness for attacks on the web port: the desk's real aiohttp app served the way
`centrala serve` serves it (web/server.py: the header deadline, the body deadline, the
connection cap) on a real socket, with a real database (SQLite and PostgreSQL). The Stasis
apps behind the desk are small fakes: these attacks are about HTTP, not calls."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from centrala.service import MAX_BODY_BYTES
from core.acd import ACD, AgentMode, Offer
from models.campaigns import CampaignStore
from models.crm import CRM
from models.recordings import RecordingStore
from models.tables import Agent, AgentRole
from tests.conftest import Database
from web import DeskConfig, desk_ctx, setup_desk
from web.api import routes as api_routes
from web.auth import COOKIE, hash_password
from web.campaign_api import routes as campaign_routes
from web.errors import api_guard, errors
from web.ports import DESK, INFOLINE, CallControl, LiveCall
from web.recordings import RECORDINGS, RecordingFiles
from web.server import CappedSite, body_deadline, handler_args

API_TOKEN = "fault-test-token"
PASSWORD = "correct horse battery"
CRM_KEY = web.AppKey("crm", CRM)
ACD_KEY = web.AppKey("acd", ACD)
CAMPAIGNS = web.AppKey("campaigns", CampaignStore)


class FakeDesk:
    def __init__(self) -> None:
        self.pauses: list[tuple[str, str]] = []

    async def login(self, agent_id: str, endpoint: str | None, mode: AgentMode) -> None:
        pass

    async def logout(self, agent_id: str) -> None:
        pass

    def pause(self, agent_id: str, reason: str) -> None:
        self.pauses.append((agent_id, reason))

    def ready(self, agent_id: str) -> None:
        pass

    def publish(self, offers: list[Offer]) -> None:
        pass


@dataclass
class FakeInfoline:
    calls: Mapping[str, LiveCall] = field(default_factory=dict)
    by_call: Mapping[str, str] = field(default_factory=dict)
    desk_listeners: list[Callable[[Any], None]] = field(default_factory=list)
    controls: list[tuple[str, str, str | None]] = field(default_factory=list)

    async def control(self, call_id: str, op: str, target: str | None = None) -> None:
        self.controls.append((call_id, op, target))


@dataclass
class Limits:
    header_timeout: float = 15.0
    body_timeout: float = 30.0
    max_connections: int = 500
    recheck_seconds: float = 0.1
    secure_cookies: bool = False
    trusted_proxy: str | None = None


@dataclass
class DeskServer:
    database: Database
    runner: web.AppRunner
    site: CappedSite
    desk: FakeDesk

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.site.port}"

    @property
    def open_connections(self) -> int:
        assert self.runner.server is not None
        return len(self.runner.server.connections)

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_desk(
    database: Database,
    limits: Limits | None = None,
    *,
    infoline: FakeInfoline | None = None,
    recordings_dir: Path | None = None,
) -> DeskServer:
    """``recordings_dir``: where the recordings' files are (none are, unless given)."""
    limits = limits or Limits()
    app = web.Application(
        middlewares=[errors, api_guard(lambda: API_TOKEN), body_deadline(limits.body_timeout)],
        client_max_size=MAX_BODY_BYTES,
    )
    desk = FakeDesk()
    live: CallControl = infoline or FakeInfoline()
    app[CRM_KEY], app[ACD_KEY], app[DESK], app[INFOLINE] = (
        CRM(database.sessions),
        ACD(),
        desk,
        live,
    )
    app[RECORDINGS] = RecordingFiles(
        RecordingStore(database.sessions), recordings_dir or Path("/nonexistent")
    )
    app[CAMPAIGNS] = CampaignStore(database.sessions)
    config = DeskConfig(
        web_secret="fault-test-secret",
        session_seconds=3600,
        region="BA",
        disposition_required=False,
        session_recheck_seconds=limits.recheck_seconds,
        secure_cookies=limits.secure_cookies,
        trusted_proxy=limits.trusted_proxy,
    )
    app.cleanup_ctx.append(desk_ctx(config, CRM_KEY, ACD_KEY, DESK, INFOLINE))
    app.router.add_routes(api_routes(DESK, ACD_KEY, INFOLINE))
    app.router.add_routes(campaign_routes(CAMPAIGNS, "BA"))
    setup_desk(app)
    runner = web.AppRunner(app, access_log=None, **handler_args(limits.header_timeout))
    await runner.setup()
    site = CappedSite(runner, "127.0.0.1", 0, max_connections=limits.max_connections)
    await site.start()
    return DeskServer(database, runner, site, desk)


async def add_agents(database: Database) -> None:
    """anna (agent) and sara (supervisor), both with ``PASSWORD``."""
    async with database.sessions() as session, session.begin():
        for agent_id, role in (("anna", AgentRole.AGENT), ("sara", AgentRole.SUPERVISOR)):
            session.add(
                Agent(
                    id=agent_id,
                    name=agent_id.title(),
                    role=role,
                    password_hash=hash_password(PASSWORD),
                    active=True,
                )
            )


def client(base: str) -> aiohttp.ClientSession:
    # unsafe: the jar keeps cookies for an IP address host (127.0.0.1).
    return aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(
    http: aiohttp.ClientSession,
    agent_id: str,
    password: str,
    headers: dict[str, str] | None = None,
) -> aiohttp.ClientResponse:
    """The browser's way in: the login page (its CSRF token and pre-login cookie), then the
    form. The answer is returned read (303 on success)."""
    async with http.get("/login") as page:
        match = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert match, "the login page carries a CSRF token"
    form = {"agent_id": agent_id, "password": password, "csrf": match.group(1)}
    async with http.post("/login", data=form, allow_redirects=False, headers=headers) as response:
        await response.read()
        return response


def session_cookie(http: aiohttp.ClientSession) -> str:
    for cookie in http.cookie_jar:
        if cookie.key == COOKIE:
            return cookie.value
    raise AssertionError("no session cookie")


async def csrf_of_page(http: aiohttp.ClientSession, path: str = "/desk") -> str:
    async with http.get(path) as page:
        match = re.search(r'name="csrf-token" content="([^"]+)"', await page.text())
    assert match, f"{path} carries the session's CSRF token"
    return match.group(1)
