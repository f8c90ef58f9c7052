"""Editing survey definitions safely (the admin console and ``/api/surveys/{name}/...``), the
flow editor's pattern (``usecases.flow_editing``) for surveys: a draft per admin, checked
with the validator `centrala survey check` uses, each problem at its question; published
with a note unless someone else published since the draft was taken; every version kept,
compared and rolled back to in one step; each publish on the audit trail.

A survey's calls keep the version they started on (``calls.survey_id``), and a campaign the
version it was created with, so a publish changes what the next post-call survey and the
next campaign ask, never what old answers meant. The prompts of a published version are
synthesised first (a new text is a new file): the first call on it hears them.

May import ``core``, ``dialplan`` and ``models`` (see ``usecases``)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import DomainError
from core.surveys.model import Survey
from core.surveys.validate import SurveyError, check_limits, shape_problems, validate
from dialplan import diff
from dialplan.model import NAME
from models.surveys import (
    PublishConflict,
    active_survey,
    active_surveys,
    discard_draft,
    get_draft,
    publish_survey,
    store_draft,
    survey_version,
    survey_versions,
)
from usecases.flow_editing import note_of, problem_items

Sessions = async_sessionmaker[AsyncSession]
Install = Callable[[Survey], Awaitable[object]]  # makes its prompts heard (web.ports.PROMPTS)
_NAME = re.compile(NAME)


class SurveyEditError(DomainError):
    """An edit that cannot be done as asked; ``details`` says where (``problems``, ``field``)."""

    def __init__(self, error_id: str, message: str, *, status: int = 400, **details: Any) -> None:
        super().__init__(message, error_id=error_id, status=status, details=details)


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise SurveyEditError(
            "unknown_survey", "a survey's name: a-z, 0-9 and _, at most 64", status=404
        )
    return name


def starter(name: str) -> dict[str, Any]:
    """What a new survey's draft starts as: one NPS question, valid, in both languages."""

    def said(bs: str, en: str) -> dict[str, Any]:
        return {"text": {"bs": bs, "en": en}}

    return {
        "name": name,
        "description": "",
        "default_language": "bs",
        "languages": ["bs", "en"],
        "intro": "intro",
        "consent": {"key": "1", "decline_key": "2"},
        "start": "recommend",
        "questions": {"recommend": {"type": "nps", "prompt": "recommend", "next": "end"}},
        "thanks": "thanks",
        "prompts": {
            "intro": said(
                "Dobar dan. Za kratku anketu pritisnite 1, a ako ne želite, pritisnite 2.",
                "Good day. To take a short survey press 1; if you would rather not, press 2.",
            ),
            "recommend": said(
                "Koliko je vjerovatno da biste nas preporučili, od 0 do 10?",
                "How likely are you to recommend us, from 0 to 10?",
            ),
            "thanks": said("Hvala vam. Doviđenja.", "Thank you. Goodbye."),
        },
    }


def parse(name: str, definition: object) -> tuple[Survey | None, list[str]]:
    """The survey in a request's ``definition`` and every problem it has (None: it is not
    even a survey's shape); pure."""
    if not isinstance(definition, dict):
        raise SurveyEditError(
            "bad_request", "definition: the survey as a JSON object", field="definition"
        )
    if definition.get("name") != name:
        return None, [f"name: must be {name!r}, the survey edited here"]
    try:
        survey = Survey.model_validate(definition)
    except ValidationError as exc:
        return None, shape_problems(exc)
    return survey, check_limits(survey) or validate(survey)


def _problems(problems: list[str]) -> list[dict[str, Any]]:
    return problem_items(problems, "questions")


def _draft_json(
    name: str,
    definition: dict[str, Any],
    base: int | None,
    updated_at: str | None,
) -> dict[str, Any]:
    _, problems = parse(name, definition)
    return {
        "name": name,
        "saved": updated_at is not None,
        "base_version": base,
        "definition": definition,
        "updated_at": updated_at,
        "problems": _problems(problems),
    }


async def listing(sessions: Sessions) -> dict[str, Any]:
    return {"surveys": [v.to_json() for v in await active_surveys(sessions)]}


async def load_draft(sessions: Sessions, name: str, owner: str) -> dict[str, Any]:
    """``owner``'s draft of ``name``; without one, the active version to start from, or a
    starter for a survey not made yet (neither saved until the first PUT)."""
    draft = await get_draft(sessions, check_name(name), owner)
    if draft is not None:
        updated = draft.updated_at.isoformat()
        return _draft_json(name, draft.definition, draft.base_version, updated)
    active = await active_survey(sessions, name)
    if active is None:
        return _draft_json(name, starter(name), None, None)
    return _draft_json(name, active.survey.model_dump(mode="json"), active.version, None)


async def save_draft(
    sessions: Sessions, name: str, owner: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Save ``owner``'s draft as given, problems and all (``PUT .../draft``); its base is the
    version it was first taken from."""
    if unknown := set(body) - {"definition"}:
        raise SurveyEditError("bad_request", f"unknown fields {sorted(unknown)}: use definition")
    definition = body.get("definition")
    parse(check_name(name), definition)  # a definition that is no object is refused here
    assert isinstance(definition, dict)
    draft = await get_draft(sessions, name, owner)
    if draft is not None:
        base = draft.base_version
    else:
        active = await active_survey(sessions, name)
        base = active.version if active else None
    saved = await store_draft(sessions, name, owner, definition, base)
    return _draft_json(name, saved.definition, base, saved.updated_at.isoformat())


def check_definition(name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Every problem of the body's survey, saved nowhere (``POST .../draft/check``)."""
    _, problems = parse(check_name(name), body.get("definition"))
    return {"ok": not problems, "problems": _problems(problems)}


async def discard(sessions: Sessions, name: str, owner: str) -> dict[str, Any]:
    return {"discarded": await discard_draft(sessions, check_name(name), owner)}


async def _go_live(
    sessions: Sessions,
    survey: Survey,
    actor: str,
    *,
    note: str | None,
    expect_active: int | None,
    drop_draft_of: str | None = None,
    install: Install | None = None,
) -> dict[str, Any]:
    if install is not None:
        await install(survey)
    try:
        published = await publish_survey(
            sessions,
            survey,
            by=actor,
            note=note,
            expect_active=expect_active,
            drop_draft_of=drop_draft_of,
        )
    except SurveyError as exc:
        raise SurveyEditError(
            "has_problems",
            f"the survey has {len(exc.problems)} problem(s): fix them before publishing",
            status=422,
            problems=_problems(exc.problems),
        ) from None
    except PublishConflict as exc:
        active = exc.active
        raise SurveyEditError(
            "published_since",
            str(exc),
            status=409,
            draft_base=exc.expected,
            active_version=active.version if active else None,
            published_by=active.published_by if active else None,
            published_at=active.published_at.isoformat() if active else None,
        ) from None
    stored = published.stored
    return {
        "name": survey.name,
        "version": stored.version,
        "id": stored.id,
        "changed": published.changed,
    }


async def publish(
    sessions: Sessions,
    name: str,
    owner: str,
    body: Mapping[str, Any],
    install: Install | None = None,
) -> dict[str, Any]:
    """Make ``owner``'s draft the active version (``POST .../publish``): refused while it has
    problems (422 ``has_problems``) or when another version was published since it was taken
    (409 ``published_since``, nothing changed). The draft is gone once published."""
    if unknown := set(body) - {"note"}:
        raise SurveyEditError("bad_request", f"unknown fields {sorted(unknown)}: use note")
    note = note_of(body.get("note"))
    draft = await get_draft(sessions, check_name(name), owner)
    if draft is None:
        raise SurveyEditError(
            "no_draft", f"no draft of {name!r} to publish: save one first", status=404
        )
    survey, problems = parse(name, draft.definition)
    if survey is None or problems:
        raise SurveyEditError(
            "has_problems",
            f"the survey has {len(problems)} problem(s): fix them before publishing",
            status=422,
            problems=_problems(problems),
        )
    return await _go_live(
        sessions,
        survey,
        owner,
        note=note,
        expect_active=draft.base_version,
        drop_draft_of=owner,
        install=install,
    )


async def history(sessions: Sessions, name: str) -> dict[str, Any]:
    found = await survey_versions(sessions, check_name(name))
    if not found:
        raise SurveyEditError("unknown_survey", f"no survey {name!r}", status=404)
    return {"name": name, "versions": [v.to_json() for v in found]}


async def _version(sessions: Sessions, name: str, version: int) -> dict[str, Any]:
    found = await survey_version(sessions, check_name(name), version)
    if found is None:
        raise SurveyEditError("unknown_version", f"no version {version} of {name!r}", status=404)
    return found.definition


async def show_version(sessions: Sessions, name: str, version: int) -> dict[str, Any]:
    definition = await _version(sessions, name, version)
    return {"name": name, "version": version, "definition": definition}


async def _side(
    sessions: Sessions, name: str, owner: str, which: str
) -> tuple[str, dict[str, Any]]:
    """One side of a diff: a version number, ``active`` or ``draft`` (the asker's)."""
    if which == "draft":
        draft = await get_draft(sessions, name, owner)
        if draft is None:
            raise SurveyEditError("no_draft", f"no draft of {name!r}", status=404)
        return "draft", draft.definition
    if which == "active":
        active = await active_survey(sessions, name)
        if active is None:
            raise SurveyEditError("unknown_survey", f"no survey {name!r}", status=404)
        return f"version {active.version}", active.survey.model_dump(mode="json")
    if not which.isdigit() or len(which) > 9:
        raise SurveyEditError(
            "bad_request", f"{which[:20]!r}: a version number, 'active' or 'draft'"
        )
    return f"version {which}", await _version(sessions, name, int(which))


async def compare(sessions: Sessions, name: str, owner: str, from_: str, to: str) -> dict[str, Any]:
    """What changed from ``from_`` to ``to`` (``GET .../diff?from=&to=``)."""
    from_name, before = await _side(sessions, check_name(name), owner, from_)
    to_name, after = await _side(sessions, name, owner, to)
    return {
        "from": from_,
        "to": to,
        "changes": [c.to_json() for c in diff.changes(before, after)],
        "text": diff.unified(before, after, from_name, to_name),
    }


async def rollback(
    sessions: Sessions,
    name: str,
    actor: str,
    body: Mapping[str, Any],
    install: Install | None = None,
) -> dict[str, Any]:
    """Publish an old version again as the newest (``POST .../rollback``, body ``{"to": N}``
    and optionally ``active_version``, the version the admin saw active: refused when
    another is active now)."""
    to = body.get("to")
    if not isinstance(to, int) or isinstance(to, bool):
        raise SurveyEditError("bad_request", "to: the version number to roll back to", field="to")
    expect = body.get("active_version", "any")
    if expect != "any" and (not isinstance(expect, int) or isinstance(expect, bool)):
        raise SurveyEditError(
            "bad_request", "active_version: a version number", field="active_version"
        )
    note = note_of(body.get("note")) or f"rolled back to version {to}"
    survey = Survey.model_validate(await _version(sessions, name, to))
    if expect == "any":
        active = await active_survey(sessions, name)
        expect = active.version if active else None
    return await _go_live(sessions, survey, actor, note=note, expect_active=expect, install=install)
