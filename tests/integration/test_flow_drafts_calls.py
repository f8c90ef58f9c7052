"""A flow edited through the API, heard on real calls through the real Asterisk: a draft is
tried from its test number while every other caller gets the live version; publishing
changes the next call but not a call already in the menu; "Simulate this call" walks the path
a real call with the same keys takes; a rollback brings the old behaviour back for the next
call. (The browser's console drives the same routes: test_flow_editing_http.py.)"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from centrala.settings import Settings
from core.media import prompt_media
from dialplan.model import Flow
from models.flows import apply_flow
from models.tables import Call
from tests.integration.conftest import CallerLeg, Callers, Server
from tests.integration.test_infoline_paths import (
    Desk,
    _flow,
    call_and_press,
    finish,
    open_always,
    wait_connected,
)
from tests.support import wait_until

FLOWS = "/api/flows/infoline"
TESTER = "+38762810201"


@pytest.fixture
async def desk(server: Server) -> AsyncIterator[Desk]:
    await apply_flow(server.db.sessions, _flow(open_always))
    d = Desk(server)
    try:
        yield d
    finally:
        if await _has_draft(d):
            await d.api("DELETE", f"{FLOWS}/draft")
        await d.close()


async def _has_draft(desk: Desk) -> bool:
    draft = await desk.api("GET", f"{FLOWS}/draft")
    return bool(draft["saved"])


NEW_TEXT = {"bs": "Nova ponuda: krediti za solarne panele.", "en": "New: loans for solar panels."}


def zero_informs(definition: dict[str, Any]) -> dict[str, Any]:
    """Key 0 gives the products' information, which has a new text."""
    changed = copy.deepcopy(definition)
    assert changed["nodes"]["main_menu"]["options"]["0"] == "operator"
    changed["nodes"]["main_menu"]["options"]["0"] = "information"
    changed["prompts"]["information_products"]["text"] = NEW_TEXT
    return changed


async def heard_information(server: Server, call: CallerLeg) -> Call:
    """Key 0 gave self-service: the products' information, no agent."""
    await call.prompt_started("information_products")
    row = await finish(server, call)
    at = row.ivr_path.index("main_menu:0")
    assert row.ivr_path[at + 1] == "information" and row.agent_id is None
    return row


async def reached_operator(server: Server, call: CallerLeg) -> Call:
    """Key 0 gave an operator: an agent took the call."""
    row = await wait_connected(server, call)
    row = await finish(server, call)
    assert row.ivr_path[row.ivr_path.index("main_menu:0") + 1] == "operator"
    return row


async def test_a_draft_heard_from_its_test_number_then_published_then_rolled_back(
    server: Server, callers: Callers, desk: Desk
) -> None:
    await desk.agent("operator", ["new_clients"])
    live = (await desk.api("GET", f"{FLOWS}/versions"))["versions"][0]
    assert live["active"]
    draft = await desk.api("GET", f"{FLOWS}/draft")
    saved = await desk.api(
        "PUT",
        f"{FLOWS}/draft",
        {"definition": zero_informs(draft["definition"]), "test_numbers": [TESTER]},
    )
    trial = saved["trial_version"]
    assert trial is not None and saved["problems"] == []

    # The tester hears the draft, its new text too (synthesised when the draft was saved,
    # into a file of its own); an ordinary caller the live version.
    tester = await call_and_press(callers, TESTER, "0")
    started = await tester.prompt_started("information_products")
    row = await heard_information(server, tester)
    assert row.flow_version == trial
    draft_flow = Flow.model_validate(zero_informs(draft["definition"]))
    lang = started["playback"]["media_uri"].split("/")[-2]
    media = prompt_media(draft_flow, "information_products", lang)
    assert started["playback"]["media_uri"] == media
    assert (Settings().effective_prompts_dir / lang / f"{media.rsplit('/', 1)[-1]}.wav").is_file()
    row = await reached_operator(server, await call_and_press(callers, "+38762810202", "0"))
    assert row.flow_version == live["version"]

    # A caller already in the menu when the draft is published finishes on the old version.
    waiting = await callers.place(caller_id="<+38762810203>")
    await waiting.prompt_started("main_menu")
    live_view = await desk.api("GET", f"{FLOWS}/live")
    assert live_view["nodes"]["main_menu"]["now"] >= 1  # the console sees the caller there
    # The tester hung up in the information prompt: that is where they left.
    assert live_view["nodes"]["information"]["left_today"] >= 1
    published = await desk.api("POST", f"{FLOWS}/publish", {"note": "0 informs"})
    assert published["changed"] is True
    await waiting.dtmf("0")
    row = await reached_operator(server, waiting)
    assert row.flow_version == live["version"]

    # The next ordinary call follows the new version; the simulator walks the same path.
    call = await callers.place(caller_id="<+38762810204>")
    await call.prompt_started("main_menu")
    await call.dtmf("0")
    row = await heard_information(server, call)
    assert row.flow_version == published["version"]
    simulated = await desk.api(
        "POST",
        f"{FLOWS}/simulate",
        {
            "caller": {"number": "+38762810204"},
            "at": datetime.now(UTC).isoformat(),
            # No key at the language choice (its timer runs out), 0, hung up in the next prompt.
            "keys": "w 0 h",
        },
    )
    assert simulated["version"] == published["version"]
    assert simulated["path"] == row.ivr_path, (simulated["path"], row.ivr_path)

    # Rolled back: the next call reaches an operator again.
    back = await desk.api(
        "POST", f"{FLOWS}/rollback", {"to": live["version"], "active_version": published["version"]}
    )
    assert back["version"] > published["version"]
    row = await reached_operator(server, await call_and_press(callers, "+38762810205", "0"))
    assert row.flow_version == back["version"]


async def test_serve_publishes_new_hours_at_their_time(server: Server, desk: Desk) -> None:
    hours = await desk.api("GET", f"{FLOWS}/calendars")
    office = hours["calendars"]["office"]
    office["holidays"] = [*office["holidays"], "2027-01-02"]
    at = datetime.now(UTC) + timedelta(seconds=2)
    scheduled = await desk.api(
        "PUT",
        f"{FLOWS}/calendars/office",
        {"calendar": office, "at": at.isoformat(), "active_version": hours["version"]},
    )

    async def live() -> dict[str, Any] | None:
        versions = (await desk.api("GET", f"{FLOWS}/versions"))["versions"]
        mine = next(v for v in versions if v["version"] == scheduled["version"])
        return mine if mine["active"] else None

    went_live = await wait_until(live, timeout=20, message="the scheduled version live")
    assert went_live["status"] == "published"
    assert datetime.fromisoformat(went_live["published_at"]) >= at
