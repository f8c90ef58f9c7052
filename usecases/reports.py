"""The reports built per interval (queues, agents, campaigns, notices) from their stores and pure
builders, as the API, the desk pages and the morning e-mail ask for them: ``params`` are the
query's (since, until, interval and each report's filters), the result the report's JSON.
And the call log of a window as one CSV text (``calls_csv``), for a day's e-mail.

May import ``core`` and ``models``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import agent_report, campaign_report, notice_report, queue_report
from core.calllog_report import csv_text, parse_filter
from core.surveys.report import REPORT_TIMEZONE
from models import agent_report as agent_store
from models import campaign_report as campaign_store
from models import notice_report as notice_store
from models import queue_report as queue_store
from models.calllog_report import stream_calls

Sessions = async_sessionmaker[AsyncSession]


def _window(since: datetime, until: datetime, zone: ZoneInfo) -> dict[str, str]:
    return {
        "since": since.astimezone(zone).isoformat(),
        "until": until.astimezone(zone).isoformat(),
    }


async def queues(sessions: Sessions, params: dict[str, str]) -> dict[str, Any]:
    """The queues report asked for by ``params`` (QueueReportError when it cannot be made)."""
    zone = ZoneInfo(REPORT_TIMEZONE)
    query = queue_report.parse_request(params, datetime.now(zone).date(), REPORT_TIMEZONE)
    report = queue_report.QueueReport(query.interval, zone, await queue_store.thresholds(sessions))
    async for call in queue_store.queued_calls(sessions, query.since, query.until, query.queue):
        report.add_call(call)
    for task in await queue_store.callback_tasks(sessions, query.since, query.until, query.queue):
        report.add_task(task)
    return {**_window(query.since, query.until, zone), **report.result()}


async def agents(
    sessions: Sessions, params: dict[str, str], now: datetime | None = None
) -> dict[str, Any]:
    """The agents report asked for by ``params`` (QueueReportError when it cannot be made),
    counted up to ``now`` (default: the present)."""
    zone = ZoneInfo(REPORT_TIMEZONE)
    now = now or datetime.now(UTC)
    query = agent_report.parse_request(params, now.astimezone(zone).date(), REPORT_TIMEZONE)
    report = agent_report.AgentReport(query.interval, zone, query.since, query.until, now)
    window = (sessions, query.since, query.until, query.agent, query.queue)
    async for change in agent_store.state_changes(*window):
        report.add_state(change)
    async for call in agent_store.agent_calls(*window):
        report.add_call(call)
    return {
        **_window(query.since, query.until, zone),
        **report.result(await agent_store.agent_names(sessions)),
    }


async def notices(sessions: Sessions, params: dict[str, str]) -> dict[str, Any]:
    """The notices report asked for by ``params`` (NoticeReportError when it cannot be made)."""
    zone = ZoneInfo(REPORT_TIMEZONE)
    query = notice_report.parse_request(params, datetime.now(zone).date(), REPORT_TIMEZONE)
    report = notice_report.NoticeReport(query.interval, zone)
    window = (sessions, query.since, query.until)
    async for notice in notice_store.notices(*window, query.kind, query.channel):
        report.add(notice)
    if query.kind is None:  # an opt-out is of a channel, not of a kind
        for opt_out in await notice_store.opt_outs(*window, query.channel):
            report.add_opt_out(opt_out)
    return {**_window(query.since, query.until, zone), **report.result()}


async def campaigns(sessions: Sessions, params: dict[str, str]) -> dict[str, Any]:
    """The campaigns report asked for by ``params`` (CampaignReportError when it cannot be
    made)."""
    zone = ZoneInfo(REPORT_TIMEZONE)
    query = campaign_report.parse_request(params, datetime.now(zone).date(), REPORT_TIMEZONE)
    asked = await campaign_store.campaigns(sessions, query.campaign, query.kind)
    ids = [info.id for info in asked]
    report = campaign_report.CampaignReport(
        query.interval, zone, asked, await campaign_store.contact_statuses(sessions, ids)
    )
    agent_campaigns = [info.id for info in asked if not info.survey]
    async for call in campaign_store.agent_calls(
        sessions, agent_campaigns, query.since, query.until
    ):
        report.add_call(call)
    surveys = [info.id for info in asked if info.survey]
    async for call in campaign_store.survey_calls(sessions, surveys, query.since, query.until):
        report.add_call(call)
    return {**_window(query.since, query.until, zone), **report.result()}


async def calls_csv(sessions: Sessions, params: dict[str, str]) -> str:
    """The call log's CSV of ``params``' calls (the call log's filters), whole: for a day's
    e-mail, not for a month (the API streams those)."""
    zone = ZoneInfo(REPORT_TIMEZONE)
    chunks = [csv_text((), zone, header=True)]
    async for rows in stream_calls(sessions, parse_filter(params)):
        chunks.append(csv_text(rows, zone))
    return "".join(chunks)
