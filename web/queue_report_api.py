"""The queues report over HTTP (``core.queue_report``): ``GET .../reports/queues`` as JSON and
``.../reports/queues.csv`` as CSV, for machines under the bearer-token /api (``routes``) and
for supervisors on the desk (``desk_routes``), both needing ``Action.VIEW_REPORTS``. Query:
since, until (local days in the call centre's zone, both included; by default today),
interval (15min, hour, day, week, month; default hour), queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from core.queue_report import QueueReport, csv_rows, parse_request
from core.surveys.report import REPORT_TIMEZONE
from models import queue_report as store
from web.report_http import Sessions, bearer_routes, operations
from web.report_http import desk_routes as report_desk_routes


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


OPERATIONS = operations("queues", report_of, csv_rows)


def routes(sessions_key: web.AppKey[Sessions]) -> list[web.RouteDef]:
    return bearer_routes(OPERATIONS, sessions_key)


def desk_routes() -> list[web.RouteDef]:
    return report_desk_routes(OPERATIONS)
