"""core.cluster: when an instance takes a node, renews it, or waits on its owner."""

from __future__ import annotations

import pytest

from core.cluster import Lease, Move, Watch, check_timing, instance_alive, next_move

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
