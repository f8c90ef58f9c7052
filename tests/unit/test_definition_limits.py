"""Size limits of definitions (call flows, surveys) and the shared reader of their text: every
limit refused with one problem line, and what is within them still accepted."""

from __future__ import annotations

import json
import sys
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.ivr import IVR, MAX_RECORDED_PATH, HangupCall, PlayPrompt, RouteTo, recorded_path
from core.routing import Caller
from core.surveys.model import MAX_QUESTIONS, Survey
from core.surveys.validate import SurveyError, load_survey
from core.surveys.validate import validate as validate_survey
from dialplan.document import (
    MAX_ALIASES,
    MAX_DOCUMENT_BYTES,
    MAX_NESTING,
    DocumentError,
    read_document,
)
from dialplan.model import (
    MAX_LANGUAGES,
    MAX_NODES,
    MAX_PROMPT_TEXT,
    MAX_PROMPTS,
    MAX_STEPS_WITHOUT_INPUT,
    MAX_TOTAL_PROMPT_TEXT,
    Flow,
)
from dialplan.validate import FlowError, check_limits, load_flow, validate

ROOT = Path(__file__).parents[2]
FLOW: dict[str, Any] = yaml.safe_load((ROOT / "dialplan" / "infoline.yaml").read_text())
SURVEY: dict[str, Any] = yaml.safe_load((ROOT / "surveys" / "nps.yaml").read_text())


def chain_flow(length: int) -> dict[str, Any]:
    """The shipped flow with ``length`` play nodes walked before its start node."""
    data = deepcopy(FLOW)
    for i in range(length):
        nxt = f"c{i + 1}" if i + 1 < length else data["start"]
        data["nodes"][f"c{i}"] = {"type": "play", "prompt": "welcome", "next": nxt}
    data["start"] = "c0"
    return data


def flow_problems(data: dict[str, Any]) -> list[str]:
    return validate(Flow.model_validate(data))


def load_problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(FlowError) as exc:
        load_flow(json.dumps(data, default=str), "flow.json")
    return exc.value.problems


@contextmanager
def stack_of(frames: int) -> Iterator[None]:
    """Run with only ``frames`` frames of stack left: recursion per node would not fit."""
    depth = 0
    frame = sys._getframe()
    while frame.f_back is not None:
        frame = frame.f_back
        depth += 1
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + frames)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


# ---- the reader -------------------------------------------------------------------------


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_before_it_is_built() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(DocumentError) as exc:
            read_document(billion_laughs(), "bomb.yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "once its aliases (*name) are copied out" in exc.value.problems[0]
    assert peak < 5_000_000  # built, it would be 10**9 strings


def test_more_aliases_than_the_limit_are_refused_even_when_small() -> None:
    text = "a: &a x\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(DocumentError) as exc:
        read_document(text, "many.yaml")
    assert exc.value.problems == [
        f"many.yaml: line 2 column {5 + 4 * MAX_ALIASES}: more than {MAX_ALIASES} aliases "
        "(*name): write the values out"
    ]


def test_a_few_aliases_still_read_as_copies() -> None:
    data = read_document("base: &b {x: 1}\none: *b\ntwo: *b\n", "ok.yaml")
    assert data == {"base": {"x": 1}, "one": {"x": 1}, "two": {"x": 1}}


def test_alias_inside_its_own_anchor_is_refused() -> None:
    with pytest.raises(DocumentError, match="contains itself"):
        read_document("a: &a [1, *a]\n", "self.yaml")


def test_text_over_the_byte_limit_is_refused_unread() -> None:
    text = "description: " + "é" * (MAX_DOCUMENT_BYTES // 2) + "\n"  # 2 bytes a character
    assert len(text) < MAX_DOCUMENT_BYTES
    with pytest.raises(DocumentError) as exc:
        read_document(text, "big.yaml")
    assert exc.value.problems == [
        f"big.yaml: larger than {MAX_DOCUMENT_BYTES:,} bytes (a definition is text)"
    ]


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 100_000])
def test_yaml_nested_too_deep_is_refused(depth: int) -> None:
    with pytest.raises(DocumentError, match=f"nested more than {MAX_NESTING} levels deep"):
        read_document("[" * depth + "]" * depth, "deep.yaml")


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 200_000])
def test_json_nested_too_deep_is_refused_without_a_traceback(depth: int) -> None:
    with pytest.raises(DocumentError) as exc:
        read_document("[" * depth + "]" * depth, "deep.json")
    assert exc.value.problems == [f"deep.json: nested more than {MAX_NESTING} levels deep"]


@pytest.mark.parametrize("name", ["deep.json", "deep.yaml"])
def test_nesting_to_the_limit_is_read(name: str) -> None:
    assert read_document("[" * MAX_NESTING + "]" * MAX_NESTING, name) is not None


def test_reader_keeps_its_yaml_rules() -> None:
    assert read_document("lang: no\nflag: true\n1: x\n", "r.yaml") == {
        "lang": "no",
        "flag": True,
        "1": "x",
    }
    with pytest.raises(DocumentError, match="duplicate key 'a'"):
        read_document("a: 1\na: 2\n", "dup.yaml")


def test_flow_loader_reports_the_readers_problems_as_flow_problems() -> None:
    with pytest.raises(FlowError, match="copied out"):
        load_flow(billion_laughs(), "flow.yaml")
    with pytest.raises(SurveyError, match="copied out"):
        load_survey(billion_laughs(), "survey.yaml")


# ---- flows ------------------------------------------------------------------------------


def test_shipped_flow_is_within_every_limit() -> None:
    assert check_limits(Flow.model_validate(FLOW)) == []


def test_flow_with_too_many_nodes_is_refused() -> None:
    data = deepcopy(FLOW)
    for i in range(MAX_NODES):
        data["nodes"][f"x{i}"] = {"type": "hangup"}
    expected = f"nodes: {len(data['nodes']):,} nodes, at most {MAX_NODES}"
    assert flow_problems(data) == [expected]
    assert load_problems(data) == [expected]


def test_chain_longer_than_the_walk_limit_is_refused_and_one_within_accepted() -> None:
    # notice, language and who also pass through: the shipped flow walks 4 steps to a play.
    over = chain_flow(MAX_STEPS_WITHOUT_INPUT)
    problems = flow_problems(over)
    assert problems == [
        f"nodes.c0: a caller walks {MAX_STEPS_WITHOUT_INPUT + 4} play/branch/language steps "
        f"from here without waiting for a key, at most {MAX_STEPS_WITHOUT_INPUT} "
        "(put a menu in the chain)"
    ]
    assert load_problems(over) == problems
    assert flow_problems(chain_flow(MAX_STEPS_WITHOUT_INPUT - 4)) == []


def test_loop_of_branches_is_refused_as_a_loop_without_input() -> None:
    data = deepcopy(FLOW)
    # A known caller would be sent around who → again → who for ever without a key.
    data["nodes"]["again"] = {
        "type": "branch",
        "cases": [{"when": {"known": True}, "next": "who"}],
        "default": "greeting_known",
    }
    data["nodes"]["who"]["cases"][0]["next"] = "again"
    problems = flow_problems(data)
    assert (
        "loop without input: again → who → again (a caller who keys ahead would walk it "
        "forever: put a menu in it)"
    ) in problems


def test_loop_of_plays_is_reported_once_as_a_loop_without_exit() -> None:
    data = deepcopy(FLOW)
    data["nodes"]["greeting_new"]["next"] = "greeting_known"
    data["nodes"]["greeting_known"]["next"] = "greeting_new"
    problems = flow_problems(data)
    assert any(p.startswith("loop without exit: greeting_known") for p in problems)
    assert not any(p.startswith("loop without input") for p in problems)


def test_prompt_text_too_long_is_refused() -> None:
    data = deepcopy(FLOW)
    data["prompts"]["welcome"]["text"]["en"] = "x" * (MAX_PROMPT_TEXT + 1)
    assert flow_problems(data) == [
        f"prompts.welcome.text.en: {MAX_PROMPT_TEXT + 1:,} characters, at most "
        f"{MAX_PROMPT_TEXT:,} (record a media file for a longer announcement)"
    ]


def test_too_many_prompts_and_too_much_text_in_all_are_refused() -> None:
    data = deepcopy(FLOW)
    for i in range(MAX_PROMPTS):
        data["prompts"][f"p{i}"] = {"text": {"bs": "y" * MAX_PROMPT_TEXT}}
    total = sum(len(t) for p in data["prompts"].values() for t in p.get("text", {}).values())
    assert total > MAX_TOTAL_PROMPT_TEXT
    assert flow_problems(data) == [
        f"prompts: {len(data['prompts'])} prompts, at most {MAX_PROMPTS}",
        f"prompts: {total:,} characters of text in all, at most {MAX_TOTAL_PROMPT_TEXT:,}",
    ]


def test_too_many_languages_are_refused() -> None:
    data = deepcopy(FLOW)
    langs = [f"l{chr(97 + i)}" for i in range(MAX_LANGUAGES + 1)]
    data["languages"] = langs
    assert f"languages: {len(langs)} languages, at most {MAX_LANGUAGES}" in flow_problems(data)


# ---- the IVR walks without recursion ------------------------------------------------------


def test_long_chain_is_walked_with_a_key_typed_ahead_without_recursion() -> None:
    flow = Flow.model_validate(chain_flow(MAX_STEPS_WITHOUT_INPUT - 4))
    ivr = IVR(flow, Caller())
    first = ivr.start()
    assert [a.prompt for a in first if isinstance(a, PlayPrompt)] == ["welcome"]
    with stack_of(60):
        actions = ivr.on_dtmf("2")  # skips every play, answers the main menu: my loan
    assert RouteTo("my_loan") in actions
    assert ivr.path[-2:] == ["main_menu:2", "my_loan"]


def test_flow_stored_before_the_limits_still_walks_its_2000_node_chain() -> None:
    flow = Flow.model_validate(chain_flow(2000))  # not validated: as an old stored version
    ivr = IVR(flow, Caller(client_id=1, language="en"))
    ivr.start()
    with stack_of(60):
        actions = ivr.on_dtmf("0")
    assert RouteTo("operator") in actions


def test_unvalidated_loop_without_input_hangs_up_instead_of_spinning() -> None:
    data = deepcopy(FLOW)
    data["nodes"]["who"] = {"type": "branch", "cases": [], "default": "who"}
    ivr = IVR(Flow.model_validate(data), Caller())
    ivr.start()
    actions = ivr.on_dtmf("1")
    assert actions[-1] == HangupCall()
    assert ivr.done


# ---- surveys ------------------------------------------------------------------------------


def survey_with(questions: int) -> dict[str, Any]:
    data = deepcopy(SURVEY)
    data["questions"] = {
        f"q{i}": {
            "type": "yes_no",
            "prompt": "may_call_back",
            "next": f"q{i + 1}" if i + 1 < questions else "end",
        }
        for i in range(questions)
    }
    data["start"] = "q0"
    return data


def test_shipped_survey_is_within_every_limit() -> None:
    assert validate_survey(Survey.model_validate(SURVEY)) == []


def test_survey_with_too_many_questions_is_refused() -> None:
    data = survey_with(MAX_QUESTIONS + 1)
    expected = [f"questions: {MAX_QUESTIONS + 1:,} questions, at most {MAX_QUESTIONS}"]
    assert validate_survey(Survey.model_validate(data)) == expected
    with pytest.raises(SurveyError) as exc:
        load_survey(json.dumps(data), "s.json")
    assert exc.value.problems == expected


def test_survey_of_the_most_questions_is_accepted_and_checked_without_recursion() -> None:
    survey = Survey.model_validate(survey_with(MAX_QUESTIONS))
    with stack_of(60):
        assert validate_survey(survey) == []


def test_survey_prompt_text_too_long_is_refused() -> None:
    data = deepcopy(SURVEY)
    data["prompts"]["thanks"]["text"]["bs"] = "z" * (MAX_PROMPT_TEXT + 1)
    assert validate_survey(Survey.model_validate(data)) == [
        f"prompts.thanks.text.bs: {MAX_PROMPT_TEXT + 1:,} characters, at most "
        f"{MAX_PROMPT_TEXT:,} (record a media file for a longer announcement)"
    ]


# ---- the stored path ----------------------------------------------------------------------


def test_recorded_path_keeps_a_short_path_whole() -> None:
    path = [f"n{i}" for i in range(MAX_RECORDED_PATH)]
    assert recorded_path(path) == path


def test_recorded_path_keeps_the_start_and_the_latest_with_a_marker() -> None:
    path = [f"n{i}" for i in range(30_007)]
    kept = recorded_path(path)
    assert len(kept) == MAX_RECORDED_PATH
    assert kept[:50] == path[:50]
    assert kept[50] == f"…{30_007 - MAX_RECORDED_PATH + 1} skipped…"
    assert kept[51:] == path[-(MAX_RECORDED_PATH - 51) :]
