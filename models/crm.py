"""CRM reads the info line needs while a call is live (the queues' current settings, agents'
profiles and the caller's routing facts) and agents' sessions. A call's own writes (its row,
trail and callback tasks) go through ``models.calllog.CallLog``, in order with its trail."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from pydantic import ValidationError
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from core.acd import AgentProfile
from core.routing import Caller
from dialplan.model import QueueDef
from models.db import is_outage
from models.flow_drafts import trial_numbers
from models.snapshot import SessionRow, Snapshot, iso
from models.tables import (
    Agent,
    AgentSession,
    AgentState,
    Client,
    ConfigGeneration,
    FlowVersion,
    PbxNode,
    Queue,
)

log = structlog.get_logger(__name__)

SAME_CHECK_SECONDS = 0.001


async def nothing() -> None:
    """A ``before_write`` that has nothing to write first."""
    return None


class SessionWriter(Protocol):
    """Where agents' session writes go: the call log's ordered queue (journaled with the
    calls' writes while the database is away)."""

    def register(self, kind: str, applier: Any) -> None: ...
    async def write(self, ops: list[dict[str, Any]]) -> Any: ...
    async def settle(self) -> None: ...


class CRM:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        snapshot: Snapshot | None = None,
        writer: SessionWriter | None = None,
    ) -> None:
        self.sessions = sessions
        # Several nodes: this instance's node; its agents' sessions are that node's.
        self.node: str | None = None
        # The other nodes owned with it (CENTRALA_SITE): one ACD, so their log-ins are ours.
        self.site: tuple[str, ...] = ()
        # What the call path read last, served while the database is away; kept on disk
        # too, for a process that starts while it is away (models.snapshot).
        self.snapshot = snapshot or Snapshot()
        # The call path's read-mostly data, as last read: served from memory while the
        # database's config_generation says nothing changed, and while it is away.
        self._generation: int | None = None
        self._loaded = False
        self._queues: dict[str, QueueDef] | None = self.snapshot.queues()
        self._profiles: dict[str, AgentProfile] = {}
        self._active_flows: dict[str, int] = {}
        self._trials: dict[tuple[str, str], int] = {}  # (flow, test number) -> trial version
        self._checked_at = -1.0  # monotonic time of the last check that found it current
        self.writer = writer
        if writer is not None:
            writer.register("agent_session", apply_agent_session)
            writer.register("agent_state", apply_agent_state)

    async def _current(self) -> None:
        """Make the cached queues, profiles and active flow versions current: one small read
        of config_generation (bumped by triggers on every write of those tables, by any
        process), and all of them read again only when it moved. The number is read before
        the tables, so a change committed in between only causes one more reload. Checks
        within ``SAME_CHECK_SECONDS`` of one that found it current share it (the reads of one
        step of a call, and of calls arriving together): no call can be placed and reach us
        that fast after an edit. Raises what the database raised when it is away."""
        if time.monotonic() - self._checked_at < SAME_CHECK_SECONDS:
            return
        async with self.sessions() as session:
            generation = await session.scalar(select(ConfigGeneration.generation))
            if generation is None or generation != self._generation or not self._loaded:
                await self._load(session)
            # No row (a schema made without the migrations): read every time.
            self._generation = generation
            if generation is not None:
                self._checked_at = time.monotonic()

    async def _load(self, session: AsyncSession) -> None:
        rows = list(await session.scalars(select(Queue)))
        agents = list(await session.scalars(select(Agent).options(selectinload(Agent.memberships))))
        flows = await session.execute(
            select(FlowVersion.name, FlowVersion.version).where(FlowVersion.active)
        )
        self._active_flows = {str(name): int(version) for name, version in flows}
        self._trials = await trial_numbers(session)
        self._profiles = {a.id: _profile(a) for a in agents}
        queues = {row.id: queue_def_of(row) for row in rows}
        self._queues = queues
        self._loaded = True
        # Only on a change: the snapshot is for a process started while the database is away.
        self.snapshot.set_queues(queues)
        self.snapshot.set_agents([(_profile(a), a.endpoint) for a in agents if a.active])
        await self.snapshot.save()

    async def queues(self) -> dict[str, QueueDef]:
        """Queue settings as they are now: an admin's edit applies to the next call. With
        the database away, the settings last read (a call is routed all the same)."""
        try:
            await self._current()
        except Exception as exc:
            if self._queues is None or not is_outage(exc):
                raise
        assert self._queues is not None
        return self._queues

    async def active_flow_version(self, name: str) -> int | None:
        """The number of the active version of flow ``name`` (None: no version active).
        Raises while the database is away (the caller keeps the version it last used)."""
        await self._current()
        return self._active_flows.get(name)

    async def flow_version_for(self, name: str, number: str | None) -> int | None:
        """The version of flow ``name`` a call from ``number`` (E.164) runs: a draft's trial
        version when the number is on its test list, else the active one. Raises while the
        database is away, as ``active_flow_version``."""
        await self._current()
        if number is not None and (trial := self._trials.get((name, number))) is not None:
            return trial
        return self._active_flows.get(name)

    async def agent(self, agent_id: str) -> tuple[AgentProfile, str | None] | None:
        """An active agent's profile and phone. With the database away: as last read."""
        try:
            async with self.sessions() as session:
                agent = await session.get(Agent, agent_id)
                if agent is None or not agent.active:
                    found = None
                else:
                    await session.refresh(agent, ["memberships"])
                    found = _profile(agent), agent.endpoint
        except Exception as exc:
            kept = self.snapshot.agent(agent_id)
            if kept is None or not is_outage(exc):
                raise  # never read: only the database can say (503, not "unknown")
            return kept
        if found is None:
            self.snapshot.drop_agent(agent_id)
        else:
            self.snapshot.set_agent(*found)
        await self.snapshot.save()
        return found

    async def warm_agents(self) -> None:
        """Every active agent's profile and phone into the snapshot, so an agent can log in
        during an outage that began before this process read them."""
        self._checked_at = -1.0
        self._loaded = False  # read them all now, whatever the generation says
        await self._current()

    async def profiles(self, agent_ids: list[str]) -> list[AgentProfile]:
        """Skills and memberships of these agents as they are now (as last read while the
        database is away)."""
        if not agent_ids:
            return []
        try:
            await self._current()
        except Exception as exc:
            # The database is away: the profiles as last read keep the ACD routing.
            if not is_outage(exc):
                raise
            if not self._loaded:
                return self.snapshot.profiles(agent_ids)
        return [self._profiles[a] for a in agent_ids if a in self._profiles]

    # ---- agents' sessions: through the call log's ordered writes ---------------------------

    async def _session_write(self, op: dict[str, Any]) -> None:
        action = op["action"]
        if action == "save":
            self.snapshot.session_saved(SessionRow(**op["row"]))
        elif action == "pause":
            self.snapshot.session_paused(op["agent_id"], op["reason"])
        else:
            self.snapshot.session_dropped(op["agent_id"])
        await self.snapshot.save()
        if self.writer is not None:
            await self.writer.write([op])
            return
        async with self.sessions() as session:
            await apply_agent_session(session, op, False)
            await session.commit()

    async def save_agent_session(
        self,
        agent_id: str,
        *,
        endpoint: str,
        mode: str,
        nailed_channel: str | None = None,
        nailed_bridge: str | None = None,
    ) -> None:
        row = SessionRow(
            agent_id=agent_id,
            endpoint=endpoint,
            mode=str(mode),
            nailed_channel=nailed_channel,
            nailed_bridge=nailed_bridge,
            logged_in_at=datetime.now(UTC).isoformat(),
            node=self.node,
        )
        await self._session_write(
            {"op": "agent_session", "action": "save", "row": asdict(row), "agent_id": agent_id}
        )

    async def pause_agent_session(self, agent_id: str, reason: str | None) -> None:
        await self._session_write(
            {"op": "agent_session", "action": "pause", "agent_id": agent_id, "reason": reason}
        )

    async def drop_agent_session(self, agent_id: str) -> None:
        await self._session_write({"op": "agent_session", "action": "drop", "agent_id": agent_id})

    async def agent_state(
        self, agent_id: str, state: str, reason: str | None, at: datetime
    ) -> None:
        """A change of the agent's state, for the agents report (``core.agent_report``):
        through the same ordered writes as their session, so an outage loses none."""
        op = {
            "op": "agent_state",
            "agent_id": agent_id,
            "state": state,
            "reason": reason,
            "at": at.astimezone(UTC).isoformat(),
        }
        if self.writer is not None:
            await self.writer.write([op])
            return
        async with self.sessions() as session:
            await apply_agent_state(session, op, False)
            await session.commit()

    async def logged_in_elsewhere(self, agent_id: str) -> str | None:
        """The other node whose instance holds the agent's log-in while that node has an
        owner (None: nowhere else, or a node nobody owns, whose log-in this one takes over;
        or the database away, when nobody can tell)."""
        if self.node is None:
            return None
        try:
            async with self.sessions() as session:
                row = (
                    await session.execute(
                        select(AgentSession.node, PbxNode.owner)
                        .join(PbxNode, PbxNode.name == AgentSession.node)
                        .where(AgentSession.agent_id == agent_id)
                    )
                ).first()
        except Exception as exc:
            if not is_outage(exc):
                raise
            return None
        if row is None or row[0] == self.node or row[0] in self.site or row[1] is None:
            return None
        return str(row[0])

    async def agent_sessions(self) -> list[SessionRow]:
        """Who is logged in, for a restarted process: the database once what the journal
        holds is in it; with the database away, as this process (or the one before) last
        read and wrote them."""
        try:
            if self.writer is not None:
                await self.writer.settle()
            query = select(AgentSession).order_by(AgentSession.agent_id)
            if self.node is not None:  # another node's agents are its instance's
                query = query.where(
                    or_(
                        AgentSession.node.in_([self.node, *self.site]),
                        AgentSession.node.is_(None),
                    )
                )
            async with self.sessions() as session:
                rows = list(await session.scalars(query))
        except Exception as exc:
            if not is_outage(exc):
                raise
            kept = self.snapshot.sessions()
            if kept is None:  # never read: nobody is known to be logged in
                log.warning("agent_sessions_unknown_database_down")
                return []
            return kept
        found = [
            SessionRow(
                agent_id=r.agent_id,
                endpoint=r.endpoint,
                mode=r.mode,
                pause_reason=r.pause_reason,
                nailed_channel=r.nailed_channel,
                nailed_bridge=r.nailed_bridge,
                logged_in_at=iso(r.logged_in_at),
                node=r.node,
            )
            for r in rows
        ]
        self.snapshot.set_sessions(found)
        await self.snapshot.save()
        return found


async def apply_agent_session(session: AsyncSession, op: dict[str, Any], replay: bool) -> None:
    """One change of an agent's session. Each sets the row to a state (saved, paused,
    dropped), so replaying the journal's changes in order ends where they ended."""
    action, agent_id = op["action"], op["agent_id"]
    if action == "save":
        row = op["row"]
        if replay and await session.get(Agent, agent_id) is None:
            return  # the agent is gone meanwhile: nothing to keep
        await session.execute(delete(AgentSession).where(AgentSession.agent_id == agent_id))
        logged_in_at = row.get("logged_in_at")
        session.add(
            AgentSession(
                agent_id=agent_id,
                endpoint=row["endpoint"],
                mode=row["mode"],
                nailed_channel=row.get("nailed_channel"),
                nailed_bridge=row.get("nailed_bridge"),
                pause_reason=row.get("pause_reason"),
                logged_in_at=datetime.fromisoformat(logged_in_at)
                if logged_in_at
                else datetime.now(UTC),
                node=row.get("node"),
            )
        )
        await session.flush()
    elif action == "pause":
        await session.execute(
            update(AgentSession)
            .where(AgentSession.agent_id == agent_id)
            .values(pause_reason=op["reason"])
        )
    elif action == "drop":
        await session.execute(delete(AgentSession).where(AgentSession.agent_id == agent_id))
    else:
        raise ValueError(f"unknown agent session change {action!r}")


async def apply_agent_state(session: AsyncSession, op: dict[str, Any], replay: bool) -> None:
    """One state change into the log, whether or not the agent is still there (history
    outlives the agent). Replayed from the journal: not again when the row is there."""
    at = datetime.fromisoformat(op["at"])
    if replay:
        found = await session.scalar(
            select(AgentState.id).where(
                AgentState.agent_id == op["agent_id"],
                AgentState.at == at,
                AgentState.state == op["state"],
            )
        )
        if found is not None:
            return
    session.add(AgentState(agent_id=op["agent_id"], at=at, state=op["state"], reason=op["reason"]))
    await session.flush()


async def queue_settings(session: AsyncSession) -> dict[str, QueueDef]:
    """Every queue's settings as they are now (what ``CRM.queues`` serves a live call)."""
    return {row.id: queue_def_of(row) for row in await session.scalars(select(Queue))}


def queue_def_of(row: Queue) -> QueueDef:
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
