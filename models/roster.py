"""The roster as the admin console edits it: agents (name, role, phone, skills, active, the
queues they sit in with their penalties) and the queues' live settings and members. Each
write is one transaction with its audit entry (before and after, never a password), and the
triggers of config_generation (migration 0010) make the running ACD read it for the next
call. Imports models.tables, models.audit, models.crm's row readers and models.web_sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from core.enums import AgentRole
from dialplan.model import QueueDef
from models.audit import add_entry
from models.crm import queue_def_of
from models.flows import queue_row
from models.tables import Agent, Queue, QueueMember
from models.web_sessions import revoke_agent_sessions

Sessions = async_sessionmaker[AsyncSession]


class RosterConflict(Exception):
    """The write cannot be done: an agent id taken, an unknown agent or queue."""

    def __init__(self, error_id: str, message: str) -> None:
        self.error_id = error_id
        super().__init__(message)


@dataclass(frozen=True)
class AgentRecord:
    id: str
    name: str
    role: str
    active: bool
    endpoint: str | None
    skills: list[str]
    queues: dict[str, int]  # queue id -> penalty
    has_password: bool
    email: str | None = None

    @classmethod
    def of(cls, row: Agent) -> AgentRecord:
        return cls(
            id=row.id,
            name=row.name,
            role=str(row.role),
            active=row.active,
            endpoint=row.endpoint,
            skills=list(row.skills or []),
            queues={
                m.queue_id: m.penalty for m in sorted(row.memberships, key=lambda m: m.queue_id)
            },
            has_password=row.password_hash is not None,
            email=row.email,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "active": self.active,
            "endpoint": self.endpoint,
            "skills": self.skills,
            "queues": self.queues,
            "has_password": self.has_password,
            "email": self.email,
        }


@dataclass(frozen=True)
class QueueRecord:
    id: str
    settings: QueueDef  # as the ACD reads it
    members: dict[str, int]  # agent id -> penalty

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, **self.settings.model_dump(mode="json"), "members": self.members}


def _changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {"before": {k: before.get(k) for k in keys}, "after": {k: after[k] for k in keys}}


async def _agent(session: AsyncSession, agent_id: str) -> Agent:
    row = await session.scalar(
        select(Agent).where(Agent.id == agent_id).options(selectinload(Agent.memberships))
    )
    if row is None:
        raise RosterConflict("unknown_agent", f"no agent {agent_id!r}")
    return row


async def _known_queues(session: AsyncSession, queue_ids: set[str]) -> None:
    found = set((await session.scalars(select(Queue.id).where(Queue.id.in_(queue_ids)))).all())
    if missing := sorted(queue_ids - found):
        raise RosterConflict("unknown_queue", f"no queue {missing[0]!r}")


async def list_agents(sessions: Sessions) -> list[AgentRecord]:
    async with sessions() as session:
        rows = await session.scalars(
            select(Agent).options(selectinload(Agent.memberships)).order_by(Agent.id)
        )
        return [AgentRecord.of(row) for row in rows]


async def create_agent(
    sessions: Sessions,
    actor: str,
    *,
    agent_id: str,
    name: str,
    role: AgentRole,
    endpoint: str | None,
    skills: list[str],
    queues: dict[str, int],
    password_hash: str | None,
    email: str | None = None,
) -> AgentRecord:
    async with sessions() as session, session.begin():
        if await session.get(Agent, agent_id) is not None:
            raise RosterConflict("agent_exists", f"agent {agent_id!r} exists already")
        await _known_queues(session, set(queues))
        row = Agent(
            id=agent_id,
            name=name,
            role=role,
            endpoint=endpoint,
            skills=skills,
            password_hash=password_hash,
            email=email,
            active=True,
            memberships=[QueueMember(queue_id=q, penalty=p) for q, p in queues.items()],
        )
        session.add(row)
        try:
            await session.flush()
        except IntegrityError as exc:  # a concurrent create of the same id
            raise RosterConflict("agent_exists", f"agent {agent_id!r} exists already") from exc
        record = AgentRecord.of(row)
        after = {k: v for k, v in record.to_json().items() if k != "id"}
        add_entry(session, actor, "agent.create", f"agent:{agent_id}", {"after": after})
        return record


async def update_agent(
    sessions: Sessions, actor: str, agent_id: str, changes: dict[str, Any]
) -> tuple[AgentRecord, AgentRecord]:
    """Apply ``changes`` (name, role, endpoint, email, skills, active, queues); the record before
    and after. Deactivating ends the agent's desktop log-ins at once."""
    async with sessions() as session, session.begin():
        row = await _agent(session, agent_id)
        before = AgentRecord.of(row)
        for field in ("name", "role", "endpoint", "email", "skills", "active"):
            if field in changes:
                setattr(row, field, changes[field])
        if "queues" in changes:
            queues: dict[str, int] = changes["queues"]
            await _known_queues(session, set(queues))
            kept = {m.queue_id: m for m in row.memberships}
            for queue_id, member in kept.items():
                if queue_id not in queues:
                    await session.delete(member)
                    row.memberships.remove(member)
            for queue_id, penalty in queues.items():
                if queue_id in kept:
                    kept[queue_id].penalty = penalty
                else:
                    row.memberships.append(QueueMember(queue_id=queue_id, penalty=penalty))
        if changes.get("active") is False:
            await revoke_agent_sessions(session, agent_id, datetime.now(UTC))
        await session.flush()
        after = AgentRecord.of(row)
        detail = _changed(before.to_json(), after.to_json())
        if detail["after"]:
            add_entry(session, actor, "agent.edit", f"agent:{agent_id}", detail)
        return before, after


async def set_password(sessions: Sessions, actor: str, agent_id: str, password_hash: str) -> None:
    """A new password, set by someone else: every log-in of the agent ends."""
    async with sessions() as session, session.begin():
        row = await _agent(session, agent_id)
        row.password_hash = password_hash
        await revoke_agent_sessions(session, agent_id, datetime.now(UTC))
        add_entry(session, actor, "agent.password", f"agent:{agent_id}", {})


async def list_queues(sessions: Sessions) -> list[QueueRecord]:
    async with sessions() as session:
        rows = await session.scalars(
            select(Queue).options(selectinload(Queue.members)).order_by(Queue.id)
        )
        return [
            QueueRecord(r.id, queue_def_of(r), {m.agent_id: m.penalty for m in r.members})
            for r in rows
        ]


async def update_queue(
    sessions: Sessions, actor: str, queue_id: str, settings: QueueDef
) -> tuple[QueueDef, QueueDef]:
    async with sessions() as session, session.begin():
        row = await session.get(Queue, queue_id)
        if row is None:
            raise RosterConflict("unknown_queue", f"no queue {queue_id!r}")
        before = queue_def_of(row)
        values = queue_row(queue_id, settings)
        for column in ("name", "strategy", "priority", "max_wait_seconds", "settings"):
            setattr(row, column, values[column])
        detail = _changed(before.model_dump(mode="json"), settings.model_dump(mode="json"))
        if detail["after"]:
            add_entry(session, actor, "queue.edit", f"queue:{queue_id}", detail)
        return before, settings


async def set_members(
    sessions: Sessions, actor: str, queue_id: str, members: dict[str, int]
) -> dict[str, int]:
    """Exactly ``members`` (agent id -> penalty) sit in the queue from the next call on."""
    async with sessions() as session, session.begin():
        row = await session.get(Queue, queue_id)
        if row is None:
            raise RosterConflict("unknown_queue", f"no queue {queue_id!r}")
        known = set(
            (await session.scalars(select(Agent.id).where(Agent.id.in_(set(members))))).all()
        )
        if missing := sorted(set(members) - known):
            raise RosterConflict("unknown_agent", f"no agent {missing[0]!r}")
        rows = await session.scalars(select(QueueMember).where(QueueMember.queue_id == queue_id))
        before = {m.agent_id: m.penalty for m in rows}
        await session.execute(delete(QueueMember).where(QueueMember.queue_id == queue_id))
        session.add_all(
            QueueMember(queue_id=queue_id, agent_id=a, penalty=p) for a, p in members.items()
        )
        if before != members:
            add_entry(
                session,
                actor,
                "queue.members",
                f"queue:{queue_id}",
                {"before": before, "after": members},
            )
        return members
