""" "Simulate this call" over HTTP in a minimal aiohttp app (no `centrala serve`, no Asterisk),
on SQLite and PostgreSQL: the bearer-token ``POST /api/flows/{name}/simulate`` behind serve's
own guard and error middleware, and the desk's ``/desk/api/flows/{name}/simulate`` behind the
session cookie, the CSRF header and the role (supervisors and admins, not agents). The caller's
facts come from the CRM rows and the queues' live settings from their rows, as a live call's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from core.enums import ClientType
from dialplan.validate import load_flow
from models.flows import apply_flow
from models.tables import Client, Queue
from tests.conftest import Database
from tests.integration.flow_site import BEARER, CLOSED, FLOW_FILE, OPEN, Site, flow_site
from web.openapi import OPENAPI


@pytest.fixture
async def site(database: Database) -> AsyncIterator[Site]:
    async with flow_site(database) as made:
        yield made


async def test_a_new_callers_keys_give_the_path_prompts_and_queue(site: Site) -> None:
    status, body = await site.simulate(
        {"caller": {"number": "061 999 001"}, "at": OPEN, "keys": "9 2"}
    )
    assert status == 200, body
    assert body["version"] == 1 and body["flow"] == "infoline"
    assert body["path"] == [
        "notice",
        "language",
        "language:9",
        "who",
        "greeting_new",
        "main_menu",
        "main_menu:2",
        "my_loan",
    ]
    assert body["caller"]["known"] is False and body["language"] == "en"
    assert [p["prompt"] for p in body["prompts"]][-2:] == ["welcome", "main_menu"]
    assert body["prompts"][-2]["text"] == "Welcome to the foundation's information line."
    end = body["end"]
    assert (end["kind"], end["queue"], end["queue_open"]) == ("queued", "new_clients", True)


async def test_the_clients_facts_on_file_change_the_path(site: Site) -> None:
    request = {"caller": {"number": "+38761555001"}, "at": OPEN, "keys": "w 2"}
    _, before = await site.simulate(request)
    assert "greeting_new" in before["path"] and before["end"]["queue"] == "new_clients"

    client_id = await site.add_client(
        "ana", "+38761555001", client_type=ClientType.KEY, language="en"
    )
    _, known = await site.simulate(request)
    assert known["caller"]["client_id"] == client_id
    assert "greeting_known" in known["path"] and known["end"]["queue"] == "key_accounts"
    assert {p["language"] for p in known["prompts"]} == {"en"}

    # The same client falling behind on payments (a regular client now): finance.
    async with site.database.sessions() as session, session.begin():
        await session.execute(
            update(Client)
            .where(Client.id == client_id)
            .values(client_type=ClientType.REGULAR, overdue_debt=True)
        )
    _, in_debt = await site.simulate({**request, "caller": {"client_id": client_id}})
    assert in_debt["end"]["queue"] == "finance" and in_debt["caller"]["overdue_debt"] is True


async def test_after_hours_the_client_is_offered_a_callback_on_their_number(site: Site) -> None:
    client_id = await site.add_client("bob", "+38761555002", language="bs")
    status, body = await site.simulate(
        {"caller": {"client_id": client_id}, "at": CLOSED, "keys": ["w", "0", "1"]}
    )
    assert status == 200, body
    end = body["end"]
    assert (end["kind"], end["outcome"], end["queue_open"]) == ("hung_up", "after_hours", False)
    assert end["callback"] == {
        "number": "+38761555002",
        "queue": "general",
        "due_at": "2026-12-02T07:00:00+00:00",
        "reason": "after_hours",
        "assigned_agent_id": None,
    }
    assert body["path"][-3:] == ["callback_request", "callback_request:own_number", "goodbye"]


async def test_a_queues_live_settings_count_not_only_the_flows(site: Site) -> None:
    request = {"at": CLOSED, "keys": ">0"}
    _, closed = await site.simulate(request)
    assert closed["end"]["queue_open"] is False
    async with site.database.sessions() as session, session.begin():
        row = await session.scalar(select(Queue).where(Queue.id == "new_clients"))
        assert row is not None
        row.settings = {**row.settings, "calendar": "always"}
    _, opened = await site.simulate(request)
    assert opened["end"]["queue_open"] is True and opened["end"]["kind"] == "queued"


async def test_an_older_version_is_simulated_when_asked_for(site: Site) -> None:
    # Version 2 treats "my loan" as urgent.
    edited = FLOW_FILE.read_text().replace("intent: my_loan}", "intent: urgent}")
    await apply_flow(site.database.sessions, load_flow(edited, "infoline.yaml"), "tests")
    _, active = await site.simulate({"at": OPEN, "keys": ">2"})
    _, first = await site.simulate({"at": OPEN, "keys": ">2", "version": 1})
    assert (active["version"], active["end"]["queue"]) == (2, "urgent")
    assert (first["version"], first["end"]["queue"]) == (1, "new_clients")
    assert active["path"] == first["path"]


# One migrated database for all of them: a migration per case would cost more than the cases.
BAD_INPUT: list[tuple[Any, int, str]] = [
    ({"caller": {"client_id": 999}}, 400, "unknown_client"),
    ({"caller": {"client_id": 1, "number": "+38761555001"}}, 400, "bad_caller"),
    ({"caller": {"client_id": "1"}}, 400, "bad_caller"),
    ({"caller": {"client_id": True}}, 400, "bad_caller"),
    ({"caller": {"number": "not a number"}}, 400, "bad_caller"),
    ({"caller": {"name": "Ana"}}, 400, "bad_caller"),
    ({"caller": "061 999 001"}, 400, "bad_caller"),
    ({"keys": "1x"}, 400, "bad_keys"),
    ({"keys": 12}, 400, "bad_keys"),
    ({"keys": [{"key": "1", "after_seconds": -2}]}, 400, "bad_keys"),
    ({"at": "2026-12-01T10:00:00"}, 400, "bad_time"),
    ({"at": "tomorrow"}, 400, "bad_time"),
    ({"at": 1764579600}, 400, "bad_time"),
    ({"version": 0}, 400, "bad_version"),
    ({"version": 7}, 404, "unknown_flow"),
    ({"when": OPEN}, 400, "bad_request"),
    ([1, 2], 400, "bad_json"),
]


async def test_bad_input_is_answered_with_an_error_id(site: Site) -> None:
    for body, status, error_id in BAD_INPUT:
        got, answer = await site.simulate(body)
        assert (got, answer["error_id"]) == (status, error_id), (body, answer)
        assert answer["message"]


async def test_unknown_flow_and_a_body_that_is_no_json(site: Site) -> None:
    status, body = await site.simulate({}, name="nope")
    assert (status, body["error_id"]) == (404, "unknown_flow")
    resp = await site.client.post("/api/flows/infoline/simulate", data="{not json", headers=BEARER)
    assert resp.status == 400 and (await resp.json())["error_id"] == "bad_json"


async def test_an_empty_body_simulates_a_withheld_number_now(site: Site) -> None:
    resp = await site.client.post("/api/flows/infoline/simulate", headers=BEARER)
    assert resp.status == 200
    body = await resp.json()
    assert body["caller"]["known"] is False and body["keys_left"] == []
    started = datetime.fromisoformat(body["started_at"])
    assert abs(started - datetime.now(UTC)) < timedelta(minutes=1)


async def test_the_api_needs_the_bearer_token(site: Site) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        status, body = await site.simulate({}, headers=headers)
        assert (status, body["error_id"]) == (401, "unauthorized")


async def test_on_the_desk_supervisors_and_admins_may_simulate_agents_may_not(
    site: Site,
) -> None:
    for role, csrf, status, error_id in [
        ("admin", True, 200, None),
        ("supervisor", True, 200, None),
        ("agent", True, 403, "forbidden"),
        ("manager", True, 403, "forbidden"),
        ("supervisor", False, 403, "csrf"),
        (None, True, 401, "not_logged_in"),
    ]:
        headers = {} if role is None else await site.desk_headers(role, csrf=csrf)
        resp = await site.client.post(
            "/desk/api/flows/infoline/simulate", json={"at": OPEN, "keys": ">0"}, headers=headers
        )
        body = await resp.json()
        assert resp.status == status, (role, body)
        if error_id is None:
            assert body["path"][-1] == "operator"
        else:
            assert body["error_id"] == error_id, (role, body)


def test_both_routes_are_described_in_the_openapi_document() -> None:
    for path in ("/api/flows/{name}/simulate", "/desk/api/flows/{name}/simulate"):
        operation = OPENAPI["paths"][path]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert set(body["properties"]) == {"caller", "at", "keys", "version", "draft"}
    assert OPENAPI["paths"]["/desk/api/flows/{name}/simulate"]["post"]["security"] == [
        {"session": []}
    ]
