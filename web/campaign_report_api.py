"""The campaigns report over HTTP (``core.campaign_report``): ``GET .../reports/campaigns`` as
JSON and ``.../reports/campaigns.csv`` as CSV, for machines under the bearer-token /api
(``routes``) and for supervisors on the desk (``desk_routes``), both needing
``Action.VIEW_REPORTS``. Query: since, until (local days in the call centre's zone, both
included; by default today), interval (hour, day, week, month; default day), campaign (its
name), kind. (``/api/campaigns/...`` is the campaigns' own management: not here.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from core.campaign_report import CampaignReport, csv_rows, parse_request
from core.surveys.report import REPORT_TIMEZONE
from models import campaign_report as store
from web.report_http import Sessions, bearer_routes, operations
from web.report_http import desk_routes as report_desk_routes


async def report_of(sessions: Sessions, params: dict[str, str]) -> dict[str, Any]:
    """The report asked for by ``params`` (CampaignReportError when it cannot be made)."""
    zone = ZoneInfo(REPORT_TIMEZONE)
    query = parse_request(params, datetime.now(zone).date(), REPORT_TIMEZONE)
    asked = await store.campaigns(sessions, query.campaign, query.kind)
    ids = [info.id for info in asked]
    report = CampaignReport(
        query.interval,
        zone,
        asked,
        await store.contact_statuses(sessions, ids),
    )
    agents = [info.id for info in asked if not info.survey]
    async for call in store.agent_calls(sessions, agents, query.since, query.until):
        report.add_call(call)
    surveys = [info.id for info in asked if info.survey]
    async for call in store.survey_calls(sessions, surveys, query.since, query.until):
        report.add_call(call)
    return {
        "since": query.since.astimezone(zone).isoformat(),
        "until": query.until.astimezone(zone).isoformat(),
        **report.result(),
    }


OPERATIONS = operations("campaigns", report_of, csv_rows)


def routes(sessions_key: web.AppKey[Sessions]) -> list[web.RouteDef]:
    return bearer_routes(OPERATIONS, sessions_key)


def desk_routes() -> list[web.RouteDef]:
    return report_desk_routes(OPERATIONS)
