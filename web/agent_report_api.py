"""The agents report over HTTP (``core.agent_report``): ``GET .../reports/agents`` as JSON and
``.../reports/agents.csv`` as CSV, for machines under the bearer-token /api (``routes``) and
for supervisors on the desk (``desk_routes``), both needing ``Action.VIEW_REPORTS``. Query:
since, until (local days in the call centre's zone, both included; by default today),
interval (15min, hour, day, week, month; default hour), agent, queue. Errors as the queues
report's, through the same routes (``web.report_http``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from core.agent_report import AgentReport, csv_rows, parse_request
from core.surveys.report import REPORT_TIMEZONE
from models import agent_report as store
from web.report_http import Sessions, bearer_routes, operations
from web.report_http import desk_routes as report_desk_routes


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


OPERATIONS = operations("agents", report_of, csv_rows)


def routes(sessions_key: web.AppKey[Sessions]) -> list[web.RouteDef]:
    return bearer_routes(OPERATIONS, sessions_key)


def desk_routes() -> list[web.RouteDef]:
    return report_desk_routes(OPERATIONS)
