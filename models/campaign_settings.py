"""A campaign's settings saved as an edit: only onto the revision the editor read (another
saved since: ``SettingsConflict``, nothing written), only while the campaign may still call
(draft, running, paused), and on the audit trail in the same transaction with what changed.
The history of a campaign's settings is read back from that trail. The running diallers read
the settings at every tick, so a saved edit reaches them there. Imports models.tables and
models.audit; what may be saved is the caller's (``usecases.campaign_settings``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.audit import Entry, add_entry, entries
from models.tables import Campaign, CampaignStatus

EDITABLE = (CampaignStatus.DRAFT, CampaignStatus.RUNNING, CampaignStatus.PAUSED)
ACTION = "campaign.settings"


def subject(campaign_id: int) -> str:
    return f"campaign:{campaign_id}"


class SettingsConflict(Exception):
    """The campaign changed under the edit: another revision saved, or it stopped. Its
    status and revision now (None: it is gone)."""

    def __init__(self, status: CampaignStatus | None, revision: int | None) -> None:
        self.status = status
        self.revision = revision
        super().__init__("the campaign changed since it was read")


async def save_settings(
    sessions: async_sessionmaker[AsyncSession],
    campaign_id: int,
    settings: dict[str, Any],
    *,
    revision: int,
    actor: str,
    note: str | None,
    changes: list[dict[str, Any]],
) -> int:
    """Store ``settings`` as revision ``revision + 1``; SettingsConflict when it is no longer
    at ``revision`` or no longer editable, nothing written."""
    conflict = None
    async with sessions() as session, session.begin():
        done = await session.execute(
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                Campaign.settings_revision == revision,
                Campaign.status.in_(EDITABLE),
            )
            .values(settings=settings, settings_revision=revision + 1)
        )
        if not getattr(done, "rowcount", 0):
            now = await session.get(Campaign, campaign_id)
            conflict = SettingsConflict(
                now.status if now else None, now.settings_revision if now else None
            )
        else:
            add_entry(
                session,
                actor,
                ACTION,
                subject(campaign_id),
                {"revision": revision + 1, "note": note, "changes": changes},
            )
    if conflict is not None:
        raise conflict
    return revision + 1


async def settings_history(
    sessions: async_sessionmaker[AsyncSession], campaign_id: int
) -> list[Entry]:
    """The saved edits of a campaign's settings, newest first."""
    found = await entries(sessions, subject=subject(campaign_id), limit=500)
    return [e for e in found if e.action == ACTION]
