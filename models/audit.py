"""The audit trail (``audit_log``): every change made through the admin console, the API or
the CLI to flows, hours, queues, agents and roles — who, when, what. ``add_entry`` writes in
the caller's transaction, so a change and its entry are stored together or not at all.
Imports only models.tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.tables import AuditEntry

MAX_PAGE = 500


def add_entry(
    session: AsyncSession, actor: str, action: str, subject: str, detail: dict[str, Any]
) -> None:
    session.add(AuditEntry(actor=actor[:64], action=action, subject=subject[:120], detail=detail))


@dataclass(frozen=True)
class Entry:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "detail": self.detail,
        }


async def entries(
    sessions: async_sessionmaker[AsyncSession],
    *,
    subject: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[Entry]:
    """The newest entries first (of one subject, e.g. ``flow:infoline``), paged by id."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(max(1, min(limit, MAX_PAGE)))
    if subject is not None:
        query = query.where(AuditEntry.subject == subject)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    async with sessions() as session:
        rows = await session.scalars(query)
        return [Entry(r.id, r.at, r.actor, r.action, r.subject, dict(r.detail)) for r in rows]


async def entry(sessions: async_sessionmaker[AsyncSession], entry_id: int) -> Entry | None:
    async with sessions() as session:
        row = await session.get(AuditEntry, entry_id)
        if row is None:
            return None
        return Entry(row.id, row.at, row.actor, row.action, row.subject, dict(row.detail))
