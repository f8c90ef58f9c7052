"""Survey campaigns over the bearer-token API: list, show with progress, create, start, pause,
stop. The same operations as `centrala campaign ...`; the running dialler picks a change up at
its next tick."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from models.campaigns import CampaignError, CampaignStore
from models.tables import Campaign, CampaignStatus
from surveys.campaign import CampaignSettings

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


def routes(store_key: web.AppKey[CampaignStore]) -> list[web.RouteDef]:
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
        web.get("/api/campaigns/{campaign}", show),
        web.post("/api/campaigns/{campaign}/{op:start|pause|stop}", operate),
    ]
