"""One Asterisk node's owner among several `serve` instances: the keeper that takes, renews
and releases the node's lease (``core.cluster`` decides, ``models.cluster`` writes), and
says so through ``owned`` (the node's Stasis apps and loops start on it) and ``on_lost``
(another instance has the node: this one must stop acting on it).

An instance may own several nodes together (``CENTRALA_SITE``: one ACD across them): it is
their owner only while it holds every one, and takes them in their order
(``core.cluster.site_moves``).

While the database is away nothing changes hands: the owner keeps its node (no instance can
take it without the database), a standby starts watching again once it reads the row.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from core.cluster import Decision, Lease, Move, Watch, check_timing, instance_alive, site_moves
from models import cluster as store
from models.cluster import InstanceRow, InstanceSeen, NodeRow, Sessions
from models.db import is_outage

log = structlog.get_logger(__name__)

RELEASE_SECONDS = 5.0  # a stop waits this long at most to hand the node over


class NodeKeeper:
    def __init__(
        self,
        sessions: Sessions,
        me: InstanceSeen,
        *,
        lease_seconds: float,
        renew_seconds: float,
        on_lost: Callable[[], None],
        also: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if me.node is None:
            raise ValueError("a node keeper needs the instance's node")
        check_timing(lease_seconds, renew_seconds)
        self.sessions = sessions
        self.me = me
        self.node: str = me.node
        # Every node owned together, in the order they are taken (the same on every instance).
        self.nodes: tuple[str, ...] = tuple(sorted({me.node, *also}))
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.on_lost = on_lost
        self.clock = clock
        self.now = now
        self.owned = asyncio.Event()
        self.owned_since: datetime | None = None
        self.owner: str | None = None  # as last read
        self.takeover_in: float | None = None  # a standby's estimate
        self._watches: dict[str, Watch | None] = {}
        self._blocked_by: tuple[str, str | None] | None = None  # said once (_held_elsewhere)
        self._database_away = False
        # The nodes and instances as the last look read them (/status answers from it).
        self._listed: tuple[list[NodeRow], list[InstanceRow]] | None = None
        # Told them after each look (the wallboard's card).
        self.on_view: list[Callable[[dict[str, Any]], None]] = []

    @property
    def role(self) -> str:
        return "owner" if self.owned.is_set() else "standby"

    async def run(self) -> None:
        """Looks at the lease every renewal interval (a standby: every half) until
        cancelled."""
        while True:
            try:
                await self.step()
                await store.heartbeat(self.sessions, self.me, self.now())
                seen = await self.view()
                for listener in self.on_view:
                    listener(seen)
                if self._database_away:
                    self._database_away = False
                    log.warning("node_lease_database_back", node=self.node, role=self.role)
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("node_lease_failed", node=self.node)
                elif not self._database_away:
                    self._database_away = True
                    # Nobody can take the node meanwhile; a standby starts watching anew.
                    self._watches = {}
                    log.error("node_lease_database_away", node=self.node, role=self.role)
            # The renewal interval, not a wait on work; a standby looks twice as often, so a
            # silent owner's node is taken within a lease and a half-renewal of its death.
            await asyncio.sleep(
                self.renew_seconds if self.owned.is_set() else self.renew_seconds / 2
            )

    async def step(self) -> Decision | None:
        """One look: a standby watches or takes over, the owner renews (or learns it lost a
        node). Returns what was decided for the first node not yet this instance's (None:
        renewed as owner)."""
        if self.owned.is_set():
            for node in self.nodes:
                if not await store.renew(self.sessions, node, self.me.id, self.now()):
                    self._lose(node)
                    break
            return None
        leases: dict[str, Lease | None] = {}
        for node in self.nodes:
            leases[node] = await store.lease_of(self.sessions, node)
        decisions = site_moves(self.me.id, leases, self._watches, self.clock(), self.lease_seconds)
        self._watches = {node: d.watch for node, d in decisions.items()}
        previous: str | None = None
        first: Decision | None = None
        for node, decision in decisions.items():
            lease = leases[node]
            if first is None and decision.move is not Move.RENEW:
                # What /status shows: the node that decides when this instance owns them all.
                first = decision
                self.owner = None if lease is None else lease.owner
                self.takeover_in = max(
                    (d.takeover_in or 0.0 for d in decisions.values()), default=0.0
                )
            if decision.move is Move.RENEW:  # the row says us: this instance restarted
                if not await store.take_own(self.sessions, node, self.me.id, self.now()):
                    break
            elif decision.move is Move.TAKE:
                if not await store.take(self.sessions, node, self.me.id, lease, self.now()):
                    self._watches[node] = None  # another instance moved first: watch it anew
                    break
                previous = previous or (None if lease is None else lease.owner)
            else:
                self._held_elsewhere(node, lease, held=node != self.nodes[0])
                break
        else:
            self._own(previous=previous if first is not None else self.me.id)
        return first or decisions[self.nodes[0]]

    def _held_elsewhere(self, node: str, lease: Lease | None, *, held: bool) -> None:
        """Said once per holder: a later node of the site is another instance's while this
        one holds the nodes before it. For a moment in a takeover (its dead owner's last
        renewal seen a look later); for good, neither serves the site (another configuration
        owns that node alone: every instance of a site must list the same nodes)."""
        holder = None if lease is None else lease.owner
        if held and holder is not None and (node, holder) != self._blocked_by:
            log.warning(
                "site_node_held_elsewhere",
                node=node,
                holder=holder,
                hint="the site is served only once one instance holds all its nodes: every "
                "instance of a site must list the same CENTRALA_SITE",
            )
        self._blocked_by = (node, holder) if held else None

    async def release(self) -> None:
        """A stop: the node let go of, for a standby to take at once; the instance marked
        stopped. A database away, or too slow to answer in RELEASE_SECONDS, is not waited
        for: the lease runs out instead, and the stop goes on."""
        try:
            async with asyncio.timeout(RELEASE_SECONDS):
                # Released whether owned or half taken: a node held is no one else's.
                for node in self.nodes:
                    if await store.release(self.sessions, node, self.me.id, self.now()):
                        log.info("node_released", node=node)
                await store.heartbeat(self.sessions, self.me, self.now(), stopped=True)
        except Exception as exc:
            if not (is_outage(exc) or isinstance(exc, TimeoutError)):
                raise
            log.warning("node_not_released", node=self.node, reason="database away")
        self.owned.clear()

    def _own(self, previous: str | None) -> None:
        self.owned_since = self.now()
        self.owner = self.me.id
        self._watches = {}
        self.takeover_in = None
        self.owned.set()
        log.warning(
            "node_owned",
            node=self.node,
            nodes=list(self.nodes),
            instance=self.me.id,
            previous=previous,
        )

    def _lose(self, node: str) -> None:
        log.critical(
            "node_lost",
            node=node,
            instance=self.me.id,
            hint="another instance took the node over (this one was silent for a whole lease)",
        )
        self.owned.clear()
        self.owned_since = None
        self.on_lost()

    async def view(self) -> dict[str, Any]:
        """Every node and instance read again, and ``current()``."""
        self._listed = await store.view(self.sessions)
        return self.current()

    def current(self) -> dict[str, Any]:
        """This instance's role now, and every node and instance as the last look read them
        (a renewal ago at most; None before the first look): for /status and the wallboard,
        without a database read per request."""
        listed = {
            "instance": self.me.id,
            "node": self.node,
            "nodes_owned": list(self.nodes),
            "role": self.role,
            "owned_since": _iso(self.owned_since),
            "takeover_in": None if self.takeover_in is None else round(self.takeover_in, 1),
            "nodes": None,
            "instances": None,
        }
        if self._listed is None:
            return listed
        nodes, instances = self._listed
        now = self.now()
        return {
            **listed,
            "nodes": [
                {
                    "name": n.name,
                    "owner": n.owner,
                    "owned_since": _iso(n.owned_since),
                    "renewed_at": _iso(n.renewed_at),
                }
                for n in nodes
            ],
            "instances": [
                {
                    "id": i.id,
                    "host": i.host,
                    "web_url": i.web_url,
                    "node": i.node,
                    "started_at": _iso(i.started_at),
                    "seen_at": _iso(i.seen_at),
                    "alive": i.stopped_at is None
                    and instance_alive((now - i.seen_at).total_seconds(), self.renew_seconds),
                }
                for i in instances
            ],
        }


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()
