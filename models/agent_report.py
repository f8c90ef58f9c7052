"""What the agents report reads (``core.agent_report``): agents' state changes (the one each
was in when the window opens, then the window's) and the calls put through to them, with
their holds, in chunks of ``CHUNK`` calls (a year of calls is never one result set held by
the driver). Imports models.tables and core."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.agent_report import LONGEST_CALL, AgentCall, StateChange, agent_call
from core.calllog_report import HOLD_KINDS, TrailEvent
from models.tables import Agent, AgentState, Call, CallEvent, QueueMember

Sessions = async_sessionmaker[AsyncSession]
CHUNK = 5000


async def agent_names(sessions: Sessions) -> dict[str, str]:
    """Every agent's name by id, the deactivated ones' too."""
    async with sessions() as session:
        return {str(i): str(n) for i, n in await session.execute(select(Agent.id, Agent.name))}


async def _agents(session: AsyncSession, agent: str | None, queue: str | None) -> list[str]:
    if agent is not None:
        return [agent]
    if queue is not None:
        members = select(QueueMember.agent_id).where(QueueMember.queue_id == queue)
        return sorted(str(a) for a in await session.scalars(members))
    return sorted(str(a) for a in await session.scalars(select(Agent.id)))


async def state_changes(
    sessions: Sessions,
    since: datetime,
    until: datetime,
    agent: str | None = None,
    queue: str | None = None,
) -> AsyncIterator[StateChange]:
    """Each agent's state when the window opens (their last change before ``since``: one
    index seek an agent), then the changes in [since, until) in time order. With ``queue``:
    the queue's members; with ``agent``: that agent."""
    async with sessions() as session:
        agents = await _agents(session, agent, queue)
        for who in agents:
            before = (
                await session.execute(
                    select(AgentState.at, AgentState.state, AgentState.reason)
                    .where(AgentState.agent_id == who, AgentState.at < since)
                    .order_by(AgentState.at.desc(), AgentState.id.desc())
                    .limit(1)
                )
            ).first()
            if before is not None:
                yield StateChange(who, before[0], before[1], before[2])
        query = (
            select(AgentState.agent_id, AgentState.at, AgentState.state, AgentState.reason)
            .where(AgentState.at >= since, AgentState.at < until)
            .order_by(AgentState.at, AgentState.id)
            .execution_options(yield_per=CHUNK)
        )
        if agent is not None or queue is not None:
            query = query.where(AgentState.agent_id.in_(agents))
        result = await session.stream(query)
        async for chunk in result.partitions(CHUNK):  # a row at a time costs a switch each
            for who, at, state, reason in chunk:
                yield StateChange(str(who), at, str(state), reason)


async def agent_calls(
    sessions: Sessions,
    since: datetime,
    until: datetime,
    agent: str | None = None,
    queue: str | None = None,
) -> AsyncIterator[AgentCall]:
    """The calls put through to an agent that may reach into [since, until) (started up to
    ``LONGEST_CALL`` before it), each with its holds; a chunk at a time, its holds read in
    one more statement."""
    query = (
        select(
            Call.id,
            Call.agent_id,
            Call.direction,
            Call.connected_at,
            Call.answered_at,
            Call.ended_at,
            Call.talk_seconds,
            Call.disposition,
        )
        .where(
            Call.agent_id.is_not(None),
            Call.started_at >= since - LONGEST_CALL,
            Call.started_at < until,
        )
        .execution_options(yield_per=CHUNK)
    )
    if agent is not None:
        query = query.where(Call.agent_id == agent)
    if queue is not None:
        query = query.where(Call.queue == queue)
    async with sessions() as session, sessions() as trail:
        result = await session.stream(query)
        async for chunk in result.partitions(CHUNK):
            ids = [row[0] for row in chunk]
            holds: dict[str, list[TrailEvent]] = defaultdict(list)
            for call_id, at, kind in await trail.execute(
                select(CallEvent.call_id, CallEvent.at, CallEvent.kind).where(
                    CallEvent.call_id.in_(ids), CallEvent.kind.in_(HOLD_KINDS)
                )
            ):
                holds[call_id].append(TrailEvent(at, kind, {}))
            for call_id, who, direction, connected, answered, ended, talk, code in chunk:
                call = agent_call(
                    str(who),
                    str(direction),
                    connected,
                    answered,
                    ended,
                    talk,
                    holds.get(call_id, ()),
                    code,
                )
                if call is not None:
                    yield call
