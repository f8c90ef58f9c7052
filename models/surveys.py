"""Versioned storage of survey definitions in the ``surveys`` table, like ``models.flows``.

``apply_survey`` validates a survey and stores it as the next version of its name, the only
active one; applying the same definition again changes nothing. Campaigns and post-call
surveys take the active version when they start and keep its row id, and every survey call
and answer points at that id (``calls.survey_id``, ``survey_answers.survey_id``): editing a
survey never changes what old answers meant.

The console's editing (``usecases.survey_editing``) adds drafts, one per survey and owner
(``survey_drafts``), a publish that names who and why and is refused when another version was
published since the draft was taken (``PublishConflict``), and the history. Every publish
lands on the audit trail in its own transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.surveys.model import Survey
from core.surveys.validate import SurveyError, validate
from models.audit import add_entry
from models.flows import lock_name
from models.tables import Survey as SurveyRow
from models.tables import SurveyDraft

ATTEMPTS = 3


@dataclass(frozen=True)
class StoredSurvey:
    id: int  # the row: what calls and answers point at
    version: int
    survey: Survey


@dataclass(frozen=True)
class SurveyVersion:
    """A stored version as the history lists it."""

    id: int
    name: str
    version: int
    active: bool
    published_at: datetime
    published_by: str | None
    note: str | None
    definition: dict[str, Any]

    @classmethod
    def of(cls, row: SurveyRow) -> SurveyVersion:
        return cls(
            row.id,
            row.name,
            row.version,
            row.active,
            row.created_at,
            row.published_by,
            row.note,
            dict(row.definition),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "active": self.active,
            "published_at": self.published_at.isoformat(),
            "published_by": self.published_by,
            "note": self.note,
            "description": self.definition.get("description", ""),
        }


class PublishConflict(Exception):
    """Another version was published since the draft was taken: publishing it would undo
    that change unseen."""

    def __init__(self, expected: int | None, active: SurveyVersion | None) -> None:
        self.expected = expected
        self.active = active
        now = active.version if active else None
        by = f" by {active.published_by}" if active and active.published_by else ""
        when = f" at {active.published_at:%Y-%m-%d %H:%M} UTC" if active else ""
        super().__init__(
            f"version {now} was published{by}{when} since this draft was taken from version "
            f"{expected}: compare them, then take the draft onto version {now} or discard it"
        )


@dataclass(frozen=True)
class Published:
    stored: StoredSurvey
    changed: bool  # False: the definition equals the active version, nothing was written


def _canonical(definition: dict[str, Any]) -> str:
    return json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_ANY: Any = object()  # publish whatever version is active now (the CLI's `survey apply`)


async def _apply_once(
    sessions: async_sessionmaker[AsyncSession],
    survey: Survey,
    by: str | None = None,
    note: str | None = None,
    expect_active: int | None = _ANY,
    drop_draft_of: str | None = None,
) -> Published:
    definition = survey.model_dump(mode="json")
    async with sessions() as session, session.begin():
        await lock_name(session, f"survey:{survey.name}")
        active = await session.scalar(
            select(SurveyRow).where(SurveyRow.name == survey.name, SurveyRow.active)
        )
        if expect_active is not _ANY and (active.version if active else None) != expect_active:
            raise PublishConflict(expect_active, SurveyVersion.of(active) if active else None)
        if drop_draft_of is not None:
            await session.execute(
                delete(SurveyDraft).where(
                    SurveyDraft.name == survey.name, SurveyDraft.owner == drop_draft_of
                )
            )
        if active is not None and _canonical(active.definition) == _canonical(definition):
            return Published(StoredSurvey(active.id, active.version, survey), changed=False)
        latest = await session.scalar(
            select(func.max(SurveyRow.version)).where(SurveyRow.name == survey.name)
        )
        await session.execute(
            update(SurveyRow)
            .where(SurveyRow.name == survey.name, SurveyRow.active)
            .values(active=False)
        )
        row = SurveyRow(
            name=survey.name,
            version=(latest or 0) + 1,
            definition=definition,
            active=True,
            published_by=by,
            note=note,
            created_at=datetime.now(UTC),
        )
        session.add(row)
        await session.flush()
        add_entry(
            session,
            by or "cli",
            "survey.publish",
            f"survey:{survey.name}",
            {"version": row.version, "note": note},
        )
        return Published(StoredSurvey(row.id, row.version, survey), changed=True)


async def publish_survey(
    sessions: async_sessionmaker[AsyncSession],
    survey: Survey,
    *,
    by: str | None = None,
    note: str | None = None,
    expect_active: int | None = _ANY,
    drop_draft_of: str | None = None,
) -> Published:
    """Validate ``survey`` (raising SurveyError) and make it the active version of its name,
    on the record as published by ``by`` with ``note``; the active version unchanged when it
    is the same definition. ``expect_active``: the version the edit was taken from (None: the
    survey did not exist); another one active raises PublishConflict, nothing written.
    ``drop_draft_of``: whose draft this was, deleted in the same transaction."""
    problems = validate(survey)
    if problems:
        raise SurveyError(problems)
    for attempt in range(ATTEMPTS):
        try:
            return await _apply_once(sessions, survey, by, note, expect_active, drop_draft_of)
        except IntegrityError:  # a concurrent apply took the version number: read again
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def apply_survey(
    sessions: async_sessionmaker[AsyncSession], survey: Survey, by: str | None = None
) -> StoredSurvey:
    """`centrala survey apply`: publish whatever version is active now."""
    return (await publish_survey(sessions, survey, by=by)).stored


async def active_survey(
    sessions: async_sessionmaker[AsyncSession], name: str
) -> StoredSurvey | None:
    async with sessions() as session:
        row = await session.scalar(
            select(SurveyRow).where(SurveyRow.name == name, SurveyRow.active)
        )
    if row is None:
        return None
    return StoredSurvey(row.id, row.version, Survey.model_validate(row.definition))


async def survey_by_id(
    sessions: async_sessionmaker[AsyncSession], survey_id: int
) -> StoredSurvey | None:
    """A stored version by its row id, active or not (a campaign keeps its version)."""
    async with sessions() as session:
        row = await session.get(SurveyRow, survey_id)
    if row is None:
        return None
    return StoredSurvey(row.id, row.version, Survey.model_validate(row.definition))


async def survey_versions(
    sessions: async_sessionmaker[AsyncSession], name: str
) -> list[SurveyVersion]:
    """Every stored version of ``name``, newest first."""
    async with sessions() as session:
        rows = await session.scalars(
            select(SurveyRow).where(SurveyRow.name == name).order_by(SurveyRow.version.desc())
        )
        return [SurveyVersion.of(r) for r in rows]


async def survey_version(
    sessions: async_sessionmaker[AsyncSession], name: str, version: int
) -> SurveyVersion | None:
    async with sessions() as session:
        row = await session.scalar(
            select(SurveyRow).where(SurveyRow.name == name, SurveyRow.version == version)
        )
        return None if row is None else SurveyVersion.of(row)


async def active_surveys(sessions: async_sessionmaker[AsyncSession]) -> list[SurveyVersion]:
    async with sessions() as session:
        rows = await session.scalars(
            select(SurveyRow).where(SurveyRow.active).order_by(SurveyRow.name)
        )
        return [SurveyVersion.of(r) for r in rows]


@dataclass(frozen=True)
class SurveyDraftRow:
    name: str
    owner: str
    definition: dict[str, Any]
    base_version: int | None
    updated_at: datetime


async def get_draft(
    sessions: async_sessionmaker[AsyncSession], name: str, owner: str
) -> SurveyDraftRow | None:
    async with sessions() as session:
        row = await session.scalar(
            select(SurveyDraft).where(SurveyDraft.name == name, SurveyDraft.owner == owner)
        )
        if row is None:
            return None
        return SurveyDraftRow(
            row.name, row.owner, dict(row.definition), row.base_version, row.updated_at
        )


async def store_draft(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    owner: str,
    definition: dict[str, Any],
    base_version: int | None,
) -> SurveyDraftRow:
    async with sessions() as session, session.begin():
        row = await session.scalar(
            select(SurveyDraft).where(SurveyDraft.name == name, SurveyDraft.owner == owner)
        )
        if row is None:
            row = SurveyDraft(name=name, owner=owner)
            session.add(row)
        row.definition = definition
        row.base_version = base_version
        row.updated_at = datetime.now(UTC)
        await session.flush()
        return SurveyDraftRow(name, owner, definition, base_version, row.updated_at)


async def discard_draft(sessions: async_sessionmaker[AsyncSession], name: str, owner: str) -> bool:
    async with sessions() as session, session.begin():
        result = await session.execute(
            delete(SurveyDraft).where(SurveyDraft.name == name, SurveyDraft.owner == owner)
        )
        return bool(getattr(result, "rowcount", 0))
