"""The campaigns report's page on the desk (``/reports/campaigns``), for supervisors and admins:
the filters, a bar chart comparing the campaigns (dials, live answers, connected or surveyed,
abandoned), each campaign's time series of dials and live answers per interval, its table
with the totals, dispositions and contacts, and the same rows as CSV through the
session-cookie API. The figures are ``web.campaign_report_api``'s; the charts are drawn here
as SVG, every text in them escaped."""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web
from markupsafe import Markup

from core.campaign_report import FILTERS, INTERVALS, KINDS, CampaignReportError
from web import i18n
from web.campaign_report_api import report_of
from web.report_http import report_page

# (figure, colour): the bars of each campaign, side by side. "reached": put through to an
# agent, or the survey completed or partly answered.
BARS = (
    ("dials", "#64748b"),
    ("live_answers", "#2563eb"),
    ("reached", "#15803d"),
    ("abandoned", "#b91c1c"),
)
LINES = (("dials", "#64748b"), ("live_answers", "#2563eb"))
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 220, 48, 40, 20


def reached(figures: dict[str, Any]) -> int:
    return int(figures["connected"] + figures["completed"] + figures["partial"])


def _frame(peak: int) -> list[str]:
    return [
        # Named by the figure around it (the page's aria-label).
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'aria-hidden="true">',
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - 10}" y2="{HEIGHT - BOTTOM}" '
        'stroke="#94a3b8"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end" font-size="11">{peak}</text>',
    ]


def _legend(items: tuple[tuple[str, str], ...], language: str) -> list[str]:
    parts = []
    for j, (name, colour) in enumerate(items):
        x = LEFT + j * 160
        parts.append(f'<rect x="{x}" y="{HEIGHT - 14}" width="10" height="10" fill="{colour}"/>')
        words = escape(i18n.t(language, f"creport.{name}"))
        parts.append(f'<text x="{x + 14}" y="{HEIGHT - 5}" font-size="11">{words}</text>')
    return parts


def bars_svg(campaigns: list[dict[str, Any]], language: str) -> str:
    """The campaigns side by side: each one's totals as bars, its name under them."""
    values = [{**c["total"], "reached": reached(c["total"])} for c in campaigns]
    group = (WIDTH - LEFT - 10) / max(1, len(campaigns))
    bar = max(2.0, min(24.0, group / (len(BARS) + 1)))
    peak = max([1, *(v[name] for v in values for name, _ in BARS)])
    scale = (HEIGHT - BOTTOM - TOP) / peak
    parts = _frame(peak)
    for i, (campaign, figures) in enumerate(zip(campaigns, values, strict=True)):
        x0 = LEFT + i * group + (group - bar * len(BARS)) / 2
        for j, (name, colour) in enumerate(BARS):
            h = figures[name] * scale
            parts.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{HEIGHT - BOTTOM - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(str(figures[name]))}</title>'
                "</rect>"
            )
        parts.append(
            f'<text x="{x0 + bar * len(BARS) / 2:.1f}" y="{HEIGHT - BOTTOM + 14}" '
            f'text-anchor="middle" font-size="11">{escape(campaign["campaign"][:24])}</text>'
        )
    parts += _legend(BARS, language)
    parts.append("</svg>")
    return "".join(parts)


def series_svg(campaign: dict[str, Any], language: str) -> str:
    """The campaign's dials and live answers per interval, as lines with a dot per
    interval, the interval's start under some of them."""
    rows = campaign["intervals"]
    span = WIDTH - LEFT - 60  # room for the last label at the right
    step = span / max(1, len(rows) - 1)
    peak = max([1, *(r[name] for r in rows for name, _ in LINES)])
    scale = (HEIGHT - BOTTOM - TOP) / peak

    def x(i: int) -> float:
        return LEFT + 20 + (i * step if len(rows) > 1 else span / 2)

    parts = _frame(peak)
    for name, colour in LINES:
        points = " ".join(
            f"{x(i):.1f},{HEIGHT - BOTTOM - r[name] * scale:.1f}" for i, r in enumerate(rows)
        )
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        for i, r in enumerate(rows):
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{HEIGHT - BOTTOM - r[name] * scale:.1f}" r="3" '
                f'fill="{colour}"><title>{escape(str(r[name]))}</title></circle>'
            )
    every = max(1, len(rows) // 10)  # at most about 10 labels under the line
    for i, row in enumerate(rows):
        if i % every == 0:
            start = row["start"]
            when = start[11:16] if start[11:16] != "00:00" else start[5:10]
            anchor = "end" if i == len(rows) - 1 and i else "middle"  # the last one kept whole
            parts.append(
                f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="{anchor}" '
                f'font-size="11">{escape(when)}</text>'
            )
    parts += _legend(LINES, language)
    parts.append("</svg>")
    return "".join(parts)


def _charts(report: dict[str, Any], language: str) -> dict[str, Any]:
    return {
        "bars": Markup(bars_svg(report["campaigns"], language)),
        "series": {
            c["campaign"]: Markup(series_svg(c, language))
            for c in report["campaigns"]
            if c["intervals"]
        },
    }


async def campaigns_page(request: web.Request) -> web.Response:
    return await report_page(
        request,
        name="campaigns",
        template="campaign_report.html",
        filters=FILTERS,
        report_of=report_of,
        error=CampaignReportError,
        shown=_charts,
        intervals=INTERVALS,
        kinds=KINDS,
    )


def routes() -> list[web.AbstractRouteDef]:
    return [web.get("/reports/campaigns", campaigns_page)]
