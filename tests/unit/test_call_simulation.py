"""The call simulator (core.simulation) on the shipped info-line flow and on small flows built
here: menus with retries and on_fail, keys typed ahead during a prompt, branches on the
client's type and debt, a queue's hours, the callback's number, the language choice, the queue's
callback key and overflow, and the guards (bad keys, a flow that loops)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from core.ivr import MAX_RECORDED_PATH
from core.media import prompt_of
from core.routing import Caller
from core.simulation import (
    MAX_KEYS,
    Press,
    Simulation,
    SimulationError,
    parse_keys,
    prompt_seconds,
    simulate,
)
from dialplan.model import Flow

FLOW = Flow.model_validate(
    yaml.safe_load((Path(__file__).parents[2] / "dialplan" / "infoline.yaml").read_text())
)
SARAJEVO = ZoneInfo("Europe/Sarajevo")
TUESDAY_10 = datetime(2026, 12, 1, 10, 0, tzinfo=SARAJEVO)
TUESDAY_20 = datetime(2026, 12, 1, 20, 0, tzinfo=SARAJEVO)
NEW = Caller()
KEY_CLIENT = Caller(
    client_id=7, name="Ana", client_type="key", language="en", assigned_manager="m1"
)
IN_DEBT = Caller(client_id=8, client_type="regular", overdue_debt=True, language="bs")
REGULAR = Caller(client_id=9, client_type="regular", language="bs")
TO_MENU = ["notice", "language", "who", "greeting_new", "main_menu"]


def run(keys: Any = "", caller: Caller = NEW, at: datetime = TUESDAY_10, **kw: Any) -> Simulation:
    kw.setdefault("caller_number", "061 999 001")
    kw.setdefault("caller_e164", "+38761999001")
    return simulate(kw.pop("flow", FLOW), caller, at, keys, **kw)


def heard(sim: Simulation) -> list[str]:
    return [p.prompt for p in sim.prompts]


def kinds(sim: Simulation) -> list[str]:
    return [s.kind for s in sim.steps]


# ---- the shipped flow -----------------------------------------------------------------------


def test_new_caller_choosing_english_then_their_loan_waits_for_the_new_client_desk() -> None:
    sim = run("9 2")
    assert sim.path == [
        "notice",
        "language",
        "language:9",
        "who",
        "greeting_new",
        "main_menu",
        "main_menu:2",
        "my_loan",
    ]
    assert sim.language == "en"
    assert [(p.prompt, p.language) for p in sim.prompts] == [
        ("recording_notice", "bs"),
        ("choose_language", "bs"),
        ("welcome", "en"),
        ("main_menu", "en"),
    ]
    assert sim.prompts[2].text == "Welcome to the foundation's information line."
    assert prompt_of(sim.prompts[2].media) == "sound:centrala/en/welcome"
    assert all(p.cut_at is None for p in sim.prompts)  # each key came when the line waited
    end = sim.end
    assert (end.kind, end.queue_open, end.outcome) == ("queued", True, None)
    assert end.route is not None and end.route.queue == "new_clients"
    assert sim.queues == ["new_clients"] and sim.keys_left == []


def test_key_typed_during_the_notice_skips_to_the_menu_with_the_same_path() -> None:
    ahead = run(">0")
    assert ahead.path == [*TO_MENU, "main_menu:0", "operator"]
    assert heard(ahead) == ["recording_notice"]
    assert ahead.prompts[0].cut_at == 0.0
    # The same key pressed when the line first waits (after the language prompt): the same
    # path, but the caller heard the language prompt first.
    waited = run("0")
    assert waited.path == ahead.path
    assert heard(waited) == ["recording_notice", "choose_language"]
    assert waited.end.seconds > ahead.end.seconds


def test_key_typed_during_the_welcome_counts_for_the_menu() -> None:
    sim = run(["w", ">2"])  # the language prompt times out; 2 while the welcome plays
    assert sim.path == [*TO_MENU, "main_menu:2", "my_loan"]
    assert heard(sim) == ["recording_notice", "choose_language", "welcome"]
    assert sim.prompts[-1].cut_at == 0.0


def test_timed_key_during_the_menu_prompt_cuts_it_where_it_is_pressed() -> None:
    sim = run(["w", {"key": "2", "after_seconds": 5}])
    assert sim.path == [*TO_MENU, "main_menu:2", "my_loan"]
    menu = sim.prompts[-1]
    assert menu.prompt == "main_menu" and menu.cut_at is not None
    # The welcome (3.2 s) began when the language choice timed out; 2 came 5 s after that.
    assert menu.cut_at == pytest.approx(5 - sim.prompts[-2].seconds)


def test_silent_caller_times_out_of_the_menu_to_the_operator() -> None:
    sim = run("")
    assert sim.path == [*TO_MENU, "main_menu:timeout", "operator"]
    # The menu's prompt three times (the first and two retries), then on_fail.
    assert heard(sim).count("main_menu") == 3
    assert kinds(sim).count("timeout") == 4  # the language choice's, and the menu's three
    assert sim.end.kind == "queued" and sim.end.route is not None
    assert sim.end.route.queue == "new_clients"


def test_wait_lets_one_menu_timeout_pass_then_the_key_counts() -> None:
    sim = run("w w 1")  # language timeout, a menu timeout, then information
    assert sim.path[:8] == [*TO_MENU, "main_menu:1", "information", "main_menu"]
    assert heard(sim)[2:6] == ["welcome", "main_menu", "main_menu", "information_products"]


def test_three_invalid_keys_hear_the_invalid_prompt_then_go_to_on_fail() -> None:
    sim = run("7 7 7")
    assert sim.path == [
        *TO_MENU,
        "main_menu:7!",
        "main_menu:7!",
        "main_menu:7!",
        "main_menu:invalid",
        "operator",
    ]
    assert heard(sim)[-4:] == ["invalid_choice", "main_menu", "invalid_choice", "main_menu"]


def test_survey_agreement_is_kept_and_the_menu_comes_again() -> None:
    sim = run("6 0")
    assert sim.survey == "nps"
    tail = ["main_menu:6", "survey_after_call", "main_menu", "main_menu:0", "operator"]
    assert sim.path == [*TO_MENU, *tail]
    assert "survey_agreed" in kinds(sim)


@pytest.mark.parametrize(
    ("caller", "queue", "targets", "greeting"),
    [
        (
            KEY_CLIENT,
            "key_accounts",
            ["agent:m1", "queue:key_accounts", "queue:head_of_sales"],
            "welcome_back",
        ),
        (IN_DEBT, "finance", ["queue:finance"], "welcome_back"),
        (REGULAR, "general", ["queue:general"], "welcome_back"),
        (NEW, "new_clients", ["queue:new_clients"], "welcome"),
    ],
)
def test_the_clients_facts_choose_the_greeting_and_the_queue(
    caller: Caller, queue: str, targets: list[str], greeting: str
) -> None:
    sim = run("w2", caller)  # a pause (the language choice, or the menu once), then 2
    assert greeting in heard(sim)
    assert sim.end.to_json()["queue"] == queue
    assert sim.end.to_json()["targets"] == targets


def test_known_client_hears_everything_in_their_language_and_chooses_none() -> None:
    sim = run("2", KEY_CLIENT)
    assert {p.language for p in sim.prompts} == {"en"}
    assert sim.prompts[0].text == "Calls are recorded to improve our service."
    assert "choose_language" not in heard(sim)
    walk = ["notice", "language", "who", "greeting_known", "main_menu", "main_menu:2"]
    assert sim.path == [*walk, "my_loan"]


def test_urgent_matters_reach_the_always_open_queue_at_night() -> None:
    sim = run("5", at=TUESDAY_20)
    assert sim.end.kind == "queued" and sim.end.queue_open is True
    assert sim.end.to_json()["queue"] == "urgent"


def test_after_hours_offers_a_callback_on_the_callers_own_number_due_at_the_opening() -> None:
    sim = run("0 1", at=TUESDAY_20)
    assert sim.path == [
        *TO_MENU,
        "main_menu:0",
        "operator",
        "callback_request",
        "callback_request:own_number",
        "goodbye",
    ]
    assert heard(sim)[-4:] == ["after_hours", "callback_offer", "callback_confirmed", "goodbye"]
    end = sim.end
    assert (end.kind, end.reason, end.outcome, end.queue_open) == (
        "hung_up",
        "hangup_node",
        "after_hours",
        False,
    )
    assert end.callback is not None
    assert end.callback.number == "+38761999001"
    assert end.callback.reason == "after_hours"
    assert end.callback.due_at == datetime(2026, 12, 2, 7, 0, tzinfo=UTC)  # 08:00 in Sarajevo


def test_callback_on_another_number_keyed_with_hash_or_ended_by_silence() -> None:
    hashed = run("0 061222333#", at=TUESDAY_20)
    assert hashed.path[-2:] == ["callback_request:other_number", "goodbye"]
    assert hashed.end.callback is not None and hashed.end.callback.number == "+38761222333"
    # No '#': the digits are taken when the caller stops keying.
    silent = run("0 06 1 2 2 2 3 3 3 w", at=TUESDAY_20)
    assert silent.end.callback is not None and silent.end.callback.number == "+38761222333"


def test_no_answer_to_the_callback_offer_twice_makes_no_callback() -> None:
    sim = run("0", at=TUESDAY_20)
    assert sim.path[-2:] == ["callback_request", "goodbye"]
    assert sim.end.callback is None and sim.end.outcome == "after_hours"


def test_callback_due_skips_a_holiday() -> None:
    new_year = datetime(2026, 12, 31, 18, 0, tzinfo=SARAJEVO)  # 1 and 2 January are holidays
    sim = run("0 1", at=new_year)
    assert sim.end.callback is not None
    assert sim.end.callback.due_at == datetime(2027, 1, 4, 7, 0, tzinfo=UTC)  # Monday 08:00


def test_the_model_clock_closes_the_queue_while_the_caller_listens() -> None:
    # Open when the call is answered; closed by the time the menu has played and 0 is pressed.
    before_four = datetime(2026, 12, 1, 15, 59, 50, tzinfo=SARAJEVO)
    assert run(">0", at=before_four).end.queue_open is True
    late = run("w0", at=before_four)  # the whole menu heard first: some 36 s
    assert late.end.queue_open is False and "after_hours" in kinds(late)
    assert late.end.at > datetime(2026, 12, 1, 16, 0, tzinfo=SARAJEVO)


def test_timed_key_cuts_the_prompt_at_its_moment_and_a_late_key_finds_the_queue() -> None:
    sim = run([{"key": "0", "after_seconds": 1.5}])
    assert sim.prompts[0].prompt == "recording_notice" and sim.prompts[0].cut_at == 1.5
    assert sim.path[-1] == "operator"
    late = run([{"key": "2", "after_seconds": 120}])  # after the menu gave up
    assert late.path == [*TO_MENU, "main_menu:timeout", "operator"]
    assert "ignored_key" in kinds(late)


def test_given_prompt_lengths_move_the_clock() -> None:
    nominal = run("0")
    longer = run("0", prompt_lengths={"recording_notice": 60.0})
    assert longer.end.seconds == pytest.approx(
        nominal.end.seconds - nominal.prompts[0].seconds + 60
    )
    assert prompt_seconds(FLOW, "goodbye", "bs") == 1.0  # "Doviđenja." is shorter than a second


# ---- the queue ------------------------------------------------------------------------------


def test_star_in_the_queue_leaves_it_for_a_callback() -> None:
    sim = run("0*1")
    assert sim.path[-3:] == ["callback_request", "callback_request:own_number", "goodbye"]
    assert sim.end.outcome == "callback_requested"
    assert sim.end.callback is not None and sim.end.callback.reason == "callback_requested"
    assert "left_queue" in kinds(sim)


def test_waiting_out_the_maximum_wait_overflows_then_ends_in_a_callback() -> None:
    once = run("0w")
    assert once.queues == ["new_clients", "general"]  # new_clients overflows to general
    assert once.end.kind == "queued"
    twice = run("0ww1")
    assert twice.queues == ["new_clients", "general"]
    assert twice.end.outcome == "overflowed"
    assert twice.end.callback is not None and twice.end.callback.reason == "overflowed"


def test_other_keys_in_the_queue_do_nothing() -> None:
    sim = run("0 5 5")
    assert sim.end.kind == "queued" and kinds(sim).count("ignored_key") == 2


@pytest.mark.parametrize(
    ("keys", "outcome", "path_end"),
    [("h", "abandoned_in_ivr", ["notice"]), ("0h", "abandoned_in_queue", ["operator"])],
)
def test_the_caller_hanging_up(keys: str, outcome: str, path_end: list[str]) -> None:
    sim = run(keys)
    assert sim.end.kind == "caller_hung_up" and sim.end.outcome == outcome
    assert sim.path[-len(path_end) :] == path_end


def test_keys_after_the_end_are_left_over() -> None:
    sim = run("h 1 2")
    assert sim.keys_left == ["1", "2"]


# ---- small flows ----------------------------------------------------------------------------


def small_flow(**changes: Any) -> Flow:
    data: dict[str, Any] = {
        "name": "small",
        "default_language": "bs",
        "languages": ["bs", "en", "de"],
        "start": "lang",
        "nodes": {
            "lang": {
                "type": "language",
                "prompt": "pick",
                "options": {"1": "en", "2": "de"},
                "next": "who",
            },
            "who": {
                "type": "branch",
                "cases": [
                    {"when": {"overdue_debt": True}, "next": "debt"},
                    {"when": {"client_type": ["key"]}, "next": "vip"},
                ],
                "default": "menu",
            },
            "debt": {"type": "route", "intent": "debt"},
            "vip": {"type": "route", "intent": "vip"},
            "menu": {
                "type": "menu",
                "prompt": "menu",
                "options": {"1": "sales"},
                "retries": 1,
                "on_fail": "bye",
            },
            "sales": {"type": "route", "intent": "sales"},
            "bye": {"type": "hangup", "prompt": "bye"},
        },
        "prompts": {
            name: {"text": {"bs": f"{name} bs", "en": f"{name} en", "de": f"{name} de"}}
            for name in ("pick", "menu", "bye", "closed")
        },
        "calendars": {
            "office": {"timezone": "Europe/Sarajevo", "weekly": {"tue": ["08:00-16:00"]}}
        },
        "queues": {
            "sales": {"name": "Sales", "calendar": "office"},
            "finance": {"name": "Finance"},
            "vip": {"name": "VIP", "calendar": "office"},
        },
        "routes": [
            {"name": "debt", "when": {"overdue_debt": True}, "queue": "finance"},
            {"name": "vip", "when": {"intent": ["vip"]}, "queue": "vip"},
            {"name": "rest", "queue": "sales"},
        ],
        "after_hours_prompt": "closed",
        "after_hours_callback": None,
    }
    data.update(changes)
    return Flow.model_validate(data)


def test_language_choice_by_key_and_the_prompts_in_that_language() -> None:
    sim = run("2 1", flow=small_flow())
    assert sim.path == ["lang", "lang:2", "who", "menu", "menu:1", "sales"]
    assert [p.text for p in sim.prompts] == ["pick bs", "menu de"]


def test_branch_rules_send_debt_to_finance_and_key_clients_to_their_queue() -> None:
    flow = small_flow()
    debt = run("", IN_DEBT, flow=flow)
    assert debt.path == ["lang", "who", "debt"] and debt.end.to_json()["queue"] == "finance"
    vip = run("", Caller(client_id=1, client_type="key"), flow=flow)  # no language on file
    assert vip.path == ["lang", "who", "vip"] and heard(vip) == ["pick"]
    assert vip.end.to_json()["queue"] == "vip"


def test_menu_on_fail_after_its_retries_hangs_up_with_a_goodbye() -> None:
    sim = run("1 9 9", flow=small_flow())  # English, then two invalid keys with retries 1
    assert sim.path == [
        "lang",
        "lang:1",
        "who",
        "menu",
        "menu:9!",
        "menu:9!",
        "menu:invalid",
        "bye",
    ]
    assert heard(sim)[-1] == "bye" and sim.prompts[-1].text == "bye en"
    assert (sim.end.kind, sim.end.reason, sim.end.outcome) == (
        "hung_up",
        "hangup_node",
        "completed",
    )


def test_closed_queue_without_a_callback_node_hangs_up_as_after_hours() -> None:
    sim = run("1 1", flow=small_flow(), at=TUESDAY_20)
    assert sim.end.kind == "hung_up" and sim.end.reason == "no_callback_node"
    assert sim.end.outcome == "after_hours" and sim.end.queue_open is False
    # Wednesday the sales calendar is closed all day; Tuesday morning it is open.
    assert run("1 1", flow=small_flow(), at=TUESDAY_10).end.queue_open is True
    wednesday = datetime(2026, 12, 2, 10, 0, tzinfo=SARAJEVO)
    assert run("1 1", flow=small_flow(), at=wednesday).end.queue_open is False


def test_a_queue_the_live_settings_close_is_closed_in_the_simulation_too() -> None:
    flow = small_flow()
    live = {
        **flow.queues,
        "finance": flow.queues["finance"].model_copy(update={"calendar": "office"}),
    }
    assert run("", IN_DEBT, flow=flow, at=TUESDAY_20).end.queue_open is True
    assert run("", IN_DEBT, flow=flow, at=TUESDAY_20, queues=live).end.queue_open is False


def test_a_menu_failing_to_itself_stops_at_the_step_limit_with_the_path_as_stored() -> None:
    flow = small_flow(
        nodes={
            "lang": {"type": "menu", "prompt": "menu", "options": {"1": "x"}, "on_fail": "lang"},
            "x": {"type": "hangup"},
        },
        routes=[{"name": "rest", "queue": "sales"}],
    )
    sim = run("", flow=flow)
    assert sim.end.kind == "step_limit" and sim.end.outcome is None
    assert len(sim.path) == MAX_RECORDED_PATH
    assert sim.path[50].startswith("…") and sim.path[50].endswith("skipped…")


# ---- inputs ---------------------------------------------------------------------------------


def test_keys_parse_from_a_string_or_a_list() -> None:
    assert parse_keys(" 9, >0w h#") == [
        Press("key", "9"),
        Press("key", "0", during_prompt=True),
        Press("wait"),
        Press("hang_up"),
        Press("key", "#"),
    ]
    assert parse_keys(["1", ">2", "w", {"key": "3", "after_seconds": 2}, {"hang_up": True}]) == [
        Press("key", "1"),
        Press("key", "2", during_prompt=True),
        Press("wait"),
        Press("key", "3", after_seconds=2.0),
        Press("hang_up"),
    ]


@pytest.mark.parametrize(
    "keys",
    [
        "x",
        "1>",
        ">w",
        ">>1",
        "1" * (MAX_KEYS + 1),
        ["12"],
        [7],
        [{"key": "x"}],
        [{"key": "1", "after_seconds": -1}],
        [{"key": "1", "after_seconds": True}],
        [{"key": "1", "after_seconds": 1, "during_prompt": True}],
        [{"key": "1", "when": "now"}],
        [{"wait": False}],
        {"key": "1"},
    ],
)
def test_bad_keys_are_refused_with_an_error_id(keys: Any) -> None:
    with pytest.raises(SimulationError) as caught:
        run(keys)
    assert caught.value.error_id == "bad_keys" and caught.value.status == 400


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(SimulationError) as caught:
        run("", at=datetime(2026, 12, 1, 10, 0))
    assert caught.value.error_id == "bad_time"
