"""Creating an agent campaign (``centrala campaign create NAME --mode ...`` and
``POST /api/campaigns`` with a ``mode``): the request checked in one place, then its contacts
from the source it names (a CRM segment, an imported lead list, or procedural tasks), written
as a draft campaign. The campaign's status adds the dialler's figures to the contacts' counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.dialler import AgentCampaignSettings, CampaignKind
from core.procedures import ProcedureKind
from core.surveys.campaign import Segment
from core.surveys.contacts import ContactRow
from models.campaigns import CampaignError, NewContact
from models.dialler import DiallerStore
from models.sources import (
    ListSource,
    ProcedureSource,
    SegmentSource,
    Source,
    contacts_for,
    source_named,
)
from models.tables import Campaign

SOURCES = ("segment", "contacts", "procedure", "callbacks")


@dataclass(frozen=True)
class AgentCampaignRequest:
    name: str
    kind: CampaignKind
    settings: AgentCampaignSettings
    segment: str | None = None
    rows: Sequence[ContactRow] | None = None
    procedure: str | None = None


def check_agent_settings(data: object) -> AgentCampaignSettings:
    try:
        return AgentCampaignSettings.model_validate(data or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(settings)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise CampaignError("bad_settings", problems, 422) from exc


def agent_request(
    name: str,
    settings: dict[str, Any],
    *,
    segment: str | None,
    rows: Sequence[ContactRow] | None,
    procedure: str | None,
) -> AgentCampaignRequest:
    """One source exactly; the campaign's kind follows from it. Pure."""
    if not 1 <= len(name.strip()) <= 100:
        raise CampaignError("bad_name", "name: 1 to 100 characters", 422)
    given = [
        s
        for s, v in (("segment", segment), ("contacts", rows), ("procedure", procedure))
        if v is not None
    ]
    if len(given) != 1:
        raise CampaignError(
            "bad_targets", "give exactly one of --segment, --contacts or --procedure", 422
        )
    if segment is not None:
        kind = CampaignKind.SALES
        settings = {**settings, "segment": segment}
    elif procedure is not None:
        kind = CampaignKind.PROCEDURAL
        settings = {**settings, "procedure": procedure}
    else:
        kind = CampaignKind.LEADS
    return AgentCampaignRequest(
        name.strip(), kind, check_agent_settings(settings), segment, rows, procedure
    )


async def create_agent_campaign(
    sessions: async_sessionmaker[AsyncSession], req: AgentCampaignRequest, now: datetime
) -> tuple[int, int]:
    """A draft agent campaign with its contacts. Returns (id, contacts)."""
    contacts = await _contacts(sessions, req, now)
    return await DiallerStore(sessions).create(req.name, req.kind, req.settings, contacts)


async def _contacts(
    sessions: async_sessionmaker[AsyncSession], req: AgentCampaignRequest, now: datetime
) -> list[NewContact]:
    source: Source
    if req.rows is not None:
        source = ListSource(tuple(req.rows))
    else:
        name = req.segment or req.procedure or ""
        try:
            source = source_named(name, req.settings.rules.segment_rules)
        except ValueError as exc:
            wanted = ", ".join([*(s.value for s in Segment), *(k.value for k in ProcedureKind)])
            what = "segment" if req.segment is not None else "procedure"
            raise CampaignError(f"bad_{what}", f"{what}: one of {wanted}", 422) from exc
        if req.segment is not None and not isinstance(source, SegmentSource):
            raise CampaignError("bad_segment", f"{name!r} is a procedure: --procedure", 422)
        if req.procedure is not None and not isinstance(source, ProcedureSource):
            raise CampaignError("bad_procedure", f"{name!r} is a segment: --segment", 422)
    return await contacts_for(sessions, source, now)


async def agent_figures(
    sessions: async_sessionmaker[AsyncSession], campaign: Campaign, now: datetime
) -> dict[str, Any] | None:
    """The dialler's figures for an agent campaign's status (None for a survey)."""
    if campaign.kind == CampaignKind.SURVEY.value:
        return None
    return await DiallerStore(sessions).figures(campaign.id, now)
