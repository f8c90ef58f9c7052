"""The agents report over a shift through the real Asterisk and `centrala serve`, on SQLite and
PostgreSQL: an agent logs in nailed-up, takes a caller, puts them on hold and back, wraps up
(the queue's wrap-up, ended early with "ready"), enters the disposition on the desk, pauses
for lunch, comes back and logs out. The report `serve` gives for the agent is then checked
figure by figure against what the rows say (the state log, the call's row and its hold
events), exactly. (A known day of rows on both databases: test_agent_report_http.py.)"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import select, update

from core.calllog_report import TrailEvent, hold_seconds
from models.flows import apply_flow
from models.tables import Agent, AgentState, Call, CallEvent
from tests.integration.conftest import Callers, Server
from tests.integration.test_infoline_paths import (
    Desk,
    _flow,
    call_and_press,
    finish,
    open_always,
    wait_connected,
    wait_event,
    wait_status,
)
from tests.support import wait_until
from web.auth import hash_password

QUEUE = "new_clients"  # key 0 of the info line
WRAP_UP = 60  # the queue's, for this test: ended early by "ready"
PASSWORD = "nsag report shift"


def with_wrap_up(data: dict[str, Any]) -> None:
    open_always(data)
    data["queues"][QUEUE]["wrap_up_seconds"] = WRAP_UP


@pytest.fixture
async def desk(server: Server) -> AsyncIterator[Desk]:
    await apply_flow(server.db.sessions, _flow(with_wrap_up))
    d = Desk(server)
    try:
        yield d
    finally:
        await d.close()
        # As the other tests of the info line have it (some apply no flow of their own).
        await apply_flow(server.db.sessions, _flow(open_always))


async def dispose(server: Server, agent_id: str, call_id: str) -> None:
    """The agent enters the call's disposition on the desk, as the browser does: log in with
    the form's CSRF token, then the desk API with the page's."""
    async with server.db.sessions() as session, session.begin():
        await session.execute(
            update(Agent).where(Agent.id == agent_id).values(password_hash=hash_password(PASSWORD))
        )
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(server.url + "/login") as resp:
            form = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
        assert form is not None
        login = {"csrf": form.group(1), "agent_id": agent_id, "password": PASSWORD}
        async with http.post(server.url + "/login", data=login, allow_redirects=False) as resp:
            assert resp.status == 303
        async with http.get(server.url + "/desk") as resp:
            token = re.search(r'name="csrf-token" content="([^"]+)"', await resp.text())
        assert token is not None
        async with http.post(
            f"{server.url}/desk/api/calls/{call_id}/disposition",
            json={"category": "information", "outcome": "resolved"},
            headers={"X-CSRF-Token": token.group(1)},
        ) as resp:
            assert resp.status == 200, await resp.text()


def expected(rows: list[AgentState], call: Call, events: list[TrailEvent]) -> dict[str, Any]:
    """The report's totals as the rows say them: each state until the next."""
    spans: dict[str, float] = {"logged_in": 0.0, "wrap_up": 0.0}
    paused: dict[str, float] = {}
    for row, after in pairwise(rows):
        seconds = (after.at - row.at).total_seconds()
        if row.state != "logged_out":
            spans["logged_in"] += seconds
        if row.state == "wrap_up":
            spans["wrap_up"] += seconds
        if row.state == "paused":
            paused[row.reason or ""] = paused.get(row.reason or "", 0.0) + seconds
    assert call.talk_seconds is not None
    hold = hold_seconds(events, call.ended_at)
    talk = call.talk_seconds - hold
    busy = talk + hold + spans["wrap_up"]
    available = spans["logged_in"] - sum(paused.values())
    return {
        "logged_in": round(spans["logged_in"], 1),
        "talk": round(talk, 1),
        "hold": round(hold, 1),
        "wrap_up": round(spans["wrap_up"], 1),
        "paused": round(sum(paused.values()), 1),
        "pause_by_reason": {r: round(s, 1) for r, s in paused.items()},
        "idle": round(available - busy, 1),
        "handled": 1,
        "inbound": 1,
        "outbound": 0,
        "average_handle": round(busy, 1),
        "occupancy": round(busy / available, 4),
        "dispositions": {"information/resolved": 1},
    }


async def test_a_shift_through_asterisk_gives_the_figures_its_rows_say(
    server: Server, callers: Callers, desk: Desk
) -> None:
    agent = await desk.agent("nsag-shift", [QUEUE], login=False)
    await desk.api("POST", f"/api/agents/{agent}/login", {"mode": "nailed"})
    desk.logged_in.append(agent)
    await wait_status(desk, agent, "available", message="the nailed leg up")

    caller = await call_and_press(callers, "+38762840001", "0")
    row = await wait_connected(server, caller)
    assert row.agent_id == agent
    await desk.api("POST", f"/api/calls/{row.id}/hold")
    await wait_event(server, row.id, "held")
    await desk.api("POST", f"/api/calls/{row.id}/resume")
    await wait_event(server, row.id, "resumed")
    ended = await finish(server, caller)
    await wait_status(desk, agent, "wrap_up", message="wrapping up after the call")
    await dispose(server, agent, ended.id)
    await desk.api("POST", f"/api/agents/{agent}/ready")
    await wait_status(desk, agent, "available", message="ready before the wrap-up's end")
    await desk.api("POST", f"/api/agents/{agent}/pause", {"reason": "lunch"})
    await wait_status(desk, agent, "paused", message="paused for lunch")
    await desk.api("POST", f"/api/agents/{agent}/ready")
    await wait_status(desk, agent, "available", message="back from lunch")
    await desk.api("POST", f"/api/agents/{agent}/logout")
    desk.logged_in.remove(agent)

    async def logged() -> list[AgentState] | None:
        async with server.db.sessions() as session:
            rows = list(
                await session.scalars(
                    select(AgentState)
                    .where(AgentState.agent_id == agent)
                    .order_by(AgentState.at, AgentState.id)
                )
            )
        return rows if rows and rows[-1].state == "logged_out" else None

    rows = await wait_until(logged, timeout=10, message="the log-out in the state log")
    assert [(r.state, r.reason) for r in rows] == [
        ("ready", None),
        ("wrap_up", None),
        ("ready", None),
        ("paused", "lunch"),
        ("ready", None),
        ("logged_out", None),
    ]
    async with server.db.sessions() as session:
        call = await session.get(Call, ended.id)
        assert call is not None and call.disposition == "information/resolved"
        events = [
            TrailEvent(at, kind, {})
            for at, kind in await session.execute(
                select(CallEvent.at, CallEvent.kind).where(
                    CallEvent.call_id == call.id, CallEvent.kind.in_(("held", "resumed"))
                )
            )
        ]
    assert [e.kind for e in sorted(events, key=lambda e: e.at)] == ["held", "resumed"]
    zone = ZoneInfo("Europe/Sarajevo")
    first, last = (rows[0].at.astimezone(zone).date(), datetime.now(zone).date())
    report = await desk.api(
        "GET", f"/api/reports/agents?since={first}&until={last}&interval=day&agent={agent}"
    )
    (found,) = report["agents"]
    assert found["agent"] == agent and found["name"] == "nsag-shift"
    total = found["total"]
    assert total == expected(rows, call, events)
    assert total["wrap_up"] < WRAP_UP  # ended early by "ready"
    by_15 = await desk.api(
        "GET", f"/api/reports/agents?since={first}&until={last}&interval=15min&agent={agent}"
    )
    (cut,) = by_15["agents"]
    pieces = [r["logged_in"] for r in cut["intervals"]]  # each rounded to a tenth
    assert abs(sum(pieces) - total["logged_in"]) <= 0.05 * len(pieces) + 1e-9
    assert sum(r["handled"] for r in cut["intervals"]) == 1
