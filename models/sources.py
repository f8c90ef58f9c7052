"""Whom a campaign calls: its contacts from one source, as ``models.campaigns.NewContact``.

* ``SegmentSource``: the CRM's clients in segments (new, active, inactive, dormant;
  ``models.segments.select_targets``), each counted in one segment.
* ``ListSource``: an imported list (``core.surveys.contacts.parse_contacts``: all rows or
  none), e.g. potential clients; ``client_id`` columns must name clients we have.
* ``ProcedureSource``: the open procedural tasks of one kind (``models.procedures``), each
  contact carrying its ``task_id`` (re-check it right before dialling: ``recheck_tasks``) and
  its ``purpose`` (the kind, for the screen-pop's label and script).

The calling rules (windows, do-not-call, attempts, retries) are the campaign's
(``core.surveys.campaign.CampaignRules``), not the source's.

May import ``models`` and ``core`` (tests/unit/test_layers.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.procedures import ProcedureKind
from core.surveys.campaign import Segment, SegmentRules
from core.surveys.contacts import ContactRow
from models.campaigns import CampaignError, NewContact
from models.procedures import open_tasks
from models.segments import select_targets
from models.tables import Client

Sessions = async_sessionmaker[AsyncSession]
_IN_CHUNK = 500  # client ids per IN (...)


@dataclass(frozen=True)
class SegmentSource:
    segments: tuple[Segment, ...] | None  # None: every client with a phone
    rules: SegmentRules = field(default_factory=SegmentRules)


@dataclass(frozen=True)
class ListSource:
    rows: tuple[ContactRow, ...]


@dataclass(frozen=True)
class ProcedureSource:
    kind: ProcedureKind


Source = SegmentSource | ListSource | ProcedureSource


def source_named(name: str, rules: SegmentRules | None = None) -> SegmentSource | ProcedureSource:
    """A source by the name an operator gives: a segment (``dormant``) or a procedure kind
    (``document_expiry``). Raises ValueError for anything else."""
    if name in {s.value for s in Segment}:
        return SegmentSource((Segment(name),), rules or SegmentRules())
    if name in {k.value for k in ProcedureKind}:
        return ProcedureSource(ProcedureKind(name))
    known = [s.value for s in Segment] + [k.value for k in ProcedureKind]
    raise ValueError(f"no source {name!r}: expected one of {', '.join(known)}")


async def contacts_for(sessions: Sessions, source: Source, now: datetime) -> list[NewContact]:
    """The contacts of ``source`` as of ``now``. Raises CampaignError ``unknown_client`` (422)
    when a list names clients the CRM does not have."""
    if isinstance(source, ListSource):
        return await _list_contacts(sessions, source.rows)
    if isinstance(source, ProcedureSource):
        return [
            NewContact(
                number=task.number,
                client_id=task.client_id,
                name=task.name,
                language=task.language,
                timezone=task.timezone,
                task_id=task.task_id,
                purpose=task.purpose,
            )
            for task in await open_tasks(sessions, source.kind)
        ]
    targets = await select_targets(sessions, source.segments, source.rules, now)
    return [
        NewContact(
            number=facts.number,
            client_id=facts.client_id,
            segment=segment.value if segment else None,
            language=facts.language,
            timezone=facts.timezone,
        )
        for facts, segment in targets
    ]


async def _list_contacts(sessions: Sessions, rows: tuple[ContactRow, ...]) -> list[NewContact]:
    wanted = sorted({r.client_external_id for r in rows if r.client_external_id})
    known: dict[str, int] = {}
    async with sessions() as session:
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            known.update(
                (ext, cid)
                for ext, cid in await session.execute(
                    select(Client.external_id, Client.id).where(Client.external_id.in_(chunk))
                )
            )
    unknown = [ext for ext in wanted if ext not in known]
    if unknown:
        raise CampaignError(
            "unknown_client", f"clients not in the CRM: {', '.join(unknown[:10])}", 422
        )
    return [
        NewContact(
            number=r.number,
            client_id=known.get(r.client_external_id or ""),
            segment=r.segment.value if r.segment else None,
            name=r.name,
            language=r.language,
            timezone=r.timezone,
        )
        for r in rows
    ]
