"""The login throttle's decisions (core/throttle.py), the row ids outsiders may name
(core/ids.py) and the API's bearer check (web/errors.bearer_ok): pure, with ``now`` given."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from core.ids import MAX_ROW_ID, row_id
from core.throttle import ACCOUNT_RULE, LoginThrottle, ThrottleRule
from web.errors import bearer_ok

RULE = ThrottleRule(free=3, base_wait=1.0, max_wait=60.0, forget_after=600.0)


def _throttle() -> LoginThrottle:
    return LoginThrottle(account=RULE, address=ThrottleRule(10, 1.0, 60.0, 600.0))


def test_a_few_typos_cost_nothing_then_each_failure_doubles_the_wait() -> None:
    assert [RULE.wait(n) for n in range(7)] == [0, 0, 0, 1, 2, 4, 8]
    assert RULE.wait(1000) == 60.0  # capped, and no float overflow


def test_an_account_is_throttled_after_its_free_failures_from_any_address() -> None:
    throttle = _throttle()
    for n in range(3):
        assert throttle.retry_after("anna", f"10.0.0.{n}", 100.0) == 0
        throttle.failed("anna", f"10.0.0.{n}", 100.0)
    assert throttle.retry_after("anna", "10.0.0.9", 100.0) == 1.0
    assert throttle.retry_after("anna", "10.0.0.9", 100.5) == 0.5
    assert throttle.retry_after("anna", "10.0.0.9", 101.0) == 0
    assert throttle.retry_after("boris", "10.0.0.9", 100.0) == 0  # another account is free


def test_an_address_spraying_many_accounts_is_throttled() -> None:
    throttle = _throttle()
    for n in range(10):
        throttle.failed(f"agent{n}", "203.0.113.7", 50.0)
    assert throttle.retry_after("agent99", "203.0.113.7", 50.0) == 1.0
    assert throttle.retry_after("agent99", "203.0.113.8", 50.0) == 0


def test_failures_are_counted_and_forgotten_after_a_quiet_spell() -> None:
    throttle = _throttle()
    assert throttle.failed("anna", "a", 0.0) == (1, 1)
    assert throttle.failed("anna", "b", 1.0) == (2, 1)
    assert throttle.failed("anna", "b", 601.0 + 1) == (1, 1)  # 600 s without a failure


def test_the_right_password_clears_the_account_but_not_the_address() -> None:
    throttle = _throttle()
    for _ in range(12):
        throttle.failed("anna", "a", 0.0)
    throttle.succeeded("anna", "a", 0.0)
    assert throttle.failed("anna", "b", 0.0) == (1, 1)
    assert throttle.retry_after("boris", "a", 0.0) > 0


def test_made_up_ids_cannot_grow_the_memory_without_bound() -> None:
    throttle = LoginThrottle(max_keys=100)
    for n in range(1000):
        throttle.failed(f"guess{n}", f"10.0.{n // 256}.{n % 256}", float(n))
    assert all(len(records) <= 100 for records in throttle._records.values())
    # The most recent are the ones kept.
    assert throttle.failed("guess999", "x", 999.0)[0] == 2


@given(st.lists(st.floats(min_value=0, max_value=120), max_size=300))
def test_a_guesser_is_heard_only_logarithmically_often_past_the_free_failures(
    times: list[float],
) -> None:
    """However the guesses are timed, the k-th guess heard past the free ones has waited
    1 + 2 + ... + 2^(k-1) seconds: in a span of s seconds at most log2(s + 1) of them."""
    throttle = LoginThrottle()
    heard = 0
    for now in sorted(times):
        if throttle.retry_after("anna", "a", now) > 0:
            continue
        heard += 1
        throttle.failed("anna", "a", now)
    span = max(times, default=0.0) - min(times, default=0.0)
    assert heard <= ACCOUNT_RULE.free + math.log2(span + 1) + 1


def test_row_ids_from_outside() -> None:
    assert row_id("42") == 42
    assert row_id(str(MAX_ROW_ID)) == MAX_ROW_ID
    for bad in ["0", "-1", str(MAX_ROW_ID + 1), "9" * 40, "²", "٣", "1e3", "", " 1", "0x1"]:
        assert row_id(bad) is None, bad


def test_the_api_token_must_come_exactly_as_bearer() -> None:
    assert bearer_ok("Bearer tok", "tok")
    assert not bearer_ok("tok", "tok")  # no scheme: refused (it used to pass)
    assert not bearer_ok("bearer tok", "tok")
    assert not bearer_ok("Bearer  tok", "tok")
    assert not bearer_ok("Bearer tok2", "tok")
    assert not bearer_ok(None, "tok")
    assert not bearer_ok("Bearer \udcff\udcfe", "tok")  # non-UTF-8 bytes, as aiohttp hands them
