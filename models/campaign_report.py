"""What the campaigns report reads (``core.campaign_report``): the campaigns asked for, their
calls started in [since, until) with each call's AMD verdict, and their contacts counted per
status. Plain reads; the calls streamed in chunks of ``CHUNK`` rows.

Which calls are a campaign's: an agent campaign's carry ``calls.campaign_id`` (the dialler
sets it, and counts its abandonment from it); a survey campaign's carry the survey version in
``calls.survey_id`` and belong to the contact whose ``last_call_id`` or ``attempt_history``
names them, as the survey results read them (``models.survey_results``): a survey call no
contact names is a post-call survey, no campaign's. Imports ``core`` and ``models``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.campaign_report import SURVEY, CampaignCall, CampaignInfo, CampaignReportError
from core.dialler import AgentCampaignSettings
from models.tables import Call, CallEvent, Campaign, CampaignContact

Sessions = async_sessionmaker[AsyncSession]
CHUNK = 5000

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
) -> list[tuple[CampaignInfo, int | None]]:
    """The campaigns asked for, each with its survey version (a survey campaign's).
    CampaignReportError unknown_campaign (404) for a name no campaign has."""
    query = select(Campaign.id, Campaign.name, Campaign.kind, Campaign.settings, Campaign.survey_id)
    if name is not None:
        query = query.where(Campaign.name == name)
    if kind is not None:
        query = query.where(Campaign.kind == kind)
    async with sessions() as session:
        rows = (await session.execute(query)).all()
    if name is not None and not rows:
        raise CampaignReportError("unknown_campaign", f"no campaign {name!r}", 404)
    return [
        (CampaignInfo(i, n, k, _false_positives(k, s)), survey_id) for i, n, k, s, survey_id in rows
    ]


async def _calls(
    sessions: Sessions, key: Any, where: Any, since: datetime, until: datetime
) -> AsyncIterator[Sequence[Any]]:
    """(``key``, started_at, outcome, AMD status, disposition) of the calls matching
    ``where`` started in the window, a chunk at a time: a row at a time would cost a switch
    into the driver's greenlet each."""
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
    where = Call.campaign_id.in_(campaign_ids)
    async for rows in _calls(sessions, Call.campaign_id, where, since, until):
        for campaign_id, started_at, outcome, amd, disposition in rows:
            yield CampaignCall(campaign_id, started_at, outcome, amd, disposition)


async def survey_calls(
    sessions: Sessions, surveys: Mapping[int, int | None], since: datetime, until: datetime
) -> AsyncIterator[CampaignCall]:
    """The survey campaigns' calls started in the window. ``surveys``: campaign id → the
    survey version it asks."""
    if not surveys:
        return
    owner: dict[str, int] = {}  # call id → campaign id, from the contacts
    async with sessions() as session:
        contacts = await session.execute(
            select(
                CampaignContact.campaign_id,
                CampaignContact.last_call_id,
                CampaignContact.attempt_history,
            ).where(CampaignContact.campaign_id.in_(list(surveys)))
        )
        for campaign_id, last_call_id, history in contacts:
            for entry in history or []:
                if isinstance(entry, Mapping) and isinstance(entry.get("call_id"), str):
                    owner[entry["call_id"]] = campaign_id
            if last_call_id is not None:
                owner[last_call_id] = campaign_id
    versions = sorted({v for v in surveys.values() if v is not None})
    if not owner or not versions:
        return
    async for rows in _calls(sessions, Call.id, Call.survey_id.in_(versions), since, until):
        for call_id, started_at, outcome, amd, disposition in rows:
            campaign_id = owner.get(call_id)
            if campaign_id is not None:
                yield CampaignCall(campaign_id, started_at, outcome, amd, disposition)


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
