"""Over 500 lines: the desk's routes share one session/CSRF guard and one set of app keys;
to split by page (desk, wallboard, reports) when the admin console adds its own.

The agent desktop's pages, its browser JSON API (/desk/api, authenticated by the session
cookie plus a CSRF header on every change) and its WebSockets. Thin: checks are auth.py and
forms.py, reads and writes store.py, pushes notifier.py. The machines' bearer-token API stays
under /api (web/api.py); its description is served at /api/openapi.json."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import WSMsgType, web

from core.acd import ACD, ACDError, AgentMode, AgentStatus
from core.desk.forms import (
    CATEGORIES,
    DISPOSITION_PAUSE,
    OUTCOMES,
    FormError,
    check_callback,
    check_client,
    check_disposition,
    may_become_available,
)
from core.desk.screenpop import build_screenpop
from core.dialler import AgentDisposition, check_campaign_disposition, check_skip_reason
from core.enums import DeskLanguage
from core.errors import AgentDeskError
from core.ids import row_id
from core.inquiries import InquiryKind
from core.throttle import LoginThrottle
from models.db import is_outage
from models.dialler import DiallerStore
from models.web_sessions import WebSessionStore
from web import i18n
from web.api import check_call_request, check_reason, check_transfer, live_call_agent, placed
from web.auth import (
    COOKIE,
    MAX_PASSWORD,
    PRE_COOKIE,
    Action,
    Sessions,
    User,
    home_page,
    may,
    may_control_call,
    verify_password,
)
from web.errors import Need, api_principal, client_address, error_json, needs, route_need
from web.notifier import Notifier
from web.openapi import OPENAPI
from web.ports import AgentCampaigns, AgentCommands, CallControl, ManualCalls, Softphones
from web.store import DeskStore

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
WS_MAX_MESSAGE = 4096
WS_HEARTBEAT = 15.0
MAX_AGENT_ID = 64


@dataclass
class DeskWeb:
    store: DeskStore
    sessions: Sessions
    notifier: Notifier
    acd: ACD
    desk: AgentCommands
    infoline: CallControl
    region: str
    disposition_required: bool
    web_sessions: WebSessionStore
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    # Cookies only over HTTPS: set when a TLS proxy stands in front (the proxy's request to us
    # is plain HTTP, so aiohttp cannot tell by itself).
    secure_cookies: bool = False
    # The proxy whose X-Forwarded-For/-Proto we believe; from anyone else they are forged.
    trusted_proxy: str | None = None
    # Agents' manual outbound calls (None: this serve places none).
    outbound: ManualCalls | None = None
    # The agents' browser softphones (None: serve runs without them, e.g. a test's app).
    softphones: Softphones | None = None
    # The agent dialler: preview's contacts (None: this serve runs no agent campaigns).
    dialler: AgentCampaigns | None = None
    # Agent id -> the desk session their softphone's credentials were issued to: it goes when
    # that session ends (in this process's memory; a restart forgets, the log-out still holds).
    softphone_sessions: dict[str, str] = field(default_factory=dict)
    # Each open WebSocket, with the session it belongs to and what it needs to stay open.
    sockets: dict[web.WebSocketResponse, tuple[str, Action]] = field(default_factory=dict)

    def client_address(self, request: web.Request) -> str:
        return client_address(request, self.trusted_proxy)

    def secure(self, request: web.Request) -> bool:
        if self.secure_cookies or request.secure:
            return True
        return bool(
            self.trusted_proxy
            and request.remote == self.trusted_proxy
            and request.headers.get("X-Forwarded-Proto", "").lower() == "https"
        )

    async def close_sockets(self, session_id: str) -> None:
        """The session ended: its pushes stop now, not when the browser next asks."""
        for ws, (sid, _action) in list(self.sockets.items()):
            if sid == session_id:
                await ws.close(code=WS_SESSION_ENDED, message=b"session ended")

    async def recheck_sockets(self) -> None:
        """Close the sockets whose session was revoked elsewhere (a password change from the
        CLI, another process's log-out) or whose agent lost the role they need."""
        if not self.sockets and not self.softphone_sessions:
            return
        roles = await self.web_sessions.live_roles(
            {sid for sid, _ in self.sockets.values()} | set(self.softphone_sessions.values()),
            datetime.now(UTC),
        )
        for ws, (sid, action) in list(self.sockets.items()):
            role = roles.get(sid)
            if role is None or not may(role, action):
                await ws.close(code=WS_SESSION_ENDED, message=b"session ended")
        for agent_id, sid in list(self.softphone_sessions.items()):
            role = roles.get(sid)
            if role is None or not may(role, Action.USE_DESK):
                await _drop_softphone(self, agent_id, sid)


WS_SESSION_ENDED = 4401  # an application close code: the browser goes to the login page
WEB = web.AppKey("desk_web", DeskWeb)


async def current_user(request: web.Request) -> User | None:
    """Who sends this request: a live session in the database, with its agent's role now."""
    dw = request.app[WEB]
    session_id = dw.sessions.session_id(request.cookies.get(COOKIE))
    if session_id is None:
        return None
    live = await dw.web_sessions.live(session_id, datetime.now(UTC))
    return None if live is None else User(live.agent_id, live.role, live.id, live.language)


@jinja2.pass_context
def _t(context: jinja2.runtime.Context, key: str, **fields: object) -> str:
    # The page's language is its context's `lang` (page_context): none there is a bug, raised.
    return i18n.t(context["lang"], key, **fields)


@jinja2.pass_context
def _label(context: jinja2.runtime.Context, family: str, value: object) -> str:
    return i18n.label(context["lang"], family, value)


@jinja2.pass_context
def _decimal(context: jinja2.runtime.Context, value: float | None, places: int = 1) -> str:
    return i18n.decimal(context["lang"], value, places)


def setup_templates(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
    )
    env.globals.update(t=_t, label=_label, decimal=_decimal)


def page_context(language: str, scripts: tuple[str, ...] = (), **context: Any) -> dict[str, Any]:
    """A page's context: its language (<html lang>, every text) and its scripts, which get
    their texts embedded in the page (i18n.js first: the others use its t())."""
    loaded = ("i18n.js", *scripts) if scripts else ()
    return {
        "lang": language,
        "scripts": loaded,
        "script_texts": i18n.script_texts(language, loaded),
        **context,
    }


Handler = Callable[[web.Request, DeskWeb, User], Awaitable[web.StreamResponse]]


def _api(
    action: Action,
) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """A /desk/api handler: a valid session whose role may ``action``, the CSRF header on
    anything but GET."""

    def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def run(request: web.Request) -> web.StreamResponse:
            dw = request.app[WEB]
            user = await current_user(request)
            if user is None:
                return error_json(401, "not_logged_in", "log in first")
            if not may(user.role, action):
                return error_json(403, "forbidden", f"role {user.role} may not {action}")
            if request.method != "GET" and not dw.sessions.csrf_ok(
                user.nonce, request.headers.get("X-CSRF-Token")
            ):
                return error_json(403, "csrf", "missing or wrong CSRF token")
            # A DomainError (a form field, an agent or call command, a report) goes on to
            # the app's one error middleware (web.errors).
            return await handler(request, dw, user)

        return run

    return wrap


# A dict answers as JSON; a response (a streamed one too: the call log's CSV) as it is.
Reply = Callable[[web.Request, Any], Awaitable[dict[str, Any] | web.StreamResponse]]


def twin_routes(
    operations: Sequence[tuple[str, str, Reply, Action]],
    api_prefix: str,
    *,
    bearer_asker: Callable[[web.Request, User], Any] | None = None,
    desk_asker: Callable[[web.Request, DeskWeb, User], Any] | None = None,
    others: bool = False,
) -> list[web.RouteDef]:
    """Each (method, path, operation, action) under ``api_prefix`` for the bearer API when
    ``bearer_asker`` is given (``needs(action)``; ``others``: the ``{agent_id}`` in the path is
    whom it is done to, so whoever may the action may it for any agent), and under /desk +
    ``api_prefix`` for the desk's session when ``desk_asker`` is (``_api(action)``): the same
    operations, the same checks, wherever asked from. A dict answers as JSON."""

    def reply(result: dict[str, Any] | web.StreamResponse) -> web.StreamResponse:
        return result if isinstance(result, web.StreamResponse) else web.json_response(result)

    def bearer(operation: Reply, action: Action) -> Callable[[web.Request], Awaitable[Any]]:
        @needs(action, others=action if others else None)
        async def run(request: web.Request) -> web.StreamResponse:
            assert bearer_asker is not None
            asker = bearer_asker(request, api_principal(request))
            return reply(await operation(request, asker))

        return run

    def desk(operation: Reply, action: Action) -> Callable[[web.Request], Awaitable[Any]]:
        @_api(action)
        async def run(request: web.Request, dw: DeskWeb, user: User) -> web.StreamResponse:
            assert desk_asker is not None
            return reply(await operation(request, desk_asker(request, dw, user)))

        return run

    routes = []
    for method, path, operation, action in operations:
        if bearer_asker is not None:
            routes.append(web.route(method, f"{api_prefix}{path}", bearer(operation, action)))
        if desk_asker is not None:
            routes.append(web.route(method, f"/desk{api_prefix}{path}", desk(operation, action)))
    return routes


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError as exc:
        raise FormError("body", "not JSON") from exc
    if not isinstance(data, dict):
        raise FormError("body", "a JSON object")
    return data


async def _page_user(request: web.Request, action: Action) -> User:
    user = await current_user(request)
    if user is None:
        raise web.HTTPSeeOther("/login")
    if not may(user.role, action):
        raise web.HTTPForbidden(text=i18n.t(user.language, "error.forbidden"))
    return user


def _check_control(dw: DeskWeb, user: User, call_id: str) -> None:
    if not may_control_call(user, live_call_agent(dw.infoline, call_id)):
        raise AgentDeskError("not_your_call", "this call is with another agent", 403)


# ---- pages --------------------------------------------------------------------------------


async def index(request: web.Request) -> web.StreamResponse:
    user = await current_user(request)
    raise web.HTTPSeeOther(home_page(user.role) if user else "/login")


async def login_page(
    request: web.Request, error: str | None = None, status: int | None = None
) -> web.Response:
    """The login form; ``error``: the key of the text saying what went wrong. Nobody is known
    yet, so the browser's languages choose the page's."""
    nonce = secrets.token_urlsafe(16)
    response = aiohttp_jinja2.render_template(
        "login.html",
        request,
        page_context(
            i18n.from_accept_language(request.headers.get("Accept-Language")),
            csrf=request.app[WEB].sessions.csrf_token("pre:" + nonce),
            error=error,
        ),
        status=status or (401 if error else 200),
    )
    response.headers["Vary"] = "Accept-Language"  # a cache must not hand it to other browsers
    response.set_cookie(
        PRE_COOKIE, nonce, httponly=True, samesite="Strict", max_age=600, path="/login"
    )
    return response


async def login_get(request: web.Request) -> web.Response:
    return await login_page(request)


async def login_post(request: web.Request) -> web.Response:
    dw = request.app[WEB]
    form = await request.post()
    nonce = request.cookies.get(PRE_COOKIE, "")
    if not nonce or not dw.sessions.csrf_ok("pre:" + nonce, str(form.get("csrf", ""))):
        return await login_page(request, "login.expired")
    agent_id, password = str(form.get("agent_id", "")).strip(), str(form.get("password", ""))
    address = dw.client_address(request)
    account = agent_id[:MAX_AGENT_ID].casefold()  # one count per account, however it is typed
    wait = dw.throttle.retry_after(account, address, time.monotonic())
    if wait > 0:
        # Refused before the password is even checked: a guess made now tells nothing.
        response = await login_page(request, "login.throttled", 429)
        response.headers["Retry-After"] = str(max(1, round(wait)))
        return response
    try:
        agent = await dw.store.user(agent_id) if 0 < len(agent_id) <= MAX_AGENT_ID else None
    except Exception as exc:
        if not is_outage(exc):
            raise
        # A log-in needs the database (the password hash, the session row): said plainly,
        # 503, not a failure that counts against the account.
        response = await login_page(request, "error.database_unavailable", 503)
        response.headers["Retry-After"] = "5"
        return response
    # argon2 takes ~50 ms of CPU on purpose: off the event loop, so calls are not delayed.
    # It runs for unknown ids too (against a dummy hash), so both answer in the same time.
    known = agent.password_hash if agent and len(password) <= MAX_PASSWORD else None
    ok = await asyncio.to_thread(verify_password, known, password[:MAX_PASSWORD])
    if agent is None or not ok:
        failures, from_address = dw.throttle.failed(account, address, time.monotonic())
        log.warning(
            "login_failed",
            agent_id=agent_id[:MAX_AGENT_ID],
            address=address,
            failures=failures,
            failures_from_address=from_address,
        )
        return await login_page(request, "login.wrong")
    dw.throttle.succeeded(account, address, time.monotonic())
    session_id = await dw.web_sessions.open(agent.id, datetime.now(UTC))
    if dw.store.remember is not None:
        await dw.store.remember(agent.id)  # their profile, for an outage
    log.info("login", agent_id=agent.id, address=address)
    response = web.HTTPSeeOther(home_page(str(agent.role)))
    response.set_cookie(
        COOKIE,
        dw.sessions.cookie(session_id),
        httponly=True,
        samesite="Strict",
        max_age=int(dw.sessions.max_age),
        secure=dw.secure(request),
        path="/",
    )
    response.del_cookie(PRE_COOKIE, path="/login")
    raise response


async def logout_post(request: web.Request) -> web.StreamResponse:
    dw = request.app[WEB]
    user = await current_user(request)
    form = await request.post()
    if user is not None and dw.sessions.csrf_ok(user.nonce, str(form.get("csrf", ""))):
        await dw.web_sessions.revoke(user.nonce, datetime.now(UTC))
        await dw.close_sockets(user.nonce)
        await _drop_softphone(dw, user.agent_id, user.nonce)
        log.info("logout", agent_id=user.agent_id)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


# The pause reasons the desk offers (the API takes any short reason).
PAUSE_REASONS = ("break", "lunch", "training", "meeting", "back-office")
# The languages a new client's record may be created in (their greeting's, their notices').
CLIENT_LANGUAGES = ("bs", "hr", "sr", "en", "de")


@aiohttp_jinja2.template("desk.html")
async def desk_page(request: web.Request) -> dict[str, Any]:
    user = await _page_user(request, Action.USE_DESK)
    dw = request.app[WEB]
    try:
        agent = await dw.store.user(user.agent_id)
    except Exception as exc:
        if not is_outage(exc):
            raise
        agent = None  # the database is away: the desk works from memory, by agent id
    softphone = dw.softphones is not None
    return page_context(
        user.language,
        ("desk.js", "inquiries.js", "softphone.js") if softphone else ("desk.js", "inquiries.js"),
        user=user,
        name=agent.name if agent else user.agent_id,
        csrf=dw.sessions.csrf_token(user.nonce),
        categories=CATEGORIES,
        outcomes=OUTCOMES,
        campaign_dispositions=[d.value for d in AgentDisposition],
        inquiry_kinds=[str(k) for k in InquiryKind],
        pause_reasons=PAUSE_REASONS,
        client_languages=CLIENT_LANGUAGES,
        languages=[language.value for language in DeskLanguage],
        wallboard=may(user.role, Action.VIEW_WALLBOARD),
        # The browser softphone: offered when serve has it; switched on by itself for an
        # agent with no phone on file (only a headset), otherwise at the agent's choice.
        softphone=softphone,
        softphone_default="on" if agent is not None and not agent.endpoint else "off",
    )


@aiohttp_jinja2.template("wallboard.html")
async def wallboard_page(request: web.Request) -> dict[str, Any]:
    user = await _page_user(request, Action.VIEW_WALLBOARD)
    return page_context(
        user.language,
        ("wallboard.js",),
        user=user,
        csrf=request.app[WEB].sessions.csrf_token(user.nonce),
    )


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(described(request.app.router))


def described(router: web.UrlDispatcher) -> dict[str, Any]:
    """The API's description with what each bearer operation needs (``x-centrala-action``,
    and ``x-centrala-others`` to act for another agent), read from the routes' own
    declarations, so the document cannot drift from what the guard enforces."""
    doc = copy.deepcopy(OPENAPI)
    for path, operations in doc["paths"].items():
        if not path.startswith("/api/"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "1", path)  # a sample of the path's parameters
        for method, op in operations.items():
            need = _need_of(router, method.upper(), concrete)
            if need is not None:
                op["x-centrala-action"] = str(need.action)
                if need.others is not None:
                    op["x-centrala-others"] = str(need.others)
    return doc


def _need_of(router: web.UrlDispatcher, method: str, path: str) -> Need | None:
    for resource in router.resources():
        info = resource.get_info()
        pattern = info.get("pattern")
        if info.get("path") != path and not (pattern is not None and pattern.fullmatch(path)):
            continue
        for route in resource:
            if route.method == method:
                return route_need(route.handler)
    return None


# ---- WebSockets ---------------------------------------------------------------------------


async def _socket(request: web.Request, action: Action) -> tuple[web.WebSocketResponse, User]:
    user = await current_user(request)
    if user is None or not may(user.role, action):
        raise web.HTTPUnauthorized(text="log in first")
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1] != request.host:
        # Browsers send Origin on WebSocket handshakes; another site's page may not listen in.
        raise web.HTTPForbidden(text="cross-origin WebSocket refused")
    ws = web.WebSocketResponse(heartbeat=WS_HEARTBEAT, max_msg_size=WS_MAX_MESSAGE)
    await ws.prepare(request)
    request.app[WEB].sockets[ws] = (user.nonce, action)
    return ws, user


async def _drain(ws: web.WebSocketResponse) -> None:
    # The browser only listens; anything it sends is ignored, oversized messages close it.
    async for msg in ws:
        if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
            break


async def desk_ws(request: web.Request) -> web.WebSocketResponse:
    ws, user = await _socket(request, Action.USE_DESK)
    notifier = request.app[WEB].notifier
    notifier.add_desk(user.agent_id, ws)
    try:
        await ws.send_json(notifier.agent_state(user.agent_id))
        await _drain(ws)
    finally:
        notifier.remove_desk(user.agent_id, ws)
        request.app[WEB].sockets.pop(ws, None)
    return ws


async def wallboard_ws(request: web.Request) -> web.WebSocketResponse:
    ws, _user = await _socket(request, Action.VIEW_WALLBOARD)
    notifier = request.app[WEB].notifier
    notifier.wallboards.add(ws)
    try:
        await ws.send_json(await notifier.wallboard())
        await _drain(ws)
    finally:
        notifier.wallboards.discard(ws)
        request.app[WEB].sockets.pop(ws, None)
    return ws


# ---- the browser's JSON API ---------------------------------------------------------------


@_api(Action.USE_DESK)
async def me(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    snap = dw.acd.snapshot(time.monotonic())
    state = dw.notifier.agent_state(user.agent_id)
    targets = [f"queue:{q}" for q in snap["queues"]] + [
        f"agent:{a}" for a in snap["agents"] if a != user.agent_id
    ]
    targets = ["supervisor", "survey", *targets]  # survey: the post-call survey
    return web.json_response(
        {"agent_id": user.agent_id, "role": user.role, **state, "targets": targets}
    )


def release_disposition_pause(dw: DeskWeb, agent_id: str) -> None:
    """The disposition is in: lift the pause the desk put on the agent for it (and only
    that one: a pause the agent chose stays)."""
    with contextlib.suppress(ACDError):
        agent = dw.acd.agent(agent_id)
        if agent.pause_reason == DISPOSITION_PAUSE:
            dw.desk.publish(dw.acd.unpause(agent_id, time.monotonic()))


@_api(Action.USE_DESK)
async def set_language(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    """The agent's language, kept on their row: every page from the next one on speaks it."""
    data = await _json(request)
    try:
        language = i18n.check_language(data.get("language"))
    except ValueError as exc:
        raise FormError("language", str(exc)) from exc
    if not await dw.store.set_language(user.agent_id, language):
        raise AgentDeskError("unknown_agent", f"no agent {user.agent_id!r}", 404)
    log.info("language_set", agent_id=user.agent_id, language=language.value)
    return web.json_response({"agent_id": user.agent_id, "language": language.value})


@_api(Action.USE_DESK)
async def set_state(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    data = await _json(request)
    state = data.get("state")
    agent_id = user.agent_id
    try:
        current = dw.acd.agent(agent_id).status
    except ACDError:
        current = AgentStatus.LOGGED_OUT
    if state == "available":
        if not may_become_available(dw.notifier.pending.get(agent_id), dw.disposition_required):
            raise AgentDeskError(
                "disposition_required", "enter the last call's disposition first", 409
            )
        if current is AgentStatus.LOGGED_OUT:
            # The browser softphone while it is registered, else the phone on file.
            dial = await dw.softphones.dial(agent_id) if dw.softphones else None
            await dw.desk.login(agent_id, dial, AgentMode.PER_CALL)
        else:
            dw.desk.ready(agent_id)
    elif state == "paused":
        # Logged out agents are refused (409 logged_out): logging them in first could hand
        # them a waiting call before the pause applies.
        dw.desk.pause(agent_id, check_reason(data))
    elif state == "logged_out":
        if current is not AgentStatus.LOGGED_OUT:
            await dw.desk.logout(agent_id)
    else:
        raise FormError("state", "available, paused or logged_out")
    return web.json_response(dw.notifier.agent_state(agent_id))


@_api(Action.USE_DESK)
async def softphone_issue(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    """Credentials for this browser's softphone, shown once, never stored: a new request (this
    or another browser of the agent) replaces them."""
    if dw.softphones is None:
        raise AgentDeskError("no_softphone", "this server has no browser softphone", 404)
    credentials = await dw.softphones.issue(user.agent_id)
    dw.softphone_sessions[user.agent_id] = user.nonce
    response = web.json_response(credentials.as_dict())
    response.headers["Cache-Control"] = "no-store"
    return response


@_api(Action.USE_DESK)
async def softphone_remove(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    await _drop_softphone(dw, user.agent_id, user.nonce)
    return web.json_response({"agent_id": user.agent_id, "softphone": "removed"})


async def _drop_softphone(dw: DeskWeb, agent_id: str, session_id: str) -> None:
    """The agent's softphone goes with the desk session it was issued to; another session's
    (a newer browser of the agent's) stays."""
    if dw.softphones is None:
        return
    issued_to = dw.softphone_sessions.get(agent_id)
    if issued_to is not None and issued_to != session_id:
        return
    dw.softphone_sessions.pop(agent_id, None)
    try:
        await dw.softphones.remove(agent_id)
    except Exception:  # Asterisk away: it forgot the endpoint anyway when it went
        log.warning("softphone_not_removed", agent_id=agent_id, exc_info=True)


@_api(Action.USE_DESK)
async def hangup(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    call_id = request.match_info["call_id"]
    _check_control(dw, user, call_id)
    # Through the info line: a caller who agreed to the survey is sent there, not hung up.
    await dw.infoline.control(call_id, "hangup")
    return web.json_response({"call_id": call_id, "operation": "hangup"})


@_api(Action.USE_DESK)
async def transfer(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    call_id = request.match_info["call_id"]
    target, op = check_transfer(await _json(request))
    _check_control(dw, user, call_id)
    await dw.infoline.control(call_id, op, target)
    return web.json_response({"call_id": call_id, "operation": op, "to": target})


@_api(Action.USE_DESK)
async def transfer_step(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    call_id, step = request.match_info["call_id"], request.match_info["step"]
    _check_control(dw, user, call_id)
    await dw.infoline.control(call_id, step)
    return web.json_response({"call_id": call_id, "operation": step})


async def _own_call(dw: DeskWeb, user: User, call_id: str) -> None:
    """Dispositions and callbacks: the agent's own call (live or ended), or a supervisor."""
    if may(user.role, Action.CONTROL_ANY_CALL):
        return
    mine = (dw.notifier.pending.get(user.agent_id), dw.notifier.live.get(user.agent_id))
    if call_id in mine:
        return  # the desk knows it is theirs (and so with the database away)
    call = await dw.store.call(call_id)
    if call is None:
        raise AgentDeskError("unknown_call", f"no call {call_id!r}", 404)
    if call.agent_id != user.agent_id:
        raise AgentDeskError("not_your_call", "this call was with another agent", 403)


@_api(Action.USE_DESK)
async def disposition(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    call_id = request.match_info["call_id"]
    await _own_call(dw, user, call_id)
    now = datetime.now(UTC)
    data = await _json(request)
    # The form tells: an agent campaign's call has a disposition (sale, a call back, ...), an
    # inbound call a category and outcome. No read first: the inbound one is journaled while
    # the database is away, and must not wait for it.
    if "disposition" in data and "category" not in data:
        campaign_disp, due, note = check_campaign_disposition(data, now)
        try:
            await DiallerStore(dw.store.sessions).dispose(
                call_id, user.agent_id, campaign_disp, due=due, note=note, now=now
            )
        except LookupError as exc:
            raise AgentDeskError("unknown_call", f"no call {call_id!r}", 404) from exc
        code = campaign_disp.value
    else:
        disp = check_disposition(data, now)
        try:
            await dw.store.save_disposition(call_id, user.agent_id, disp, now)
        except LookupError as exc:
            raise AgentDeskError("unknown_call", f"no call {call_id!r}", 404) from exc
        code = disp.code
    if dw.notifier.pending.get(user.agent_id) == call_id:
        dw.notifier.pending.pop(user.agent_id, None)
        release_disposition_pause(dw, user.agent_id)
    return web.json_response({"call_id": call_id, "disposition": code})


@_api(Action.USE_DESK)
async def preview_next(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    """Preview: the next contact of the agent's preview campaigns, held for them."""
    if dw.dialler is None:
        raise AgentDeskError("no_dialler", "this server runs no agent campaigns", 503)
    held = await dw.dialler.preview_next(user.agent_id)
    return web.json_response({"contact": held and held.json()})


@_api(Action.USE_DESK)
async def preview_step(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    if dw.dialler is None:
        raise AgentDeskError("no_dialler", "this server runs no agent campaigns", 503)
    contact_id = int(request.match_info["contact_id"])
    if request.match_info["step"] == "call":
        d = await dw.dialler.preview_call(user.agent_id, contact_id)
        return web.json_response({"call_id": d.call_id})
    reason = check_skip_reason(await _json(request))
    await dw.dialler.preview_skip(user.agent_id, contact_id, reason)
    return web.json_response({"skipped": contact_id, "reason": reason})


@_api(Action.USE_DESK)
async def callback(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    call_id = request.match_info["call_id"]
    await _own_call(dw, user, call_id)
    now = datetime.now(UTC)
    req = check_callback(await _json(request), now)
    callback_id = await dw.store.schedule_callback(call_id, user.agent_id, req, now)
    return web.json_response({"callback_id": callback_id, "due_at": req.due_at.isoformat()})


@_api(Action.USE_DESK)
async def call_out(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    """The desk's Call action: the agent's own phone rings, then the client."""
    wanted = check_call_request(await _json(request))
    if dw.outbound is None:
        raise AgentDeskError("no_outbound", "this desk places no calls", 503)
    made = await dw.outbound.call_from_desk(user.agent_id, **wanted)
    return web.json_response(placed(user.agent_id, made), status=202)


@_api(Action.EDIT_CLIENTS)
async def search(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    from core.phones import normalise

    q = request.query.get("q", "").strip()[:100]
    if len(q) < 2:
        raise FormError("q", "at least 2 characters")
    digits = "".join(c for c in q if c.isdigit())
    number = (normalise(q, dw.region) or digits) if len(digits) >= 4 else None
    return web.json_response({"clients": await dw.store.search(q, number)})


def _client_id(request: web.Request) -> int:
    client_id = row_id(request.match_info["client_id"])
    if client_id is None:
        raise AgentDeskError("unknown_client", "no such client", 404)
    return client_id


@_api(Action.EDIT_CLIENTS)
async def client_get(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    client_id = _client_id(request)
    rows = await dw.store.client_rows(client_id)
    if rows is None:
        raise AgentDeskError("unknown_client", f"no client {client_id}", 404)
    record = build_screenpop(rows, "record", datetime.now(UTC).date())
    record["audit"] = await dw.store.audit(client_id)
    return web.json_response(record)


@_api(Action.EDIT_CLIENTS)
async def client_create(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    fields = check_client(await _json(request), dw.region, partial=False)
    client_id = await dw.store.create_client(fields, user.agent_id)
    return web.json_response({"client_id": client_id}, status=201)


@_api(Action.EDIT_CLIENTS)
async def client_update(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    client_id = _client_id(request)
    fields = check_client(await _json(request), dw.region, partial=True)
    try:
        changed = await dw.store.update_client(client_id, fields, user.agent_id)
    except LookupError as exc:
        raise AgentDeskError("unknown_client", f"no client {client_id}", 404) from exc
    return web.json_response({"client_id": client_id, "changed": changed})


@_api(Action.VIEW_WALLBOARD)
async def wallboard_json(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    return web.json_response(await dw.notifier.wallboard())


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/", index),
        web.get("/login", login_get),
        web.post("/login", login_post),
        web.post("/logout", logout_post),
        web.get("/desk", desk_page),
        web.get("/wallboard", wallboard_page),
        web.get("/desk/ws", desk_ws),
        web.get("/wallboard/ws", wallboard_ws),
        web.get("/api/openapi.json", openapi),
        web.get("/desk/api/me", me),
        web.post("/desk/api/me/language", set_language),
        web.post("/desk/api/state", set_state),
        web.post("/desk/api/call", call_out),
        web.post("/desk/api/softphone", softphone_issue),
        web.delete("/desk/api/softphone", softphone_remove),
        web.post("/desk/api/calls/{call_id}/hangup", hangup),
        web.post("/desk/api/calls/{call_id}/transfer", transfer),
        web.post("/desk/api/calls/{call_id}/transfer/{step:complete|cancel}", transfer_step),
        web.post("/desk/api/calls/{call_id}/{step:hold|resume}", transfer_step),
        web.post("/desk/api/calls/{call_id}/disposition", disposition),
        web.post("/desk/api/calls/{call_id}/callback", callback),
        web.get("/desk/api/preview", preview_next),
        web.post("/desk/api/preview/{contact_id:\\d+}/{step:call|skip}", preview_step),
        web.get("/desk/api/clients", search),
        web.post("/desk/api/clients", client_create),
        web.get("/desk/api/clients/{client_id}", client_get),
        web.patch("/desk/api/clients/{client_id}", client_update),
        web.get("/desk/api/wallboard", wallboard_json),
        web.static("/static", HERE / "static"),
    ]
