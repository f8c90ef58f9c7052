"""The database outage's state machine and backoff (pure, ``now`` passed in)."""

from __future__ import annotations

from core.outage import DbHealth, Outage, backoff


def test_backoff_doubles_from_a_quarter_second_and_stops_at_five() -> None:
    assert [backoff(n) for n in range(1, 8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff(0) == 0.0
    assert backoff(10_000) == 5.0  # a long outage neither overflows nor stops retrying


def test_an_outage_is_said_once_when_it_starts_and_once_when_it_ends() -> None:
    outage = Outage()
    assert outage.failed(100.0) is True  # the first failure starts it: log it
    assert [outage.failed(t) for t in (101.0, 102.0, 104.0)] == [False, False, False]
    assert outage.health is DbHealth.DOWN and outage.attempts == 4
    outage.draining()
    assert outage.health is DbHealth.DRAINING
    assert outage.recovered(160.0) == 60.0  # how long it lasted, from the first failure
    assert outage.health is DbHealth.UP and outage.attempts == 0
    assert outage.recovered(161.0) is None  # no outage, nothing to say


def test_retry_is_due_after_the_backoff_and_only_while_down() -> None:
    outage = Outage()
    assert not outage.due(0.0)  # up: nothing to retry
    outage.failed(10.0)
    assert not outage.due(10.1) and outage.due(10.25)
    outage.failed(10.25)  # the retry failed: wait twice as long
    assert not outage.due(10.5) and outage.due(10.75)
    outage.draining()
    assert not outage.due(99.0)  # a drain under way is not retried on top of itself
