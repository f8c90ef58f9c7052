"""Survey results over HTTP: the figures as JSON and every answer as CSV, for machines under
the bearer-token /api (``routes``) and for supervisors on the desk (``web.reports``,
which shares the helpers here). Query parameters as `centrala survey report`'s options:
version, campaign, period (day|week|month), since and until (YYYY-MM-DD, local days)."""

from __future__ import annotations

import re

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.surveys.report import (
    SurveyReport,
    SurveyResults,
    answers_csv,
    build_report,
    parse_request,
)
from models.survey_results import load_results
from web.auth import Action
from web.errors import needs

Sessions = async_sessionmaker[AsyncSession]


async def survey_results(
    sessions: Sessions, name: str, params: dict[str, str]
) -> tuple[SurveyReport, SurveyResults]:
    """The report asked for by ``params`` (ReportError when it cannot be made)."""
    query, period = parse_request(name, params)
    results = await load_results(sessions, query)
    return build_report(results, period), results


def csv_response(name: str, results: SurveyResults) -> web.Response:
    # The survey name is the admin's, but it goes into a header: keep it to a safe alphabet.
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80] + "-answers.csv"
    return web.Response(
        text=answers_csv(results.answers),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def routes(sessions_key: web.AppKey[Sessions]) -> list[web.RouteDef]:
    @needs(Action.VIEW_REPORTS)
    async def report(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        figures, _ = await survey_results(request.app[sessions_key], name, dict(request.query))
        return web.json_response(figures.to_json())

    @needs(Action.VIEW_REPORTS)
    async def answers(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        _, results = await survey_results(request.app[sessions_key], name, dict(request.query))
        return csv_response(name, results)

    return [
        web.get("/api/surveys/{name}/report", report),
        web.get("/api/surveys/{name}/answers.csv", answers),
    ]
