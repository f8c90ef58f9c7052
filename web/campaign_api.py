"""Survey campaigns over the bearer-token API: list, show with progress, create, start, pause,
stop. The same operations as `centrala campaign ...`; the running dialler picks a change up at
its next tick."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from core.surveys.campaign import CampaignSettings
from models.campaigns import CampaignError, CampaignStore
from models.tables import Campaign, CampaignStatus

OPERATIONS = {
    "start": CampaignStatus.RUNNING,
    "pause": CampaignStatus.PAUSED,
    "stop": CampaignStatus.STOPPED,
}


def campaign_json(campaign: Campaign, progress: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": campaign.id,
        "name": campaign.name,
        "status": campaign.status.value,
        "survey_id": campaign.survey_id,
        "settings": campaign.settings,
    }
    if progress is not None:
        body["progress"] = progress
    return body


def check_settings(data: object) -> CampaignSettings:
    """Campaign settings from a request or a file; pure."""
    try:
        return CampaignSettings.model_validate(data or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(settings)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise CampaignError("bad_settings", problems, 422) from exc


def check_create(data: dict[str, Any], region: str) -> tuple[str, str, CampaignSettings, Any]:
    """A create request: name, survey (default nps), settings, and either `segments` (put
    into the settings' rules) or `contacts_csv` (a contact list as CSV text); pure."""
    from core.csvrows import ImportRejected
    from core.surveys.contacts import parse_contacts

    name = data.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
        raise CampaignError("bad_name", "name: 1 to 100 characters", 422)
    survey = data.get("survey", "nps")
    if not isinstance(survey, str) or not survey:
        raise CampaignError("bad_survey", "survey: a survey's name", 422)
    raw = data.get("settings") or {}
    if not isinstance(raw, dict):
        raise CampaignError("bad_settings", "settings: an object", 422)
    segments, csv_text = data.get("segments"), data.get("contacts_csv")
    if (segments is None) == (csv_text is None):
        raise CampaignError("bad_targets", "give either segments or contacts_csv", 422)
    if segments is not None:
        raw = {**raw, "rules": {**(raw.get("rules") or {}), "segments": segments}}
    settings = check_settings(raw)
    rows = None
    if csv_text is not None:
        if not isinstance(csv_text, str):
            raise CampaignError("bad_contacts", "contacts_csv: CSV text", 422)
        try:
            rows = parse_contacts(csv_text, region)
        except ImportRejected as exc:
            raise CampaignError("bad_contacts", exc.report(), 422) from exc
    return name.strip(), survey, settings, rows


def routes(store_key: web.AppKey[CampaignStore], region: str = "BA") -> list[web.RouteDef]:
    async def create(request: web.Request) -> web.Response:
        from models.campaigns import create_campaign

        try:
            data = await request.json()
        except ValueError as exc:
            raise CampaignError("bad_json", "the body is not JSON", 400) from exc
        if not isinstance(data, dict):
            raise CampaignError("bad_json", "the body must be a JSON object", 400)
        name, survey, settings, rows = check_create(data, region)
        store = request.app[store_key]
        campaign_id, _ = await create_campaign(
            store.sessions, name, survey, settings, rows, datetime.now(UTC)
        )
        campaign = await store.find(campaign_id)
        return web.json_response(campaign_json(campaign, await store.progress(campaign_id)))

    async def index(request: web.Request) -> web.Response:
        campaigns = await request.app[store_key].all()
        return web.json_response({"campaigns": [campaign_json(c) for c in campaigns]})

    async def show(request: web.Request) -> web.Response:
        store = request.app[store_key]
        campaign = await store.find(request.match_info["campaign"])
        return web.json_response(campaign_json(campaign, await store.progress(campaign.id)))

    async def operate(request: web.Request) -> web.Response:
        store = request.app[store_key]
        wanted = OPERATIONS[request.match_info["op"]]
        campaign = await store.set_status(request.match_info["campaign"], wanted)
        return web.json_response(campaign_json(campaign, await store.progress(campaign.id)))

    return [
        web.get("/api/campaigns", index),
        web.post("/api/campaigns", create),
        web.get("/api/campaigns/{campaign}", show),
        web.post("/api/campaigns/{campaign}/{op:start|pause|stop}", operate),
    ]
