"""The campaigns report over calls placed through the real Asterisk by `centrala serve`, on
SQLite and PostgreSQL: an agent campaign (progressive, no AMD) reaches two people put through
to a nailed-up agent (one disposed of as a sale), a busy line and a phone nobody answers; an
agent campaign with AMD calls a person and an answering machine; a survey campaign surveys a
person, detects a machine, meets a busy line and a silent one. Each campaign's figures are
known from what its clients do, and checked exactly against the call rows and their AMD
events; the contacts left and done against the contact rows. (A known day of rows on both
databases: test_campaign_report_http.py.)"""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from ari_app.ami import AMIClient
from ari_app.ari import ARINotFound
from core.campaign_report import COLUMNS, amd_verdict
from models.campaigns import CampaignStore, NewContact
from models.surveys import active_survey
from models.tables import Call, CallEvent, CampaignContact
from tests.integration.conftest import Callers, Server
from tests.integration.test_agent_dialler import (
    calls_of,
    create,
    desk,  # noqa: F401  (a fixture)
    line,
    nailed_agent,
    person,
    settled,
    stop_campaigns,  # noqa: F401  (an autouse fixture: the test's campaigns stop with it)
    trail,
)
from tests.integration.test_campaign_calls import (
    CONSENT,
    NEXT,
    api,
    calls_to,
    contacts_of,
    settings,
    simulate,
)
from tests.integration.test_infoline_paths import Desk, wait_status
from tests.support import wait_until

FIGURES = tuple(c for c in COLUMNS if c != "abandon_rate")  # the counts


def numbers(count: int) -> list[str]:
    """``count`` different numbers of this file's own prefix (+3876283)."""
    return [f"+3876283{n}" for n in random.sample(range(1000, 10000), count)]


async def report_of(server: Server, name: str) -> dict[str, Any]:
    day = datetime.now(ZoneInfo("Europe/Sarajevo")).date().isoformat()
    status, body = await api(
        server, "GET", f"/api/reports/campaigns?since={day}&interval=day&campaign={name}"
    )
    assert status == 200, body
    (campaign,) = body["campaigns"]
    assert campaign["campaign"] == name
    return dict(campaign)


async def from_rows(server: Server, calls: list[Call]) -> dict[str, Any]:
    """The figures counted straight from the call rows and their AMD events."""
    counts: Counter[str] = Counter({k: 0 for k in FIGURES})
    dispositions: Counter[str] = Counter()
    async with server.db.sessions() as session:
        for call in calls:
            counts["dials"] += 1
            if call.outcome is None:
                counts["in_progress"] += 1
            else:
                # A survey's "no consent" is counted with the refusals.
                counts[{"no_consent": "refused"}.get(call.outcome, call.outcome)] += 1
                live = ("connected", "abandoned", "completed", "partial", "refused", "no_consent")
                counts["live_answers"] += call.outcome in live
            amd = await session.scalar(
                select(CallEvent.data)
                .where(CallEvent.call_id == call.id, CallEvent.kind == "amd")
                .order_by(CallEvent.id.desc())
                .limit(1)
            )
            verdict = amd_verdict(amd["status"] if amd else None, call.outcome)
            if verdict is not None:
                counts[f"amd_{verdict}"] += 1
            if call.disposition:
                dispositions[call.disposition] += 1
    return {**counts, "dispositions": dict(dispositions)}


def figures(total: dict[str, Any]) -> dict[str, Any]:
    return {k: total[k] for k in (*FIGURES, "dispositions")}


async def contact_counts(server: Server, campaign_id: int) -> Counter[str]:
    async with server.db.sessions() as session:
        rows = await session.scalars(
            select(CampaignContact.status).where(CampaignContact.campaign_id == campaign_id)
        )
        return Counter(rows)


async def test_agent_campaigns_figures_are_what_their_calls_were(
    server: Server,
    ami: AMIClient,
    callers: Callers,
    desk: Desk,  # noqa: F811
) -> None:
    agent = await nailed_agent(desk, "reina")
    first, second, busy, silent, human, machine = numbers(6)
    for n in (first, second):
        await person(ami, n, delay=1, talk=2)
    await line(ami, busy, "busy")
    await line(ami, silent, "noanswer")
    name = f"nscp-prog-{first[-6:]}"
    campaign_id = await create(server, name, "progressive", [first, second, busy, silent])
    status, body = await api(server, "POST", f"/api/campaigns/{campaign_id}/start")
    assert status == 200, body
    await settled(server, campaign_id)
    calls = await calls_of(server, campaign_id)
    sold = calls[first][0]
    assert sold.outcome == "connected" and sold.agent_id == agent
    status, body = await api(
        server,
        "POST",
        f"/api/campaigns/calls/{sold.id}/disposition",
        {"agent_id": agent, "disposition": "sale"},
    )
    assert status == 200, body
    await api(server, "POST", f"/api/campaigns/{campaign_id}/stop")

    report = await report_of(server, name)
    total = report["total"]
    assert {k: total[k] for k in ("dials", "live_answers", "connected", "abandoned")} == {
        "dials": 4,
        "live_answers": 2,
        "connected": 2,
        "abandoned": 0,
    }
    assert (total["busy"], total["no_answer"], total["machine"]) == (1, 1, 0)
    assert total["dispositions"] == {"sale": 1} and total["abandon_rate"] == 0.0
    every = [c for found in (await calls_of(server, campaign_id)).values() for c in found]
    assert figures(total) == await from_rows(server, every)
    (day,) = report["intervals"]
    assert figures(day) == figures(total)
    # The busy and silent clients wait for their retries; the two people are done.
    assert report["contacts"]["left"] == 2 and report["contacts"]["done"] == 2
    statuses = await contact_counts(server, campaign_id)
    assert report["contacts"]["left"] == statuses["pending"] + statuses["dialling"]
    await wait_status(desk, agent, "available", message="the agent free again")

    # With AMD: a person and an answering machine; what AMD said is on each call's trail.
    await line(ami, human, "human")
    await line(ami, machine, "machine")
    name = f"nscp-amd-{human[-6:]}"
    campaign_id = await create(server, name, "progressive", [human, machine], amd=True)
    status, _ = await api(server, "POST", f"/api/campaigns/{campaign_id}/start")
    assert status == 200

    async def decided(call: Call) -> bool:
        kinds = set(await trail(server, call.id))
        return call.ended_at is not None or bool({"agent_connected", "abandoned"} & kinds)

    async def both_decided() -> list[Call] | None:
        calls = await calls_of(server, campaign_id)
        placed = [calls[n][0] for n in (human, machine) if calls.get(n)]
        return placed if len(placed) == 2 and all([await decided(c) for c in placed]) else None

    placed = await wait_until(both_decided, timeout=60, message="AMD's two verdicts acted on")
    for call in placed:  # the person's (or the machine's) part is over: they hang up
        if call.ended_at is None:
            with contextlib.suppress(ARINotFound):
                await callers.ari.hangup(call.channel_id)
    await settled(server, campaign_id, timeout=40)
    await api(server, "POST", f"/api/campaigns/{campaign_id}/stop")
    every = [c for found in (await calls_of(server, campaign_id)).values() for c in found]
    total = (await report_of(server, name))["total"]
    assert total["dials"] == 2
    assert total["amd_human"] + total["amd_machine"] + total["amd_not_sure"] == 2
    assert figures(total) == await from_rows(server, every)
    # The rate as the dialler gives it on the campaign's own status.
    status, body = await api(server, "GET", f"/api/campaigns/{campaign_id}")
    rate = body["dialler"]["abandonment"]["whole_run"]["rate_percent"]
    assert (None if rate is None else round(rate / 100, 4)) == (
        None if total["abandon_rate"] is None else round(total["abandon_rate"], 4)
    )


async def test_a_survey_campaigns_figures_are_what_its_calls_were(
    server: Server, ami: AMIClient
) -> None:
    store = CampaignStore(server.db.sessions)
    stored = await active_survey(server.db.sessions, "nps")
    assert stored is not None
    taker, machine, busy, silent = numbers(4)
    await simulate(ami, taker, "human", keys=f"{CONSENT}{NEXT}9{NEXT}1")
    await simulate(ami, machine, "machine")
    await simulate(ami, busy, "busy")
    await simulate(ami, silent, "noanswer")
    name = f"nscp-nps-{taker[-6:]}"
    campaign_id, count = await store.create(
        name,
        stored.id,
        settings(),
        [NewContact(n, timezone="UTC") for n in (taker, machine, busy, silent)],
    )
    assert count == 4
    status, body = await api(server, "POST", f"/api/campaigns/{campaign_id}/start")
    assert status == 200, body

    async def all_ended() -> list[Call] | None:
        rows = await contacts_of(server, campaign_id)
        if any(r.status == "dialling" or r.attempts == 0 for r in rows.values()):
            return None
        calls = [c for n in (taker, machine, busy, silent) for c in await calls_to(server, n)]
        return calls if len(calls) == 4 and all(c.ended_at for c in calls) else None

    calls = await wait_until(all_ended, timeout=90, message="every contact's call ended")
    status, _ = await api(server, "POST", f"/api/campaigns/{campaign_id}/stop")
    assert status == 200

    report = await report_of(server, name)
    total = report["total"]
    assert {
        k: total[k] for k in ("dials", "live_answers", "completed", "machine", "busy", "no_answer")
    } == {"dials": 4, "live_answers": 1, "completed": 1, "machine": 1, "busy": 1, "no_answer": 1}
    assert (total["amd_machine"], total["connected"], total["abandon_rate"]) == (1, 0, None)
    assert figures(total) == await from_rows(server, calls)
    statuses = await contact_counts(server, campaign_id)
    assert report["contacts"]["done"] == statuses["done"] == 1
    assert report["contacts"]["left"] == statuses["pending"] == 3
