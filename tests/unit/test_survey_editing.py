"""The pure checks behind the survey and campaign-settings editors: a survey's problems
located at their question, a definition that is not a survey's shape, the starter; a
campaign's settings edit checked by its kind's model, what is fixed, what changed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.errors import DomainError
from models.tables import Campaign, CampaignStatus
from usecases.campaign_settings import check_edit, full
from usecases.survey_editing import SurveyEditError, parse, starter

NPS: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parents[2] / "surveys" / "nps.yaml").read_text()
)


def test_the_shipped_survey_and_the_starter_have_no_problems() -> None:
    assert parse("nps", NPS)[1] == []
    survey, problems = parse("fresh", starter("fresh"))
    assert survey is not None and problems == []


@pytest.mark.parametrize(
    ("edit", "at", "node"),
    [
        (lambda d: d["questions"]["why"].update(next="nowhere"), "questions.why.next", "why"),
        (
            lambda d: d["questions"]["recommend"].update(type="scale"),
            "questions.recommend",
            "recommend",
        ),
        (lambda d: d["prompts"]["thanks"]["text"].pop("en"), "prompts.thanks", None),
        (lambda d: d.update(start="missing"), "start", None),
    ],
)
def test_each_problem_is_placed_at_its_question(edit: Any, at: str, node: str | None) -> None:
    from usecases.flow_editing import problem_items

    definition = copy.deepcopy(NPS)
    edit(definition)
    _, problems = parse("nps", definition)
    items = problem_items(problems, "questions")
    assert any(i["at"].startswith(at) and i["node"] == node for i in items), items


def test_a_definition_of_another_name_or_no_object_is_refused() -> None:
    assert parse("other", NPS) == (None, ["name: must be 'other', the survey edited here"])
    with pytest.raises(SurveyEditError) as refused:
        parse("nps", ["not", "a", "survey"])
    assert refused.value.error_id == "bad_request"


def _campaign(kind: str, settings: dict[str, Any]) -> Campaign:
    return Campaign(
        id=1,
        name="c",
        kind=kind,
        status=CampaignStatus.RUNNING,
        settings=settings,
        settings_revision=1,
    )


def test_a_settings_edit_says_what_it_changes_and_checks_each_field() -> None:
    survey = _campaign("survey", {"concurrency": 10})
    wanted = {**full(survey), "concurrency": 4, "ring_seconds": 20}
    checked, changes = check_edit(survey, wanted)
    assert checked["concurrency"] == 4
    assert [(c.path, c.before, c.after) for c in changes] == [
        ("concurrency", 10, 4),
        ("ring_seconds", 30, 20),
    ]
    with pytest.raises(DomainError) as bad:
        check_edit(survey, {**wanted, "concurrency": 0, "calls_per_second": -1})
    assert bad.value.error_id == "bad_settings"
    assert [p["at"] for p in bad.value.details["problems"]] == ["concurrency", "calls_per_second"]
    with pytest.raises(DomainError) as unknown:
        check_edit(survey, {**wanted, "speed": 3})
    assert [p["at"] for p in unknown.value.details["problems"]] == ["speed"]


@pytest.mark.parametrize(
    ("kind", "settings", "key", "value"),
    [
        ("survey", {}, "rules", {"max_attempts": 1}),
        ("sales", {"queue": "sales", "segment": "active"}, "segment", "new"),
        ("procedural", {"queue": "q", "procedure": "expiry"}, "procedure", "other"),
    ],
)
def test_who_is_called_is_fixed_once_the_contacts_are_loaded(
    kind: str, settings: dict[str, Any], key: str, value: Any
) -> None:
    campaign = _campaign(kind, settings)
    current = full(campaign)
    wanted = {**current, key: {**current[key], **value} if isinstance(value, dict) else value}
    with pytest.raises(DomainError) as fixed:
        check_edit(campaign, wanted)
    assert (fixed.value.error_id, fixed.value.details["field"]) == ("fixed_setting", key)
    # The same campaign's other settings still change.
    _, changes = check_edit(campaign, {**current, "ring_seconds": 33})
    assert [c.path for c in changes] == ["ring_seconds"]
