"""The notices report over HTTP (``core.notice_report``): ``GET .../reports/notices`` as JSON
and ``.../reports/notices.csv`` as CSV, for machines under the bearer-token /api (``routes``)
and for supervisors on the desk (``desk_routes``), both needing ``Action.VIEW_REPORTS``.
Query: since, until (local days in the call centre's zone, both included; by default today),
interval (day, week, month; default day), kind, channel."""

from __future__ import annotations

from aiohttp import web

from core.notice_report import csv_rows
from usecases import reports
from web.report_http import Sessions, bearer_routes, operations
from web.report_http import desk_routes as report_desk_routes

OPERATIONS = operations("notices", reports.notices, csv_rows)


def routes(sessions_key: web.AppKey[Sessions]) -> list[web.RouteDef]:
    return bearer_routes(OPERATIONS, sessions_key)


def desk_routes() -> list[web.RouteDef]:
    return report_desk_routes(OPERATIONS)
