"""Agents' phones in the database (models/phones.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from models.phones import Phone, PhoneStore
from models.tables import Agent, AgentRole
from tests.conftest import Database


async def _agents(db: Database, *ids: str, active: bool = True) -> None:
    async with db.sessions() as session:
        for agent_id in ids:
            session.add(Agent(id=agent_id, name=agent_id, role=AgentRole.AGENT, active=active))
        await session.commit()


async def _endpoint(db: Database, agent_id: str) -> str | None:
    async with db.sessions() as session:
        agent = await session.get(Agent, agent_id)
        assert agent is not None
        return agent.endpoint


async def test_a_phone_becomes_the_agents_phone_on_file_and_a_reset_replaces_it(
    database: Database,
) -> None:
    await _agents(database, "101")
    store = PhoneStore(database.sessions)
    assert await store.put(Phone("101", "101", "centrala", "md5:aaa"))
    assert await _endpoint(database, "101") == "PJSIP/101"
    assert await store.put(Phone("101", "101", "centrala", "md5:bbb"))
    assert await store.all() == [Phone("101", "101", "centrala", "md5:bbb")]


async def test_no_phone_for_an_unknown_agent(database: Database) -> None:
    assert not await PhoneStore(database.sessions).put(Phone("nobody", "nobody", "c", "md5:a"))


async def test_inactive_agents_phones_are_not_pushed(database: Database) -> None:
    await _agents(database, "101")
    await _agents(database, "102", active=False)
    store = PhoneStore(database.sessions)
    for agent in ("101", "102"):
        assert await store.put(Phone(agent, agent, "centrala", "md5:x"))
    assert [p.agent_id for p in await store.all()] == ["101"]


async def test_removing_a_phone_clears_the_phone_on_file(database: Database) -> None:
    await _agents(database, "101")
    store = PhoneStore(database.sessions)
    assert await store.put(Phone("101", "101", "centrala", "md5:aaa"))
    gone = await store.remove("101")
    assert gone is not None and gone.endpoint == "101"
    assert await _endpoint(database, "101") is None
    assert await store.all() == []
    assert await store.remove("101") is None
