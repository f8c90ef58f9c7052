"""core.cluster: when an instance takes a node, renews it, or waits on its owner; nodes owned
together taken in order; which node a channel is on."""

from __future__ import annotations

import pytest

from core.cluster import (
    Lease,
    Move,
    Watch,
    channel_node,
    check_timing,
    instance_alive,
    next_move,
    site_moves,
)

LEASE = 9.0


def test_a_node_with_no_row_or_released_is_taken_at_once() -> None:
    assert next_move("b", None, None, 0.0, LEASE).move is Move.TAKE
    assert next_move("b", Lease(None, 7), None, 0.0, LEASE).move is Move.TAKE


def test_a_node_the_row_says_is_mine_is_renewed_without_waiting() -> None:
    decided = next_move("a", Lease("a", 7), None, 0.0, LEASE)
    assert decided.move is Move.RENEW and decided.watch is None


def test_a_standby_waits_while_the_owner_renews() -> None:
    first = next_move("b", Lease("a", 7), None, 100.0, LEASE)
    assert first.move is Move.WAIT and first.watch == Watch(Lease("a", 7), 100.0)
    assert first.takeover_in == LEASE
    later = next_move("b", Lease("a", 8), first.watch, 108.0, LEASE)  # renewed meanwhile
    assert later.move is Move.WAIT and later.watch == Watch(Lease("a", 8), 108.0)


def test_a_silent_owner_loses_its_node_after_a_whole_lease_by_the_standbys_clock() -> None:
    watch = Watch(Lease("a", 7), 100.0)
    almost = next_move("b", Lease("a", 7), watch, 100.0 + LEASE - 0.5, LEASE)
    assert almost.move is Move.WAIT and almost.takeover_in == pytest.approx(0.5)
    due = next_move("b", Lease("a", 7), watch, 100.0 + LEASE, LEASE)
    assert due.move is Move.TAKE and due.watch == watch


def test_a_new_owner_restarts_the_watch() -> None:
    watch = Watch(Lease("a", 7), 100.0)
    decided = next_move("c", Lease("b", 8), watch, 200.0, LEASE)
    assert decided.move is Move.WAIT and decided.watch == Watch(Lease("b", 8), 200.0)


def test_instances_are_alive_for_three_renewals() -> None:
    assert instance_alive(5.9, 2.0)
    assert not instance_alive(6.0, 2.0)


def test_a_lease_shorter_than_three_renewals_is_refused() -> None:
    check_timing(9.0, 2.0)
    with pytest.raises(ValueError, match="three renewals"):
        check_timing(5.0, 2.0)
    with pytest.raises(ValueError, match="three renewals"):
        check_timing(5.0, 0)


def test_nodes_owned_together_are_taken_in_order_each_once_those_before_it_are_mine() -> None:
    # Two instances starting together on a fresh database: b lost the race for pbx1 to a.
    both = site_moves("b", {"pbx1": Lease("a", 1), "pbx2": None}, {}, 0.0, LEASE)
    assert both["pbx1"].move is Move.WAIT
    assert both["pbx2"].move is Move.WAIT  # free, but not b's before pbx1 is
    mine = site_moves("a", {"pbx1": Lease("a", 1), "pbx2": None}, {}, 0.0, LEASE)
    assert [d.move for d in mine.values()] == [Move.RENEW, Move.TAKE]


def test_a_silent_sites_nodes_are_watched_together_and_taken_in_one_look() -> None:
    leases = {"pbx1": Lease("a", 7), "pbx2": Lease("a", 5)}
    first = site_moves("b", leases, {}, 100.0, LEASE)
    assert [d.move for d in first.values()] == [Move.WAIT, Move.WAIT]
    watches = {n: d.watch for n, d in first.items()}
    assert all(w is not None for w in watches.values())  # pbx2's silence is timed already
    due = site_moves("b", leases, watches, 100.0 + LEASE, LEASE)
    assert [d.move for d in due.values()] == [Move.TAKE, Move.TAKE]


def test_a_later_node_taken_waits_while_an_earlier_ones_owner_lives() -> None:
    # A single-node instance holds pbx1 and renews; pbx2's owner fell silent.
    watches = {"pbx2": Watch(Lease("c", 3), 100.0)}
    leases = {"pbx1": Lease("a", 9), "pbx2": Lease("c", 3)}
    decided = site_moves("b", leases, watches, 100.0 + LEASE, LEASE)
    assert decided["pbx1"].move is Move.WAIT and decided["pbx2"].move is Move.WAIT
    assert decided["pbx2"].watch == watches["pbx2"]  # the silence seen is kept


def test_a_channel_is_on_the_node_its_id_names() -> None:
    nodes = ["pbx", "pbx-2"]
    assert channel_node("pbx-2-1701430000.12", nodes) == "pbx-2"
    assert channel_node("pbx-1701430000.12", nodes) == "pbx"
    assert channel_node("agent-1a2b", nodes) is None
    assert channel_node("pbx21-1701430000.12", ["pbx2"]) is None
