"""Per-user API tokens on the desk (/desk/api/tokens, the session cookie and the CSRF header):
anyone logged in lists, makes and revokes their own; MANAGE_ROLES sees and revokes everyone's
(the admin page's data). A token made here is its maker's, with their role at each use; its
secret is in the create's answer only. May import core, models and web's own modules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from core.api_tokens import TokenRequestError
from core.desk.forms import FormError
from core.errors import DomainError
from core.ids import row_id
from models.api_tokens import TooManyTokens, UnknownAgent
from web.auth import Action, User, may
from web.errors import API_TOKENS
from web.http import DeskWeb, _api, _json


def _no_token() -> DomainError:
    return DomainError("no such token", error_id="unknown_token", status=404)


@_api(Action.USE_DESK)
async def tokens_list(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    """Own tokens; with MANAGE_ROLES everyone's (``?agent_id=`` narrows it to one agent)."""
    wanted = request.query.get("agent_id")
    if may(user.role, Action.MANAGE_ROLES):
        rows = await request.app[API_TOKENS].list(wanted or None)
    elif wanted not in (None, user.agent_id):
        raise DomainError("only your own tokens", error_id="forbidden", status=403)
    else:
        rows = await request.app[API_TOKENS].list(user.agent_id)
    now = datetime.now(UTC)
    return web.json_response({"tokens": [r.to_json(now) for r in rows]})


@_api(Action.USE_DESK)
async def tokens_create(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    data: dict[str, Any] = await _json(request)
    try:
        created = await request.app[API_TOKENS].create(
            user.agent_id,
            data.get("name"),
            data.get("expires_days"),
            created_by=user.agent_id,
            now=datetime.now(UTC),
        )
    except TokenRequestError as exc:
        raise FormError(exc.field, exc.reason) from exc
    except TooManyTokens as exc:
        raise DomainError(str(exc), error_id="too_many_tokens", status=409) from exc
    except UnknownAgent as exc:  # deleted since the session began
        raise DomainError("no such agent", error_id="unknown_agent", status=404) from exc
    body = {**created.row.to_json(datetime.now(UTC)), "token": created.token}
    response = web.json_response(body, status=201)
    response.headers["Cache-Control"] = "no-store"
    return response


@_api(Action.USE_DESK)
async def tokens_revoke(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    """Own, or anyone's with MANAGE_ROLES; another's is 404 as a missing one is, so an id
    says nothing of who holds it."""
    token_id = row_id(request.match_info["token_id"])
    store = request.app[API_TOKENS]
    row = None if token_id is None else await store.get(token_id)
    if row is None or (row.agent_id != user.agent_id and not may(user.role, Action.MANAGE_ROLES)):
        raise _no_token()
    revoked = await store.revoke(row.id, datetime.now(UTC))
    if revoked is None:  # deleted meanwhile, with its agent
        raise _no_token()
    return web.json_response(revoked.to_json(datetime.now(UTC)))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/desk/api/tokens", tokens_list),
        web.post("/desk/api/tokens", tokens_create),
        web.delete("/desk/api/tokens/{token_id}", tokens_revoke),
    ]
