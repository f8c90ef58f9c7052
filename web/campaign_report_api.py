"""The campaigns report over HTTP (``core.campaign_report``): ``GET .../reports/campaigns`` as
JSON and ``.../reports/campaigns.csv`` as CSV, for machines under the bearer-token /api
(``routes``) and for supervisors on the desk (``desk_routes``), both needing
``Action.VIEW_REPORTS``. Query: since, until (local days in the call centre's zone, both
included; by default today), interval (hour, day, week, month; default day), campaign (its
name), kind. (``/api/campaigns/...`` is the campaigns' own management: not here.)"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.campaign_report import CampaignReport, csv_rows, parse_request
from core.surveys.report import REPORT_TIMEZONE
from models import campaign_report as store
from web.auth import Action, User
from web.http import DeskWeb, twin_routes

Sessions = async_sessionmaker[AsyncSession]
Operation = Callable[[web.Request, Sessions], Awaitable[dict[str, Any] | web.Response]]


async def report_of(sessions: Sessions, params: dict[str, str]) -> dict[str, Any]:
    """The report asked for by ``params`` (CampaignReportError when it cannot be made)."""
    zone = ZoneInfo(REPORT_TIMEZONE)
    query = parse_request(params, datetime.now(zone).date(), REPORT_TIMEZONE)
    asked = await store.campaigns(sessions, query.campaign, query.kind)
    ids = [info.id for info, _ in asked]
    report = CampaignReport(
        query.interval,
        zone,
        [info for info, _ in asked],
        await store.contact_statuses(sessions, ids),
    )
    agents = [info.id for info, _ in asked if not info.survey]
    async for call in store.agent_calls(sessions, agents, query.since, query.until):
        report.add_call(call)
    surveys = {info.id: version for info, version in asked if info.survey}
    async for call in store.survey_calls(sessions, surveys, query.since, query.until):
        report.add_call(call)
    return {
        "since": query.since.astimezone(zone).isoformat(),
        "until": query.until.astimezone(zone).isoformat(),
        **report.result(),
    }


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
        headers={"Content-Disposition": f'attachment; filename="campaigns-{day}.csv"'},
    )


OPERATIONS: list[tuple[str, str, Operation, Action]] = [
    ("GET", "/campaigns", report_json, Action.VIEW_REPORTS),
    ("GET", "/campaigns.csv", report_csv, Action.VIEW_REPORTS),
]


def routes(sessions_key: web.AppKey[Sessions]) -> list[web.RouteDef]:
    def asker(request: web.Request, user: User) -> Sessions:
        return request.app[sessions_key]

    return twin_routes(OPERATIONS, "/api/reports", bearer_asker=asker)


def desk_routes() -> list[web.RouteDef]:
    def asker(request: web.Request, dw: DeskWeb, user: User) -> Sessions:
        return dw.store.sessions

    return twin_routes(OPERATIONS, "/api/reports", desk_asker=asker)
