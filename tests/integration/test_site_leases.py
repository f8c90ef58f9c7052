"""Nodes one instance owns together (``CENTRALA_SITE``: one ACD across them), on SQLite and
PostgreSQL: two instances of one site starting together end with one owning every node and
the other none; the owner's death hands every node to the standby in one lease; a stop
releases them all; an instance holding only some nodes owns none."""

from __future__ import annotations

from structlog.testing import capture_logs

from core.cluster import Lease
from core.enums import AgentRole
from models import cluster as store
from models.crm import CRM
from models.tables import Agent
from tests.conftest import Database
from tests.integration.test_node_leases import LEASE, RENEW, STARTED, Clock, keeper
from usecases.cluster import NodeKeeper

SITE = ("pbx1", "pbx2")


def site_keeper(database: Database, name: str, home: str, clock: Clock) -> NodeKeeper:
    """An instance whose own node is ``home``, owning the site's other node with it."""
    return keeper(database, name, clock, home, tuple(n for n in SITE if n != home))


async def owners(database: Database) -> list[str | None]:
    leases = [await store.lease_of(database.sessions, n) for n in SITE]
    return [None if lease is None else lease.owner for lease in leases]


async def test_two_instances_of_a_site_starting_together_end_with_one_owning_all(
    database: Database,
) -> None:
    clock = Clock()
    # Each instance's own node is another, yet both take the site's first node first.
    a, b = site_keeper(database, "a", "pbx1", clock), site_keeper(database, "b", "pbx2", clock)
    assert a.nodes == b.nodes == SITE
    for _ in range(5):
        await b.step()
        await a.step()
        clock.monotonic += RENEW / 2
    assert b.owned.is_set() and not a.owned.is_set()
    assert await owners(database) == ["b", "b"]
    assert a.current()["role"] == "standby" and a.owner == "b"


async def test_a_dead_sites_owner_hands_every_node_over_in_one_lease(database: Database) -> None:
    clock = Clock()
    a, b = site_keeper(database, "a", "pbx1", clock), site_keeper(database, "b", "pbx2", clock)
    await a.step()
    assert a.owned.is_set()
    await b.step()
    for _ in range(3):  # a renews every node; b watches them all
        clock.monotonic += RENEW
        await a.step()
        await b.step()
    assert not b.owned.is_set()
    renewed = await store.lease_of(database.sessions, "pbx2")
    assert renewed == Lease("a", 1 + 3)  # pbx2's lease is renewed with pbx1's

    # a is killed: after one whole lease by b's clock, b takes both nodes in one look.
    clock.monotonic += LEASE - RENEW / 2
    await b.step()
    assert not b.owned.is_set()
    clock.monotonic += RENEW / 2
    await b.step()
    assert b.owned.is_set() and await owners(database) == ["b", "b"]

    # a was only frozen: its renewal finds the site gone, and it stops.
    await a.step()
    assert not a.owned.is_set() and clock.lost == ["a"]


async def test_a_stop_releases_every_node_and_the_standby_takes_them_at_once(
    database: Database,
) -> None:
    clock = Clock()
    a, b = site_keeper(database, "a", "pbx1", clock), site_keeper(database, "b", "pbx2", clock)
    await a.step()
    await b.step()
    await a.release()
    assert await owners(database) == [None, None]
    await b.step()
    assert b.owned.is_set() and await owners(database) == ["b", "b"]


async def test_an_instance_holding_only_some_of_the_nodes_owns_none(database: Database) -> None:
    clock = Clock()
    # An instance of another configuration holds pbx2 alone and renews it.
    assert await store.take(database.sessions, "pbx2", "lone", None, clock.wall())
    a = site_keeper(database, "a", "pbx1", clock)
    with capture_logs() as said:
        await a.step()
        await a.step()
    assert not a.owned.is_set()  # pbx1 is held, pbx2 is not: the site is not served
    assert await owners(database) == ["a", "lone"]
    told = [e for e in said if e["event"] == "site_node_held_elsewhere"]
    assert [(e["node"], e["holder"]) for e in told] == [("pbx2", "lone")]  # once
    # The lone instance stops: a owns the site at its next look.
    assert await store.release(database.sessions, "pbx2", "lone", clock.wall())
    clock.monotonic += RENEW / 2
    await a.step()
    assert a.owned.is_set() and await owners(database) == ["a", "a"]


async def test_a_sites_log_ins_are_every_site_instances_to_take_up(database: Database) -> None:
    """One ACD across the site's nodes: an agent logged in by the instance whose own node is
    pbx1 is logged in again by a standby whose own node is pbx2 when it takes the site over,
    and is not refused by it as logged in elsewhere."""
    async with database.sessions() as session, session.begin():
        session.add(Agent(id="ana-s", name="Ana", role=AgentRole.AGENT))
    a, b, lone = CRM(database.sessions), CRM(database.sessions), CRM(database.sessions)
    (a.node, a.site), (b.node, b.site) = ("pbx1", ("pbx2",)), ("pbx2", ("pbx1",))
    lone.node = "pbx3"  # an instance of another site
    assert await store.take(database.sessions, "pbx1", "a", None, STARTED)
    await a.save_agent_session("ana-s", endpoint="PJSIP/ana-s", mode="per_call")
    assert [r.agent_id for r in await b.agent_sessions()] == ["ana-s"]
    assert await b.logged_in_elsewhere("ana-s") is None
    assert await lone.agent_sessions() == []
    assert await lone.logged_in_elsewhere("ana-s") == "pbx1"
