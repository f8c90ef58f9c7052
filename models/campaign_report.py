"""What the campaigns report reads (``core.campaign_report``): the campaigns asked for, their
calls started in [since, until) with each call's AMD verdict, and their contacts counted per
status. Plain reads; the calls streamed in chunks of ``CHUNK`` rows.

Which calls are a campaign's: an agent campaign's carry ``calls.campaign_id`` (the dialler
sets it, and counts its abandonment from it); a survey campaign's are the survey dialler's
(``calls.handler`` "campaign", the survey version in ``calls.survey_id``) and their channel id
names the campaign, contact and attempt (``core.surveys.campaign.channel_id_for``: the tie a
restarted dialler finds them by; the same calls as the contacts' ``last_call_id`` and
``attempt_history`` name, without reading every contact). A post-call survey is no
campaign's. Imports ``core`` and ``models``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.campaign_report import SURVEY, CampaignCall, CampaignInfo, CampaignReportError
from core.dialler import AgentCampaignSettings
from core.surveys.campaign import parse_channel_id
from models.tables import Call, CallEvent, Campaign, CampaignContact

Sessions = async_sessionmaker[AsyncSession]
CHUNK = 5000
SURVEY_HANDLER = "campaign"  # calls.handler of a survey campaign's calls (ari_app.campaigns)

# The call's AMD verdict: its (last) ``amd`` event's status, looked up by the event index on
# call_id for each call read.
_AMD = (
    select(CallEvent.data["status"].as_string())
    .where(CallEvent.call_id == Call.id, CallEvent.kind == "amd")
    .order_by(CallEvent.id.desc())
    .limit(1)
    .scalar_subquery()
)


def _false_positives(kind: str, settings: Mapping[str, Any] | None) -> float:
    if kind == SURVEY:
        return 0.0
    try:
        return AgentCampaignSettings.model_validate(settings or {}).amd_false_positive_rate
    except ValidationError:  # settings of an older shape: the dialler's default
        default = AgentCampaignSettings.model_fields["amd_false_positive_rate"].default
        return float(default)


async def campaigns(
    sessions: Sessions, name: str | None = None, kind: str | None = None
) -> list[CampaignInfo]:
    """The campaigns asked for.
    CampaignReportError unknown_campaign (404) for a name no campaign has."""
    query = select(Campaign.id, Campaign.name, Campaign.kind, Campaign.settings)
    if name is not None:
        query = query.where(Campaign.name == name)
    if kind is not None:
        query = query.where(Campaign.kind == kind)
    async with sessions() as session:
        rows = (await session.execute(query)).all()
    if name is not None and not rows:
        raise CampaignReportError("unknown_campaign", f"no campaign {name!r}", 404)
    return [CampaignInfo(i, n, k, _false_positives(k, s)) for i, n, k, s in rows]


async def _calls(
    sessions: Sessions, key: Any, where: Any, since: datetime, until: datetime
) -> AsyncIterator[Sequence[Any]]:
    """(``key``, started_at, outcome, AMD status, disposition) of the calls matching
    ``where`` started in the window, a chunk at a time: a row at a time would cost a switch
    into the driver's greenlet each.

    The calls are found by the time index (``ix_calls_started_at``): ``where`` is written
    so that no index serves it (``campaign_id + 0``), else SQLite (which keeps no
    statistics) takes the campaign's index and reads every call the campaign ever made to
    find a day's (bench/campaign_report.py: the day 3.9 s, by time 0.1 s). So the cost
    follows the days asked for, whichever campaigns."""
    query = (
        select(key, Call.started_at, Call.outcome, _AMD, Call.disposition)
        .where(where, Call.started_at >= since, Call.started_at < until)
        .execution_options(yield_per=CHUNK)
    )
    async with sessions() as session:
        result = await session.stream(query)
        async for rows in result.partitions(CHUNK):
            yield rows


async def agent_calls(
    sessions: Sessions, campaign_ids: list[int], since: datetime, until: datetime
) -> AsyncIterator[CampaignCall]:
    """The agent campaigns' calls started in the window."""
    if not campaign_ids:
        return
    where = (Call.campaign_id + 0).in_(campaign_ids)  # by time: see _calls
    async for rows in _calls(sessions, Call.campaign_id, where, since, until):
        for campaign_id, started_at, outcome, amd, disposition in rows:
            yield CampaignCall(campaign_id, started_at, outcome, amd, disposition)


async def survey_calls(
    sessions: Sessions, campaign_ids: list[int], since: datetime, until: datetime
) -> AsyncIterator[CampaignCall]:
    """The survey campaigns' calls started in the window, each the campaign's its channel
    id names (``core.surveys.campaign.channel_id_for``)."""
    if not campaign_ids:
        return
    asked = set(campaign_ids)
    where = and_(Call.handler == SURVEY_HANDLER, Call.survey_id.is_not(None))
    async for rows in _calls(sessions, Call.channel_id, where, since, until):
        for channel_id, started_at, outcome, amd, disposition in rows:
            named = parse_channel_id(channel_id)
            if named is not None and named[0] in asked:
                yield CampaignCall(named[0], started_at, outcome, amd, disposition)


async def contact_statuses(
    sessions: Sessions, campaign_ids: list[int]
) -> dict[int, dict[str, int]]:
    """Per campaign, its contacts counted per status (as they are now)."""
    out: dict[int, dict[str, int]] = {}
    if not campaign_ids:
        return out
    async with sessions() as session:
        rows = await session.execute(
            select(CampaignContact.campaign_id, CampaignContact.status, func.count())
            .where(CampaignContact.campaign_id.in_(campaign_ids))
            .group_by(CampaignContact.campaign_id, CampaignContact.status)
        )
        for campaign_id, status, count in rows:
            out.setdefault(campaign_id, {})[str(status)] = int(count)
    return out
