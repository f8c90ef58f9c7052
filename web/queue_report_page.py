"""The queues report's page on the desk (``/reports/queues``), for supervisors and admins: the
filters, each queue's chart of its calls per interval (offered, answered, abandoned), its
table with the totals, and the same rows as CSV through the session-cookie API. The figures
are ``web.queue_report_api``'s; the chart is drawn here as SVG, every text in it escaped."""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from markupsafe import Markup

from core.errors import DomainError
from core.queue_report import INTERVALS
from web import i18n
from web.auth import Action
from web.http import WEB, _page_user, page_context
from web.queue_report_api import Build, report_of

FILTERS = ("since", "until", "interval", "queue")
# (figure, colour): the bars of each interval, side by side
BARS = (("offered", "#64748b"), ("answered", "#15803d"), ("abandoned", "#b91c1c"))


def chart_svg(queue: dict[str, Any], language: str) -> str:
    """A bar chart of the queue's intervals: offered, answered and abandoned side by side,
    the interval's start under each group, a legend. Text only through ``escape``."""
    rows = queue["intervals"]
    width, height, left, bottom, top = 720, 220, 40, 40, 20
    group = (width - left - 10) / max(1, len(rows))
    bar = max(2.0, min(18.0, group / (len(BARS) + 1)))
    peak = max([1, *(r[name] for r in rows for name, _ in BARS)])
    scale = (height - bottom - top) / peak
    parts = [
        # Named by the figure around it (the page's aria-label).
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        'aria-hidden="true">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" '
        'stroke="#94a3b8"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" font-size="11">{peak}</text>',
    ]
    every = max(1, len(rows) // 12)  # at most about 12 labels under the bars
    for i, row in enumerate(rows):
        x0 = left + i * group + (group - bar * len(BARS)) / 2
        for j, (name, colour) in enumerate(BARS):
            h = row[name] * scale
            parts.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{height - bottom - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(str(row[name]))}</title></rect>'
            )
        if i % every == 0:
            start = row["start"]
            when = start[11:16] if start[11:16] != "00:00" else start[5:10]
            parts.append(
                f'<text x="{x0 + bar * len(BARS) / 2:.1f}" y="{height - bottom + 14}" '
                f'text-anchor="middle" font-size="11">{escape(when)}</text>'
            )
    for j, (name, colour) in enumerate(BARS):
        x = left + j * 150
        parts.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{colour}"/>')
        words = escape(i18n.t(language, f"qreport.{name}"))
        parts.append(f'<text x="{x + 14}" y="{height - 5}" font-size="11">{words}</text>')
    parts.append("</svg>")
    return "".join(parts)


Shown = Callable[[dict[str, Any], str], dict[str, Any]]


async def report_page(
    request: web.Request,
    template: str,
    filters: tuple[str, ...],
    build: Build,
    csv_path: str,
    shown: Shown,
) -> web.Response:
    """A report's page for supervisors: ``filters`` from the query into ``build``; the
    report, what ``shown`` adds for it (its charts, in the user's language) and its CSV link
    into ``template``; a bad filter's message on the page, with its status."""
    user = await _page_user(request, Action.VIEW_REPORTS)
    dw = request.app[WEB]
    given = {k: request.query.get(k, "").strip() for k in filters}
    context: dict[str, Any] = page_context(
        user.language,
        user=user,
        csrf=dw.sessions.csrf_token(user.nonce),
        given=given,
        intervals=INTERVALS,
    )
    kept = {k: v for k, v in given.items() if v}
    try:
        report = await build(dw.store.sessions, kept)
    except DomainError as exc:
        context["error"] = i18n.t(user.language, "error.other", message=str(exc))
        return aiohttp_jinja2.render_template(template, request, context, status=exc.status)
    context.update(
        report=report,
        csv_url=csv_path + (f"?{urlencode(kept)}" if kept else ""),
        **shown(report, user.language),
    )
    return aiohttp_jinja2.render_template(template, request, context)


async def queues_page(request: web.Request) -> web.Response:
    def charts(report: dict[str, Any], language: str) -> dict[str, Any]:
        return {"charts": {q["queue"]: Markup(chart_svg(q, language)) for q in report["queues"]}}

    return await report_page(
        request,
        "queue_report.html",
        FILTERS,
        report_of,
        "/desk/api/reports/queues.csv",
        charts,
    )


def routes() -> list[web.AbstractRouteDef]:
    return [web.get("/reports/queues", queues_page)]
