"""The queues report over HTTP (``core.queue_report``): ``GET .../reports/queues`` as JSON and
``.../reports/queues.csv`` as CSV, for machines under the bearer-token /api (``routes``) and
for supervisors on the desk (``desk_routes``), both needing ``Action.VIEW_REPORTS``. Query:
since, until (local days in the call centre's zone, both included; by default today),
interval (15min, hour, day, week, month; default hour), queue."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.queue_report import QueueReport, csv_rows, parse_request
from core.surveys.report import REPORT_TIMEZONE
from models import queue_report as store
from web.auth import Action, User
from web.http import DeskWeb, twin_routes

Sessions = async_sessionmaker[AsyncSession]
Operation = Callable[[web.Request, Sessions], Awaitable[dict[str, Any] | web.Response]]


async def report_of(sessions: Sessions, params: dict[str, str]) -> dict[str, Any]:
    """The report asked for by ``params`` (QueueReportError when it cannot be made)."""
    zone = ZoneInfo(REPORT_TIMEZONE)
    query = parse_request(params, datetime.now(zone).date(), REPORT_TIMEZONE)
    report = QueueReport(query.interval, zone, await store.thresholds(sessions))
    async for call in store.queued_calls(sessions, query.since, query.until, query.queue):
        report.add_call(call)
    for task in await store.callback_tasks(sessions, query.since, query.until, query.queue):
        report.add_task(task)
    return {
        "since": query.since.astimezone(zone).isoformat(),
        "until": query.until.astimezone(zone).isoformat(),
        **report.result(),
    }


Build = Callable[[Sessions, dict[str, str]], Awaitable[dict[str, Any]]]
Rows = Callable[[Mapping[str, Any]], Iterable[list[str]]]


def operations(name: str, build: Build, rows: Rows) -> list[tuple[str, str, Operation, Action]]:
    """A report's two routes, ``/<name>`` (JSON, as ``build`` makes it from the query) and
    ``/<name>.csv`` (``rows`` of it, named after its first day), for ``VIEW_REPORTS``."""

    async def as_json(request: web.Request, sessions: Sessions) -> dict[str, Any]:
        return await build(sessions, dict(request.query))

    async def as_csv(request: web.Request, sessions: Sessions) -> web.Response:
        report = await build(sessions, dict(request.query))
        out = io.StringIO()
        csv.writer(out).writerows(rows(report))
        day = report["since"][:10]
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}-{day}.csv"'},
        )

    return [
        ("GET", f"/{name}", as_json, Action.VIEW_REPORTS),
        ("GET", f"/{name}.csv", as_csv, Action.VIEW_REPORTS),
    ]


def bearer_routes(
    ops: list[tuple[str, str, Operation, Action]], sessions_key: web.AppKey[Sessions]
) -> list[web.RouteDef]:
    """``ops`` under the bearer-token ``/api/reports``."""

    def asker(request: web.Request, user: User) -> Sessions:
        return request.app[sessions_key]

    return twin_routes(ops, "/api/reports", bearer_asker=asker)


def desk_report_routes(ops: list[tuple[str, str, Operation, Action]]) -> list[web.RouteDef]:
    """``ops`` under the desk's session-cookie ``/desk/api/reports``."""

    def asker(request: web.Request, dw: DeskWeb, user: User) -> Sessions:
        return dw.store.sessions

    return twin_routes(ops, "/api/reports", desk_asker=asker)


OPERATIONS = operations("queues", report_of, csv_rows)


def routes(sessions_key: web.AppKey[Sessions]) -> list[web.RouteDef]:
    return bearer_routes(OPERATIONS, sessions_key)


def desk_routes() -> list[web.RouteDef]:
    return desk_report_routes(OPERATIONS)
