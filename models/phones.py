"""Agents' SIP phones in the database: the one source Centrala pushes them to Asterisk from
(ari_app/phones.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.sip import phone_dial
from models.tables import Agent, AgentPhone


@dataclass(frozen=True)
class Phone:
    agent_id: str
    endpoint: str
    realm: str
    password_digest: str


class PhoneStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def agent_exists(self, agent_id: str) -> bool:
        async with self.sessions() as session:
            return await session.get(Agent, agent_id) is not None

    async def put(self, phone: Phone) -> bool:
        """Make or replace the agent's phone (a reset: the old password stops working), and
        make it the agent's phone on file (``PJSIP/<endpoint>``). False: no such agent."""
        async with self.sessions() as session:
            agent = await session.get(Agent, phone.agent_id)
            if agent is None:
                return False
            row = await session.get(AgentPhone, phone.agent_id)
            if row is None:
                row = AgentPhone(agent_id=phone.agent_id)
                session.add(row)
            row.endpoint = phone.endpoint
            row.realm = phone.realm
            row.password_digest = phone.password_digest
            row.updated_at = datetime.now(UTC)
            agent.endpoint = phone_dial(phone.endpoint)
            await session.commit()
            return True

    async def remove(self, agent_id: str) -> Phone | None:
        """Forget the agent's phone; what it was (None: they had none)."""
        async with self.sessions() as session:
            row = await session.get(AgentPhone, agent_id)
            if row is None:
                return None
            gone = _phone(row)
            agent = await session.get(Agent, agent_id)
            if agent is not None and agent.endpoint == phone_dial(row.endpoint):
                agent.endpoint = None
            await session.execute(delete(AgentPhone).where(AgentPhone.agent_id == agent_id))
            await session.commit()
            return gone

    async def all(self) -> list[Phone]:
        """Every active agent's phone."""
        async with self.sessions() as session:
            rows = await session.scalars(
                select(AgentPhone)
                .join(Agent, Agent.id == AgentPhone.agent_id)
                .where(Agent.active.is_(True))
                .order_by(AgentPhone.endpoint)
            )
            return [_phone(row) for row in rows]


def _phone(row: AgentPhone) -> Phone:
    return Phone(row.agent_id, row.endpoint, row.realm, row.password_digest)
