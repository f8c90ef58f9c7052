"""The call log report over HTTP: a page of calls as JSON (``limit`` ≤ 500, ``cursor`` for
the next) and every matching call as CSV, streamed a chunk at a time, for machines under the
bearer-token /api (``routes``) and for supervisors and admins under /desk/api with their
session (``desk_routes``), the same operations through ``twin_routes``; and the page
/reports/calls (filters, the table, the next page, the CSV with the same filters)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.calllog_report import (
    DIRECTIONS,
    FILTERS,
    REPORT_TIMEZONE,
    CallLogError,
    csv_text,
    parse_filter,
    parse_page,
    row_json,
)
from models.calllog_report import page, stream_calls
from web import i18n
from web.auth import Action, User
from web.http import WEB, DeskWeb, Reply, _page_user, page_context, twin_routes

Sessions = async_sessionmaker[AsyncSession]
ZONE = ZoneInfo(REPORT_TIMEZONE)
PAGE_ROWS = 100


async def calls_json(request: web.Request, sessions: Sessions) -> dict[str, Any]:
    asked = parse_page(dict(request.query))
    rows, following = await page(sessions, asked.filter, asked.cursor, asked.limit)
    return {
        "timezone": REPORT_TIMEZONE,
        "limit": asked.limit,
        "calls": [row_json(row, ZONE) for row in rows],
        "next_cursor": following.encode() if following is not None else None,
    }


async def calls_csv(request: web.Request, sessions: Sessions) -> web.StreamResponse:
    # Checked before the first byte goes out: a bad filter is still a 400 with its error_id.
    call_filter = parse_filter(dict(request.query))
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="calls.csv"',
            "Cache-Control": "no-store",
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(csv_text((), ZONE, header=True).encode())
    async for rows in stream_calls(sessions, call_filter):
        await response.write(csv_text(rows, ZONE).encode())
    await response.write_eof()
    return response


OPERATIONS: list[tuple[str, str, Reply, Action]] = [
    ("GET", "/calls", calls_json, Action.VIEW_REPORTS),
    ("GET", "/calls.csv", calls_csv, Action.VIEW_REPORTS),
]


def routes(sessions_key: web.AppKey[Sessions]) -> list[web.RouteDef]:
    def asker(request: web.Request, user: User) -> Sessions:
        return request.app[sessions_key]

    return twin_routes(OPERATIONS, "/api/reports", bearer_asker=asker)


async def calls_page(request: web.Request) -> web.Response:
    user = await _page_user(request, Action.VIEW_REPORTS)
    dw: DeskWeb = request.app[WEB]
    given = {k: request.query.get(k, "").strip() for k in FILTERS}
    kept = {k: v for k, v in given.items() if v}
    context: dict[str, Any] = page_context(
        user.language,
        user=user,
        csrf=dw.sessions.csrf_token(user.nonce),
        given=given,
        directions=DIRECTIONS,
        timezone=REPORT_TIMEZONE,
        csv_url="/desk/api/reports/calls.csv" + (f"?{urlencode(kept)}" if kept else ""),
    )
    cursor = request.query.get("cursor", "").strip()
    params = {**kept, "limit": str(PAGE_ROWS), **({"cursor": cursor} if cursor else {})}
    try:
        asked = parse_page(params)
        rows, following = await page(dw.store.sessions, asked.filter, asked.cursor, asked.limit)
    except CallLogError as exc:
        context["error"] = i18n.t(user.language, "error.other", message=str(exc))
        return aiohttp_jinja2.render_template(
            "calllog_report.html", request, context, status=exc.status
        )
    context["calls"] = [row_json(row, ZONE) for row in rows]
    if following is not None:
        context["next_url"] = "/reports/calls?" + urlencode({**kept, "cursor": following.encode()})
    return aiohttp_jinja2.render_template("calllog_report.html", request, context)


def desk_routes() -> list[web.RouteDef]:
    def asker(request: web.Request, dw: DeskWeb, user: User) -> Sessions:
        return dw.store.sessions

    return [
        web.get("/reports/calls", calls_page),
        *twin_routes(OPERATIONS, "/api/reports", desk_asker=asker),
    ]


__all__ = ["desk_routes", "routes"]
