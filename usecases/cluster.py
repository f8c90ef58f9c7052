"""One Asterisk node's owner among several `serve` instances: the keeper that takes, renews
and releases the node's lease (``core.cluster`` decides, ``models.cluster`` writes), and
says so through ``owned`` (the node's Stasis apps and loops start on it) and ``on_lost``
(another instance has the node: this one must stop acting on it).

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

from core.cluster import Decision, Move, Watch, check_timing, instance_alive, next_move
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
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if me.node is None:
            raise ValueError("a node keeper needs the instance's node")
        check_timing(lease_seconds, renew_seconds)
        self.sessions = sessions
        self.me = me
        self.node: str = me.node
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.on_lost = on_lost
        self.clock = clock
        self.now = now
        self.owned = asyncio.Event()
        self.owned_since: datetime | None = None
        self.owner: str | None = None  # as last read
        self.takeover_in: float | None = None  # a standby's estimate
        self._watch: Watch | None = None
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
                    self._watch = None
                    log.error("node_lease_database_away", node=self.node, role=self.role)
            # The renewal interval, not a wait on work; a standby looks twice as often, so a
            # silent owner's node is taken within a lease and a half-renewal of its death.
            await asyncio.sleep(
                self.renew_seconds if self.owned.is_set() else self.renew_seconds / 2
            )

    async def step(self) -> Decision | None:
        """One look: a standby watches or takes over, the owner renews (or learns it lost the
        node). Returns what was decided (None: renewed as owner)."""
        if self.owned.is_set():
            if not await store.renew(self.sessions, self.node, self.me.id, self.now()):
                self._lose()
            return None
        lease = await store.lease_of(self.sessions, self.node)
        self.owner = None if lease is None else lease.owner
        decision = next_move(self.me.id, lease, self._watch, self.clock(), self.lease_seconds)
        self._watch, self.takeover_in = decision.watch, decision.takeover_in
        if decision.move is Move.RENEW:  # the row says us: this instance restarted
            if await store.take_own(self.sessions, self.node, self.me.id, self.now()):
                self._own(previous=self.me.id)
        elif decision.move is Move.TAKE:
            if await store.take(self.sessions, self.node, self.me.id, lease, self.now()):
                self._own(previous=self.owner)
            else:
                self._watch = None  # another instance moved first: watch it from now
        return decision

    async def release(self) -> None:
        """A stop: the node let go of, for a standby to take at once; the instance marked
        stopped. A database away, or too slow to answer in RELEASE_SECONDS, is not waited
        for: the lease runs out instead, and the stop goes on."""
        try:
            async with asyncio.timeout(RELEASE_SECONDS):
                if self.owned.is_set():
                    await store.release(self.sessions, self.node, self.me.id, self.now())
                    log.info("node_released", node=self.node)
                await store.heartbeat(self.sessions, self.me, self.now(), stopped=True)
        except Exception as exc:
            if not (is_outage(exc) or isinstance(exc, TimeoutError)):
                raise
            log.warning("node_not_released", node=self.node, reason="database away")
        self.owned.clear()

    def _own(self, previous: str | None) -> None:
        self.owned_since = self.now()
        self.owner = self.me.id
        self._watch = None
        self.takeover_in = None
        self.owned.set()
        log.warning("node_owned", node=self.node, instance=self.me.id, previous=previous)

    def _lose(self) -> None:
        log.critical(
            "node_lost",
            node=self.node,
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
