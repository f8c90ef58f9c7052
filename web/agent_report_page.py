"""The agents report's page on the desk (``/reports/agents``), for supervisors and admins: the
filters, one chart of every agent's time (a bar each: talk, hold, wrap-up, pause, idle), each
agent's table by interval with the totals, and the same rows as CSV through the
session-cookie API. The figures are ``web.agent_report_api``'s; the chart is drawn here as
SVG, every text in it escaped."""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web
from markupsafe import Markup

from core.queue_report import INTERVALS, QueueReportError
from web import i18n
from web.agent_report_api import report_of
from web.report_http import report_page

FILTERS = ("since", "until", "interval", "agent", "queue")
# (figure, colour): the parts of each agent's bar, left to right; together: logged in
PARTS = (
    ("talk", "#15803d"),
    ("hold", "#ca8a04"),
    ("wrap_up", "#2563eb"),
    ("paused", "#b91c1c"),
    ("idle", "#94a3b8"),
)


def clock(seconds: float | None) -> str:
    """Seconds as H:MM:SS (a shift reads at a glance)."""
    if seconds is None:
        return "–"
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def chart_svg(agents: list[dict[str, Any]], language: str) -> str:
    """A bar per agent of their logged-in time split into talk, hold, wrap-up, pause and idle,
    all on one scale (the longest shift fills the width), the agent's name at the left and a
    legend under. Text only through ``escape``."""
    left, width, row, top = 160, 760, 26, 10
    height = top + row * max(1, len(agents)) + 40
    peak = max([1.0, *(a["total"]["logged_in"] for a in agents)])
    scale = (width - left - 20) / peak
    parts = [
        # Named by the figure around it (the page's aria-label).
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        'aria-hidden="true">'
    ]
    for i, agent in enumerate(agents):
        y = top + i * row
        total = agent["total"]
        parts.append(
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" font-size="12">'
            f"{escape(agent['name'])}</text>"
        )
        x = float(left)
        for name, colour in PARTS:
            w = total[name] * scale
            if w <= 0:
                continue
            words = escape(f"{i18n.t(language, f'areport.{name}')} {clock(total[name])}")
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="18" fill="{colour}">'
                f"<title>{words}</title></rect>"
            )
            x += w
    for j, (name, colour) in enumerate(PARTS):
        x = left + j * 115
        y = height - 14
        parts.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{colour}"/>')
        words = escape(i18n.t(language, f"areport.{name}"))
        parts.append(f'<text x="{x + 14}" y="{y + 9}" font-size="11">{words}</text>')
    parts.append("</svg>")
    return "".join(parts)


async def agents_page(request: web.Request) -> web.Response:
    def chart(report: dict[str, Any], language: str) -> dict[str, Any]:
        return {"chart": Markup(chart_svg(report["agents"], language)), "clock": clock}

    return await report_page(
        request,
        name="agents",
        template="agent_report.html",
        filters=FILTERS,
        report_of=report_of,
        error=QueueReportError,
        shown=chart,
        intervals=INTERVALS,
    )


def routes() -> list[web.AbstractRouteDef]:
    return [web.get("/reports/agents", agents_page)]
