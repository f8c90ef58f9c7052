"""Over 500 lines: one app, one token store and one role table tried from every side; split,
each part would rebuild the same fixtures.

The bearer API's roles: every /api route of `serve`'s app declares the action it needs (a
walk of the real router), and the guard holds a token to it on a small aiohttp app over
SQLite: 401 for no, a wrong, an expired or a revoked token or an inactive agent, 403 when the
token's role may not (read from ``agents`` now: a demotion holds at once), an agent's token
acting for its own agent and calls only. The host's own token keeps every right. Then the
desk's /desk/api/tokens: own tokens, everyone's for MANAGE_ROLES, the secret shown once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from centrala.service import SESSIONS, build_app
from centrala.settings import Settings
from core.acd import ACD, AgentMode
from core.api_tokens import (
    MAX_LIVE_PER_AGENT,
    TokenRequestError,
    check_expiry,
    check_name,
    looks_like_token,
    new_token,
    token_hash,
)
from models.api_tokens import ApiTokenStore, TooManyTokens, UnknownAgent
from models.campaigns import CampaignStore
from models.tables import Agent, AgentRole, ApiToken
from models.web_sessions import WebSessionStore
from tests.conftest import Database, make_database
from tests.desk_web import offline_desk_web
from web.admin_api import routes as admin_routes
from web.api import routes as api_routes
from web.auth import COOKIE, ROLE_ACTIONS, Action, Sessions
from web.campaign_api import routes as campaign_routes
from web.errors import API_TOKENS, HOST, api_guard, errors, route_need
from web.flow_api import routes as flow_routes
from web.http import WEB, described
from web.openapi import OPENAPI
from web.tokens import routes as token_routes

HOST_TOKEN = "host-token-for-tests"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PUBLIC = {"/api/openapi.json"}


# ---- the table: every /api route says what it needs ---------------------------------------


def test_every_api_route_of_serve_declares_its_action(tmp_path: Path) -> None:
    app = build_app(Settings(data_dir=tmp_path, api_token=HOST_TOKEN))
    seen, missing = set(), []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if not path.startswith("/api/") or path in PUBLIC:
            continue
        seen.add(path)
        if route_need(route.handler) is None:
            missing.append(f"{route.method} {path}")
    assert not missing, f"/api routes without a declared action: {missing}"
    assert len(seen) >= 15  # the walk did see the API (agents, calls, campaigns, ...)


def test_the_roles_differ_where_the_api_needs_it() -> None:
    assert Action.VIEW_WALLBOARD not in ROLE_ACTIONS["agent"]
    assert Action.EDIT_SURVEYS not in ROLE_ACTIONS["supervisor"]  # campaigns: admins only
    assert ROLE_ACTIONS["admin"] == frozenset(Action)
    assert HOST.role == "admin"


def test_openapi_documents_the_token_routes_and_what_each_api_operation_needs(
    tmp_path: Path,
) -> None:
    paths = OPENAPI["paths"]
    assert set(paths["/desk/api/tokens"]) == {"get", "post"}
    assert set(paths["/desk/api/tokens/{token_id}"]) == {"delete"}
    app = build_app(Settings(data_dir=tmp_path, api_token=HOST_TOKEN))
    doc = described(app.router)
    undeclared = [
        f"{method} {path}"
        for path, operations in doc["paths"].items()
        if path.startswith("/api/") and path not in PUBLIC
        for method, op in operations.items()
        if "x-centrala-action" not in op
    ]
    assert not undeclared, f"documented but not served (or no action): {undeclared}"
    ops = doc["paths"]
    assert ops["/api/acd"]["get"]["x-centrala-action"] == "view_wallboard"
    assert ops["/api/agents/{agent_id}/pause"]["post"]["x-centrala-others"] == "pause_agents"
    assert ops["/api/campaigns/{campaign}/stop"]["post"]["x-centrala-action"] == "edit_surveys"
    assert "x-centrala-action" not in OPENAPI["paths"]["/api/acd"]["get"]  # a copy is served


# ---- pure: the token and the checks on a new one ------------------------------------------


def test_a_token_is_recognisable_and_only_its_hash_is_kept() -> None:
    made = new_token()
    assert made.token.startswith(f"ctk_{made.public_id}_") and len(made.public_id) == 8
    assert made.token_hash == token_hash(made.token) and made.token not in made.token_hash
    assert looks_like_token(made.token)
    assert not looks_like_token("Bearer x") and not looks_like_token("ctk_" + "x" * 200)
    assert new_token().token != made.token


def test_a_new_tokens_name_and_lifetime_are_checked() -> None:
    assert check_name("  CRM sync ") == "CRM sync"
    for bad in ["", "   ", None, 5, "x" * 101, "tab\there", "nul\0"]:
        with pytest.raises(TokenRequestError):
            check_name(bad)
    assert check_expiry(None, T0) is None
    assert check_expiry(30, T0) == T0 + timedelta(days=30)
    for bad_days in [0, -1, 3651, 1.5, "7", True]:
        with pytest.raises(TokenRequestError):
            check_expiry(bad_days, T0)


# ---- the store ----------------------------------------------------------------------------


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await make_database("sqlite", tmp_path)
    async with database.sessions() as session, session.begin():
        session.add_all(
            [
                Agent(id="anna", name="Anna", role=AgentRole.AGENT, active=True),
                Agent(id="bob", name="Bob", role=AgentRole.AGENT, active=True),
                Agent(id="sara", name="Sara", role=AgentRole.SUPERVISOR, active=True),
                Agent(id="adam", name="Adam", role=AgentRole.ADMIN, active=True),
            ]
        )
    try:
        yield database
    finally:
        await database.engine.dispose()


async def _set_agent(db: Database, agent_id: str, **values: Any) -> None:
    async with db.sessions() as session, session.begin():
        await session.execute(update(Agent).where(Agent.id == agent_id).values(**values))


async def _token_row(db: Database, token_id: int) -> ApiToken:
    async with db.sessions() as session:
        row = await session.get(ApiToken, token_id)
        assert row is not None
        return row


async def test_resolve_gives_the_agent_and_their_role_now(db: Database) -> None:
    store = ApiTokenStore(db.sessions)
    made = await store.create("sara", "wallboard", None, "cli", T0)
    found = await store.resolve(made.token, T0, "10.0.0.5")
    assert found is not None and (found.agent_id, found.role) == ("sara", "supervisor")
    await _set_agent(db, "sara", role=AgentRole.AGENT)
    found = await store.resolve(made.token, T0, "10.0.0.5")
    assert found is not None and found.role == "agent"  # demoted: at once
    await _set_agent(db, "sara", active=False)
    assert await store.resolve(made.token, T0, "10.0.0.5") is None
    assert await store.resolve(made.token + "x", T0, None) is None
    assert await store.resolve("not-ours", T0, None) is None


async def test_expired_and_revoked_tokens_resolve_to_nobody(db: Database) -> None:
    store = ApiTokenStore(db.sessions)
    made = await store.create("anna", "short", 1, "anna", T0)
    assert await store.resolve(made.token, T0 + timedelta(hours=23), None) is not None
    assert await store.resolve(made.token, T0 + timedelta(days=1), None) is None
    other = await store.create("anna", "revoked", None, "anna", T0)
    revoked = await store.revoke(other.row.id, T0 + timedelta(minutes=1))
    assert revoked is not None and revoked.state(T0) == "revoked"
    again = await store.revoke(other.row.id, T0 + timedelta(minutes=2))
    assert again is not None and again.revoked_at == T0 + timedelta(minutes=1)  # the first
    assert await store.resolve(other.token, T0 + timedelta(minutes=3), None) is None
    assert await store.revoke(9999, T0) is None


async def test_last_use_is_written_at_most_once_a_minute(db: Database) -> None:
    store = ApiTokenStore(db.sessions)
    made = await store.create("anna", "crm", None, "anna", T0)
    assert (await _token_row(db, made.row.id)).last_used_at is None
    await store.resolve(made.token, T0, "10.0.0.1")
    await store.resolve(made.token, T0 + timedelta(seconds=59), "10.0.0.2")
    row = await _token_row(db, made.row.id)
    assert (row.last_used_at, row.last_used_from) == (T0, "10.0.0.1")
    await store.resolve(made.token, T0 + timedelta(seconds=60), "10.0.0.2")
    row = await _token_row(db, made.row.id)
    assert (row.last_used_at, row.last_used_from) == (T0 + timedelta(seconds=60), "10.0.0.2")


async def test_create_refuses_an_unknown_agent_and_too_many_tokens(db: Database) -> None:
    store = ApiTokenStore(db.sessions)
    with pytest.raises(UnknownAgent):
        await store.create("nobody", "x", None, "cli", T0)
    with pytest.raises(TokenRequestError):
        await store.create("anna", "", None, "cli", T0)
    made = [await store.create("anna", f"t{i}", None, "cli", T0) for i in range(20)]
    assert len(made) == MAX_LIVE_PER_AGENT
    with pytest.raises(TooManyTokens):
        await store.create("anna", "one more", None, "cli", T0)
    await store.revoke(made[0].row.id, T0)
    await store.create("anna", "one more", None, "cli", T0)  # a revoked one does not count
    async with db.sessions() as session:
        hashes = set(await session.scalars(select(ApiToken.token_hash)))
    assert not any(m.token in hashes for m in made)  # only hashes are stored
    assert [r.name for r in await store.list("bob")] == []
    assert len(await store.list()) == MAX_LIVE_PER_AGENT + 1


# ---- the guard over HTTP ------------------------------------------------------------------

DESK = web.AppKey("desk", Any)
ACD_KEY = web.AppKey("acd", Any)
INFOLINE = web.AppKey("infoline", Any)
CAMPAIGNS = web.AppKey("campaigns", CampaignStore)


@dataclass
class FakeDesk:
    done: list[tuple[str, str]] = field(default_factory=list)

    async def login(self, agent_id: str, endpoint: str | None, mode: AgentMode) -> None:
        self.done.append(("login", agent_id))

    async def logout(self, agent_id: str) -> None:
        self.done.append(("logout", agent_id))

    def pause(self, agent_id: str, reason: str) -> None:
        self.done.append(("pause", agent_id))

    def ready(self, agent_id: str) -> None:
        self.done.append(("ready", agent_id))


@dataclass
class FakeInfoline:
    """Two live calls: c-anna with anna, c-bob with bob."""

    by_call: dict[str, str] = field(default_factory=lambda: {"c-anna": "ch1", "c-bob": "ch2"})
    calls: dict[str, Any] = field(
        default_factory=lambda: {
            "ch1": SimpleNamespace(agent_id="anna"),
            "ch2": SimpleNamespace(agent_id="bob"),
        }
    )
    done: list[tuple[str, str, str | None]] = field(default_factory=list)

    async def control(self, call_id: str, op: str, target: str | None = None) -> None:
        self.done.append((call_id, op, target))


@dataclass
class Api:
    client: TestClient[Any, Any]
    db: Database
    store: ApiTokenStore
    desk: FakeDesk
    infoline: FakeInfoline
    sessions: Sessions
    web_sessions: WebSessionStore

    async def token(self, agent_id: str, **kw: Any) -> tuple[int, str]:
        made = await self.store.create(
            agent_id, kw.get("name", "t"), kw.get("days"), "cli", datetime.now(UTC)
        )
        return made.row.id, made.token

    async def call(
        self, method: str, path: str, token: str | None, body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        resp = await self.client.request(method, path, headers=headers, json=body)
        return resp.status, await resp.json() if resp.content_type == "application/json" else {}

    async def desk_headers(self, agent_id: str) -> dict[str, str]:
        session_id = await self.web_sessions.open(agent_id, datetime.now(UTC))
        return {
            "Cookie": f"{COOKIE}={self.sessions.cookie(session_id)}",
            "X-CSRF-Token": self.sessions.csrf_token(session_id),
        }


@pytest.fixture
async def api(db: Database) -> AsyncIterator[Api]:
    app = web.Application(middlewares=[errors, api_guard(lambda: HOST_TOKEN)])
    store = ApiTokenStore(db.sessions)
    desk, infoline = FakeDesk(), FakeInfoline()
    app[API_TOKENS] = store
    app[DESK] = desk
    app[ACD_KEY] = ACD()
    app[INFOLINE] = infoline
    app[CAMPAIGNS] = CampaignStore(db.sessions)
    # The token routes read the session only; the live parts stay out.
    app[WEB] = offline_desk_web(db.sessions, "tokens-test-secret")
    sessions, web_sessions = app[WEB].sessions, app[WEB].web_sessions
    app.router.add_routes(api_routes(DESK, ACD_KEY, INFOLINE))
    app.router.add_routes(campaign_routes(CAMPAIGNS))
    app[SESSIONS] = db.sessions
    app.router.add_routes(admin_routes(SESSIONS, None))
    app.router.add_routes(flow_routes(SESSIONS, "BA"))
    app.router.add_routes(token_routes())
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Api(client, db, store, desk, infoline, sessions, web_sessions)
    finally:
        await client.close()


async def test_no_or_a_wrong_token_is_401_and_the_host_token_may_all(api: Api) -> None:
    for token in [None, "", "nope", "ctk_00000000_guess", HOST_TOKEN + "x"]:
        status, body = await api.call("GET", "/api/acd", token)
        assert (status, body["error_id"]) == (401, "unauthorized"), token
    assert (await api.call("GET", "/api/acd", HOST_TOKEN))[0] == 200
    assert (await api.call("POST", "/api/agents/anna/pause", HOST_TOKEN, {}))[0] == 200
    assert (await api.call("POST", "/api/calls/c-bob/hold", HOST_TOKEN))[0] == 200
    # An unknown route: 401 without a token (nothing is told), 404 with one.
    assert (await api.call("GET", "/api/nothing", None))[0] == 401
    assert (await api.call("GET", "/api/nothing", HOST_TOKEN))[0] == 404


async def test_an_agents_token_acts_for_its_agent_and_their_calls_only(api: Api) -> None:
    _, token = await api.token("anna")
    assert (await api.call("POST", "/api/agents/anna/login", token, {}))[0] == 200
    assert (await api.call("POST", "/api/agents/anna/pause", token, {"reason": "x"}))[0] == 200
    status, body = await api.call("POST", "/api/agents/bob/pause", token, {})
    assert (status, body["error_id"]) == (403, "forbidden")
    assert api.desk.done == [("login", "anna"), ("pause", "anna")]
    status, body = await api.call("GET", "/api/acd", token)  # the wallboard's: supervisors
    assert (status, body["error_id"]) == (403, "forbidden")
    assert "use_desk" not in body["message"] and "view_wallboard" in body["message"]

    assert (await api.call("POST", "/api/calls/c-anna/hold", token))[0] == 200
    status, body = await api.call("POST", "/api/calls/c-bob/hold", token)
    assert (status, body["error_id"]) == (403, "not_your_call")
    status, body = await api.call("POST", "/api/calls/c-anna/recording/pause", token, {})
    assert status == 200
    assert api.infoline.done == [("c-anna", "hold", None), ("c-anna", "pause_recording", "anna")]
    status, _ = await api.call(
        "POST", "/api/calls/c-anna/recording/pause", token, {"agent_id": "bob"}
    )
    assert status == 403  # the trail may not name someone else
    status, body = await api.call(
        "POST",
        "/api/campaigns/calls/x/disposition",
        token,
        {"agent_id": "bob", "disposition": "sale"},
    )
    assert (status, body["error_id"]) == (403, "forbidden")
    status, body = await api.call("POST", "/api/campaigns/7/start", token)
    assert (status, body["error_id"]) == (403, "forbidden")


async def test_a_supervisors_token_controls_anyone_but_not_what_admins_do(api: Api) -> None:
    _, token = await api.token("sara")
    assert (await api.call("GET", "/api/acd", token))[0] == 200
    assert (await api.call("POST", "/api/agents/bob/logout", token))[0] == 200
    assert (await api.call("POST", "/api/calls/c-bob/transfer/cancel", token))[0] == 200
    status, body = await api.call("GET", "/api/campaigns", token)  # VIEW_REPORTS
    assert status == 200 and body == {"campaigns": []}
    status, body = await api.call("POST", "/api/campaigns/7/start", token)  # EDIT_SURVEYS
    assert (status, body["error_id"]) == (403, "forbidden")
    _, admin = await api.token("adam")
    status, body = await api.call("POST", "/api/campaigns/7/start", admin)
    assert status == 404  # allowed, and there is no campaign 7


async def test_a_demotion_revocation_expiry_or_deactivation_holds_at_once(api: Api) -> None:
    token_id, token = await api.token("sara")
    assert (await api.call("GET", "/api/acd", token))[0] == 200
    await _set_agent(api.db, "sara", role=AgentRole.AGENT)
    assert (await api.call("GET", "/api/acd", token))[0] == 403
    assert (await api.call("POST", "/api/agents/sara/ready", token))[0] == 200
    await _set_agent(api.db, "sara", active=False)
    assert (await api.call("POST", "/api/agents/sara/ready", token))[0] == 401
    await _set_agent(api.db, "sara", active=True)
    await api.store.revoke(token_id, datetime.now(UTC))
    assert (await api.call("POST", "/api/agents/sara/ready", token))[0] == 401

    expiring_id, expiring = await api.token("anna", days=1)
    assert (await api.call("POST", "/api/agents/anna/ready", expiring))[0] == 200
    async with api.db.sessions() as session, session.begin():
        await session.execute(
            update(ApiToken)
            .where(ApiToken.id == expiring_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    status, body = await api.call("POST", "/api/agents/anna/ready", expiring)
    assert (status, body["error_id"]) == (401, "unauthorized")
    row = await _token_row(api.db, expiring_id)
    assert row.last_used_from == "127.0.0.1" and row.last_used_at is not None


async def test_the_roster_and_flows_over_api_follow_the_tokens_role(api: Api) -> None:
    _, anna = await api.token("anna")
    _, sara = await api.token("sara")
    _, adam = await api.token("adam")
    assert (await api.call("GET", "/api/admin/agents", anna))[0] == 403
    status, body = await api.call("GET", "/api/admin/agents", sara)  # EDIT_AGENTS
    assert status == 200 and "bob" in [a["id"] for a in body["agents"]]
    # The agent in the path is whom the change is to: a supervisor edits any agent...
    status, body = await api.call("PATCH", "/api/admin/agents/bob", sara, {"name": "Bobby"})
    assert status == 200, body
    # ...but gives no roles (MANAGE_ROLES is the admin's), and the trail names them.
    status, body = await api.call("PATCH", "/api/admin/agents/bob", sara, {"role": "admin"})
    assert (status, body["error_id"]) == (403, "forbidden")
    status, body = await api.call("GET", "/api/admin/audit", adam)
    assert status == 200 and [e["actor"] for e in body["entries"]] == ["sara"]
    assert (await api.call("GET", "/api/admin/audit", sara))[0] == 403  # VIEW_AUDIT: admins
    status, body = await api.call("GET", "/api/flows/infoline/draft", sara)
    assert (status, body["error_id"]) == (403, "forbidden")  # EDIT_FLOWS: admins only
    assert "edit_flows" in body["message"]


# ---- the desk's token routes --------------------------------------------------------------


async def test_the_desk_makes_lists_and_revokes_own_tokens(api: Api) -> None:
    headers = await api.desk_headers("anna")
    resp = await api.client.post("/desk/api/tokens", json={"name": "CRM"}, headers=headers)
    made = await resp.json()
    assert resp.status == 201 and resp.headers["Cache-Control"] == "no-store"
    assert made["token"].startswith(made["prefix"] + "_") and made["state"] == "active"
    assert made["agent_id"] == "anna" and made["created_by"] == "anna"
    assert (await api.call("POST", "/api/agents/anna/ready", made["token"]))[0] == 200

    resp = await api.client.get("/desk/api/tokens", headers=headers)
    listed = (await resp.json())["tokens"]
    assert [t["id"] for t in listed] == [made["id"]] and "token" not in listed[0]
    assert listed[0]["last_used_from"] == "127.0.0.1"

    no_csrf = {"Cookie": headers["Cookie"]}
    resp = await api.client.post("/desk/api/tokens", json={"name": "x"}, headers=no_csrf)
    assert resp.status == 403 and (await resp.json())["error_id"] == "csrf"
    for bad in [{"name": ""}, {"name": "x" * 101}, {"name": "x", "expires_days": -3}]:
        resp = await api.client.post("/desk/api/tokens", json=bad, headers=headers)
        body = await resp.json()
        assert (resp.status, body["error_id"]) == (422, "bad_field"), bad

    resp = await api.client.delete(f"/desk/api/tokens/{made['id']}", headers=headers)
    assert resp.status == 200 and (await resp.json())["state"] == "revoked"
    assert (await api.call("POST", "/api/agents/anna/ready", made["token"]))[0] == 401


async def test_only_manage_roles_sees_and_revokes_other_peoples_tokens(api: Api) -> None:
    bob_id, bob_token = await api.token("bob")
    anna = await api.desk_headers("anna")
    resp = await api.client.get("/desk/api/tokens", headers=anna)
    assert (await resp.json())["tokens"] == []
    resp = await api.client.get("/desk/api/tokens?agent_id=bob", headers=anna)
    assert resp.status == 403
    resp = await api.client.delete(f"/desk/api/tokens/{bob_id}", headers=anna)
    assert (resp.status, (await resp.json())["error_id"]) == (404, "unknown_token")
    resp = await api.client.delete("/desk/api/tokens/banana", headers=anna)
    assert resp.status == 404

    sara = await api.desk_headers("sara")  # a supervisor: no MANAGE_ROLES
    resp = await api.client.delete(f"/desk/api/tokens/{bob_id}", headers=sara)
    assert resp.status == 404

    adam = await api.desk_headers("adam")
    resp = await api.client.get("/desk/api/tokens", headers=adam)
    assert [t["agent_id"] for t in (await resp.json())["tokens"]] == ["bob"]
    resp = await api.client.delete(f"/desk/api/tokens/{bob_id}", headers=adam)
    assert resp.status == 200
    assert (await api.call("POST", "/api/agents/bob/ready", bob_token))[0] == 401
    resp = await api.client.get("/desk/api/tokens")  # no session
    assert resp.status == 401


class _Unreachable:
    """A session factory whose database is down."""

    def __call__(self) -> _Unreachable:
        return self

    async def __aenter__(self) -> None:
        raise ConnectionRefusedError("database down")

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_with_the_database_away_a_persons_token_is_503_and_the_hosts_works(
    api: Api,
) -> None:
    _, token = await api.token("anna")
    api.store.sessions = cast(Any, _Unreachable())
    status, body = await api.call("POST", "/api/agents/anna/ready", token)
    assert (status, body["error_id"]) == (503, "database_unavailable")
    assert (await api.call("POST", "/api/agents/anna/ready", HOST_TOKEN))[0] == 200
