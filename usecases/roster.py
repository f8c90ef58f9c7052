"""Editing the roster in the admin console and ``/api/admin/...``: agents (create, rename,
phone, skills, queues with penalties, role, deactivate) and queues (live settings, members).
The checks of each field are the agents' CSV import's (core.csvrows), so a value refused there
is refused here; the rules of who may give roles and that the last admin stays are here;
storage and the audit trail are models.roster. The running ACD reads a change for its next
call (config_generation); a deactivated agent is logged out at once by the caller. A queue's
or an agent's history is their audit trail, and a change is undone in one step (``undo``).
May import ``core``, ``dialplan`` and ``models`` (see ``usecases``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from core.csvrows import (
    InvalidValue,
    parse_agent_id,
    parse_email,
    parse_endpoint,
    parse_name,
    parse_queue_name,
    parse_role,
    parse_skills,
)
from core.enums import AgentRole
from core.errors import DomainError
from dialplan.model import QueueDef
from dialplan.validate import pydantic_problems
from models import roster
from models.audit import entries
from models.audit import entry as audit_entry
from models.roster import AgentRecord, RosterConflict

MAX_PENALTY = 100
MAX_QUEUES = 50
AGENT_FIELDS = frozenset(
    {"id", "name", "role", "endpoint", "email", "skills", "queues", "password"}
)
PATCH_FIELDS = frozenset({"name", "role", "endpoint", "email", "skills", "queues", "active"})


class RosterError(DomainError):
    def __init__(self, error_id: str, message: str, *, status: int = 400, **details: Any) -> None:
        super().__init__(message, error_id=error_id, status=status, details=details)


def _field(name: str, parse: Callable[[str], Any], value: object) -> Any:
    if not isinstance(value, str):
        raise RosterError("bad_request", f"{name}: text", field=name)
    try:
        return parse(value.strip())
    except InvalidValue as exc:
        raise RosterError("bad_request", f"{name}: {exc}", field=name) from None


def _skills(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise RosterError("bad_request", "skills: a list of skills", field="skills")
    return list(_field("skills", parse_skills, ";".join(value)))


def check_queues(value: object, name: str = "queues") -> dict[str, int]:
    """``{queue or agent id: penalty}``: penalties 0-100, lower is offered first."""
    if not isinstance(value, Mapping) or len(value) > MAX_QUEUES:
        raise RosterError("bad_request", f"{name}: {{id: penalty}}", field=name)
    out: dict[str, int] = {}
    for key, penalty in value.items():
        if (
            not isinstance(penalty, int)
            or isinstance(penalty, bool)
            or not 0 <= penalty <= MAX_PENALTY
        ):
            raise RosterError(
                "bad_request",
                f"{name}: penalty of {str(key)[:64]!r}: 0 to {MAX_PENALTY}",
                field=name,
            )
        parse = parse_queue_name if name == "queues" else parse_agent_id
        out[_field(name, parse, key)] = penalty
    return out


def _role(value: object, may_give_roles: bool) -> AgentRole:
    role: AgentRole = _field("role", parse_role, value)
    if role is not AgentRole.AGENT and not may_give_roles:
        raise RosterError("forbidden", "only an admin gives roles", status=403, field="role")
    return role


def check_new_agent(body: Mapping[str, Any], may_give_roles: bool) -> dict[str, Any]:
    """The body of a new agent, checked; the password is the caller's (web.auth's policy)."""
    if unknown := set(body) - AGENT_FIELDS:
        raise RosterError("bad_request", f"unknown fields {sorted(unknown)}")
    return {
        "agent_id": _field("id", parse_agent_id, body.get("id")),
        "name": _field("name", parse_name, body.get("name")),
        "role": _role(body.get("role", "agent"), may_give_roles),
        "endpoint": _field("endpoint", parse_endpoint, body.get("endpoint") or ""),
        "email": _field("email", parse_email, body.get("email") or ""),
        "skills": _skills(body.get("skills", [])),
        "queues": check_queues(body.get("queues", {})),
    }


def check_agent_changes(body: Mapping[str, Any], may_give_roles: bool) -> dict[str, Any]:
    if unknown := set(body) - PATCH_FIELDS:
        raise RosterError(
            "bad_request", f"unknown fields {sorted(unknown)}: use {sorted(PATCH_FIELDS)}"
        )
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = _field("name", parse_name, body["name"])
    if "role" in body:
        if not may_give_roles:  # even "agent": taking a role away is giving one
            raise RosterError("forbidden", "only an admin changes roles", status=403, field="role")
        changes["role"] = _role(body["role"], may_give_roles)
    if "endpoint" in body:
        changes["endpoint"] = _field("endpoint", parse_endpoint, body["endpoint"] or "")
    if "email" in body:
        changes["email"] = _field("email", parse_email, body["email"] or "")
    if "skills" in body:
        changes["skills"] = _skills(body["skills"])
    if "queues" in body:
        changes["queues"] = check_queues(body["queues"])
    if "active" in body:
        if not isinstance(body["active"], bool):
            raise RosterError("bad_request", "active: true or false", field="active")
        changes["active"] = body["active"]
    return changes


def keeps_an_admin(agents: list[AgentRecord], agent_id: str, changes: Mapping[str, Any]) -> bool:
    """Whether an active admin is left after ``changes`` to ``agent_id``: nobody could give
    roles or fix a flow otherwise."""
    for agent in agents:
        role = str(changes.get("role", agent.role)) if agent.id == agent_id else agent.role
        active = changes.get("active", agent.active) if agent.id == agent_id else agent.active
        if role == AgentRole.ADMIN and active:
            return True
    return False


def _conflict(exc: RosterConflict) -> RosterError:
    status = (
        409 if exc.error_id == "agent_exists" else 404 if exc.error_id == "unknown_agent" else 422
    )
    return RosterError(exc.error_id, str(exc), status=status)


async def create_agent(
    sessions: roster.Sessions,
    actor: str,
    body: Mapping[str, Any],
    *,
    may_give_roles: bool,
    password_hash: str | None,
) -> dict[str, Any]:
    fields = check_new_agent(body, may_give_roles)
    try:
        record = await roster.create_agent(sessions, actor, password_hash=password_hash, **fields)
    except RosterConflict as exc:
        raise _conflict(exc) from None
    return record.to_json()


async def update_agent(
    sessions: roster.Sessions,
    actor: str,
    agent_id: str,
    body: Mapping[str, Any],
    *,
    may_give_roles: bool,
) -> tuple[AgentRecord, AgentRecord]:
    changes = check_agent_changes(body, may_give_roles)
    agents = await roster.list_agents(sessions)
    target = _may_edit(agents, agent_id, may_give_roles)
    was_admin = target.role == AgentRole.ADMIN and target.active
    if was_admin and not keeps_an_admin(agents, agent_id, changes):
        raise RosterError("last_admin", "the last active admin stays an active admin", status=409)
    try:
        return await roster.update_agent(sessions, actor, agent_id, changes)
    except RosterConflict as exc:
        raise _conflict(exc) from None


def _may_edit(agents: list[AgentRecord], agent_id: str, may_give_roles: bool) -> AgentRecord:
    """A supervisor edits agents and managers; supervisors and admins only an admin does (or
    a supervisor could take over an admin's log-in with a new password)."""
    target = next((a for a in agents if a.id == agent_id), None)
    if target is None:
        raise RosterError("unknown_agent", f"no agent {agent_id[:64]!r}", status=404)
    if target.role in (AgentRole.SUPERVISOR, AgentRole.ADMIN) and not may_give_roles:
        raise RosterError("forbidden", f"only an admin edits a {target.role}", status=403)
    return target


async def set_password(
    sessions: roster.Sessions,
    actor: str,
    agent_id: str,
    password_hash: str,
    *,
    may_give_roles: bool,
) -> None:
    _may_edit(await roster.list_agents(sessions), agent_id, may_give_roles)
    try:
        await roster.set_password(sessions, actor, agent_id, password_hash)
    except RosterConflict as exc:
        raise _conflict(exc) from None


QUEUE_FIELDS = frozenset(QueueDef.model_fields)


async def update_queue(
    sessions: roster.Sessions, actor: str, queue_id: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Change some of a queue's live settings (the others stay): the next caller gets them."""
    if unknown := set(body) - QUEUE_FIELDS:
        raise RosterError(
            "bad_request", f"unknown fields {sorted(unknown)}: use {sorted(QUEUE_FIELDS)}"
        )
    current = {q.id: q for q in await roster.list_queues(sessions)}.get(queue_id)
    if current is None:
        raise RosterError("unknown_queue", f"no queue {queue_id[:64]!r}", status=404)
    try:
        settings = QueueDef.model_validate({**current.settings.model_dump(mode="json"), **body})
    except ValidationError as exc:
        problems = pydantic_problems(exc)
        raise RosterError("invalid_queue", problems[0], status=422, problems=problems) from None
    try:
        _before, after = await roster.update_queue(sessions, actor, queue_id, settings)
    except RosterConflict as exc:
        raise _conflict(exc) from None
    return {"id": queue_id, **after.model_dump(mode="json"), "members": current.members}


async def set_members(
    sessions: roster.Sessions, actor: str, queue_id: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Exactly these agents in the queue, with their penalties (``{"members": {id: n}}``)."""
    if set(body) != {"members"}:
        raise RosterError("bad_request", 'the body: {"members": {agent id: penalty}}')
    members = check_queues(body["members"], "members")
    try:
        await roster.set_members(sessions, actor, queue_id, members)
    except RosterConflict as exc:
        raise _conflict(exc) from None
    return {"id": queue_id, "members": members}


# ---- history and undo: a queue's or an agent's changes, each undone in one step ------------
# (the flow's versions for what lives on the roster: every change is on the audit trail with
# its values before and after, so undoing one is making the "before" values again).
UNDOABLE = {
    "queue": ("queue.edit", "queue.members"),
    "agent": ("agent.edit",),
}
HISTORY_ACTIONS = {"queue": UNDOABLE["queue"], "agent": ("agent.create", "agent.edit")}


async def history(sessions: roster.Sessions, kind: str, ident: str) -> dict[str, Any]:
    """A queue's or an agent's changes, newest first, each with whether it can be undone."""
    found = await entries(sessions, subject=f"{kind}:{ident}", limit=200)
    return {
        "id": ident,
        "changes": [
            {**e.to_json(), "undoable": e.action in UNDOABLE[kind]}
            for e in found
            if e.action in HISTORY_ACTIONS[kind]
        ],
    }


def _still(current: Mapping[str, Any], after: Mapping[str, Any]) -> None:
    """Undo only what is still as the change left it: else it would undo someone's later edit
    unseen."""
    moved = sorted(k for k, v in after.items() if current.get(k) != v)
    if moved:
        raise RosterError(
            "changed_since",
            f"changed again since ({', '.join(moved)}): undo the later change first, or edit",
            status=409,
            fields=moved,
        )


async def undo(
    sessions: roster.Sessions,
    actor: str,
    kind: str,
    ident: str,
    entry_id: int,
    *,
    may_give_roles: bool,
) -> tuple[dict[str, Any], tuple[AgentRecord, AgentRecord] | None]:
    """Make a queue's or an agent's values what they were before change ``entry_id``, through
    the same checks as an edit (a supervisor still cannot touch an admin, the last admin stays).
    The answer, and for an agent their record before and after (the caller logs a deactivated
    agent out of the running ACD)."""
    change = await audit_entry(sessions, entry_id)
    if change is None or change.subject != f"{kind}:{ident}":
        raise RosterError("unknown_change", f"no change {entry_id} of {kind} {ident!r}", status=404)
    if change.action not in UNDOABLE[kind]:
        raise RosterError("not_undoable", f"a {change.action} cannot be undone here", status=422)
    before, after = change.detail.get("before") or {}, change.detail.get("after") or {}
    if change.action == "queue.members":
        queue = {q.id: q for q in await roster.list_queues(sessions)}.get(ident)
        if queue is None:
            raise RosterError("unknown_queue", f"no queue {ident!r}", status=404)
        _still({"members": queue.members}, {"members": after})
        return await set_members(sessions, actor, ident, {"members": before}), None
    if change.action == "queue.edit":
        queue = {q.id: q for q in await roster.list_queues(sessions)}.get(ident)
        if queue is None:
            raise RosterError("unknown_queue", f"no queue {ident!r}", status=404)
        _still(queue.settings.model_dump(mode="json"), after)
        return await update_queue(sessions, actor, ident, before), None
    agent = next((a for a in await roster.list_agents(sessions) if a.id == ident), None)
    if agent is None:
        raise RosterError("unknown_agent", f"no agent {ident!r}", status=404)
    _still(agent.to_json(), after)
    body = {k: v for k, v in before.items() if k in PATCH_FIELDS}
    records = await update_agent(sessions, actor, ident, body, may_give_roles=may_give_roles)
    return records[1].to_json(), records
