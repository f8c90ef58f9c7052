"""The agents report over HTTP (``core.agent_report``): ``GET .../reports/agents`` as JSON and
``.../reports/agents.csv`` as CSV, for machines under the bearer-token /api (``routes``) and
for supervisors on the desk (``desk_routes``), both needing ``Action.VIEW_REPORTS``. Query:
since, until (local days in the call centre's zone, both included; by default today),
interval (15min, hour, day, week, month; default hour), agent, queue. Errors as the queues
report's (``web.queue_report_api``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.agent_report import AgentReport, csv_rows, parse_request
from core.surveys.report import REPORT_TIMEZONE
from models import agent_report as store
from web.auth import Action, User
from web.http import DeskWeb, twin_routes

Sessions = async_sessionmaker[AsyncSession]
Operation = Callable[[web.Request, Sessions], Awaitable[dict[str, Any] | web.Response]]


async def report_of(
    sessions: Sessions, params: dict[str, str], now: datetime | None = None
) -> dict[str, Any]:
    """The report asked for by ``params`` (QueueReportError when it cannot be made), counted
    up to ``now`` (default: the present)."""
    zone = ZoneInfo(REPORT_TIMEZONE)
    now = now or datetime.now(UTC)
    query = parse_request(params, now.astimezone(zone).date(), REPORT_TIMEZONE)
    report = AgentReport(query.interval, zone, query.since, query.until, now)
    window = (sessions, query.since, query.until, query.agent, query.queue)
    async for change in store.state_changes(*window):
        report.add_state(change)
    async for call in store.agent_calls(*window):
        report.add_call(call)
    return {
        "since": query.since.astimezone(zone).isoformat(),
        "until": query.until.astimezone(zone).isoformat(),
        **report.result(await store.agent_names(sessions)),
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
        headers={"Content-Disposition": f'attachment; filename="agents-{day}.csv"'},
    )


OPERATIONS: list[tuple[str, str, Operation, Action]] = [
    ("GET", "/agents", report_json, Action.VIEW_REPORTS),
    ("GET", "/agents.csv", report_csv, Action.VIEW_REPORTS),
]


def routes(sessions_key: web.AppKey[Sessions]) -> list[web.RouteDef]:
    def asker(request: web.Request, user: User) -> Sessions:
        return request.app[sessions_key]

    return twin_routes(OPERATIONS, "/api/reports", bearer_asker=asker)


def desk_routes() -> list[web.RouteDef]:
    def asker(request: web.Request, dw: DeskWeb, user: User) -> Sessions:
        return dw.store.sessions

    return twin_routes(OPERATIONS, "/api/reports", desk_asker=asker)
