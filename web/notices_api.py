"""The notices to clients over HTTP, for machines under the bearer-token /api (``routes``) and
for supervisors and admins on the desk under /desk/api (``desk_routes``), the same operations
through ``twin_routes``: the outbox a page at a time (``GET .../notices``, filters and a
cursor), its counts (``GET .../notices/status``), what a supervisor's offer, office change or
announcement would do with one real message per language, nothing written (``POST
.../notices/preview``), and sending it (``POST .../notices``: queued under the contact policy;
`serve`'s notices loop hands it to the channels). And the page /notices where a supervisor
sees the preview before sending. The checks are ``core.notices``', the work
``usecases.notices``'."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import DomainError
from core.notices import (
    SEGMENTS,
    SEND_KINDS,
    Channel,
    NoticeKind,
    NoticeState,
    Policy,
    SupervisorNotice,
    check_supervisor_notice,
)
from models import notices as store
from models.tables import Notice
from usecases.notices import NoticeSetup, preview, send_notice
from web.api import json_body, query_choice, query_number
from web.auth import Action, User, may
from web.http import WEB, DeskWeb, _page_user, page_context, twin_routes

Sessions = async_sessionmaker[AsyncSession]
# The notices' setup of the running `serve` (its policy and configured channels): set by its
# notices loop. Without it (an app with no loop) every client is "no_channel".
NOTICE_SETUP = web.AppKey("notice_setup", NoticeSetup)
MAX_PAGE = 500


@dataclass(frozen=True)
class Asker:
    sessions: Sessions
    setup: NoticeSetup


def _setup(app: web.Application) -> NoticeSetup:
    return app.get(NOTICE_SETUP) or NoticeSetup(Policy(), {})


def notice_json(row: Notice) -> dict[str, Any]:
    def at(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": row.id,
        "client_id": row.client_id,
        "kind": row.kind,
        "channel": row.channel,
        "state": row.state,
        "language": row.language,
        "subject": row.subject,
        "text": row.body,
        "attempts": row.attempts,
        "created_at": at(row.created_at),
        "not_before": at(row.not_before),
        "sent_at": at(row.sent_at),
        "final_at": at(row.final_at),
        "error": row.error,
    }


async def listing(request: web.Request, asker: Asker) -> dict[str, Any]:
    query = dict(request.query)
    limit = query_number(query, "limit", 100, MAX_PAGE) or 100
    rows = await store.page(
        asker.sessions,
        client_id=query_number(query, "client", None, 2**62),
        kind=query_choice(query, "kind", NoticeKind),
        channel=query_choice(query, "channel", Channel),
        state=query_choice(query, "state", NoticeState),
        before=query_number(query, "before", None, 2**62),
        limit=limit,
    )
    return {
        "notices": [notice_json(r) for r in rows],
        "next_before": rows[-1].id if len(rows) == limit else None,
    }


async def status(request: web.Request, asker: Asker) -> dict[str, Any]:
    found = await store.counts(asker.sessions)
    rows = [{"kind": k, "channel": c, "state": s, "count": n} for (k, c, s), n in found.items()]
    return {
        "outbox": sorted(rows, key=lambda r: (r["kind"], r["channel"], r["state"])),
        "channels": sorted(str(c) for c in asker.setup.senders),
    }


def check_request(data: dict[str, Any]) -> SupervisorNotice:
    clients = data.get("clients", [])
    if not isinstance(clients, list) or not all(isinstance(c, str) for c in clients):
        raise DomainError(
            "clients: a list of the clients' external ids",
            error_id="bad_notice",
            details={"field": "clients"},
        )
    for name in ("kind", "segment", "channel", "product", "message"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise DomainError(f"{name}: text", error_id="bad_notice", details={"field": name})
    kind = str(data.get("kind") or "")
    text = data.get("product") if kind == "offer" else data.get("message")
    return check_supervisor_notice(
        kind,
        text,
        segment=data.get("segment") or None,
        external_ids=clients,
        channel=data.get("channel") or None,
    )


def _today(setup: NoticeSetup) -> Any:
    return datetime.now(ZoneInfo(setup.policy.default_zone)).date()


async def preview_notice(request: web.Request, asker: Asker) -> dict[str, Any]:
    notice = check_request(await json_body(request))
    shown = await preview(
        asker.sessions, asker.setup, notice, datetime.now(UTC), _today(asker.setup)
    )
    return shown.as_json()


async def send(request: web.Request, asker: Asker) -> dict[str, Any]:
    notice = check_request(await json_body(request))
    queued = await send_notice(
        asker.sessions, asker.setup, notice, datetime.now(UTC), _today(asker.setup)
    )
    return queued.summary()


# (method, path under .../notices, operation, what the user must be allowed)
OPERATIONS: list[tuple[str, str, Any, Action]] = [
    ("GET", "", listing, Action.VIEW_REPORTS),
    ("GET", "/status", status, Action.VIEW_REPORTS),
    ("POST", "/preview", preview_notice, Action.SEND_NOTICES),
    ("POST", "", send, Action.SEND_NOTICES),
]


def routes(sessions_key: web.AppKey[Sessions]) -> list[web.RouteDef]:
    def asker(request: web.Request, user: User) -> Asker:
        return Asker(request.app[sessions_key], _setup(request.app))

    return twin_routes(OPERATIONS, "/api/notices", bearer_asker=asker)


async def notices_page(request: web.Request) -> web.Response:
    user = await _page_user(request, Action.VIEW_REPORTS)
    dw: DeskWeb = request.app[WEB]
    context = page_context(
        user.language,
        ("notices.js",),
        user=user,
        csrf=dw.sessions.csrf_token(user.nonce),
        kinds=sorted(SEND_KINDS),
        segments=SEGMENTS,
        channels=[str(c) for c in Channel],
        may_send=may(user.role, Action.SEND_NOTICES),
    )
    return aiohttp_jinja2.render_template("notices.html", request, context)


def desk_routes() -> list[web.RouteDef]:
    def asker(request: web.Request, dw: DeskWeb, user: User) -> Asker:
        return Asker(dw.store.sessions, _setup(request.app))

    return [
        web.get("/notices", notices_page),
        *twin_routes(OPERATIONS, "/api/notices", desk_asker=asker),
    ]


__all__ = ["NOTICE_SETUP", "desk_routes", "routes"]
