"""Reads a survey's results for ``core.surveys.report``: thin, no decisions beyond the joins.

Every answer links to its call (``survey_answers.call_id``), its client and the exact survey
version asked (``survey_answers.survey_id``). A campaign call belongs to the contact whose
``last_call_id`` or ``attempt_history`` names it; that contact gives the segment chosen at
selection and the campaign. A survey call no contact names is a post-call survey.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.surveys.report import (
    NO_SEGMENT,
    POSTCALL,
    AnswerRow,
    ReportError,
    ResultsQuery,
    SurveyCallRow,
    SurveyResults,
    attempted_between,
)
from models.tables import Call, Campaign, CampaignContact, Client, Direction, Survey, SurveyAnswer


@dataclass(frozen=True)
class _Contact:
    id: int
    campaign: str
    segment: str
    number: str


async def survey_names(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session:
        return list(await session.scalars(select(Survey.name).distinct().order_by(Survey.name)))


def _questions(definition: Mapping[str, Any]) -> dict[str, str]:
    questions = definition.get("questions")
    if not isinstance(questions, Mapping):
        return {}
    return {
        str(key): str(q.get("type", "")) for key, q in questions.items() if isinstance(q, Mapping)
    }


def _window(query: ResultsQuery) -> list[ColumnElement[bool]]:
    """Survey calls started in [since, until)."""
    where = []
    if query.since is not None:
        where.append(Call.started_at >= query.since)
    if query.until is not None:
        where.append(Call.started_at < query.until)
    return where


async def load_results(
    sessions: async_sessionmaker[AsyncSession], query: ResultsQuery
) -> SurveyResults:
    """The survey calls, answers and contact count of ``query`` (ReportError 404 for an
    unknown survey, version or campaign)."""
    async with sessions() as session:
        versions = (
            await session.execute(
                select(Survey.id, Survey.version, Survey.definition)
                .where(Survey.name == query.survey)
                .order_by(Survey.version.desc())
            )
        ).all()
        if not versions:
            raise ReportError("unknown_survey", f"no survey {query.survey!r}", 404)
        if query.version is not None:
            versions = [v for v in versions if v.version == query.version]
            if not versions:
                raise ReportError(
                    "unknown_survey", f"survey {query.survey!r} has no version {query.version}", 404
                )
        survey_ids = {v.id: v.version for v in versions}  # row id -> version
        questions: dict[int, dict[str, str]] = {v.id: _questions(v.definition) for v in versions}

        campaigns = {
            row.id: row.name
            for row in await session.execute(
                select(Campaign.id, Campaign.name).where(Campaign.survey_id.in_(list(survey_ids)))
            )
        }
        if query.campaign is not None:
            campaigns = {i: n for i, n in campaigns.items() if n == query.campaign}
            if not campaigns:
                raise ReportError(
                    "unknown_campaign",
                    f"no campaign {query.campaign!r} asking survey {query.survey!r}"
                    + (f" version {query.version}" if query.version is not None else ""),
                    404,
                )

        calls = (
            await session.execute(
                select(
                    Call.id,
                    Call.started_at,
                    Call.survey_status,
                    Call.direction,
                    Call.caller_number,
                    Call.called_number,
                ).where(Call.survey_id.in_(list(survey_ids)), *_window(query))
            )
        ).all()

        contact_rows = (
            await session.execute(
                select(
                    CampaignContact.id,
                    CampaignContact.campaign_id,
                    CampaignContact.segment,
                    CampaignContact.number,
                    CampaignContact.attempts,
                    CampaignContact.last_call_id,
                    CampaignContact.attempt_history,
                ).where(CampaignContact.campaign_id.in_(list(campaigns)))
            )
        ).all()

        answers = (
            await session.execute(
                select(
                    SurveyAnswer.survey_id,
                    SurveyAnswer.call_id,
                    SurveyAnswer.question_key,
                    SurveyAnswer.value_int,
                    SurveyAnswer.value_text,
                    SurveyAnswer.recording,
                    SurveyAnswer.answered_at,
                    Client.id.label("client_id"),
                    Client.external_id,
                    Client.name.label("client_name"),
                    Call.direction,
                    Call.caller_number,
                    Call.called_number,
                )
                .join(Call, Call.id == SurveyAnswer.call_id)
                .outerjoin(
                    Client, Client.id == func.coalesce(SurveyAnswer.client_id, Call.client_id)
                )
                .where(SurveyAnswer.survey_id.in_(list(survey_ids)), *_window(query))
                .order_by(SurveyAnswer.answered_at, SurveyAnswer.id)
            )
        ).all()

    contact_of: dict[str, _Contact] = {}
    attempted: set[int] = set()
    for c in contact_rows:
        contact = _Contact(c.id, campaigns[c.campaign_id], c.segment or NO_SEGMENT, c.number)
        history = [h for h in (c.attempt_history or []) if isinstance(h, Mapping)]
        for call_id in [c.last_call_id, *(h.get("call_id") for h in history)]:
            if isinstance(call_id, str):
                contact_of[call_id] = contact
        if attempted_between(c.attempts, history, query.since, query.until):
            attempted.add(c.id)

    def respondent(call_id: str) -> str:
        contact = contact_of.get(call_id)
        return f"contact:{contact.id}" if contact else f"call:{call_id}"

    if query.campaign is not None:  # only that campaign's calls, no post-call surveys
        calls = [c for c in calls if c.id in contact_of]
        answers = [a for a in answers if a.call_id in contact_of]
    call_rows = tuple(
        SurveyCallRow(c.id, respondent(c.id), c.started_at, c.survey_status) for c in calls
    )
    # Anyone surveyed was attempted, whatever the history says; post-call offers count one each.
    attempted |= {contact_of[c.id].id for c in calls if c.id in contact_of}
    postcall_offers = sum(1 for c in calls if c.id not in contact_of)

    def number(direction: Direction, caller: str | None, called: str | None) -> str | None:
        return called if direction is Direction.OUTBOUND else caller

    answer_rows = []
    for a in answers:
        linked = contact_of.get(a.call_id)
        answer_rows.append(
            AnswerRow(
                answered_at=a.answered_at,
                survey=query.survey,
                survey_version=survey_ids[a.survey_id],
                call_id=a.call_id,
                respondent=respondent(a.call_id),
                client_id=a.client_id,
                client_external_id=a.external_id,
                client_name=a.client_name,
                number=number(a.direction, a.caller_number, a.called_number)
                or (linked.number if linked else None),
                segment=linked.segment if linked else POSTCALL,
                campaign=linked.campaign if linked else None,
                question_key=a.question_key,
                question_type=questions[a.survey_id].get(a.question_key),
                value_int=a.value_int,
                value_text=a.value_text,
                recording=a.recording,
            )
        )

    ordered: dict[str, str] = {}  # newest version's questions first, then older ones' extras
    for v in versions:
        for key, kind in questions[v.id].items():
            ordered.setdefault(key, kind)
    return SurveyResults(
        query=query,
        versions=tuple(sorted(survey_ids.values())),
        nps_questions={
            v.version: next(k for k, t in questions[v.id].items() if t == "nps")
            for v in versions
            if "nps" in questions[v.id].values()
        },
        questions=ordered,
        calls=call_rows,
        answers=tuple(answer_rows),
        contacts=len(attempted) + postcall_offers,
    )
