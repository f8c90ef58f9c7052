"""The call log report's routes in a minimal aiohttp app (no `centrala serve`, no Asterisk),
on SQLite and PostgreSQL: one call written through the call log's own write path (open, its
trail, close) and the others as rows by hand; every filter, the date range as local days
across the autumn daylight-saving change, paging with the cursor, the streamed CSV equal to
the JSON rows, bad input as 400 with an error_id, and who may look (bearer token;
supervisors and admins on the desk, agents refused)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from centrala.service import SESSIONS, SETTINGS
from centrala.settings import Settings
from models.calllog import CallLog
from models.tables import (
    Agent,
    AgentRole,
    Call,
    CallEvent,
    Campaign,
    Client,
    Direction,
    Interaction,
)
from tests.conftest import Database
from tests.desk_web import offline_desk_web
from tests.integration.test_survey_reports_http import Users
from web.calllog_api import desk_routes, routes
from web.errors import api_guard, errors
from web.http import WEB, setup_templates
from web.reports import routes as desk_report_routes

TOKEN = "calllog-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
Http = tuple[TestClient[Any, Any], Users]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def seed(database: Database) -> str:
    """The calls; returns the id of the one written through the call log."""
    async with database.sessions() as session, session.begin():
        session.add_all(
            [
                Client(id=41, external_id="K41", name="=Amra (formula)"),
                Client(id=42, external_id="K42", name="Haris"),
                Campaign(id=7, name="sales-nov", kind="sales"),
            ]
        )
    async with database.sessions() as session, session.begin():
        for agent_id in ("haris", "lejla", "emir"):
            session.add(Agent(id=agent_id, name=agent_id, role=AgentRole.AGENT, active=True))
    # Through the call log: an inbound call put through to haris, held 15 s, transferred
    # (attended) to lejla, with its disposition's note.
    log = CallLog(database.sessions, "BA")
    start = _utc("2026-11-10T08:00:00")
    opened = await log.open_call(
        channel_id="chan-live",
        linkedid="chan-live",
        direction=Direction.INBOUND,
        handler="ari",
        caller_number="+38761000042",
        caller_name="Haris",
        called_number="0800100200",
        started_at=start,
        client_id=42,
    )
    queued = start + timedelta(seconds=20)
    connected = queued + timedelta(seconds=35)
    await log.update(opened.id, queue="loans", queued_at=queued)
    await log.update(opened.id, agent_id="haris", connected_at=connected, wait_seconds=35.0)
    await log.event(opened.id, "agent_connected", at=connected, agent_id="haris", waited=35.0)
    await log.event(opened.id, "held", at=connected + timedelta(seconds=10), agent_id="haris")
    await log.event(opened.id, "resumed", at=connected + timedelta(seconds=25), agent_id="haris")
    await log.event(
        opened.id, "consult_connected", at=connected + timedelta(seconds=40), agent_id="lejla"
    )
    await log.update(opened.id, agent_id="lejla")
    await log.close(
        opened.id,
        at=connected + timedelta(seconds=100),
        cause=16,
        cause_text="Normal Clearing",
        outcome="answered",
        ivr_path=["welcome", "menu", "2"],
        talk_seconds=100.0,
    )
    await log.flush()
    await log.aclose()

    def call(n: int, started: str, **values: Any) -> Call:
        return Call(
            id=f"call-{n:02d}",
            channel_id=f"chan-{n:02d}",
            direction=values.pop("direction", Direction.INBOUND),
            handler="ari",
            caller_number=values.pop("caller_number", f"+3876100{n:04d}"),
            called_number="0800100200",
            started_at=_utc(started),
            ended_at=_utc(started) + timedelta(seconds=60),
            ivr_path=values.pop("ivr_path", ["welcome", "menu", "1"]),
            **values,
        )

    async with database.sessions() as session, session.begin():
        session.add_all(
            [
                # Around Sarajevo's autumn change (2026-10-25, 03:00 CEST -> 02:00 CET):
                # 22:30 UTC on the 24th is 00:30 on the 25th; 00:30 and 01:30 UTC are both
                # 02:30 local; 22:30 UTC on the 25th is 23:30 that day; 23:30 UTC the 26th.
                call(1, "2026-10-24T21:30:00", queue="general", outcome="abandoned"),
                call(2, "2026-10-24T22:30:00", queue="general", outcome="abandoned"),
                call(3, "2026-10-25T00:30:00", queue="general", agent_id="emir",
                     outcome="answered", disposition="information", client_id=41),
                call(4, "2026-10-25T01:30:00", queue="loans", agent_id="emir",
                     outcome="answered", disposition="complaint"),
                call(5, "2026-10-25T22:30:00", queue="loans", outcome="after_hours"),
                call(6, "2026-10-25T23:30:00", queue="general", outcome="abandoned"),
                # Outbound, an agent campaign's call with its disposition.
                call(7, "2026-11-10T09:00:00", direction=Direction.OUTBOUND, agent_id="emir",
                     campaign_id=7, outcome="answered", disposition="sale", client_id=41,
                     ivr_path=[], answered_at=_utc("2026-11-10T09:00:05")),
                # Two calls at the same instant: the cursor's tie on started_at.
                call(8, "2026-11-11T10:00:00", queue="general", outcome="abandoned"),
                call(9, "2026-11-11T10:00:00", queue="general", outcome="abandoned"),
            ]
        )  # fmt: skip
    async with database.sessions() as session, session.begin():
        session.add_all(
            [
                Interaction(
                    client_id=42, call_id=opened.id, agent_id="lejla", note="[resolved] rate"
                ),
                Interaction(client_id=41, call_id="call-07", agent_id="emir", note="@buy now"),
                Interaction(client_id=41, call_id="call-03", agent_id="emir", note=None),
                CallEvent(call_id="call-03", at=_utc("2026-10-25T00:31:00"), kind="held", data={}),
            ]
        )
    return opened.id


@pytest.fixture
async def http(database: Database, tmp_path: Path) -> AsyncIterator[tuple[Http, str]]:
    live = await seed(database)
    settings = Settings(api_token=TOKEN, data_dir=tmp_path)
    app = web.Application(middlewares=[errors, api_guard(settings.effective_api_token)])
    app[SETTINGS] = settings
    app[SESSIONS] = database.sessions
    app[WEB] = offline_desk_web(database.sessions, "calllog-test-secret")
    setup_templates(app)
    app.router.add_routes(routes(SESSIONS))
    app.router.add_routes(desk_routes())
    app.router.add_routes(desk_report_routes())
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield (client, Users(database, app[WEB].sessions, app[WEB].web_sessions)), live
    finally:
        await client.close()


async def _ids(http_client: TestClient[Any, Any], **params: str) -> list[str]:
    resp = await http_client.get("/api/reports/calls", params=params, headers=BEARER)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["next_cursor"] is None and body["timezone"] == "Europe/Sarajevo"
    return [c["id"] for c in body["calls"]]


async def test_the_call_written_through_the_call_log_has_it_all(
    http: tuple[Http, str],
) -> None:
    (client, _), live = http
    resp = await client.get("/api/reports/calls", params={"agent": "lejla"}, headers=BEARER)
    (row,) = (await resp.json())["calls"]
    assert row["id"] == live
    assert row["started_at"] == "2026-11-10T09:00:00+01:00"
    assert row["ivr_path"] == ["welcome", "menu", "2"] and row["queue"] == "loans"
    assert row["agents"] == ["haris", "lejla"]
    assert (row["wait_seconds"], row["talk_seconds"], row["hold_seconds"]) == (35, 100, 15)
    assert row["outcome"] == "answered" and row["notes"] == ["[resolved] rate"]
    assert row["client_id"] == 42 and row["client_name"] == "Haris"
    assert row["direction"] == "inbound" and row["hangup_cause"] == 16


async def test_every_filter(http: tuple[Http, str]) -> None:
    (client, _), live = http
    everyone = await _ids(client)
    assert len(everyone) == 10
    assert everyone[:3] == ["call-09", "call-08", "call-07"]  # newest first, ties by id
    assert await _ids(client, direction="outbound") == ["call-07"]
    assert await _ids(client, queue="loans") == [live, "call-05", "call-04"]
    # The agent of the row, or anyone put through during the call (haris, then lejla).
    assert await _ids(client, agent="haris") == [live]
    assert await _ids(client, agent="emir") == ["call-07", "call-04", "call-03"]
    assert await _ids(client, campaign="sales-nov") == ["call-07"]
    assert await _ids(client, campaign="nope") == []
    assert await _ids(client, client="41") == ["call-07", "call-03"]
    assert await _ids(client, outcome="after_hours") == ["call-05"]
    assert await _ids(client, disposition="sale") == ["call-07"]
    assert await _ids(client, queue="general", outcome="answered") == ["call-03"]


async def test_a_date_range_is_local_days_across_the_autumn_change(
    http: tuple[Http, str],
) -> None:
    (client, _), _live = http
    # 2026-10-25 had 25 hours: 00:30, both 02:30s and 23:30 local are in it.
    day = await _ids(client, since="2026-10-25", until="2026-10-25")
    assert day == ["call-05", "call-04", "call-03", "call-02"]
    assert await _ids(client, until="2026-10-24") == ["call-01"]
    assert await _ids(client, since="2026-10-26", until="2026-10-26") == ["call-06"]
    assert len(await _ids(client, since="2026-11-01")) == 4


async def test_pages_follow_the_cursor_to_the_end(http: tuple[Http, str]) -> None:
    (client, _), _live = http
    seen: list[dict[str, Any]] = []
    params = {"limit": "3"}
    pages = 0
    while True:
        resp = await client.get("/api/reports/calls", params=params, headers=BEARER)
        body = await resp.json()
        assert body["limit"] == 3 and len(body["calls"]) <= 3
        seen += body["calls"]
        pages += 1
        if body["next_cursor"] is None:
            break
        params = {"limit": "3", "cursor": body["next_cursor"]}
    whole = await client.get("/api/reports/calls", params={"limit": "500"}, headers=BEARER)
    assert seen == (await whole.json())["calls"] and pages == 4
    # A filter keeps its pages: queue general, two at a time, across the tie at 10:00.
    first = await (
        await client.get("/api/reports/calls", params={"limit": "2", "queue": "general"},
                         headers=BEARER)
    ).json()  # fmt: skip
    assert [c["id"] for c in first["calls"]] == ["call-09", "call-08"]
    second = await (
        await client.get(
            "/api/reports/calls",
            params={"limit": "2", "queue": "general", "cursor": first["next_cursor"]},
            headers=BEARER,
        )
    ).json()
    assert [c["id"] for c in second["calls"]] == ["call-06", "call-03"]


def _csv_as_json(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row read back into the JSON row's shape (the cells' quote taken off)."""

    def text(value: str) -> str | None:
        return (value[1:] if value[:2] in ("'=", "'+", "'-", "'@") else value) or None

    def number(value: str) -> float | None:
        return float(value) if value else None

    return {
        "id": row["id"],
        "started_at": row["started_at"],
        "answered_at": row["answered_at"] or None,
        "ended_at": row["ended_at"] or None,
        "direction": row["direction"],
        "caller_number": text(row["caller_number"]),
        "called_number": text(row["called_number"]),
        "client_id": int(row["client_id"]) if row["client_id"] else None,
        "client_name": text(row["client_name"]),
        "campaign": text(row["campaign"]),
        "ivr_path": row["ivr_path"].split(">") if row["ivr_path"] else [],
        "queue": text(row["queue"]),
        "agents": row["agents"].split(";") if row["agents"] else [],
        "wait_seconds": number(row["wait_seconds"]),
        "talk_seconds": number(row["talk_seconds"]),
        "hold_seconds": number(row["hold_seconds"]),
        "outcome": text(row["outcome"]),
        "disposition": text(row["disposition"]),
        "notes": [text(n) for n in row["notes"].split(" | ")] if row["notes"] else [],
        "hangup_cause": int(row["hangup_cause"]) if row["hangup_cause"] else None,
    }


@pytest.mark.parametrize("params", [{}, {"queue": "general"}, {"since": "2026-10-25"}])
async def test_the_csv_is_the_json_rows(http: tuple[Http, str], params: dict[str, str]) -> None:
    (client, _), _live = http
    resp = await client.get("/api/reports/calls.csv", params=params, headers=BEARER)
    assert resp.status == 200
    assert resp.content_type == "text/csv" and resp.charset == "utf-8"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="calls.csv"'
    text = await resp.text()
    rows = list(csv.DictReader(io.StringIO(text)))
    page = await client.get("/api/reports/calls", params={**params, "limit": "500"}, headers=BEARER)
    assert [_csv_as_json(r) for r in rows] == (await page.json())["calls"]
    if not params:
        by_id = {r["id"]: r for r in rows}
        assert by_id["call-03"]["client_name"] == "'=Amra (formula)"  # formula-safe
        assert by_id["call-07"]["notes"] == "'@buy now"
        assert by_id["call-07"]["caller_number"].startswith("'+387")


@pytest.mark.parametrize(
    ("path", "params", "error_id"),
    [
        ("/api/reports/calls", {"since": "25.10.2026"}, "bad_date"),
        ("/api/reports/calls.csv", {"until": "2026-02-30"}, "bad_date"),
        ("/api/reports/calls", {"limit": "501"}, "bad_limit"),
        ("/api/reports/calls", {"cursor": "garbage!"}, "bad_cursor"),
        ("/api/reports/calls", {"direction": "up"}, "bad_filter"),
        ("/api/reports/calls.csv", {"client": "x"}, "bad_filter"),
        ("/api/reports/calls.csv", {"qeue": "general"}, "unknown_filter"),
    ],
)
async def test_bad_input_is_400_with_an_error_id(
    http: tuple[Http, str], path: str, params: dict[str, str], error_id: str
) -> None:
    (client, _), _live = http
    resp = await client.get(path, params=params, headers=BEARER)
    assert resp.status == 400
    body = await resp.json()
    assert body["error_id"] == error_id and body["message"]


async def test_who_may_look(http: tuple[Http, str]) -> None:
    (client, users), _live = http
    for path in ("/api/reports/calls", "/api/reports/calls.csv"):
        assert (await client.get(path)).status == 401
        assert (await client.get(path, headers={"Authorization": "Bearer no"})).status == 401
    for path in ("/desk/api/reports/calls", "/desk/api/reports/calls.csv"):
        assert (await client.get(path)).status == 401
        agent = await client.get(path, headers=await users.headers("agent"))
        assert agent.status == 403 and (await agent.json())["error_id"] == "forbidden"
        for role in ("supervisor", "admin"):
            ok = await client.get(path, headers=await users.headers(role))
            assert ok.status == 200, await ok.text()
    desk_rows = await (
        await client.get("/desk/api/reports/calls", params={"queue": "loans"},
                         headers=await users.headers("supervisor"))
    ).json()  # fmt: skip
    assert len(desk_rows["calls"]) == 3
    assert (await client.get("/reports/calls", headers=await users.headers("agent"))).status == 403
    stranger = await client.get("/reports/calls", allow_redirects=False)
    assert stranger.status == 303 and stranger.headers["Location"] == "/login"


async def test_the_page_shows_the_filtered_calls_and_links_the_csv(
    http: tuple[Http, str],
) -> None:
    (client, users), _live = http
    headers = await users.headers("supervisor")
    resp = await client.get(
        "/reports/calls", params={"queue": "general", "since": "2026-10-25"}, headers=headers
    )
    assert resp.status == 200
    page = await resp.text()
    assert '<html lang="bs">' in page and "Evidencija poziva" in page
    assert 'href="/desk/api/reports/calls.csv?since=2026-10-25&amp;queue=general"' in page
    assert page.count("<tr><td") == 5  # calls 09, 08, 06, 03 and 02 (00:30 on the 25th)
    assert "=Amra (formula)" in page and "welcome › menu › 1" in page
    bad = await client.get("/reports/calls", params={"since": "soon"}, headers=headers)
    assert bad.status == 400 and "since must be a date" in await bad.text()
    listing = await client.get("/reports/surveys", headers=headers)
    assert 'href="/reports/calls"' in await listing.text()
