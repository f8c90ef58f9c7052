"""Survey definitions over HTTP: the list, drafts, checks, publish, versions, diff and roll
back (``.../surveys/{name}/...``), for machines under the bearer-token /api (``routes``) and
for the console on the desk (``desk_routes``: session, CSRF). Editing needs
``Action.EDIT_SURVEYS`` (admins: a survey is what clients are asked). Both answer what
``usecases.survey_editing`` makes of the same body; a draft belongs to whoever asks (on the
host's bearer token, "api"). Publishing makes the prompts heard first (``web.ports.PROMPTS``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from usecases import survey_editing
from web.api import json_body
from web.auth import Action, User
from web.http import DeskWeb, twin_routes
from web.ports import PROMPTS

Sessions = async_sessionmaker[AsyncSession]
API_OWNER = "api"


@dataclass(frozen=True)
class Asker:
    sessions: Sessions
    owner: str  # whose draft, who publishes
    install: survey_editing.Install | None = None


Operation = Callable[[web.Request, Asker], Awaitable[dict[str, Any]]]


def _name(request: web.Request) -> str:
    return survey_editing.check_name(request.match_info["name"])


def _version(request: web.Request) -> int:
    raw = request.match_info["version"]
    if not raw.isdigit() or len(raw) > 9:
        raise survey_editing.SurveyEditError(
            "unknown_version", f"no version {raw[:20]!r}", status=404
        )
    return int(raw)


async def listing(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await survey_editing.listing(asker.sessions)


async def get_draft(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await survey_editing.load_draft(asker.sessions, _name(request), asker.owner)


async def put_draft(request: web.Request, asker: Asker) -> dict[str, Any]:
    body = await json_body(request)
    return await survey_editing.save_draft(asker.sessions, _name(request), asker.owner, body)


async def delete_draft(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await survey_editing.discard(asker.sessions, _name(request), asker.owner)


async def check_draft(request: web.Request, asker: Asker) -> dict[str, Any]:
    return survey_editing.check_definition(_name(request), await json_body(request))


async def publish(request: web.Request, asker: Asker) -> dict[str, Any]:
    body = await json_body(request)
    return await survey_editing.publish(
        asker.sessions, _name(request), asker.owner, body, asker.install
    )


async def versions(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await survey_editing.history(asker.sessions, _name(request))


async def get_version(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await survey_editing.show_version(asker.sessions, _name(request), _version(request))


async def compare(request: web.Request, asker: Asker) -> dict[str, Any]:
    from_, to = request.query.get("from"), request.query.get("to")
    if not from_ or not to:
        raise survey_editing.SurveyEditError(
            "bad_request", "from= and to=: version numbers, 'active' or 'draft'"
        )
    return await survey_editing.compare(asker.sessions, _name(request), asker.owner, from_, to)


async def rollback(request: web.Request, asker: Asker) -> dict[str, Any]:
    body = await json_body(request)
    return await survey_editing.rollback(
        asker.sessions, _name(request), asker.owner, body, asker.install
    )


# (method, path under .../surveys, operation, what the user must be allowed)
OPERATIONS: list[tuple[str, str, Operation, Action]] = [
    ("GET", "", listing, Action.EDIT_SURVEYS),
    ("GET", "/{name}/draft", get_draft, Action.EDIT_SURVEYS),
    ("PUT", "/{name}/draft", put_draft, Action.EDIT_SURVEYS),
    ("DELETE", "/{name}/draft", delete_draft, Action.EDIT_SURVEYS),
    ("POST", "/{name}/draft/check", check_draft, Action.EDIT_SURVEYS),
    ("POST", "/{name}/publish", publish, Action.EDIT_SURVEYS),
    ("GET", "/{name}/versions", versions, Action.EDIT_SURVEYS),
    ("GET", "/{name}/versions/{version}", get_version, Action.EDIT_SURVEYS),
    ("GET", "/{name}/diff", compare, Action.EDIT_SURVEYS),
    ("POST", "/{name}/rollback", rollback, Action.EDIT_SURVEYS),
]


def routes(sessions_key: web.AppKey[Sessions]) -> list[web.RouteDef]:
    def asker(request: web.Request, user: User) -> Asker:
        prompts = request.app.get(PROMPTS)
        return Asker(request.app[sessions_key], user.agent_id or API_OWNER, prompts)

    return twin_routes(OPERATIONS, "/api/surveys", bearer_asker=asker)


def desk_routes() -> list[web.RouteDef]:
    def asker(request: web.Request, dw: DeskWeb, user: User) -> Asker:
        return Asker(dw.store.sessions, user.agent_id, request.app.get(PROMPTS))

    return twin_routes(OPERATIONS, "/api/surveys", desk_asker=asker)
