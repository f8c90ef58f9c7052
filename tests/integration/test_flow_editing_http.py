"""Editing a flow over HTTP (usecases/flow_editing.py behind web/flow_api.py) on SQLite and
PostgreSQL, no `centrala serve`: a draft saved and published with a note, refused when
another admin published since, checked at its nodes, tried from its test numbers (the call
path's CRM gives those numbers the trial version, everyone else the live one), compared,
rolled back, every change on the audit trail, and only admins may edit."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.audit import entries
from models.crm import CRM
from models.flows import active_flow, publish_due
from tests.conftest import Database
from tests.integration.flow_site import BEARER, OPEN, Site, flow_site
from web.flow_api import OPERATIONS
from web.openapi import OPENAPI

BASE = "/api/flows/infoline"
DESK = "/desk/api/flows/infoline"


@pytest.fixture
async def site(database: Database) -> AsyncIterator[Site]:
    async with flow_site(database) as made:
        yield made


async def call(
    site: Site, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    resp = await site.client.request(
        method, path, json=body, headers=BEARER if headers is None else headers
    )
    return resp.status, await resp.json()


def key_3_to_information(definition: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(definition)
    assert changed["nodes"]["main_menu"]["options"]["3"] == "complaint"
    changed["nodes"]["main_menu"]["options"]["3"] = "information"
    changed["nodes"]["main_menu"]["options"]["7"] = "complaint"  # still reachable
    return changed


async def test_a_draft_is_saved_then_published_with_a_note(site: Site) -> None:
    status, start = await call(site, "GET", f"{BASE}/draft")
    assert status == 200, start
    assert (start["saved"], start["base_version"], start["problems"]) == (False, 1, [])

    edited = key_3_to_information(start["definition"])
    status, saved = await call(site, "PUT", f"{BASE}/draft", {"definition": edited})
    assert status == 200, saved
    assert (saved["saved"], saved["base_version"], saved["trial_version"]) == (True, 1, None)
    assert saved["problems"] == []
    found = await active_flow(site.database.sessions, "infoline")
    assert found is not None and found[0] == 1  # nobody hears a draft
    assert found[1].nodes["main_menu"].options["3"] == "complaint"  # type: ignore[union-attr]

    status, published = await call(site, "POST", f"{BASE}/publish", {"note": "3 informs now"})
    assert (status, published) == (200, {"version": 2, "changed": True})
    found = await active_flow(site.database.sessions, "infoline")
    assert found is not None and found[1].nodes["main_menu"].options["3"] == "information"  # type: ignore[union-attr]

    _, history = await call(site, "GET", f"{BASE}/versions")
    assert [
        (v["version"], v["active"], v["note"], v["published_by"]) for v in history["versions"]
    ] == [
        (2, True, "3 informs now", "api"),
        (1, False, None, "tests"),
    ]
    _, after = await call(site, "GET", f"{BASE}/draft")
    assert (after["saved"], after["base_version"]) == (False, 2)  # the draft went live
    status, body = await call(site, "POST", f"{BASE}/publish", {})
    assert (status, body["error_id"]) == (404, "no_draft")


async def test_the_second_of_two_admins_is_refused_and_nothing_changes(site: Site) -> None:
    first, second = (
        await site.desk_headers("admin"),
        await site.desk_headers("admin", agent="admin-2"),
    )
    _, start = await call(site, "GET", f"{DESK}/draft", headers=first)
    mine = key_3_to_information(start["definition"])
    theirs = copy.deepcopy(start["definition"])
    theirs["nodes"]["main_menu"]["options"]["4"] = "information"
    theirs["nodes"]["main_menu"]["options"]["8"] = "apply"
    assert (await call(site, "PUT", f"{DESK}/draft", {"definition": mine}, first))[0] == 200
    assert (await call(site, "PUT", f"{DESK}/draft", {"definition": theirs}, second))[0] == 200

    status, body = await call(site, "POST", f"{DESK}/publish", {"note": "first"}, first)
    assert (status, body["version"]) == (200, 2)
    status, body = await call(site, "POST", f"{DESK}/publish", {"note": "second"}, second)
    assert status == 409 and body["error_id"] == "published_since"
    assert "version 2 was published by admin-1" in body["message"]
    assert body["details"]["draft_base"] == 1 and body["details"]["active_version"] == 2
    found = await active_flow(site.database.sessions, "infoline")
    assert found is not None and found[0] == 2
    assert found[1].nodes["main_menu"].options["4"] == "apply"  # type: ignore[union-attr]

    # Seen the change, the second admin takes their draft onto version 2 and publishes.
    status, _ = await call(
        site, "PUT", f"{DESK}/draft", {"definition": theirs, "base_version": 2}, second
    )
    assert status == 200
    status, body = await call(site, "POST", f"{DESK}/publish", {"note": "second"}, second)
    assert (status, body["version"]) == (200, 3)


async def test_problems_are_shown_at_their_node_and_block_publishing(site: Site) -> None:
    _, start = await call(site, "GET", f"{BASE}/draft")
    broken = copy.deepcopy(start["definition"])
    broken["nodes"]["main_menu"]["options"]["3"] = "nowhere"
    status, saved = await call(
        site, "PUT", f"{BASE}/draft", {"definition": broken, "test_numbers": ["061 555 777"]}
    )
    assert status == 200  # work in progress is kept...
    assert saved["trial_version"] is None  # ...but its test number hears the live version
    assert any(p["node"] == "main_menu" and "nowhere" in p["message"] for p in saved["problems"])

    status, checked = await call(site, "POST", f"{BASE}/draft/check", {"definition": broken})
    assert status == 200 and checked["ok"] is False
    assert [p["node"] for p in checked["problems"]] == [p["node"] for p in saved["problems"]]

    status, body = await call(site, "POST", f"{BASE}/publish", {})
    assert (status, body["error_id"]) == (422, "invalid_flow")
    assert any(p["node"] == "main_menu" for p in body["details"]["problems"])

    shapeless = copy.deepcopy(start["definition"])
    shapeless["nodes"]["main_menu"]["timeout_seconds"] = "soon"
    status, body = await call(site, "PUT", f"{BASE}/draft", {"definition": shapeless})
    assert (status, body["error_id"]) == (422, "invalid_flow")
    assert body["details"]["problems"][0]["at"] == "nodes.main_menu.timeout_seconds"
    _, kept = await call(site, "GET", f"{BASE}/draft")
    assert kept["definition"] == broken  # the refused body changed nothing


async def test_a_drafts_test_numbers_run_it_and_nobody_else_does(site: Site) -> None:
    crm = CRM(site.database.sessions)
    _, start = await call(site, "GET", f"{BASE}/draft")
    edited = key_3_to_information(start["definition"])
    body = {"definition": edited, "test_numbers": ["061 555 777", "+387 61 555 777"]}
    status, saved = await call(site, "PUT", f"{BASE}/draft", body)
    assert status == 200, saved
    assert saved["test_numbers"] == ["+38761555777"]  # one number, written as calls give it
    trial = saved["trial_version"]
    assert trial == 2
    assert await crm.flow_version_for("infoline", "+38761555777") == trial
    assert await crm.flow_version_for("infoline", "+38761555778") == 1
    assert await crm.flow_version_for("infoline", None) == 1

    # Saved again unchanged: the same trial version, not a new number.
    assert (await call(site, "PUT", f"{BASE}/draft", body))[1]["trial_version"] == trial
    # The number is this draft's: another admin's draft may not take it.
    other = await site.desk_headers("admin")
    status, refused = await call(
        site, "PUT", f"{DESK}/draft", {"definition": edited, "test_numbers": ["061555777"]}, other
    )
    assert (status, refused["error_id"]) == (409, "test_number_taken")

    # "Simulate this call" on the draft follows it, as the test number's call will.
    status, walked = await call(
        site, "POST", f"{BASE}/simulate", {"draft": True, "at": OPEN, "keys": "9 3"}
    )
    assert status == 200, walked
    assert walked["version"] == trial and "information" in walked["path"]
    _, live = await call(site, "POST", f"{BASE}/simulate", {"at": OPEN, "keys": "9 3"})
    assert "complaint" in live["path"] and "information" not in live["path"]

    # Trials are never history; the next published version takes the next number.
    _, history = await call(site, "GET", f"{BASE}/versions")
    assert [v["version"] for v in history["versions"]] == [1]
    _, published = await call(site, "POST", f"{BASE}/publish", {})
    assert published == {"version": 3, "changed": True}
    assert await crm.flow_version_for("infoline", "+38761555777") == 3  # draft gone: live


async def test_a_diff_names_the_change_and_rollback_restores_the_old_version(site: Site) -> None:
    _, start = await call(site, "GET", f"{BASE}/draft")
    await call(
        site, "PUT", f"{BASE}/draft", {"definition": key_3_to_information(start["definition"])}
    )
    status, diff = await call(site, "GET", f"{BASE}/diff?from=active&to=draft")
    assert status == 200, diff
    assert diff["changes"] == [
        {
            "path": "nodes.main_menu.options.3",
            "kind": "changed",
            "before": "complaint",
            "after": "information",
        },
        {"path": "nodes.main_menu.options.7", "kind": "added", "after": "complaint"},
    ]
    assert "-      '3': complaint" in diff["text"] and "+      '3': information" in diff["text"]
    await call(site, "POST", f"{BASE}/publish", {"note": "3 informs"})

    status, back = await call(site, "POST", f"{BASE}/rollback", {"to": 1, "active_version": 2})
    assert (status, back) == (200, {"version": 3, "changed": True})
    _, same = await call(site, "GET", f"{BASE}/diff?from=1&to=3")
    assert same["changes"] == [] and same["text"] == ""
    _, history = await call(site, "GET", f"{BASE}/versions")
    assert history["versions"][0]["note"] == "rolled back to version 1"
    status, body = await call(site, "POST", f"{BASE}/rollback", {"to": 2, "active_version": 2})
    assert (status, body["error_id"]) == (409, "published_since")
    status, body = await call(site, "POST", f"{BASE}/rollback", {"to": 99})
    assert (status, body["error_id"]) == (404, "unknown_version")
    status, body = await call(site, "GET", f"{BASE}/diff?from=1&to=latest")
    assert (status, body["error_id"]) == (400, "bad_request")

    trail = await entries(site.database.sessions, subject="flow:infoline")
    assert [(e.action, e.actor, e.detail.get("version")) for e in trail] == [
        ("flow.rollback", "api", 3),
        ("flow.publish", "api", 2),
        ("flow.apply", "tests", 1),
    ]


async def test_only_admins_edit_flows_supervisors_may_simulate(site: Site) -> None:
    agent, supervisor = await site.desk_headers("agent"), await site.desk_headers("supervisor")
    admin = await site.desk_headers("admin")
    for headers, expected in ((agent, 403), (supervisor, 403), (admin, 200)):
        assert (await call(site, "GET", f"{DESK}/draft", headers=headers))[0] == expected
        assert (await call(site, "GET", f"{DESK}/versions", headers=headers))[0] == expected
    status, _ = await call(site, "POST", f"{DESK}/simulate", {"at": OPEN}, supervisor)
    assert status == 200
    status, body = await call(site, "POST", f"{DESK}/publish", {}, supervisor)
    assert (status, body["error_id"]) == (403, "forbidden")
    no_csrf = await site.desk_headers("admin", csrf=False)
    status, body = await call(site, "DELETE", f"{DESK}/draft", headers=no_csrf)
    assert (status, body["error_id"]) == (403, "csrf")
    status, body = await call(site, "GET", f"{BASE}/draft", headers={})
    assert status == 401


# One migrated database for all of them: a migration per case would cost more than the cases.
BAD_DRAFTS: list[tuple[dict[str, Any], str]] = [
    ({"definition": [1]}, "definition"),
    ({"definition": None}, "definition"),
    ({"extra": 1}, ""),
    ({"test_numbers": "0615557"}, "test_numbers"),
    ({"test_numbers": ["not a number"]}, "test_numbers"),
    ({"test_numbers": [f"06155570{i:02d}" for i in range(21)]}, "test_numbers"),
    ({"base_version": 99}, "base_version"),
    ({"base_version": True}, "base_version"),
]


async def test_a_bad_draft_body_gets_a_clear_error_and_saves_nothing(site: Site) -> None:
    _, start = await call(site, "GET", f"{BASE}/draft")
    for body, field in BAD_DRAFTS:
        status, answer = await call(
            site, "PUT", f"{BASE}/draft", {"definition": start["definition"], **body}
        )
        assert (status, answer["error_id"]) == (400, "bad_request"), body
        assert answer["details"].get("field", "") == field, answer
    _, after = await call(site, "GET", f"{BASE}/draft")
    assert after["saved"] is False


def test_every_flow_route_is_in_the_openapi_document() -> None:
    for method, path, _operation, _action in OPERATIONS:
        for prefix in ("/api", "/desk/api"):
            assert method.lower() in OPENAPI["paths"][f"{prefix}/flows/{{name}}{path}"]


async def test_a_supervisor_sets_new_hours_as_a_new_version(site: Site) -> None:
    supervisor = await site.desk_headers("supervisor")
    status, hours = await call(site, "GET", f"{DESK}/calendars", headers=supervisor)
    assert status == 200, hours
    office = hours["calendars"]["office"]
    assert hours["used_by"]["general"] == "office"
    office["weekly"]["sat"] = ["09:00-13:00"]
    office["holidays"] = [*office["holidays"], "2026-12-31"]
    status, body = await call(
        site,
        "PUT",
        f"{DESK}/calendars/office",
        {"calendar": office, "active_version": 1},
        supervisor,
    )
    assert (status, body) == (200, {"version": 2, "changed": True})
    found = await active_flow(site.database.sessions, "infoline")
    assert found is not None and found[1].calendars["office"].weekly["sat"] == ["09:00-13:00"]
    _, history = await call(site, "GET", f"{BASE}/versions")
    assert (history["versions"][0]["note"], history["versions"][0]["published_by"]) == (
        "hours of office",
        "supervisor-1",
    )

    office["weekly"]["sun"] = ["16:00-08:00"]
    status, body = await call(
        site, "PUT", f"{DESK}/calendars/office", {"calendar": office}, supervisor
    )
    assert (status, body["error_id"]) == (422, "invalid_flow")
    assert body["details"]["problems"][0]["at"] == "calendars.office.weekly"
    del office["weekly"]["sun"]  # valid again, but taken from version 1, and 2 is live
    status, body = await call(
        site,
        "PUT",
        f"{DESK}/calendars/office",
        {"calendar": office, "active_version": 1},
        supervisor,
    )
    assert (status, body["error_id"]) == (409, "published_since")
    agent = await site.desk_headers("agent")
    assert (await call(site, "GET", f"{DESK}/calendars", headers=agent))[0] == 403


async def test_a_scheduled_publish_goes_live_at_its_time_unless_overtaken(site: Site) -> None:
    now = datetime.now(UTC)
    _, start = await call(site, "GET", f"{BASE}/draft")
    await call(
        site, "PUT", f"{BASE}/draft", {"definition": key_3_to_information(start["definition"])}
    )
    monday = (now + timedelta(hours=1)).isoformat()
    status, body = await call(site, "POST", f"{BASE}/publish", {"at": monday, "note": "monday"})
    assert status == 200, body
    assert (body["version"], body["scheduled_for"]) == (
        2,
        datetime.fromisoformat(monday).isoformat(),
    )
    _, history = await call(site, "GET", f"{BASE}/versions")
    assert [(v["version"], v["status"], v["active"]) for v in history["versions"]] == [
        (2, "scheduled", False),
        (1, "published", True),
    ]
    assert await publish_due(site.database.sessions, now) == []  # not yet
    outcomes = await publish_due(site.database.sessions, now + timedelta(hours=2))
    assert [(o.version, o.published) for o in outcomes] == [(2, True)]
    found = await active_flow(site.database.sessions, "infoline")
    assert found is not None and found[0] == 2

    # Two schedules taken from version 2: the first to come goes live, the second is refused.
    hours = (await call(site, "GET", f"{BASE}/calendars"))[1]["calendars"]["office"]
    for minutes in (10, 20):
        hours["holidays"] = [*hours["holidays"], f"2027-01-{minutes:02d}"]
        at = (now + timedelta(minutes=minutes)).isoformat()
        status, body = await call(
            site,
            "PUT",
            f"{BASE}/calendars/office",
            {"calendar": hours, "at": at, "active_version": 2},
        )
        assert status == 200, body
    outcomes = await publish_due(site.database.sessions, now + timedelta(hours=1))
    assert [(o.version, o.published) for o in outcomes] == [(3, True), (4, False)]
    _, history = await call(site, "GET", f"{BASE}/versions")
    assert [(v["version"], v["status"]) for v in history["versions"]][:2] == [
        (4, "refused"),
        (3, "published"),
    ]

    await call(site, "PUT", f"{BASE}/draft", {"definition": start["definition"]})
    status, body = await call(
        site, "POST", f"{BASE}/publish", {"at": (now + timedelta(days=2)).isoformat()}
    )
    status, cancelled = await call(site, "DELETE", f"{BASE}/versions/{body['version']}/schedule")
    assert (status, cancelled["cancelled"]) == (200, True)
    status, again = await call(site, "DELETE", f"{BASE}/versions/{body['version']}/schedule")
    assert (status, again["error_id"]) == (404, "unknown_version")
    trail = await entries(site.database.sessions, subject="flow:infoline")
    assert [e.action for e in trail][:2] == ["flow.schedule_cancelled", "flow.schedule"]
    assert "flow.schedule_refused" in [e.action for e in trail]


async def test_a_publish_time_must_be_a_future_time_with_its_zone(site: Site) -> None:
    _, start = await call(site, "GET", f"{BASE}/draft")
    await call(
        site, "PUT", f"{BASE}/draft", {"definition": key_3_to_information(start["definition"])}
    )
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for at in ("2026-12-07T08:00:00", past, "monday", "2099-01-01T00:00:00+00:00", 5):
        status, body = await call(site, "POST", f"{BASE}/publish", {"at": at})
        assert (status, body["details"].get("field")) == (400, "at"), at
    _, draft = await call(site, "GET", f"{BASE}/draft")
    assert draft["saved"] is True  # nothing was published or scheduled
