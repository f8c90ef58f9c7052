"""Who owns an Asterisk node: the lease rules several `serve` instances follow (pure).

Each node is one row (``pbx_nodes``): its owner and a version that goes up with every
renewal. The owner renews it every few seconds. An instance that is not the owner watches
the row and takes the node over when it has seen the same version, by its own clock, for a
whole lease: no clock is compared across machines, and an instance that could not read the
row (the database away) starts watching again, so a database outage never hands a node over
by itself. A node nobody owns (a fresh one, or one whose owner stopped and released it) is
taken at once, and so is a node the row says is this instance's own (the same instance
restarted: its lease is its own).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

# What a call row says of a call closed because its Asterisk node died (every app's calls).
NODE_GONE = "lost with its Asterisk node"


@dataclass(frozen=True)
class Lease:
    """A node's row as read: its owner (None: released) and its version."""

    owner: str | None
    version: int


@dataclass(frozen=True)
class Watch:
    """What a standby saw of a node's lease, and since when (its own monotonic clock)."""

    lease: Lease
    since: float


class Move(StrEnum):
    TAKE = "take"  # claim the node (conditional on the version seen)
    RENEW = "renew"  # it is ours: renew it
    WAIT = "wait"  # another instance holds it and renews it


@dataclass(frozen=True)
class Decision:
    move: Move
    watch: Watch | None  # what to remember for the next look (a standby's)
    takeover_in: float | None = None  # seconds until a silent owner's node is taken


def next_move(
    me: str, lease: Lease | None, watch: Watch | None, now: float, lease_seconds: float
) -> Decision:
    """What instance ``me`` does about a node whose row reads ``lease`` (None: no row yet),
    having last seen ``watch``, at ``now`` (monotonic seconds)."""
    if lease is None or lease.owner is None:
        return Decision(Move.TAKE, None)
    if lease.owner == me:
        return Decision(Move.RENEW, None)
    if watch is None or watch.lease != lease:
        # A renewal since the last look (or the first look): the owner is alive.
        return Decision(Move.WAIT, Watch(lease, now), lease_seconds)
    silent = now - watch.since
    if silent >= lease_seconds:
        return Decision(Move.TAKE, watch)
    return Decision(Move.WAIT, watch, lease_seconds - silent)


def site_moves(
    me: str,
    leases: Mapping[str, Lease | None],
    watches: Mapping[str, Watch | None],
    now: float,
    lease_seconds: float,
) -> dict[str, Decision]:
    """``next_move`` for nodes one instance owns together (one ACD across them), in the
    order of ``leases`` (their names sorted: the same order on every instance). Each is
    watched, but taken only once every node before it is this instance's: two instances
    starting together, or taking over together, cannot end with one node each and wait for
    each other for ever. The first node's lease is thus the site's."""
    decisions: dict[str, Decision] = {}
    holding = True
    for node, lease in leases.items():
        decision = next_move(me, lease, watches.get(node), now, lease_seconds)
        if not holding and decision.move is Move.TAKE:
            # Taking it waits for the nodes before it; the silence seen stays remembered.
            decision = Decision(Move.WAIT, decision.watch, 0.0)
        decisions[node] = decision
        holding = holding and decision.move is not Move.WAIT
    return decisions


def channel_node(channel_id: str, nodes: Iterable[str]) -> str | None:
    """The node whose Asterisk made ``channel_id``: several nodes name their channels after
    themselves (Asterisk's ``systemname``: ``pbx2-1701430000.12``); None if none of
    ``nodes`` (the longest name that fits: ``pbx-2-…`` is pbx-2's, not pbx's)."""
    return max((n for n in nodes if channel_id.startswith(f"{n}-")), key=len, default=None)


def instance_alive(seen_ago: float, renew_seconds: float) -> bool:
    """An instance is listed as alive while its last heartbeat is under three renewals old
    (one late renewal is not a death)."""
    return seen_ago < 3 * renew_seconds


def check_timing(lease_seconds: float, renew_seconds: float) -> None:
    """A lease must outlast a few renewals, or a slow moment of the owner hands its node
    over: ValueError when it does not."""
    if renew_seconds <= 0 or lease_seconds < 3 * renew_seconds:
        raise ValueError(
            f"a node's lease ({lease_seconds:g} s) must be at least three renewals "
            f"({renew_seconds:g} s each) long"
        )
