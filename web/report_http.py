"""What the reports built per interval share over HTTP (the queues report, the campaigns
report): their two operations (the JSON, and the same rows as CSV) under the bearer-token
/api (``bearer_routes``) and the desk's /desk/api (``desk_routes``), both needing
``Action.VIEW_REPORTS``; and their desk page's handling of the filters (the report, or the
error the filters make, shown on the page with its status). Imports ``core`` and ``web``."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import DomainError
from web import i18n
from web.auth import Action, User
from web.http import WEB, DeskWeb, _page_user, page_context, twin_routes

Sessions = async_sessionmaker[AsyncSession]
ReportOf = Callable[[Sessions, dict[str, str]], Awaitable[dict[str, Any]]]
CsvRows = Callable[[Mapping[str, Any]], Iterable[list[str]]]
Operation = Callable[[web.Request, Sessions], Awaitable[dict[str, Any] | web.Response]]
Operations = list[tuple[str, str, Operation, Action]]
API_PREFIX = "/api/reports"


def operations(name: str, report_of: ReportOf, csv_rows: CsvRows) -> Operations:
    """``GET /<name>`` (the report as JSON) and ``GET /<name>.csv`` (its rows, as a file named
    for the report and its first day)."""

    async def report_json(request: web.Request, sessions: Sessions) -> dict[str, Any]:
        return await report_of(sessions, dict(request.query))

    async def report_csv(request: web.Request, sessions: Sessions) -> web.Response:
        report = await report_of(sessions, dict(request.query))
        out = io.StringIO()
        csv.writer(out).writerows(csv_rows(report))
        day = report["since"][:10]
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}-{day}.csv"'},
        )

    return [
        ("GET", f"/{name}", report_json, Action.VIEW_REPORTS),
        ("GET", f"/{name}.csv", report_csv, Action.VIEW_REPORTS),
    ]


def bearer_routes(ops: Operations, sessions_key: web.AppKey[Sessions]) -> list[web.RouteDef]:
    def asker(request: web.Request, user: User) -> Sessions:
        return request.app[sessions_key]

    return twin_routes(ops, API_PREFIX, bearer_asker=asker)


def desk_routes(ops: Operations) -> list[web.RouteDef]:
    def asker(request: web.Request, dw: DeskWeb, user: User) -> Sessions:
        return dw.store.sessions

    return twin_routes(ops, API_PREFIX, desk_asker=asker)


async def report_page(
    request: web.Request,
    *,
    name: str,
    template: str,
    filters: Iterable[str],
    report_of: ReportOf,
    error: type[DomainError],
    shown: Callable[[dict[str, Any], str], dict[str, Any]],
    **context: Any,
) -> web.Response:
    """The report's page for a supervisor or admin: the filters as given, the report they
    make with what ``shown`` adds for the template (its charts), and the CSV link with the
    same filters; or the filters' error, on the page with its status."""
    user = await _page_user(request, Action.VIEW_REPORTS)
    dw = request.app[WEB]
    given = {k: request.query.get(k, "").strip() for k in filters}
    page: dict[str, Any] = page_context(
        user.language,
        user=user,
        csrf=dw.sessions.csrf_token(user.nonce),
        given=given,
        **context,
    )
    kept = {k: v for k, v in given.items() if v}
    try:
        report = await report_of(dw.store.sessions, kept)
    except error as exc:
        page["error"] = i18n.t(user.language, "error.other", message=str(exc))
        return aiohttp_jinja2.render_template(template, request, page, status=exc.status)
    page.update(
        report=report,
        # The last day asked for (``until`` is the midnight after it).
        last_day=(date.fromisoformat(report["until"][:10]) - timedelta(days=1)).isoformat(),
        csv_url=f"/desk{API_PREFIX}/{name}.csv" + (f"?{urlencode(kept)}" if kept else ""),
        **shown(report, user.language),
    )
    return aiohttp_jinja2.render_template(template, request, page)
