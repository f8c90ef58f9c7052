"""Flow checks (dialplan.validate): each rule shown by a minimal break of the shipped flow."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialplan.model import Flow
from dialplan.validate import FlowError, load_flow, validate

INFOLINE = Path(__file__).parents[2] / "dialplan" / "infoline.yaml"
TEXT = INFOLINE.read_text(encoding="utf-8")
BASE: dict[str, Any] = yaml.safe_load(TEXT)


def variant(change: Callable[[dict[str, Any]], object]) -> Flow:
    data = copy.deepcopy(BASE)
    change(data)
    return Flow.model_validate(data)


def problems_of(change: Callable[[dict[str, Any]], object], known: tuple[str, ...] = ()) -> str:
    problems = validate(variant(change), known)
    assert problems, "expected the flow to be rejected"
    return "\n".join(problems)


def load_problems(text: str, filename: str = "flow.yaml") -> list[str]:
    with pytest.raises(FlowError) as err:
        load_flow(text, filename)
    return err.value.problems


# ---- the shipped flow ---------------------------------------------------------------------


def test_shipped_infoline_flow_is_valid() -> None:
    flow = load_flow(TEXT, str(INFOLINE))
    assert validate(flow) == []
    assert flow.name == "infoline"


def test_menu_looping_back_from_information_is_fine_because_the_menu_has_exits() -> None:
    flow = load_flow(TEXT, "infoline.yaml")
    assert flow.nodes["information"].next == "main_menu"  # type: ignore[union-attr]
    assert not any("loop" in p for p in validate(flow))


# ---- parsing ------------------------------------------------------------------------------


def test_json_flow_loads_by_extension_and_by_content() -> None:
    text = json.dumps(BASE, default=str)
    assert load_flow(text, "flow.json") == load_flow(TEXT, "flow.yaml")
    assert load_flow(text, "flow.txt").name == "infoline"


def test_yaml_syntax_error_names_file_and_line() -> None:
    (problem,) = load_problems("name: x\nnodes: [a\n", "bad.yaml")
    assert problem.startswith("bad.yaml: line ")


def test_json_syntax_error_names_file_line_and_column() -> None:
    (problem,) = load_problems('{"name": }', "bad.json")
    assert problem.startswith("bad.json: line 1 column 10:")


def test_a_flow_must_be_a_mapping() -> None:
    assert "not list" in load_problems("- a\n- b\n")[0]
    assert "not empty" in load_problems("")[0]


def test_shape_errors_read_as_dotted_paths_without_the_node_type_tag() -> None:
    data = copy.deepcopy(BASE)
    del data["nodes"]["notice"]["prompt"]
    data["nodes"]["goodbye"]["colour"] = "red"
    data["calendars"]["office"]["weekly"]["mon"] = ["16:00-08:00"]
    problems = load_problems(yaml.safe_dump(data))
    assert "nodes.notice.prompt: Field required" in problems
    assert "nodes.goodbye.colour: Extra inputs are not permitted" in problems
    assert any(p.startswith("calendars.office.weekly: mon: '16:00-08:00'") for p in problems)


def test_list_positions_read_as_brackets() -> None:
    data = copy.deepcopy(BASE)
    data["routes"][2]["targets"] = ["manager"]
    (problem,) = load_problems(yaml.safe_dump(data))
    assert problem.startswith("routes[2].targets: target 'manager'")


def test_duplicate_yaml_keys_are_rejected_not_silently_dropped() -> None:
    text = TEXT.replace("  goodbye:\n    type: hangup", "  notice:\n    type: hangup", 1)
    (problem,) = load_problems(text)
    assert "duplicate key 'notice'" in problem


def test_unquoted_menu_digits_and_the_language_no_stay_strings() -> None:
    text = TEXT.replace('"1": information', "1: information").replace(
        "languages: [bs, en]", "languages: [bs, en, no]"
    )
    flow = load_flow(text, "flow.yaml")
    assert flow.nodes["main_menu"].options["1"] == "information"  # type: ignore[union-attr]
    assert flow.languages == ["bs", "en", "no"]


# ---- node graph ---------------------------------------------------------------------------


def test_start_must_name_a_node() -> None:
    assert "start: no node named 'nowhere'" in problems_of(lambda d: d.update(start="nowhere"))


def test_play_next_must_name_a_node() -> None:
    out = problems_of(lambda d: d["nodes"]["notice"].update(next="languag"))
    assert "nodes.notice.next: no node named 'languag'" in out


def test_menu_option_must_name_a_node() -> None:
    out = problems_of(lambda d: d["nodes"]["main_menu"]["options"].update({"7": "missing"}))
    assert "nodes.main_menu.options.7: no node named 'missing'" in out


def test_agree_survey_next_and_prompt_must_exist() -> None:
    def broken(d: dict[str, Any]) -> None:
        d["nodes"]["survey_after_call"].update(next="nowhere", prompt="nope")

    out = problems_of(broken)
    assert "nodes.survey_after_call.next: no node named 'nowhere'" in out
    assert "nodes.survey_after_call.prompt: no prompt named 'nope'" in out


def test_agree_survey_without_a_prompt_is_fine() -> None:
    assert validate(variant(lambda d: d["nodes"]["survey_after_call"].pop("prompt"))) == []


def test_menu_on_fail_must_name_a_node() -> None:
    out = problems_of(lambda d: d["nodes"]["main_menu"].update(on_fail="missing"))
    assert "nodes.main_menu.on_fail: no node named 'missing'" in out


def test_branch_case_and_default_must_name_nodes() -> None:
    def change(d: dict[str, Any]) -> None:
        d["nodes"]["who"]["cases"][0]["next"] = "x1"
        d["nodes"]["who"]["default"] = "x2"

    out = problems_of(change)
    assert "nodes.who.cases[0].next: no node named 'x1'" in out
    assert "nodes.who.default: no node named 'x2'" in out


def test_callback_next_must_name_a_node() -> None:
    out = problems_of(lambda d: d["nodes"]["callback_request"].update(next="bye"))
    assert "nodes.callback_request.next: no node named 'bye'" in out


def test_unreachable_nodes_are_rejected_by_name() -> None:
    def change(d: dict[str, Any]) -> None:
        d["nodes"]["orphan"] = {"type": "hangup"}
        d["nodes"]["orphan2"] = {"type": "play", "prompt": "goodbye", "next": "orphan"}

    out = problems_of(change)
    assert "unreachable nodes (no path from start or after_hours_callback): orphan, orphan2" in out


def test_callback_node_reached_only_after_hours_counts_as_reachable() -> None:
    flow = variant(lambda d: None)
    assert "callback_request" not in json.dumps(validate(flow))


def test_loop_of_plays_without_exit_is_rejected() -> None:
    def change(d: dict[str, Any]) -> None:
        d["nodes"]["greeting_new"]["next"] = "greeting_known"
        d["nodes"]["greeting_known"]["next"] = "greeting_new"

    out = problems_of(change)
    assert (
        "loop without exit: greeting_known → greeting_new → greeting_known "
        "never reaches a route or hangup node"
    ) in out
    assert "unreachable" in out  # the menu behind the loop can no longer be reached


def test_menu_whose_every_way_leads_back_to_itself_is_a_loop_without_exit() -> None:
    def change(d: dict[str, Any]) -> None:
        d["nodes"]["main_menu"]["options"] = {"1": "information"}
        d["nodes"]["main_menu"]["on_fail"] = "information"
        d["routes"] = []
        for name in ("my_loan", "complaint", "apply", "urgent", "operator"):
            del d["nodes"][name]

    assert "loop without exit: main_menu → information → main_menu" in problems_of(change)


def test_callback_chain_must_end_in_a_hangup_or_route() -> None:
    def change(d: dict[str, Any]) -> None:
        d["nodes"]["goodbye"] = {"type": "play", "prompt": "goodbye", "next": "callback_request"}

    out = problems_of(change)
    assert "loop without exit: callback_request → goodbye → callback_request" in out


def test_self_loop_is_a_loop_without_exit() -> None:
    out = problems_of(lambda d: d["nodes"]["notice"].update(next="notice"))
    assert "loop without exit: notice → notice" in out


def test_after_hours_callback_must_name_a_callback_node() -> None:
    assert "after_hours_callback: no node named 'cb'" in problems_of(
        lambda d: d.update(after_hours_callback="cb")
    )
    assert "after_hours_callback: node 'goodbye' is a hangup node, not a callback node" in (
        problems_of(lambda d: d.update(after_hours_callback="goodbye"))
    )


def test_overflow_to_callback_needs_a_callback_node() -> None:
    out = problems_of(lambda d: d.update(after_hours_callback=None))
    assert "queues.general.overflow.callback: needs after_hours_callback" in out


# ---- prompts and languages ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["nodes"]["notice"].update(prompt="nope"),
            "nodes.notice.prompt: no prompt named 'nope'",
        ),
        (
            lambda d: d["nodes"]["main_menu"].update(invalid_prompt="nope"),
            "nodes.main_menu.invalid_prompt: no prompt named 'nope'",
        ),
        (
            lambda d: d["nodes"]["language"].update(prompt="nope"),
            "nodes.language.prompt: no prompt named 'nope'",
        ),
        (
            lambda d: d["nodes"]["callback_request"].update(confirm_prompt="nope"),
            "nodes.callback_request.confirm_prompt: no prompt named 'nope'",
        ),
        (
            lambda d: d["nodes"]["goodbye"].update(prompt="nope"),
            "nodes.goodbye.prompt: no prompt named 'nope'",
        ),
        (
            lambda d: d.update(after_hours_prompt="nope"),
            "after_hours_prompt: no prompt named 'nope'",
        ),
        (
            lambda d: d["prompts"].pop("queue_hold"),
            "queue_hold (played to callers waiting in a queue): no prompt named 'queue_hold'",
        ),
    ],
    ids=["play", "invalid", "language", "callback-confirm", "hangup", "after-hours", "queue-hold"],
)
def test_every_prompt_played_must_exist(
    change: Callable[[dict[str, Any]], object], expected: str
) -> None:
    assert expected in problems_of(change)


def test_prompt_needs_text_or_media_in_every_language() -> None:
    out = problems_of(lambda d: d["prompts"]["welcome"]["text"].pop("en"))
    assert "prompts.welcome: no text or media for language 'en'" in out


def test_recorded_media_stands_in_for_text() -> None:
    def change(d: dict[str, Any]) -> None:
        d["prompts"]["welcome"] = {"text": {"bs": "Dobrodošli"}, "media": {"en": "sound:welcome"}}

    assert validate(variant(change)) == []


def test_blank_text_counts_as_missing() -> None:
    out = problems_of(lambda d: d["prompts"]["goodbye"]["text"].update(en="  "))
    assert "prompts.goodbye: no text or media for language 'en'" in out


def test_unused_prompts_need_not_be_translated() -> None:
    assert validate(variant(lambda d: d["prompts"].update(spare={"text": {"bs": "x"}}))) == []


def test_default_language_must_be_one_of_the_languages() -> None:
    out = problems_of(lambda d: d.update(default_language="de"))
    assert "default_language: 'de' is not in languages [bs, en]" in out


def test_language_menu_options_must_be_flow_languages() -> None:
    out = problems_of(lambda d: d["nodes"]["language"]["options"].update({"8": "de"}))
    assert "nodes.language.options.8: language 'de' is not one of the flow's languages" in out


def test_route_language_conditions_must_be_flow_languages() -> None:
    out = problems_of(lambda d: d["routes"][0]["when"].update(language=["ro"]))
    assert "routes[0] (urgent matters first).when.language: 'ro' is not one of" in out


def test_a_language_listed_twice_is_rejected() -> None:
    assert "languages: 'en' is listed twice" in problems_of(
        lambda d: d.update(languages=["bs", "en", "en"])
    )


# ---- queues and calendars -----------------------------------------------------------------


def test_route_queue_must_be_known() -> None:
    out = problems_of(lambda d: d["routes"][3].update(queue="financ"))
    assert (
        "routes[3] (clients with overdue debt to finance).queue: unknown queue 'financ' "
        "(not in the flow's queues or the database)"
    ) in out


def test_queue_known_only_to_the_database_is_accepted() -> None:
    flow = variant(lambda d: d["routes"][3].update(queue="collections"))
    assert validate(flow, known_queues=["collections"]) == []
    assert validate(flow) != []


def test_route_target_queue_must_be_known() -> None:
    out = problems_of(lambda d: d["routes"][2]["targets"].append("queue:vip"))
    assert "routes[2] (key clients" in out
    assert ").targets: unknown queue 'vip'" in out


def test_callback_node_queue_must_be_known() -> None:
    out = problems_of(lambda d: d["nodes"]["callback_request"].update(queue="later"))
    assert "nodes.callback_request.queue: unknown queue 'later'" in out


def test_overflow_queue_must_be_known() -> None:
    out = problems_of(lambda d: d["queues"]["finance"].update(overflow={"queue": "accounts"}))
    assert "queues.finance.overflow.queue: unknown queue 'accounts'" in out


def test_overflow_loop_between_two_queues_is_rejected() -> None:
    out = problems_of(lambda d: d["queues"]["general"].update(overflow={"queue": "new_clients"}))
    assert "overflow loop general → new_clients → general" in out


def test_overflow_loop_over_three_queues_and_to_itself_is_rejected() -> None:
    def change(d: dict[str, Any]) -> None:
        d["queues"]["head_of_sales"]["overflow"] = {"queue": "supervisor"}
        d["queues"]["supervisor"]["overflow"] = {"queue": "key_accounts"}
        d["queues"]["general"]["overflow"] = {"queue": "general"}

    out = problems_of(change)
    assert "overflow loop head_of_sales → supervisor → key_accounts → head_of_sales" in out
    assert "queues.general.overflow: overflow loop general → general" in out


def test_overflow_chain_ending_in_a_callback_is_fine() -> None:
    # new_clients -> general -> callback; key_accounts -> head_of_sales -> callback
    assert validate(variant(lambda d: None)) == []


def test_queue_calendar_must_exist() -> None:
    out = problems_of(lambda d: d["queues"]["urgent"].update(calendar="nights"))
    assert "queues.urgent.calendar: no calendar named 'nights'" in out


def test_calendar_time_zone_must_be_an_iana_name() -> None:
    out = problems_of(lambda d: d["calendars"]["office"].update(timezone="Europe/Sarajvo"))
    assert "calendars.office.timezone: unknown time zone 'Europe/Sarajvo'" in out
    out = problems_of(lambda d: d["calendars"]["office"].update(timezone="../../etc/passwd"))
    assert "unknown time zone" in out


# ---- routes -------------------------------------------------------------------------------


def test_without_a_default_route_callers_would_be_stuck() -> None:
    out = problems_of(lambda d: d["routes"].pop())
    assert "routes: no default route: callers matching no rule would be stuck" in out


def test_route_node_intent_needs_a_rule_when_there_is_no_default() -> None:
    out = problems_of(lambda d: d["routes"].pop())
    assert "nodes.my_loan.intent: no route matches intent 'my_loan'" in out
    assert "nodes.operator.intent: no route matches intent 'operator'" in out
    assert "nodes.urgent.intent" not in out  # the first rule takes intent urgent


def test_route_nodes_without_any_routes_have_nowhere_to_go() -> None:
    out = problems_of(lambda d: d.update(routes=[]))
    assert "routes: no default route" in out


def test_rules_after_the_default_are_never_tried() -> None:
    def change(d: dict[str, Any]) -> None:
        d["routes"].append({"name": "late", "when": {"known": True}, "queue": "general"})

    out = problems_of(change)
    assert "routes[6] (late): never tried, routes[5] (everyone else) before it" in out


def test_a_flow_without_routes_or_route_nodes_needs_no_default_or_queue_hold() -> None:
    flow = Flow.model_validate(
        {
            "name": "closed",
            "default_language": "bs",
            "languages": ["bs"],
            "start": "bye",
            "nodes": {"bye": {"type": "hangup", "prompt": "bye"}},
            "prompts": {"bye": {"text": {"bs": "Zatvoreno."}}},
        }
    )
    assert validate(flow) == []


def test_every_problem_is_reported_at_once() -> None:
    def change(d: dict[str, Any]) -> None:
        d["start"] = "nowhere"
        d["default_language"] = "de"
        d["routes"][0]["queue"] = "nope"

    assert len(validate(variant(change))) >= 3
