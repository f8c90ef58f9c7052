"""The agents report over HTTP (``core.agent_report``): ``GET .../reports/agents`` as JSON and
``.../reports/agents.csv`` as CSV, for machines under the bearer-token /api (``routes``) and
for supervisors on the desk (``desk_routes``), both needing ``Action.VIEW_REPORTS``. Query:
since, until (local days in the call centre's zone, both included; by default today),
interval (15min, hour, day, week, month; default hour), agent, queue. Errors as the queues
report's, through the same routes (``web.report_http``)."""

from __future__ import annotations

from aiohttp import web

from core.agent_report import csv_rows
from usecases import reports
from web.report_http import Sessions, bearer_routes, operations
from web.report_http import desk_routes as report_desk_routes

report_of = reports.agents  # the report is built in usecases (the morning e-mail builds it too)


OPERATIONS = operations("agents", report_of, csv_rows)


def routes(sessions_key: web.AppKey[Sessions]) -> list[web.RouteDef]:
    return bearer_routes(OPERATIONS, sessions_key)


def desk_routes() -> list[web.RouteDef]:
    return report_desk_routes(OPERATIONS)
