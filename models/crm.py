"""CRM reads the info line needs while a call is live (the queues' current settings, agents'
profiles and the caller's routing facts) and agents' sessions. A call's own writes (its row,
trail and callback tasks) go through ``models.calllog.CallLog``, in order with its trail."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from core.acd import AgentProfile
from core.routing import Caller
from dialplan.model import QueueDef
from models.db import is_outage
from models.tables import (
    Agent,
    AgentSession,
    Client,
    ConfigGeneration,
    FlowVersion,
    Queue,
)

SAME_CHECK_SECONDS = 0.001


async def nothing() -> None:
    """A ``before_write`` that has nothing to write first."""
    return None


class CRM:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self.sessions = sessions
        # The call path's read-mostly data, as last read: served from memory while the
        # database's config_generation says nothing changed, and while it is away.
        self._generation: int | None = None
        self._queues: dict[str, QueueDef] | None = None
        self._profiles: dict[str, AgentProfile] = {}
        self._active_flows: dict[str, int] = {}
        self._checked_at = -1.0  # monotonic time of the last check that found it current

    async def _current(self) -> None:
        """Make the cached queues, profiles and active flow versions current: one small read
        of config_generation (bumped by triggers on every write of those tables, by any
        process), and all of them read again only when it moved. The number is read before
        the tables, so a change committed in between only causes one more reload. Checks
        within ``SAME_CHECK_SECONDS`` of one that found it current share it (the reads of one
        step of a call, and of calls arriving together): no call can be placed and reach us
        that fast after an edit."""
        if time.monotonic() - self._checked_at < SAME_CHECK_SECONDS:
            return
        try:
            async with self.sessions() as session:
                generation = await session.scalar(select(ConfigGeneration.generation))
                if generation is None or generation != self._generation:
                    await self._load(session)
                # No row (a schema made without the migrations): read every time.
                self._generation = generation
                if generation is not None:
                    self._checked_at = time.monotonic()
        except Exception as exc:
            # The database is away: what was read last keeps the calls routed.
            if self._queues is None or not is_outage(exc):
                raise

    async def _load(self, session: AsyncSession) -> None:
        rows = list(await session.scalars(select(Queue)))
        agents = await session.scalars(select(Agent).options(selectinload(Agent.memberships)))
        profiles = {a.id: _profile(a) for a in agents}
        flows = await session.execute(
            select(FlowVersion.name, FlowVersion.version).where(FlowVersion.active)
        )
        self._active_flows = {str(name): int(version) for name, version in flows}
        self._profiles = profiles
        self._queues = {row.id: _queue_def(row) for row in rows}

    async def queues(self) -> dict[str, QueueDef]:
        """Queue settings as they are now: an admin's edit applies to the next call. With
        the database away, the settings last read (a call is routed all the same)."""
        await self._current()
        assert self._queues is not None
        return self._queues

    async def active_flow_version(self, name: str) -> int | None:
        """The number of the active version of flow ``name`` (None: no version active)."""
        await self._current()
        return self._active_flows.get(name)

    async def agent(self, agent_id: str) -> tuple[AgentProfile, str | None] | None:
        async with self.sessions() as session:
            agent = await session.get(Agent, agent_id)
            if agent is None or not agent.active:
                return None
            await session.refresh(agent, ["memberships"])
            return _profile(agent), agent.endpoint

    async def profiles(self, agent_ids: list[str]) -> list[AgentProfile]:
        """Skills and memberships of these agents as they are now (as last read while the
        database is away)."""
        if not agent_ids:
            return []
        await self._current()
        return [self._profiles[a] for a in agent_ids if a in self._profiles]

    async def save_agent_session(
        self,
        agent_id: str,
        *,
        endpoint: str,
        mode: str,
        nailed_channel: str | None = None,
        nailed_bridge: str | None = None,
    ) -> None:
        async with self.sessions() as session:
            await session.execute(delete(AgentSession).where(AgentSession.agent_id == agent_id))
            session.add(
                AgentSession(
                    agent_id=agent_id,
                    endpoint=endpoint,
                    mode=mode,
                    nailed_channel=nailed_channel,
                    nailed_bridge=nailed_bridge,
                    logged_in_at=datetime.now(UTC),
                )
            )
            await session.commit()

    async def pause_agent_session(self, agent_id: str, reason: str | None) -> None:
        async with self.sessions() as session:
            await session.execute(
                update(AgentSession)
                .where(AgentSession.agent_id == agent_id)
                .values(pause_reason=reason)
            )
            await session.commit()

    async def drop_agent_session(self, agent_id: str) -> None:
        async with self.sessions() as session:
            await session.execute(delete(AgentSession).where(AgentSession.agent_id == agent_id))
            await session.commit()

    async def agent_sessions(self) -> list[AgentSession]:
        async with self.sessions() as session:
            return list(await session.scalars(select(AgentSession).order_by(AgentSession.agent_id)))


def _queue_def(row: Queue) -> QueueDef:
    data: dict[str, Any] = {
        **(row.settings or {}),
        "name": row.name,
        "strategy": row.strategy,
        "priority": row.priority,
    }
    if row.max_wait_seconds:
        data["max_wait_seconds"] = row.max_wait_seconds
    try:
        return QueueDef.model_validate(data)
    except ValidationError:
        # A hand-edited row that no longer fits: treat as defaults, never stall a call.
        return QueueDef(name=row.name)


def _profile(agent: Agent) -> AgentProfile:
    return AgentProfile(
        id=agent.id,
        name=agent.name,
        role=str(agent.role),
        skills=frozenset(agent.skills or ()),
        queues={m.queue_id: m.penalty for m in agent.memberships},
    )


def caller_of(client: Client | None) -> Caller:
    """What routing may know about a client's row."""
    if client is None:
        return Caller()
    return Caller(
        client_id=client.id,
        name=client.name,
        client_type=str(client.client_type),
        overdue_debt=client.overdue_debt,
        language=client.language,
        assigned_manager=client.assigned_manager_id,
    )
