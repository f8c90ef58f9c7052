"""Versioned storage of survey definitions in the ``surveys`` table, like ``models.flows``.

``apply_survey`` validates a survey and stores it as the next version of its name, the only
active one; applying the same definition again changes nothing. Campaigns and post-call
surveys take the active version when they start and keep its row id, and every survey call
and answer points at that id (``calls.survey_id``, ``survey_answers.survey_id``): editing a
survey never changes what old answers meant.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.surveys.model import Survey
from core.surveys.validate import SurveyError, validate
from models.flows import lock_name
from models.tables import Survey as SurveyRow

ATTEMPTS = 3


@dataclass(frozen=True)
class StoredSurvey:
    id: int  # the row: what calls and answers point at
    version: int
    survey: Survey


def _canonical(definition: dict[str, Any]) -> str:
    return json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


async def _apply_once(sessions: async_sessionmaker[AsyncSession], survey: Survey) -> StoredSurvey:
    definition = survey.model_dump(mode="json")
    async with sessions() as session, session.begin():
        await lock_name(session, f"survey:{survey.name}")
        active = await session.scalar(
            select(SurveyRow).where(SurveyRow.name == survey.name, SurveyRow.active)
        )
        if active is not None and _canonical(active.definition) == _canonical(definition):
            return StoredSurvey(active.id, active.version, survey)
        latest = await session.scalar(
            select(func.max(SurveyRow.version)).where(SurveyRow.name == survey.name)
        )
        await session.execute(
            update(SurveyRow)
            .where(SurveyRow.name == survey.name, SurveyRow.active)
            .values(active=False)
        )
        row = SurveyRow(
            name=survey.name, version=(latest or 0) + 1, definition=definition, active=True
        )
        session.add(row)
        await session.flush()
        return StoredSurvey(row.id, row.version, survey)


async def apply_survey(sessions: async_sessionmaker[AsyncSession], survey: Survey) -> StoredSurvey:
    """Validate ``survey`` (raising SurveyError) and make it the active version of its name;
    the active version unchanged when it is the same definition."""
    problems = validate(survey)
    if problems:
        raise SurveyError(problems)
    for attempt in range(ATTEMPTS):
        try:
            return await _apply_once(sessions, survey)
        except IntegrityError:  # a concurrent apply took the version number: read again
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


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
