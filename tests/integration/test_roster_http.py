"""The roster over HTTP (usecases/roster.py behind web/admin_api.py) on SQLite and PostgreSQL,
no `centrala serve`: supervisors create and edit agents and queues, only admins give roles or
touch supervisors and admins, the last admin stays, a deactivated agent's log-ins end, a
queue's live edit survives a publish that leaves the queue alone, and every change is on the
audit trail, from which a queue's or an agent's change is undone in one step. (The ACD
following an edit on real calls: test_roster_calls.py.)"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from models.crm import CRM
from models.flows import active_flow, publish_flow
from tests.conftest import Database
from tests.integration.flow_site import Site, flow_site
from web.admin_api import OPERATIONS
from web.openapi import OPENAPI

ADMIN = "/desk/api/admin"


@pytest.fixture
async def site(database: Database) -> AsyncIterator[Site]:
    async with flow_site(database) as made:
        yield made


async def call(
    site: Site, method: str, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, Any]:
    resp = await site.client.request(method, path, json=body, headers=headers)
    return resp.status, await resp.json()


def new_agent(agent_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": agent_id, "name": agent_id.title(), "queues": {"general": 0}, **fields}


async def test_a_supervisor_creates_and_edits_agents_but_gives_no_roles(site: Site) -> None:
    supervisor = await site.desk_headers("supervisor")
    status, made = await call(
        site,
        "POST",
        f"{ADMIN}/agents",
        supervisor,
        new_agent("amra", endpoint="PJSIP/201", skills=["bs", "loans"], password="s3cret-pass"),
    )
    assert status == 200, made
    assert (made["role"], made["queues"], made["has_password"]) == ("agent", {"general": 0}, True)
    status, body = await call(
        site, "POST", f"{ADMIN}/agents", supervisor, new_agent("boss", role="supervisor")
    )
    assert (status, body["error_id"]) == (403, "forbidden")
    status, body = await call(site, "POST", f"{ADMIN}/agents", supervisor, new_agent("amra"))
    assert (status, body["error_id"]) == (409, "agent_exists")

    status, edited = await call(
        site,
        "PATCH",
        f"{ADMIN}/agents/amra",
        supervisor,
        {"queues": {"general": 5, "finance": 0}, "skills": ["bs"], "email": "amra@fondacija.ba"},
    )
    assert status == 200, edited
    assert edited["queues"] == {"finance": 0, "general": 5}
    assert edited["email"] == "amra@fondacija.ba"  # where escalated inquiries reach her
    profile = (await CRM(site.database.sessions).profiles(["amra"]))[0]
    assert profile.queues == {"general": 5, "finance": 0}  # what the ACD reads next

    status, body = await call(site, "PATCH", f"{ADMIN}/agents/amra", supervisor, {"role": "admin"})
    assert (status, body["error_id"]) == (403, "forbidden")
    admin = await site.desk_headers("admin")
    status, body = await call(site, "PATCH", f"{ADMIN}/agents/amra", admin, {"role": "supervisor"})
    assert (status, body["role"]) == (200, "supervisor")
    # Now a supervisor: another supervisor may no longer set her password or switch her off.
    status, body = await call(
        site, "POST", f"{ADMIN}/agents/amra/password", supervisor, {"password": "0ther-pass!"}
    )
    assert (status, body["error_id"]) == (403, "forbidden")

    _, trail = await call(site, "GET", f"{ADMIN}/audit?subject=agent:amra", admin)
    assert [(e["action"], e["actor"]) for e in trail["entries"]] == [
        ("agent.edit", "admin-1"),
        ("agent.edit", "supervisor-1"),
        ("agent.create", "supervisor-1"),
    ]
    assert trail["entries"][0]["detail"] == {
        "before": {"role": "agent"},
        "after": {"role": "supervisor"},
    }
    assert "argon2" not in str(trail)  # no password hash on the trail


async def test_a_deactivated_agents_log_ins_end_and_the_last_admin_stays(site: Site) -> None:
    admin = await site.desk_headers("admin")
    agent = await site.desk_headers("agent")
    # An agent may not open the roster (403) but is logged in (not 401)...
    assert (await site.client.get(f"{ADMIN}/agents", headers=agent)).status == 403
    status, body = await call(site, "PATCH", f"{ADMIN}/agents/agent-1", admin, {"active": False})
    assert (status, body["active"]) == (200, False)
    assert (await site.client.get(f"{ADMIN}/agents", headers=agent)).status == 401  # ...no more

    status, body = await call(site, "PATCH", f"{ADMIN}/agents/admin-1", admin, {"role": "agent"})
    assert (status, body["error_id"]) == (409, "last_admin")
    status, body = await call(site, "PATCH", f"{ADMIN}/agents/admin-1", admin, {"active": False})
    assert (status, body["error_id"]) == (409, "last_admin")
    await site.desk_headers("admin", agent="admin-2")
    status, body = await call(site, "PATCH", f"{ADMIN}/agents/admin-1", admin, {"role": "agent"})
    assert status == 200  # another admin is left


async def test_a_queues_live_edit_survives_a_publish_that_leaves_it_alone(site: Site) -> None:
    supervisor = await site.desk_headers("supervisor")
    status, body = await call(
        site, "PATCH", f"{ADMIN}/queues/general", supervisor, {"max_wait_seconds": 2}
    )
    assert (status, body["error_id"]) == (422, "invalid_queue")
    assert "max_wait_seconds" in body["message"]
    status, body = await call(
        site, "PATCH", f"{ADMIN}/queues/general", supervisor, {"max_wait_seconds": 90}
    )
    assert (status, body["max_wait_seconds"]) == (200, 90)
    crm = CRM(site.database.sessions)
    assert (await crm.queues())["general"].max_wait_seconds == 90

    found = await active_flow(site.database.sessions, "infoline")
    assert found is not None
    flow = found[1]
    menu_changed = copy.deepcopy(flow.model_dump(mode="json"))
    menu_changed["nodes"]["main_menu"]["timeout_seconds"] = 7
    await publish_flow(site.database.sessions, type(flow).model_validate(menu_changed), "admin")
    assert (await CRM(site.database.sessions).queues())["general"].max_wait_seconds == 90

    queue_changed = copy.deepcopy(menu_changed)
    queue_changed["queues"]["general"]["max_wait_seconds"] = 120
    await publish_flow(site.database.sessions, type(flow).model_validate(queue_changed), "admin")
    assert (await CRM(site.database.sessions).queues())["general"].max_wait_seconds == 120


async def test_queue_members_are_set_exactly(site: Site) -> None:
    supervisor = await site.desk_headers("supervisor")
    for agent_id in ("amra", "edin"):
        await call(site, "POST", f"{ADMIN}/agents", supervisor, new_agent(agent_id))
    status, body = await call(
        site, "PUT", f"{ADMIN}/queues/finance/members", supervisor, {"members": {"edin": 3}}
    )
    assert (status, body["members"]) == (200, {"edin": 3})
    _, queues = await call(site, "GET", f"{ADMIN}/queues", supervisor)
    finance = next(q for q in queues["queues"] if q["id"] == "finance")
    assert finance["members"] == {"edin": 3}
    status, body = await call(
        site, "PUT", f"{ADMIN}/queues/general/members", supervisor, {"members": {}}
    )
    assert status == 200
    profiles = {
        p.id: p.queues for p in await CRM(site.database.sessions).profiles(["amra", "edin"])
    }
    assert profiles == {"amra": {}, "edin": {"finance": 3}}
    status, body = await call(
        site, "PUT", f"{ADMIN}/queues/finance/members", supervisor, {"members": {"nobody": 1}}
    )
    assert (status, body["error_id"]) == (404, "unknown_agent")


async def test_a_queues_or_an_agents_change_is_undone_in_one_step(site: Site) -> None:
    supervisor = await site.desk_headers("supervisor")
    await call(site, "POST", f"{ADMIN}/agents", supervisor, new_agent("amra"))
    await call(site, "PATCH", f"{ADMIN}/queues/general", supervisor, {"max_wait_seconds": 90})
    await call(site, "PATCH", f"{ADMIN}/queues/general", supervisor, {"priority": 3})
    await call(site, "PUT", f"{ADMIN}/queues/general/members", supervisor, {"members": {"amra": 4}})
    status, history = await call(site, "GET", f"{ADMIN}/queues/general/history", supervisor)
    assert status == 200
    members, priority, wait = history["changes"]
    assert [c["action"] for c in history["changes"]] == [
        "queue.members",
        "queue.edit",
        "queue.edit",
    ]
    assert (wait["detail"]["after"], priority["detail"]["after"]) == (
        {"max_wait_seconds": 90},
        {"priority": 3},
    )

    # The wait's change is undone alone: the later priority change stays.
    status, body = await call(site, "POST", f"{ADMIN}/queues/general/undo/{wait['id']}", supervisor)
    assert status == 200, body
    queues = await CRM(site.database.sessions).queues()
    assert (queues["general"].max_wait_seconds, queues["general"].priority) == (
        wait["detail"]["before"]["max_wait_seconds"],
        3,
    )
    # Undoing it twice would undo nothing seen: refused, as is another queue's change.
    status, body = await call(site, "POST", f"{ADMIN}/queues/general/undo/{wait['id']}", supervisor)
    assert (status, body["error_id"]) == (409, "changed_since")
    status, body = await call(site, "POST", f"{ADMIN}/queues/finance/undo/{wait['id']}", supervisor)
    assert (status, body["error_id"]) == (404, "unknown_change")
    status, body = await call(
        site, "POST", f"{ADMIN}/queues/general/undo/{members['id']}", supervisor
    )
    assert (status, body["members"]) == (200, {"amra": 0})

    # An agent deactivated by mistake is back in one step, with their log-ins gone.
    await call(site, "PATCH", f"{ADMIN}/agents/amra", supervisor, {"active": False})
    _, history = await call(site, "GET", f"{ADMIN}/agents/amra/history", supervisor)
    off = history["changes"][0]
    assert (off["action"], off["undoable"], off["detail"]["after"]) == (
        "agent.edit",
        True,
        {"active": False},
    )
    assert history["changes"][-1]["action"] == "agent.create"
    assert history["changes"][-1]["undoable"] is False
    status, body = await call(site, "POST", f"{ADMIN}/agents/amra/undo/{off['id']}", supervisor)
    assert (status, body["active"]) == (200, True)
    created = history["changes"][-1]["id"]
    status, body = await call(site, "POST", f"{ADMIN}/agents/amra/undo/{created}", supervisor)
    assert (status, body["error_id"]) == (422, "not_undoable")

    # A supervisor cannot undo their way into an admin's record.
    admin = await site.desk_headers("admin")
    await call(site, "PATCH", f"{ADMIN}/agents/amra", admin, {"role": "supervisor"})
    _, history = await call(site, "GET", f"{ADMIN}/agents/amra/history", admin)
    promoted = history["changes"][0]["id"]
    status, body = await call(site, "POST", f"{ADMIN}/agents/amra/undo/{promoted}", supervisor)
    assert (status, body["error_id"]) == (403, "forbidden")
    status, body = await call(site, "POST", f"{ADMIN}/agents/amra/undo/{promoted}", admin)
    assert (status, body["role"]) == (200, "agent")


# One migrated database for all of them: a migration per case would cost more than the cases.
BAD_AGENTS: list[tuple[dict[str, Any], str]] = [
    (new_agent("has space"), "id"),
    (new_agent("x" * 65), "id"),
    (new_agent("amra", name=""), "name"),
    (new_agent("amra", endpoint="PJSIP/1&PJSIP/2"), "endpoint"),
    (new_agent("amra", skills="bs"), "skills"),
    (new_agent("amra", queues={"general": 101}), "queues"),
    (new_agent("amra", queues={"general": True}), "queues"),
    (new_agent("amra", password="short"), "password"),
    (new_agent("amra", role="boss"), "role"),
    (new_agent("amra", email="not-an-address"), "email"),
]


async def test_bad_input_gets_a_clear_error_and_changes_nothing(site: Site) -> None:
    admin = await site.desk_headers("admin")
    for body, field in BAD_AGENTS:
        status, answer = await call(site, "POST", f"{ADMIN}/agents", admin, body)
        assert (status, answer["details"].get("field")) == (400, field), (body, answer)
    status, answer = await call(site, "POST", f"{ADMIN}/agents", admin, {**new_agent("a"), "x": 1})
    assert (status, answer["error_id"]) == (400, "bad_request")
    status, answer = await call(
        site, "POST", f"{ADMIN}/agents", admin, new_agent("amra", queues={"nowhere": 0})
    )
    assert (status, answer["error_id"]) == (422, "unknown_queue")
    _, agents = await call(site, "GET", f"{ADMIN}/agents", admin)
    assert [a["id"] for a in agents["agents"]] == ["admin-1"]
    status, answer = await call(site, "PATCH", f"{ADMIN}/queues/general", admin, {"colour": 1})
    assert (status, answer["error_id"]) == (400, "bad_request")
    status, answer = await call(site, "PATCH", f"{ADMIN}/queues/nowhere", admin, {})
    assert (status, answer["error_id"]) == (404, "unknown_queue")


async def test_agents_are_refused_every_admin_route(site: Site) -> None:
    agent, supervisor = await site.desk_headers("agent"), await site.desk_headers("supervisor")
    for method, path, _operation, _action in OPERATIONS:
        concrete = (
            path.replace("{agent_id}", "agent-1")
            .replace("{queue_id}", "general")
            .replace("{entry_id}", "1")
        )
        status, body = await call(site, method, f"{ADMIN}{concrete}", agent, {})
        assert (status, body["error_id"]) == (403, "forbidden"), (method, path)
    status, body = await call(site, "GET", f"{ADMIN}/audit", supervisor)
    assert (status, body["error_id"]) == (403, "forbidden")  # the audit trail is the admin's
    status, _ = await call(site, "GET", "/api/admin/agents", {})
    assert status == 401


def test_every_admin_route_is_in_the_openapi_document() -> None:
    for method, path, _operation, _action in OPERATIONS:
        for prefix in ("/api/admin", "/desk/api/admin"):
            assert method.lower() in OPENAPI["paths"][f"{prefix}{path}"]
