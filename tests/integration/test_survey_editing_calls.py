"""A survey and a campaign edited through the API, asked on real calls through the real
Asterisk: the campaign made before a publish keeps the version it was made with (its
detractor is asked why), the campaign made after asks the new one (no "why", the new
question text synthesised and installed in the PBX before it went live); and a running
campaign's schedule moved by a settings edit is taken up by the dialler at its next tick.
(The console drives the same routes: test_survey_editing_http.py.)"""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from ari_app.ami import AMIClient
from core.media import sound_name
from core.surveys.model import Survey
from models.tables import Call, CampaignContact
from tests.integration.conftest import PBX, Server
from tests.integration.test_campaign_calls import (
    CONSENT,
    NEXT,
    answers_of,
    api,
    settings,
    simulate,
)
from tests.support import wait_until

SURVEY = "/api/surveys/winter"


def number() -> str:
    """A mobile number a contact list takes (this file's own range)."""
    return f"+3876590{random.randrange(10**4):04d}"


NEW_TEXT = {
    "bs": "Od nula do deset, koliko biste nas preporučili prijatelju?",
    "en": "From zero to ten, how likely are you to recommend us to a friend?",
}


def without_why(definition: dict[str, Any]) -> dict[str, Any]:
    """Nobody is asked why any more, and the first question has new words."""
    changed = copy.deepcopy(definition)
    del changed["questions"]["why"]
    del changed["prompts"]["why"]
    changed["questions"]["recommend"]["next"] = "may_call_back"
    changed["prompts"]["recommend"]["text"] = NEW_TEXT
    return changed


async def publish(server: Server, definition: dict[str, Any], note: str) -> dict[str, Any]:
    status, draft = await api(server, "PUT", f"{SURVEY}/draft", {"definition": definition})
    assert status == 200 and draft["problems"] == [], draft
    status, published = await api(server, "POST", f"{SURVEY}/publish", {"note": note})
    assert status == 200, published
    return dict(published)


async def campaign(server: Server, name: str, num: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "survey": "winter",
        "contacts_csv": f"number,timezone\n{num},UTC\n",
        "settings": {**settings().model_dump(mode="json"), **overrides},
    }
    status, made = await api(server, "POST", "/api/campaigns", body)
    assert status == 200, made
    status, started = await api(server, "POST", f"/api/campaigns/{made['id']}/start")
    assert status == 200 and started["status"] == "running", started
    return dict(made)


async def contact(server: Server, campaign_id: int) -> CampaignContact:
    async with server.db.sessions() as session:
        found = await session.scalar(
            select(CampaignContact).where(CampaignContact.campaign_id == campaign_id)
        )
    assert found is not None
    return found


async def survey_call(server: Server, campaign_id: int) -> Call:
    """The contact's survey call, once the survey is over and the call has hung up."""

    async def ended() -> Call | None:
        row = await contact(server, campaign_id)
        if row.status != "done" or row.last_call_id is None:
            return None
        async with server.db.sessions() as session:
            call = await session.get(Call, row.last_call_id)
        return call if call is not None and call.ended_at is not None else None

    return await wait_until(ended, timeout=90, message="the survey call's end")


async def test_the_next_campaign_asks_the_published_survey_and_takes_a_settings_edit(
    server: Server, ami: AMIClient, pbx: PBX
) -> None:
    status, nps = await api(server, "GET", "/api/surveys/nps/draft")
    assert status == 200, nps
    first = await publish(server, {**nps["definition"], "name": "winter"}, "as the NPS")
    asked_why, not_asked = number(), number()
    await simulate(
        ami, asked_why, "human", keys=f"{CONSENT}{NEXT}3{NEXT}5", say="hello-world", keys2="ww1"
    )
    await simulate(ami, not_asked, "human", keys=f"{CONSENT}{NEXT}3{NEXT}1")
    before = await campaign(server, f"winter-{asked_why[-6:]}", asked_why)

    second_definition = without_why({**nps["definition"], "name": "winter"})
    second = await publish(server, second_definition, "no more why")
    assert (first["version"], second["version"]) == (1, 2)
    # The new words were synthesised into the PBX's sounds before the version went live.
    survey = Survey.model_validate(second_definition)
    for lang in ("bs", "en"):
        sound = (
            pbx.settings.effective_prompts_dir
            / lang
            / f"{sound_name(survey, 'recommend', lang)}.wav"
        )
        assert sound.is_file(), sound
    # Made after the publish, and not to call before tomorrow.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    after = await campaign(server, f"winter-{not_asked[-6:]}", not_asked, starts_at=tomorrow)
    assert (before["survey_id"], after["survey_id"]) == (first["id"], second["id"])

    # The campaign made before keeps its version: its detractor is asked why.
    call = await survey_call(server, before["id"])
    given = await answers_of(server, call.id)
    assert call.survey_id == first["id"] and sorted(given) == ["may_call_back", "recommend", "why"]
    # Meanwhile the dialler ticked over the other one many times: its schedule held it back.
    waiting = await contact(server, after["id"])
    assert (waiting.status, waiting.attempts) == ("pending", 0)

    # An admin moves the start to now: the running dialler takes it at its next tick.
    path = f"/api/campaigns/{after['id']}/settings"
    status, shown = await api(server, "GET", path)
    assert status == 200 and shown["settings"]["starts_at"] is not None
    edit = {"settings": {**shown["settings"], "starts_at": None}, "revision": shown["revision"]}
    status, saved = await api(server, "PUT", path, {**edit, "note": "start now"})
    assert status == 200 and saved["revision"] == shown["revision"] + 1, saved
    call = await survey_call(server, after["id"])
    given = await answers_of(server, call.id)
    assert call.survey_id == second["id"] and call.survey_status == "completed"
    assert {k: a.value_int for k, a in given.items()} == {"recommend": 3, "may_call_back": 1}
