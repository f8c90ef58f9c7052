"""The pure decisions of manual outbound calls (core/outbound.py), the trunk's call rate
(core.throttle.CallRate), the API's check of a call request, and the settings they come from."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centrala.pbx import render_generated_config
from centrala.settings import Settings
from core.acd import AgentStatus
from core.errors import AgentDeskError
from core.outbound import (
    OutboundRefused,
    agent_of_channel,
    check_call,
    leg_ids,
    outcome,
    parse_leg,
    presented_number,
)
from core.sip import Trunk, numbers, render_numbers
from core.surveys.campaign import CampaignSettings
from core.throttle import CallRate
from dialplan.model import Calendar
from web.api import check_call_request

NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)  # a Monday


def allowed(raw: str, **kw: object) -> str:
    args: dict[str, object] = {
        "region": "BA",
        "agent_status": AgentStatus.AVAILABLE,
        "origin": "desk",
        "do_not_call": {},
        "window": None,
        "now": NOW,
    }
    args.update(kw)
    return check_call(raw, **args).number  # type: ignore[arg-type]


def refused(raw: str, **kw: object) -> str:
    with pytest.raises(OutboundRefused) as caught:
        allowed(raw, **kw)
    return caught.value.reason


@pytest.mark.parametrize(
    "dialled", ["061 444 555", "+387 61 444 555", "0038761444555", "38761444555", "061/444-555"]
)
def test_a_number_is_dialled_in_e164_however_it_was_written(dialled: str) -> None:
    assert allowed(dialled) == "+38761444555"


@pytest.mark.parametrize("dialled", ["12", "12345", "112", "", "061x444555", "+" + "9" * 30, "0"])
def test_malformed_numbers_short_codes_and_junk_are_refused_as_bad_numbers(dialled: str) -> None:
    assert refused(dialled) == "bad_number"


def test_a_number_on_the_do_not_call_list_is_refused_until_its_entry_lapses() -> None:
    dnc = {"+38761444555": NOW + timedelta(days=1)}
    assert refused("061444555", do_not_call=dnc) == "do_not_call"
    assert allowed("061444555", do_not_call=dnc, now=NOW + timedelta(days=2)) == "+38761444555"
    assert refused("061444555", do_not_call={"+38761444555": None}) == "do_not_call"


def test_the_calling_window_holds_when_one_is_set() -> None:
    window = Calendar(timezone="UTC", weekly={"mon": ["09:00-17:00"]})
    assert allowed("061444555", window=window) == "+38761444555"
    assert refused("061444555", window=window, now=NOW.replace(hour=18)) == (
        "outside_calling_window"
    )
    assert refused("061444555", window=window, now=NOW + timedelta(days=1)) == (
        "outside_calling_window"
    )


def test_who_may_call_from_the_desk_and_from_the_phone() -> None:
    for status in (None, AgentStatus.LOGGED_OUT):
        assert refused("061444555", agent_status=status) == "not_logged_in"
        # Their own desk phone works without a log-in: the phone says who they are.
        assert allowed("061444555", agent_status=status, origin="phone") == "+38761444555"
    for status in (AgentStatus.ON_CALL, AgentStatus.OFFERED):
        assert refused("061444555", agent_status=status) == "agent_busy"
        assert refused("061444555", agent_status=status, origin="phone") == "agent_busy"
    for status in (AgentStatus.AVAILABLE, AgentStatus.PAUSED, AgentStatus.WRAP_UP):
        assert allowed("061444555", agent_status=status) == "+38761444555"


def test_refusals_carry_a_stable_id_and_status_for_the_api() -> None:
    with pytest.raises(OutboundRefused) as caught:
        allowed("061444555", do_not_call={"+38761444555": None})
    assert caught.value.error_id == "do_not_call" and caught.value.status == 409
    assert caught.value.details == {"number": "+38761444555"}
    with pytest.raises(OutboundRefused) as bad:
        allowed("\x00evil\n")
    assert bad.value.status == 422 and "\n" not in str(bad.value)


def test_the_presented_number_is_the_queues_then_the_agents_first_queue_with_one() -> None:
    numbers = {"general": "033555009", "new_clients": "033555001"}
    agent_queues = ["sales", "new_clients", "general"]
    pick = lambda queue: presented_number(  # noqa: E731
        queue=queue, agent_queues=agent_queues, queue_numbers=numbers, default="033555000"
    )
    assert pick("general") == ("033555009", "general")
    assert pick(None) == ("033555001", "new_clients")
    assert pick("sales") == ("033555000", "sales")  # a queue without a number of its own
    assert pick("finance") == ("033555001", "new_clients")  # not theirs: ignored
    assert presented_number(
        queue=None, agent_queues=[], queue_numbers=numbers, default="033555000"
    ) == ("033555000", None)


def test_the_agent_is_known_by_their_phones_channel_only() -> None:
    assert agent_of_channel("PJSIP/101-0000002a") == "101"
    assert agent_of_channel("PJSIP/ana.b-00000001") == "ana.b"
    for name in ("PJSIP/carrier", "Local/101@x-0001;1", "SIP/101-0001", "PJSIP/-0000002a", ""):
        assert agent_of_channel(name) is None


@given(st.text(alphabet="0123456789abcdef", min_size=1, max_size=32))
def test_a_calls_two_legs_are_told_apart_and_back(key: str) -> None:
    agent, client = leg_ids(key)
    assert agent != client
    assert parse_leg(agent) == (key, "agent") and parse_leg(client) == (key, "client")


def test_other_channels_are_not_legs() -> None:
    for channel in ("1796096277.0", "survey-1-2-3", "outbound-x", "far-abc-a"):
        assert parse_leg(channel) is None


def test_how_a_manual_call_ended() -> None:
    assert outcome(connected=True, cause=16) == "answered"
    assert outcome(connected=False, cause=17) == "busy"
    assert outcome(connected=False, cause=19) == "no_answer"
    assert outcome(connected=False, cause=1) == "invalid_number"
    assert outcome(connected=False, cause=34) == "failed"
    assert outcome(connected=False, cause=0, dial_status="BUSY") == "busy"


# ---- the trunk's call rate -----------------------------------------------------------------


def test_calls_over_the_rate_are_spaced_by_its_interval() -> None:
    rate = CallRate(2)
    assert [rate.reserve(0.0, 10) for _ in range(4)] == [0.0, 0.5, 1.0, 1.5]
    assert rate.reserve(10.0, 10) == 0.0  # idle long enough: no wait


def test_a_wait_longer_than_allowed_is_refused_and_books_nothing() -> None:
    rate = CallRate(1)
    assert rate.reserve(0.0, 1.5) == 0.0
    assert rate.reserve(0.0, 1.5) == 1.0
    assert rate.reserve(0.0, 1.5) is None
    assert rate.reserve(0.0, 5) == 2.0  # the refused one took no slot


def test_a_burst_goes_back_to_back_then_the_rate_holds() -> None:
    rate = CallRate(2, burst=3)
    assert [rate.reserve(0.0, 10) for _ in range(5)] == [0.0, 0.0, 0.0, 0.5, 1.0]


@given(
    st.floats(min_value=0.5, max_value=50),
    st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=40),
)
def test_no_two_booked_moments_are_closer_than_the_interval(
    per_second: float, gaps: list[float]
) -> None:
    rate, now, moments = CallRate(per_second), 0.0, []
    for gap in gaps:
        now += gap
        wait = rate.reserve(now, 1e9)
        assert wait is not None and wait >= 0
        moments.append(now + wait)
    interval = 1 / per_second
    assert all(b - a >= interval - 1e-9 for a, b in itertools.pairwise(moments))


def test_a_rate_needs_a_positive_limit() -> None:
    with pytest.raises(ValueError):
        CallRate(0)


# ---- requests and settings -----------------------------------------------------------------


def test_a_call_request_names_exactly_one_thing_to_call() -> None:
    assert check_call_request({"number": "061444555"})["number"] == "061444555"
    assert check_call_request({"client_id": 7, "queue": "general"})["queue"] == "general"
    for bad in (
        {},
        {"number": "061", "client_id": 1},
        {"client_id": "7"},
        {"callback_id": True},
        {"number": 61444555},
        {"number": "1" * 41},
        {"number": "061", "queue": ""},
    ):
        with pytest.raises(AgentDeskError):
            check_call_request(bad)


def test_a_trunks_rate_and_a_campaigns_number_are_checked() -> None:
    assert Trunk(name="carrier", addresses=["10.0.0.1"], calls_per_second=2).calls_per_second == 2
    with pytest.raises(ValueError):
        Trunk(name="carrier", addresses=["10.0.0.1"], calls_per_second=0)
    assert CampaignSettings(caller_id="033555002").caller_id == "033555002"
    with pytest.raises(ValueError):
        CampaignSettings(caller_id="033 555")
    with pytest.raises(ValueError):
        Settings(queue_caller_ids={"general": "not a number"})


def test_the_dialplan_learns_the_outbound_apps_name() -> None:
    globals_conf = render_generated_config(Settings(outbound_app="out-b"))["globals.conf"]
    assert "OUTBOUND_APP = out-b\n" in globals_conf
    with pytest.raises(Exception, match="CENTRALA_OUTBOUND_APP"):
        render_generated_config(Settings(outbound_app="bad;app"))


# ---- numbers to entry points ---------------------------------------------------------------


def test_a_number_for_a_queue_enters_the_info_lines_app_naming_its_queue() -> None:
    trunk = Trunk(
        name="carrier",
        addresses=["10.0.0.1"],
        numbers={"+38733555222": "queue:general", "+38733555000": "infoline"},
    )
    text = render_numbers(numbers([trunk], "0800100200"))
    assert (
        "exten => +38733555222,1,Set(CENTRALA_ENTRY=queue:general)\n"
        " same => n,Goto(centrala-infoline,${EXTEN},1)\n"
    ) in text
    assert "exten => +38733555000,1,Goto(centrala-infoline,${EXTEN},1)\n" in text
    # The CDR's reconcile counts its callers as the info line's.
    assert "+38733555222" in Settings(trunks=[trunk]).infoline_numbers


@pytest.mark.parametrize("entry", ["queue:", "queue:a b", "flow:x", "queue:x;y", "queue:x)", "q"])
def test_an_unknown_entry_point_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="entry points are infoline, queue:NAME"):
        Trunk(name="carrier", addresses=["10.0.0.1"], numbers={"+38733555222": entry})


def test_the_wait_a_call_would_get_is_told_without_booking_it() -> None:
    rate = CallRate(2)
    assert rate.wait(0.0) == 0.0
    assert rate.reserve(0.0, 10) == 0.0
    assert rate.wait(0.0) == 0.5 and rate.wait(0.0) == 0.5  # asking books nothing
    assert rate.reserve(0.0, 10) == 0.5
    assert rate.wait(0.2) == pytest.approx(0.8)


async def test_the_trunk_gate_refuses_a_call_that_would_wait_too_long() -> None:
    from ari_app.trunks import TrunkGate

    gate = TrunkGate({"carrier": 1.0})
    assert await gate.admit("other", 0) == 0.0  # a trunk without a limit
    assert await gate.admit("carrier", 0) == 0.0
    with pytest.raises(OutboundRefused) as caught:
        gate.check("carrier", 0.5)  # the desk asks before the agent's phone rings
    assert caught.value.error_id == "trunk_busy" and caught.value.status == 429
    with pytest.raises(OutboundRefused):
        await gate.admit("carrier", 0.5)
    gate.check("carrier", 5)
