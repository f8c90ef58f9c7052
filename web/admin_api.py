"""The roster and the audit trail over HTTP (``.../admin/agents``, ``.../admin/queues``,
``.../admin/audit``): for machines under the bearer-token /api (``routes``: a person's token
with their role, named in the trail; the host's token as an admin, actor "api") and for the
console on the desk (``desk_routes``: session, CSRF). Both hold the action each route declares
in ``OPERATIONS``. What may be changed is ``usecases.roster``'s; a deactivated agent is logged
out of the running ACD here, at once (by an edit or by undoing one). Each queue's and agent's
history, and undoing one of its changes, are here too."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import AgentDeskError
from models import roster as roster_store
from models.audit import entries
from usecases import roster
from usecases.roster import RosterError
from web.api import json_body
from web.auth import Action, User, check_new_password, hash_password, may
from web.http import DeskWeb, twin_routes
from web.ports import AgentCommands

Sessions = async_sessionmaker[AsyncSession]
API_ACTOR = "api"


@dataclass(frozen=True)
class Asker:
    sessions: Sessions
    actor: str
    may_give_roles: bool
    desk: AgentCommands | None  # the running ACD's agents (None: no live part, a test's app)


Operation = Callable[[web.Request, Asker], Awaitable[dict[str, Any] | web.Response]]


def _password_hash(value: object) -> str:
    if not isinstance(value, str):
        raise RosterError("bad_request", "password: text", field="password")
    if problem := check_new_password(value):
        raise RosterError("bad_request", f"password: {problem}", field="password")
    return hash_password(value)


async def list_agents(request: web.Request, asker: Asker) -> dict[str, Any]:
    return {"agents": [a.to_json() for a in await roster_store.list_agents(asker.sessions)]}


async def create_agent(request: web.Request, asker: Asker) -> dict[str, Any]:
    body = await json_body(request)
    password = body.pop("password", None)
    return await roster.create_agent(
        asker.sessions,
        asker.actor,
        body,
        may_give_roles=asker.may_give_roles,
        password_hash=None if password is None else _password_hash(password),
    )


async def update_agent(request: web.Request, asker: Asker) -> dict[str, Any]:
    agent_id = request.match_info["agent_id"]
    before, after = await roster.update_agent(
        asker.sessions,
        asker.actor,
        agent_id,
        await json_body(request),
        may_give_roles=asker.may_give_roles,
    )
    await _logout_if_deactivated(asker, agent_id, (before, after))
    return after.to_json()


async def reset_password(request: web.Request, asker: Asker) -> dict[str, Any]:
    agent_id = request.match_info["agent_id"]
    body = await json_body(request)
    if set(body) != {"password"}:
        raise RosterError("bad_request", 'the body: {"password": "..."}')
    await roster.set_password(
        asker.sessions,
        asker.actor,
        agent_id,
        _password_hash(body["password"]),
        may_give_roles=asker.may_give_roles,
    )
    return {"id": agent_id, "password": "set"}


async def list_queues(request: web.Request, asker: Asker) -> dict[str, Any]:
    return {"queues": [q.to_json() for q in await roster_store.list_queues(asker.sessions)]}


async def update_queue(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await roster.update_queue(
        asker.sessions, asker.actor, request.match_info["queue_id"], await json_body(request)
    )


async def set_members(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await roster.set_members(
        asker.sessions, asker.actor, request.match_info["queue_id"], await json_body(request)
    )


async def _logout_if_deactivated(
    asker: Asker, agent_id: str, records: tuple[Any, Any] | None
) -> None:
    if records is None or asker.desk is None:
        return
    before, after = records
    if before.active and not after.active:
        # Out of the ACD now, not at their next log-in: no call is offered to them again.
        with contextlib.suppress(AgentDeskError):  # not logged in, or on a call ending
            await asker.desk.logout(agent_id)


def _history_of(kind: str) -> Operation:
    async def history(request: web.Request, asker: Asker) -> dict[str, Any]:
        ident = request.match_info[f"{kind}_id"]
        return await roster.history(asker.sessions, kind, ident)

    return history


def _undo_of(kind: str) -> Operation:
    async def undo(request: web.Request, asker: Asker) -> dict[str, Any]:
        ident = request.match_info[f"{kind}_id"]
        entry_id = _path_number(request, "entry_id")
        result, records = await roster.undo(
            asker.sessions, asker.actor, kind, ident, entry_id, may_give_roles=asker.may_give_roles
        )
        await _logout_if_deactivated(asker, ident, records)
        return {"undone": entry_id, **result}

    return undo


def _path_number(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 9:
        raise RosterError("unknown_change", f"no change {raw[:20]!r}", status=404)
    return int(raw)


def _number(request: web.Request, name: str, default: int | None) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise RosterError("bad_request", f"{name}: a number", field=name)
    return int(raw)


async def audit(request: web.Request, asker: Asker) -> dict[str, Any]:
    subject = request.query.get("subject")
    if subject is not None and not 0 < len(subject) <= 120:
        raise RosterError("bad_request", "subject: like flow:infoline", field="subject")
    found = await entries(
        asker.sessions,
        subject=subject,
        before_id=_number(request, "before", None),
        limit=_number(request, "limit", 100) or 100,
    )
    return {"entries": [e.to_json() for e in found]}


# (method, path under .../admin, operation, what the desk's user must be allowed)
OPERATIONS: list[tuple[str, str, Operation, Action]] = [
    ("GET", "/agents", list_agents, Action.EDIT_AGENTS),
    ("POST", "/agents", create_agent, Action.EDIT_AGENTS),
    ("PATCH", "/agents/{agent_id}", update_agent, Action.EDIT_AGENTS),
    ("POST", "/agents/{agent_id}/password", reset_password, Action.EDIT_AGENTS),
    ("GET", "/queues", list_queues, Action.EDIT_QUEUES),
    ("PATCH", "/queues/{queue_id}", update_queue, Action.EDIT_QUEUES),
    ("PUT", "/queues/{queue_id}/members", set_members, Action.EDIT_QUEUES),
    ("GET", "/audit", audit, Action.VIEW_AUDIT),
    # Each queue's and agent's changes, and a change undone in one step (usecases.roster).
    ("GET", "/agents/{agent_id}/history", _history_of("agent"), Action.EDIT_AGENTS),
    ("POST", "/agents/{agent_id}/undo/{entry_id}", _undo_of("agent"), Action.EDIT_AGENTS),
    ("GET", "/queues/{queue_id}/history", _history_of("queue"), Action.EDIT_QUEUES),
    ("POST", "/queues/{queue_id}/undo/{entry_id}", _undo_of("queue"), Action.EDIT_QUEUES),
]


def routes(
    sessions_key: web.AppKey[Sessions], desk_key: web.AppKey[Any] | None
) -> list[web.RouteDef]:
    def asker(request: web.Request, user: User) -> Asker:
        desk = request.app.get(desk_key) if desk_key is not None else None
        actor = user.agent_id or API_ACTOR  # a person's token: the trail names them
        return Asker(request.app[sessions_key], actor, may(user.role, Action.MANAGE_ROLES), desk)

    # The {agent_id} in these paths is whom the change is to, not who acts: whoever may the
    # action may it for any agent (the guard's own-agent rule does not apply).
    return twin_routes(OPERATIONS, "/api/admin", bearer_asker=asker, others=True)


def desk_routes() -> list[web.RouteDef]:
    def asker(request: web.Request, dw: DeskWeb, user: User) -> Asker:
        return Asker(dw.store.sessions, user.agent_id, may(user.role, Action.MANAGE_ROLES), dw.desk)

    return twin_routes(OPERATIONS, "/api/admin", desk_asker=asker)
