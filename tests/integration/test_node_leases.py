"""Node leases between `serve` instances on SQLite and PostgreSQL (``usecases.cluster``):
one owner at a time; a standby takes a silent owner's node after a whole lease by its own
clock, and the old owner learns it lost the node at its next renewal; a release hands the
node over at once; a restarted instance takes its own node back without waiting; two
instances deciding at once cannot both win."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ari_app.cdr import CdrFile, Cursor, NewRecords, NodeCursor
from core.cluster import Lease, Move
from core.enums import AgentRole
from models import cluster as store
from models.calllog import CallLog
from models.cluster import InstanceSeen
from models.crm import CRM
from models.db import create_engine, session_factory
from models.tables import Agent, AgentSession, Call, Direction
from tests.conftest import Database
from tests.support import free_port
from usecases.cluster import NodeKeeper

LEASE, RENEW = 9.0, 2.0
STARTED = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


@dataclass
class Clock:
    monotonic: float = 1000.0
    lost: list[str] = field(default_factory=list)

    def wall(self) -> datetime:
        return STARTED + timedelta(seconds=self.monotonic - 1000.0)


def keeper(
    database: Database,
    name: str,
    clock: Clock,
    node: str = "pbx1",
    also: tuple[str, ...] = (),
) -> NodeKeeper:
    """Instance ``name`` of ``node`` (and of the nodes ``also`` owned with it)."""
    me = InstanceSeen(name, "host-" + name, f"http://{name}:8080", node, STARTED)
    return NodeKeeper(
        database.sessions,
        me,
        lease_seconds=LEASE,
        renew_seconds=RENEW,
        on_lost=lambda: clock.lost.append(name),
        also=also,
        clock=lambda: clock.monotonic,
        now=clock.wall,
    )


async def test_a_standby_takes_a_silent_owners_node_after_a_whole_lease(
    database: Database,
) -> None:
    clock = Clock()
    a, b = keeper(database, "a", clock), keeper(database, "b", clock)
    assert (await a.step()).move is Move.TAKE  # type: ignore[union-attr]
    assert a.owned.is_set() and a.role == "owner"
    decided = await b.step()
    assert decided is not None and decided.move is Move.WAIT and not b.owned.is_set()

    # The owner renews: the standby keeps waiting however long it watches.
    for _ in range(10):
        clock.monotonic += RENEW
        await a.step()
        await b.step()
    assert not b.owned.is_set() and b.owner == "a"

    # The owner falls silent (killed): the standby takes the node after a whole lease.
    clock.monotonic += LEASE - 0.5
    await b.step()
    assert not b.owned.is_set() and b.takeover_in is not None and b.takeover_in <= 0.5
    clock.monotonic += 0.5
    assert (await b.step()).move is Move.TAKE  # type: ignore[union-attr]
    assert b.owned.is_set()
    assert await store.lease_of(database.sessions, "pbx1") == Lease(
        "b", 1 + 10 + 1
    )  # made, renewed 10 times, taken

    # The old owner, back (it was only frozen), learns at its renewal that it lost the node.
    await a.step()
    assert not a.owned.is_set() and clock.lost == ["a"]
    assert (await store.lease_of(database.sessions, "pbx1")).owner == "b"  # type: ignore[union-attr]


async def test_a_released_node_is_taken_at_once_and_a_restart_takes_its_own(
    database: Database,
) -> None:
    clock = Clock()
    a, b = keeper(database, "a", clock), keeper(database, "b", clock)
    await a.step()
    await b.step()
    await a.release()  # a deploy stops the owner
    assert not a.owned.is_set()
    await b.step()  # no waiting: nobody holds it
    assert b.owned.is_set()

    # b restarts (a new process, the same instance): its own node is its own again at once.
    b_again = keeper(database, "b", clock)
    decided = await b_again.step()
    assert decided is not None and decided.move is Move.RENEW and b_again.owned.is_set()
    assert clock.lost == []


async def test_two_instances_deciding_at_once_cannot_both_win(database: Database) -> None:
    now = STARTED
    # Both saw no row: the first insert wins, the second finds the key taken.
    assert await store.take(database.sessions, "pbx2", "a", None, now)
    assert not await store.take(database.sessions, "pbx2", "b", None, now)
    seen = await store.lease_of(database.sessions, "pbx2")
    assert seen == Lease("a", 1)
    # Both watched version 1 fall silent: one conditional write wins.
    assert await store.take(database.sessions, "pbx2", "b", seen, now)
    assert not await store.take(database.sessions, "pbx2", "c", seen, now)
    assert await store.lease_of(database.sessions, "pbx2") == Lease("b", 2)
    # Only the owner renews or releases it.
    assert not await store.renew(database.sessions, "pbx2", "a", now)
    assert not await store.release(database.sessions, "pbx2", "a", now)
    assert await store.renew(database.sessions, "pbx2", "b", now)


async def test_the_view_lists_nodes_owners_and_instances_alive_or_not(database: Database) -> None:
    clock = Clock()
    a, b = keeper(database, "a", clock), keeper(database, "b", clock)
    for k in (a, b):
        await k.step()
        await store.heartbeat(database.sessions, k.me, clock.wall())
    clock.monotonic += 3 * RENEW  # b says nothing more: no longer listed alive
    await a.step()
    await store.heartbeat(database.sessions, a.me, clock.wall())
    seen = await a.view()
    assert seen["role"] == "owner" and seen["node"] == "pbx1" and seen["instance"] == "a"
    assert [(n["name"], n["owner"]) for n in seen["nodes"]] == [("pbx1", "a")]
    assert seen["nodes"][0]["owned_since"] == STARTED.isoformat()
    assert [(i["id"], i["alive"]) for i in seen["instances"]] == [("a", True), ("b", False)]
    await a.release()
    seen = await b.view()
    assert seen["role"] == "standby"
    assert [(n["name"], n["owner"]) for n in seen["nodes"]] == [("pbx1", None)]
    assert [(i["id"], i["alive"]) for i in seen["instances"]] == [("a", False), ("b", False)]


async def test_each_nodes_owner_adopts_only_its_own_nodes_calls(database: Database) -> None:
    """Two nodes' call logs on one database: each call is written with its node, and a
    node's owner finds only its own node's live calls (another node's channel is not gone,
    it is elsewhere: closing it as gone would end a live call's record)."""
    logs = {
        node: CallLog(database.sessions, "BA", node=node, write_behind_seconds=0.01)
        for node in ("pbx1", "pbx2")
    }
    opened = {}
    for node, log in logs.items():
        call = await log.open_call(
            channel_id=f"{node}-1764662400.1",
            linkedid=None,
            direction=Direction.INBOUND,
            handler="ari",
            caller_number="+38761000901",
            caller_name=None,
            called_number="0800100200",
            started_at=STARTED,
        )
        opened[node] = call.id
    for node, log in logs.items():
        live = await log.live_calls("ari")
        assert [row.call_id for row in live] == [opened[node]]
        assert await log.open_calls("ari") == [(opened[node], f"{node}-1764662400.1")]
        await log.aclose()
    # One instance without nodes (the default) sees every open call.
    everyone = CallLog(database.sessions, "BA")
    assert sorted(c for c, _ in await everyone.open_calls("ari")) == sorted(opened.values())
    async with database.sessions() as session:
        nodes = await session.scalars(select(Call.node).order_by(Call.node))
        assert list(nodes) == ["pbx1", "pbx2"]


async def test_a_stop_with_the_database_away_does_not_wait_to_release() -> None:
    """The owner stops while the database is away: the release is given up (the lease runs
    out for a standby instead), the stop goes on, and the keeper says it owns nothing."""
    engine = create_engine(f"postgresql+asyncpg://centrala:centrala@127.0.0.1:{free_port()}/x")
    try:
        clock = Clock()
        me = InstanceSeen("a", "host-a", "http://a:8080", "pbx1", STARTED)
        owner = NodeKeeper(
            session_factory(engine), me, lease_seconds=LEASE, renew_seconds=RENEW,
            on_lost=lambda: clock.lost.append("a"), clock=lambda: clock.monotonic, now=clock.wall,
        )  # fmt: skip
        owner.owned.set()  # it owned the node when the database went
        await owner.release()
        assert not owner.owned.is_set() and clock.lost == []
    finally:
        await engine.dispose()


async def test_the_cdr_read_so_far_is_the_nodes_and_only_its_owner_moves_it(
    database: Database, tmp_path: Path
) -> None:
    """The standby that takes a node over reads its CDR file from where the owner stopped
    (the calls that heard the apology while nobody owned the node are recorded too), and an
    owner taken over while frozen moves nobody's place."""
    cdr = tmp_path / "centrala.csv"
    cdr.write_text("")
    assert await store.take(database.sessions, "pbx1", "a", None, STARTED)
    first = CdrFile(cdr, NodeCursor(database.sessions, "pbx1", "a"))
    assert await first.read_new() == NewRecords([], Cursor(cdr.stat().st_ino, 0), 0)
    assert await store.cdr_cursor(database.sessions, "pbx1") == (cdr.stat().st_ino, 0)
    with cdr.open("a") as f:
        f.write("one record's line, not ours\n")
    found = await first.read_new()
    assert found is not None and found.rejected == 1
    await first.done(found.cursor)
    at = (cdr.stat().st_ino, cdr.stat().st_size)
    assert await store.cdr_cursor(database.sessions, "pbx1") == at
    # Taken over: the new owner starts where "a" stopped, and "a" can no longer move it.
    lease = await store.lease_of(database.sessions, "pbx1")
    assert await store.take(database.sessions, "pbx1", "b", lease, STARTED)
    with cdr.open("a") as f:
        f.write("a line written while nobody owned the node\n")
    second = CdrFile(cdr, NodeCursor(database.sessions, "pbx1", "b"))
    found = await second.read_new()
    assert found is not None and found.rejected == 1  # that line, not the first one again
    with pytest.raises(RuntimeError, match="no longer ours"):
        await first.done(Cursor(cdr.stat().st_ino, 0))
    assert await store.cdr_cursor(database.sessions, "pbx1") == at


async def test_an_agents_log_in_is_its_nodes_and_another_node_refuses_it_while_owned(
    database: Database,
) -> None:
    """Each node's instance runs its own ACD: a restarted instance logs in again only its own
    node's agents, and an agent logged in on a node that has an owner cannot log in on
    another (two ACDs would offer them two callers at once); once that node is released,
    the log-in may move."""
    async with database.sessions() as session, session.begin():
        session.add(Agent(id="ana-n", name="Ana", role=AgentRole.AGENT))
    first, second = CRM(database.sessions), CRM(database.sessions)
    first.node, second.node = "pbx1", "pbx2"
    assert await store.take(database.sessions, "pbx1", "a", None, STARTED)
    assert await second.logged_in_elsewhere("ana-n") is None  # nowhere yet
    await first.save_agent_session("ana-n", endpoint="PJSIP/ana-n", mode="per_call")
    assert [r.agent_id for r in await first.agent_sessions()] == ["ana-n"]
    assert [r.node for r in await first.agent_sessions()] == ["pbx1"]
    assert await second.agent_sessions() == []  # not pbx2's to log in again
    assert await first.logged_in_elsewhere("ana-n") is None  # its own node
    assert await second.logged_in_elsewhere("ana-n") == "pbx1"
    assert await store.release(database.sessions, "pbx1", "a", STARTED)
    assert await second.logged_in_elsewhere("ana-n") is None  # nobody holds pbx1
    # A log-in from before several nodes (no node) is anyone's to take up.
    async with database.sessions() as session, session.begin():
        row = await session.get(AgentSession, "ana-n")
        assert row is not None
        row.node = None
    assert [r.agent_id for r in await second.agent_sessions()] == ["ana-n"]
