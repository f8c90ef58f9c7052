"""Survey checks (core.surveys.validate): each rule shown by a minimal break of the shipped NPS
survey."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from core.surveys.model import Survey, When
from core.surveys.validate import SurveyError, check_survey, load_survey, validate

NPS_FILE = Path(__file__).parents[2] / "surveys" / "nps.yaml"
TEXT = NPS_FILE.read_text(encoding="utf-8")
BASE: dict[str, Any] = yaml.safe_load(TEXT)


def variant(change: Callable[[dict[str, Any]], object]) -> Survey:
    data = copy.deepcopy(BASE)
    change(data)
    return Survey.model_validate(data)


def problems_of(change: Callable[[dict[str, Any]], object]) -> str:
    problems = validate(variant(change))
    assert problems, "expected the survey to be rejected"
    return "\n".join(problems)


def shape_problems(change: Callable[[dict[str, Any]], object]) -> str:
    data = copy.deepcopy(BASE)
    change(data)
    with pytest.raises(SurveyError) as err:
        load_survey(json.dumps(data), "survey.json")
    return "\n".join(err.value.problems)


# ---- the shipped survey -------------------------------------------------------------------


def test_shipped_nps_survey_is_valid_in_bosnian_and_english() -> None:
    survey = check_survey(TEXT, str(NPS_FILE))
    assert survey.name == "nps"
    assert survey.languages == ["bs", "en"]
    assert {q.type for q in survey.questions.values()} == {"nps", "recording", "yes_no"}
    assert survey.consent is not None and survey.consent.key == "1"


def test_shipped_survey_asks_why_only_of_detractors() -> None:
    survey = load_survey(TEXT, "nps.yaml")
    cases = survey.questions["recommend"].next
    assert isinstance(cases, list)
    assert cases[0].next == "why" and cases[0].when is not None
    assert [s for s in range(11) if cases[0].when.holds(s)] == list(range(7))


def test_json_and_yaml_load_the_same_survey() -> None:
    assert load_survey(json.dumps(BASE), "nps.json") == load_survey(TEXT, "nps.yaml")


# ---- parsing ------------------------------------------------------------------------------


def test_yaml_syntax_error_names_the_line() -> None:
    with pytest.raises(SurveyError) as err:
        load_survey("name: nps\nquestions: [\n", "broken.yaml")
    assert err.value.problems[0].startswith("broken.yaml: line")


def test_a_list_is_not_a_survey() -> None:
    with pytest.raises(SurveyError, match="a survey is a mapping"):
        load_survey("- 1\n", "s.yaml")


def test_unknown_question_type_is_named_with_its_path() -> None:
    text = shape_problems(lambda d: d["questions"]["why"].update(type="essay"))
    assert "questions.why" in text


def test_unknown_field_is_rejected_without_the_type_tag_in_the_path() -> None:
    text = shape_problems(lambda d: d["questions"]["recommend"].update(colour="red"))
    assert "questions.recommend.colour: Extra inputs are not permitted" in text


def test_scale_with_min_not_below_max_is_rejected() -> None:
    def change(d: dict[str, Any]) -> None:
        d["questions"]["recommend"] = {
            "type": "scale",
            "prompt": "recommend",
            "min": 5,
            "max": 5,
            "next": "end",
        }

    assert "min 5 must be below max 5" in shape_problems(change)


def test_same_yes_and_no_key_is_rejected() -> None:
    text = shape_problems(lambda d: d["questions"]["may_call_back"].update(no_key="1"))
    assert "yes_key and no_key are both '1'" in text


def test_consent_and_decline_on_one_key_is_rejected() -> None:
    assert "both '1'" in shape_problems(lambda d: d["consent"].update(decline_key="1"))


def test_choice_digit_must_be_a_single_digit_and_options_distinct() -> None:
    def change(d: dict[str, Any]) -> None:
        d["questions"]["may_call_back"] = {
            "type": "choice",
            "prompt": "may_call_back",
            "next": "end",
            "options": {"1": "phone", "#": "web"},
        }

    def doubled(d: dict[str, Any]) -> None:
        d["questions"]["may_call_back"] = {
            "type": "choice",
            "prompt": "may_call_back",
            "next": "end",
            "options": {"1": "phone", "2": "phone"},
        }

    assert "questions.may_call_back.options.#" in shape_problems(change)
    assert "more than one digit: phone" in shape_problems(doubled)


def test_empty_when_and_reversed_range_are_rejected() -> None:
    def empty(d: dict[str, Any]) -> None:
        d["questions"]["recommend"]["next"][0]["when"] = {}

    def reversed_range(d: dict[str, Any]) -> None:
        d["questions"]["recommend"]["next"][0]["when"] = {"min": 6, "max": 0}

    assert "empty `when`" in shape_problems(empty)
    assert "min 6 is above max 0" in shape_problems(reversed_range)


def test_recording_next_cannot_branch() -> None:
    text = shape_problems(
        lambda d: d["questions"]["why"].update(next=[{"when": {"min": 0}, "next": "end"}])
    )
    assert "questions.why.next" in text


# ---- graph --------------------------------------------------------------------------------


def test_unknown_next_is_named() -> None:
    text = problems_of(lambda d: d["questions"]["why"].update(next="whom"))
    assert "questions.why.next: no question named 'whom'" in text


def test_unknown_start_is_named() -> None:
    assert "start: no question named 'nope'" in problems_of(lambda d: d.update(start="nope"))


def test_unreachable_question_is_named() -> None:
    def change(d: dict[str, Any]) -> None:
        d["questions"]["recommend"]["next"] = "may_call_back"

    assert "unreachable questions (no path from start): why" in problems_of(change)


def test_loop_is_rejected_because_answers_are_one_per_question() -> None:
    text = problems_of(lambda d: d["questions"]["may_call_back"].update(next="recommend"))
    assert "loop: may_call_back → recommend → may_call_back" in text or (
        "loop: recommend → may_call_back → recommend" in text
    )


def test_question_named_end_is_reserved() -> None:
    def change(d: dict[str, Any]) -> None:
        d["questions"]["end"] = d["questions"].pop("may_call_back")
        d["questions"]["why"]["next"] = "end"
        d["questions"]["recommend"]["next"][1]["next"] = "end"

    assert "questions.end: 'end' is reserved" in problems_of(change)


# ---- cases --------------------------------------------------------------------------------


def test_cases_without_a_default_are_rejected() -> None:
    text = problems_of(lambda d: d["questions"]["recommend"]["next"].pop())
    assert "questions.recommend.next: no default case" in text


def test_case_after_the_default_is_never_tried() -> None:
    text = problems_of(lambda d: d["questions"]["recommend"]["next"].reverse())
    assert "questions.recommend.next[1]: never tried" in text


def test_nps_condition_outside_zero_to_ten_is_rejected() -> None:
    def change(d: dict[str, Any]) -> None:
        d["questions"]["recommend"]["next"][0]["when"] = {"answer_in": [0, 11], "max": 12}

    text = problems_of(change)
    assert "next[0].when.answer_in: 11 is outside 0..10" in text
    assert "next[0].when.max: 12 is outside 0..10" in text


def test_yes_no_condition_uses_one_and_zero() -> None:
    def change(d: dict[str, Any]) -> None:
        d["questions"]["may_call_back"]["next"] = [
            {"when": {"answer_in": [2]}, "next": "end"},
            {"next": "end"},
        ]

    assert "answer_in: 2 is outside 0..1" in problems_of(change)


def test_choice_condition_must_name_options() -> None:
    def change(d: dict[str, Any]) -> None:
        d["questions"]["may_call_back"] = {
            "type": "choice",
            "prompt": "may_call_back",
            "options": {"1": "phone", "2": "email"},
            "next": [
                {"when": {"option_in": ["fax"]}, "next": "end"},
                {"when": {"answer_in": [1]}, "next": "end"},
                {"next": "end"},
            ],
        }

    text = problems_of(change)
    assert "option_in: 'fax' is not an option [email, phone]" in text
    assert "a choice is answered by option keys" in text


def test_numeric_condition_cannot_use_options() -> None:
    def change(d: dict[str, Any]) -> None:
        d["questions"]["recommend"]["next"][0]["when"] = {"option_in": ["x"]}

    assert "only choice questions have options" in problems_of(change)


# ---- prompts and languages ----------------------------------------------------------------


def test_prompt_missing_a_language_is_named() -> None:
    text = problems_of(lambda d: d["prompts"]["why"]["text"].pop("en"))
    assert "prompts.why: no text or media for language 'en'" in text


def test_media_counts_as_a_prompt_in_that_language() -> None:
    def change(d: dict[str, Any]) -> None:
        d["prompts"]["why"]["text"].pop("en")
        d["prompts"]["why"]["media"] = {"en": "sound:survey-why"}

    assert validate(variant(change)) == []


def test_unknown_prompt_is_named_where_used() -> None:
    text = problems_of(lambda d: d.update(thanks="thank_you"))
    assert "thanks: no prompt named 'thank_you'" in text


def test_declined_prompt_is_checked_too() -> None:
    text = problems_of(lambda d: d["consent"].update(declined_prompt="bye"))
    assert "consent.declined_prompt: no prompt named 'bye'" in text


def test_default_language_must_be_offered_and_languages_listed_once() -> None:
    text = problems_of(lambda d: d.update(default_language="de", languages=["bs", "en", "en"]))
    assert "default_language: 'de' is not in languages" in text
    assert "languages: 'en' is listed twice" in text


# ---- conditions ---------------------------------------------------------------------------


def test_unanswered_matches_no_condition_and_types_do_not_mix() -> None:
    numbers = When(min=0, max=6)
    options = When(option_in=["phone"])
    assert not numbers.holds(None) and not options.holds(None)
    assert numbers.holds(0) and numbers.holds(6) and not numbers.holds(7)
    assert not numbers.holds("phone") and options.holds("phone") and not options.holds(1)
    assert When(answer_in=[1, 3], max=2).holds(1) and not When(answer_in=[1, 3], max=2).holds(3)
