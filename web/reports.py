"""Survey results on the desk, for supervisors and admins: the list of surveys, a survey's
figures with the chart inline, and every answer as CSV through the session-cookie API. The
figures come from ``web.survey_api``, as the bearer API's do."""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp_jinja2
from aiohttp import web
from markupsafe import Markup

from core.surveys.report import PERIODS, ChartWords, ReportError, chart_svg
from models.survey_results import survey_names
from web import i18n
from web.auth import Action, User
from web.http import WEB, DeskWeb, _api, _page_user, page_context
from web.survey_api import csv_response, survey_results

FILTERS = ("version", "campaign", "period", "since", "until")


async def surveys_page(request: web.Request) -> web.Response:
    user = await _page_user(request, Action.VIEW_REPORTS)
    dw = request.app[WEB]
    return aiohttp_jinja2.render_template(
        "survey_reports.html",
        request,
        page_context(
            user.language,
            user=user,
            csrf=dw.sessions.csrf_token(user.nonce),
            names=await survey_names(dw.store.sessions),
        ),
    )


async def survey_page(request: web.Request) -> web.Response:
    user = await _page_user(request, Action.VIEW_REPORTS)
    dw = request.app[WEB]
    name = request.match_info["name"]
    given = {k: request.query.get(k, "").strip() for k in FILTERS}
    context: dict[str, Any] = page_context(
        user.language,
        user=user,
        csrf=dw.sessions.csrf_token(user.nonce),
        name=name,
        given=given,
        periods=PERIODS,
    )
    try:
        report, _ = await survey_results(dw.store.sessions, name, given)
    except ReportError as exc:
        # The check's own words (which filter, what it wants), framed in the page's language.
        context["error"] = i18n.t(user.language, "error.other", message=str(exc))
        return aiohttp_jinja2.render_template(
            "survey_report.html", request, context, status=exc.status
        )
    kept = {k: v for k, v in given.items() if v}
    context.update(
        figures=report.to_json(),
        # chart_svg escapes every text it writes: safe to put into the page as it is.
        chart=Markup(chart_svg(report, chart_words(user.language))),
        csv_url=f"/desk/api/surveys/{quote(name, safe='')}/answers.csv"
        + (f"?{urlencode(kept)}" if kept else ""),
    )
    return aiohttp_jinja2.render_template("survey_report.html", request, context)


def chart_words(language: str) -> ChartWords:
    """The chart in the page's language (web/translations' chart.* texts)."""
    return ChartWords(
        say=partial(i18n.t, language),
        number=partial(i18n.decimal, language),
        period=partial(i18n.label, language, "period"),
    )


@_api(Action.VIEW_REPORTS)
async def answers_csv(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    name = request.match_info["name"]
    _, results = await survey_results(dw.store.sessions, name, dict(request.query))
    return csv_response(name, results)


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/reports/surveys", surveys_page),
        web.get("/reports/surveys/{name}", survey_page),
        web.get("/desk/api/surveys/{name}/answers.csv", answers_csv),
    ]


__all__ = ["routes"]
