"""Editing surveys and campaign settings over HTTP (usecases/survey_editing.py and
usecases/campaign_settings.py behind web/survey_edit_api.py and web/campaign_api.py) on
SQLite and PostgreSQL, no `centrala serve`: a survey draft checked at its question, published
with a note (its prompts made first) and asked by the next campaign while an older campaign
keeps its version; the second of two admins refused; compared and rolled back; a new survey
from the starter. A running campaign's settings saved onto the revision read, refused when
stale, invalid (at the field), fixed or stopped, with their history; who may do what."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from centrala.prompts import load_survey_file
from core.surveys.model import Survey
from models.audit import entries
from models.campaigns import CampaignStore
from models.surveys import active_survey, apply_survey
from tests.conftest import Database
from tests.integration.flow_site import Site, flow_site
from tests.integration.test_flow_editing_http import call
from web.campaign_api import OPERATIONS as CAMPAIGN_OPERATIONS
from web.openapi import OPENAPI
from web.survey_edit_api import OPERATIONS as SURVEY_OPERATIONS

NPS_FILE = Path(__file__).parents[2] / "surveys" / "nps.yaml"
BASE = "/api/surveys/nps"
DESK = "/desk/api/surveys/nps"


@pytest.fixture
async def site(database: Database) -> AsyncIterator[Site]:
    installed: list[Survey] = []

    async def install(survey: Survey) -> None:
        installed.append(survey)

    await apply_survey(database.sessions, load_survey_file(NPS_FILE), by="tests")
    async with flow_site(database, install=install) as made:
        made.installed = installed  # type: ignore[attr-defined]
        yield made


def reworded(definition: dict[str, Any], text: str) -> dict[str, Any]:
    changed = copy.deepcopy(definition)
    changed["prompts"]["recommend"]["text"]["bs"] = text
    return changed


async def new_campaign(site: Site, name: str, numbers: tuple[str, ...]) -> dict[str, Any]:
    csv = "number,timezone\n" + "".join(f"{n},UTC\n" for n in numbers)
    status, body = await call(
        site, "POST", "/api/campaigns", {"name": name, "survey": "nps", "contacts_csv": csv}
    )
    assert status == 200, body
    return dict(body)


async def test_a_draft_is_checked_at_its_question_then_published_and_asked_next(
    site: Site,
) -> None:
    before = await new_campaign(site, "before-the-edit", ("+38761200001",))
    status, start = await call(site, "GET", f"{BASE}/draft")
    assert status == 200, start
    assert (start["saved"], start["base_version"], start["problems"]) == (False, 1, [])

    broken = copy.deepcopy(start["definition"])
    broken["questions"]["recommend"]["next"][0]["next"] = "nowhere"
    status, saved = await call(site, "PUT", f"{BASE}/draft", {"definition": broken})
    assert status == 200 and saved["saved"] is True
    at_question = [p["message"] for p in saved["problems"] if p["node"] == "recommend"]
    assert len(at_question) == 1 and "nowhere" in at_question[0], saved["problems"]
    status, body = await call(site, "POST", f"{BASE}/publish", {"note": "too soon"})
    assert (status, body["error_id"]) == (422, "has_problems")
    assert body["details"]["problems"][0]["node"] == "recommend"
    assert (await active_survey(site.database.sessions, "nps")).version == 1  # type: ignore[union-attr]

    text = "Od 0 do 10: koliko biste nas preporučili prijatelju?"
    fixed = reworded(start["definition"], text)
    status, checked = await call(site, "POST", f"{BASE}/draft/check", {"definition": fixed})
    assert (status, checked) == (200, {"ok": True, "problems": []})
    assert (await call(site, "PUT", f"{BASE}/draft", {"definition": fixed}))[0] == 200
    status, published = await call(site, "POST", f"{BASE}/publish", {"note": "shorter"})
    assert status == 200, published
    assert (published["version"], published["changed"]) == (2, True)
    # The prompts were made before it went live, from the published text.
    assert [s.prompts["recommend"].text["bs"] for s in site.installed] == [text]  # type: ignore[attr-defined]

    _, history = await call(site, "GET", f"{BASE}/versions")
    assert [
        (v["version"], v["active"], v["note"], v["published_by"]) for v in history["versions"]
    ] == [(2, True, "shorter", "api"), (1, False, None, "tests")]
    _, after = await call(site, "GET", f"{BASE}/draft")
    assert (after["saved"], after["base_version"]) == (False, 2)  # the draft went live

    # The next campaign asks the new version; the one made before keeps its own.
    later = await new_campaign(site, "after-the-edit", ("+38761200002",))
    assert later["survey_id"] == published["id"] != before["survey_id"]
    trail = await entries(site.database.sessions, subject="survey:nps")
    assert [(e.actor, e.action, e.detail["version"]) for e in trail][:1] == [
        ("api", "survey.publish", 2)
    ]


async def test_the_second_of_two_admins_is_refused_and_nothing_changes(site: Site) -> None:
    first = await site.desk_headers("admin")
    second = await site.desk_headers("admin", agent="admin-2")
    _, start = await call(site, "GET", f"{DESK}/draft", headers=first)
    mine = reworded(start["definition"], "Prva verzija pitanja.")
    theirs = reworded(start["definition"], "Druga verzija pitanja.")
    assert (await call(site, "PUT", f"{DESK}/draft", {"definition": mine}, first))[0] == 200
    assert (await call(site, "PUT", f"{DESK}/draft", {"definition": theirs}, second))[0] == 200

    status, body = await call(site, "POST", f"{DESK}/publish", {"note": "first"}, first)
    assert (status, body["version"]) == (200, 2)
    status, body = await call(site, "POST", f"{DESK}/publish", {"note": "second"}, second)
    assert status == 409 and body["error_id"] == "published_since"
    assert "version 2 was published by admin-1" in body["message"]
    assert (body["details"]["draft_base"], body["details"]["active_version"]) == (1, 2)
    active = await active_survey(site.database.sessions, "nps")
    assert active is not None and active.version == 2
    assert active.survey.prompts["recommend"].text["bs"] == "Prva verzija pitanja."
    # The refused draft is kept, to be compared and taken onto version 2.
    _, kept = await call(site, "GET", f"{DESK}/draft", headers=second)
    assert (kept["saved"], kept["base_version"]) == (True, 1)


async def test_versions_are_compared_and_rolled_back(site: Site) -> None:
    _, start = await call(site, "GET", f"{BASE}/draft")
    await call(site, "PUT", f"{BASE}/draft", {"definition": reworded(start["definition"], "Novo.")})
    await call(site, "POST", f"{BASE}/publish", {"note": "new words"})

    status, compared = await call(site, "GET", f"{BASE}/diff?from=1&to=active")
    assert status == 200, compared
    assert [(c["path"], c["kind"], c["after"]) for c in compared["changes"]] == [
        ("prompts.recommend.text.bs", "changed", "Novo.")
    ]
    assert "+      bs: Novo." in compared["text"]
    status, body = await call(site, "GET", f"{BASE}/diff?from=1&to=draft")
    assert (status, body["error_id"]) == (404, "no_draft")

    status, rolled = await call(site, "POST", f"{BASE}/rollback", {"to": 1, "active_version": 1})
    assert (status, rolled["error_id"]) == (409, "published_since")  # 2 is active, not 1
    status, rolled = await call(site, "POST", f"{BASE}/rollback", {"to": 1, "active_version": 2})
    assert status == 200 and rolled["version"] == 3
    active = await active_survey(site.database.sessions, "nps")
    original = load_survey_file(NPS_FILE)
    assert active is not None and active.survey == original
    _, history = await call(site, "GET", f"{BASE}/versions")
    assert history["versions"][0]["note"] == "rolled back to version 1"
    status, shown = await call(site, "GET", f"{BASE}/versions/2")
    assert status == 200 and shown["definition"]["prompts"]["recommend"]["text"]["bs"] == "Novo."
    assert (await call(site, "GET", f"{BASE}/versions/9"))[0] == 404


async def test_a_new_survey_starts_from_a_valid_starter(site: Site) -> None:
    status, start = await call(site, "GET", "/api/surveys/research/draft")
    assert status == 200, start
    assert (start["saved"], start["base_version"], start["problems"]) == (False, None, [])
    assert (await call(site, "GET", "/api/surveys/research/versions"))[0] == 404
    renamed = {**start["definition"], "name": "other"}
    _, saved = await call(site, "PUT", "/api/surveys/research/draft", {"definition": renamed})
    assert [p["at"] for p in saved["problems"]] == ["name"]
    await call(site, "PUT", "/api/surveys/research/draft", {"definition": start["definition"]})
    status, published = await call(site, "POST", "/api/surveys/research/publish", {})
    assert (status, published["version"]) == (200, 1)
    _, listing = await call(site, "GET", "/api/surveys")
    assert [(s["name"], s["version"]) for s in listing["surveys"]] == [("nps", 1), ("research", 1)]
    for bad in ("Research", "x" * 65, "a-b"):
        assert (await call(site, "GET", f"/api/surveys/{bad}/draft"))[0] == 404
    status, body = await call(site, "PUT", f"{BASE}/draft", {"definition": "not a survey"})
    assert (status, body["error_id"]) == (400, "bad_request")


async def test_a_campaigns_settings_are_saved_onto_the_revision_read(site: Site) -> None:
    made = await new_campaign(site, "winter-nps", ("+38761200011", "+38761200012"))
    path = f"/api/campaigns/{made['id']}/settings"
    await call(site, "POST", f"/api/campaigns/{made['id']}/start")
    status, shown = await call(site, "GET", path)
    assert status == 200, shown
    assert (shown["revision"], shown["fixed"], shown["status"]) == (1, ["rules"], "running")
    assert shown["settings"]["concurrency"] == 30  # the defaults filled in
    assert {"starts_at", "ends_at", "caller_id", "machine_prompt"} <= set(shown["optional"])

    wanted = {**shown["settings"], "concurrency": 5}
    status, saved = await call(site, "PUT", path, {"settings": wanted, "revision": 1, "note": "x"})
    assert status == 200, saved
    assert (saved["revision"], saved["settings"]["concurrency"], saved["changed"]) == (2, 5, True)
    # The running dialler reads this at its next tick.
    (running,) = await CampaignStore(site.database.sessions).running()
    assert running.settings.concurrency == 5

    # Someone saved since: refused, nothing changed.
    stale = {**shown["settings"], "ring_seconds": 40}
    status, body = await call(site, "PUT", path, {"settings": stale, "revision": 1})
    assert (status, body["error_id"], body["details"]["revision"]) == (409, "changed_since", 2)
    status, body = await call(
        site, "PUT", path, {"settings": {**wanted, "concurrency": 0}, "revision": 2}
    )
    assert (status, body["error_id"]) == (422, "bad_settings")
    assert [p["at"] for p in body["details"]["problems"]] == ["concurrency"]
    moved = {**wanted, "rules": {**wanted["rules"], "max_attempts": 1}}
    status, body = await call(site, "PUT", path, {"settings": moved, "revision": 2})
    assert (status, body["error_id"], body["details"]["field"]) == (422, "fixed_setting", "rules")
    (running,) = await CampaignStore(site.database.sessions).running()
    assert (running.settings.concurrency, running.settings.ring_seconds) == (5, 30)

    status, history = await call(site, "GET", f"{path}/history")
    assert status == 200
    ((entry),) = history["changes"]
    assert (entry["revision"], entry["by"], entry["note"]) == (2, "api", "x")
    assert entry["changes"] == [
        {"path": "concurrency", "kind": "changed", "before": 30, "after": 5}
    ]

    await call(site, "POST", f"/api/campaigns/{made['id']}/stop")
    status, body = await call(site, "PUT", path, {"settings": wanted, "revision": 2})
    assert (status, body["error_id"]) == (409, "bad_campaign_state")


async def test_only_admins_edit_surveys_and_campaign_settings(site: Site) -> None:
    made = await new_campaign(site, "roles-nps", ("+38761200021",))
    path = f"/desk/api/campaigns/{made['id']}/settings"
    for role in ("agent", "manager", "supervisor"):
        headers = await site.desk_headers(role)
        assert (await call(site, "GET", f"{DESK}/draft", headers=headers))[0] == 403
        assert (await call(site, "GET", "/desk/api/surveys", headers=headers))[0] == 403
        status, _ = await call(site, "PUT", path, {"settings": {}, "revision": 1}, headers)
        assert status == 403
    supervisor = await site.desk_headers("supervisor")
    status, shown = await call(site, "GET", path, headers=supervisor)
    assert (status, shown["revision"]) == (200, 1)
    assert (await call(site, "GET", "/desk/api/campaigns", headers=supervisor))[0] == 200
    admin = await site.desk_headers("admin")
    body = {"settings": {**shown["settings"], "ring_seconds": 45}, "revision": 1}
    status, saved = await call(site, "PUT", path, body, admin)
    assert (status, saved["revision"]) == (200, 2)
    _, history = await call(site, "GET", f"{path}/history", headers=supervisor)
    assert history["changes"][0]["by"] == "admin-1"
    no_csrf = await site.desk_headers("admin", csrf=False)
    assert (await call(site, "PUT", path, body, no_csrf))[0] == 403


def test_every_survey_and_campaign_route_is_in_the_openapi_document() -> None:
    paths = OPENAPI["paths"]
    for prefix, operations in (
        ("/surveys", SURVEY_OPERATIONS),
        ("/campaigns", CAMPAIGN_OPERATIONS),
    ):
        for method, path, _, _ in operations:
            for root in ("/api", "/desk/api"):
                full = f"{root}{prefix}{path}".replace("{op:start|pause|stop}", "start")
                assert method.lower() in paths.get(full, {}), f"{method} {full}"


def test_the_starter_is_a_valid_survey() -> None:
    from core.surveys.validate import validate
    from usecases.survey_editing import starter

    survey = Survey.model_validate(starter("research"))
    assert validate(survey) == []
