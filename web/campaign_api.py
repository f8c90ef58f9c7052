"""Survey and agent campaigns over the bearer-token API: list, show with progress (and an
agent campaign's dialler figures), create, start, pause, stop, their settings edited with
their history (``usecases.campaign_settings``), and an agent campaign call's disposition.
The same operations as `centrala campaign ...`; the running dialler picks a change up at its
next tick. Reading them is VIEW_REPORTS, changing them EDIT_SURVEYS (admins: a campaign
calls clients); a disposition is the agent's own (or CONTROL_ANY_CALL's). The console's
(``desk_routes``) are the same ``OPERATIONS`` under /desk/api."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from core.dialler import AgentDisposition, check_campaign_disposition
from core.surveys.campaign import CampaignSettings
from models.campaigns import CampaignError, CampaignStore
from models.dialler import DiallerStore
from models.tables import Campaign, CampaignStatus
from usecases import campaign_settings
from usecases.agent_campaigns import (
    AgentCampaignRequest,
    agent_figures,
    agent_request,
    create_agent_campaign,
)
from web.api import json_body
from web.auth import Action, User
from web.errors import check_acting_for, needs
from web.http import DeskWeb, twin_routes

STATUS_OF = {
    "start": CampaignStatus.RUNNING,
    "pause": CampaignStatus.PAUSED,
    "stop": CampaignStatus.STOPPED,
}


def campaign_json(
    campaign: Campaign,
    progress: dict[str, Any] | None = None,
    dialler: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": campaign.id,
        "name": campaign.name,
        "kind": campaign.kind,
        "status": campaign.status.value,
        "survey_id": campaign.survey_id,
        "settings": campaign.settings,
    }
    if progress is not None:
        body["progress"] = progress
    if dialler is not None:
        body["dialler"] = dialler  # an agent campaign's figures (models.dialler)
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


def check_agent_create(data: dict[str, Any], region: str) -> AgentCampaignRequest:
    """An agent campaign's create request: name, mode, queue, settings, and one source:
    `segment`, `contacts_csv` or `procedure`; pure."""
    from core.csvrows import ImportRejected
    from core.surveys.contacts import parse_contacts

    name = data.get("name")
    if not isinstance(name, str):
        raise CampaignError("bad_name", "name: 1 to 100 characters", 422)
    raw = data.get("settings") or {}
    if not isinstance(raw, dict):
        raise CampaignError("bad_settings", "settings: an object", 422)
    raw = {**raw, "mode": data.get("mode"), "queue": data.get("queue")}
    for key in ("abandon_cap_percent", "amd"):
        if key in data:
            raw[key] = data[key]
    segment, procedure, csv_text = (
        data.get("segment"),
        data.get("procedure"),
        data.get("contacts_csv"),
    )
    rows = None
    if csv_text is not None:
        if not isinstance(csv_text, str):
            raise CampaignError("bad_contacts", "contacts_csv: CSV text", 422)
        try:
            rows = parse_contacts(csv_text, region)
        except ImportRejected as exc:
            raise CampaignError("bad_contacts", exc.report(), 422) from exc
    for key, value in (("segment", segment), ("procedure", procedure)):
        if value is not None and not isinstance(value, str):
            raise CampaignError(f"bad_{key}", f"{key}: a name", 422)
    return agent_request(name, raw, segment=segment, rows=rows, procedure=procedure)


def check_disposition(
    data: object, now: datetime
) -> tuple[str, AgentDisposition, datetime | None, str | None]:
    """(agent, disposition, due, note) of a disposition request; pure."""
    if not isinstance(data, dict):
        raise CampaignError("bad_json", "the body must be a JSON object", 400)
    agent_id = data.get("agent_id")
    if not isinstance(agent_id, str) or not agent_id:
        raise CampaignError("bad_agent", "agent_id: the agent who took the call", 422)
    return (agent_id, *check_campaign_disposition(data, now))


@dataclass(frozen=True)
class Asker:
    store: CampaignStore
    actor: str  # who changes a campaign, on its trail


Operation = Callable[[web.Request, Asker], Awaitable[dict[str, Any]]]


async def _shown(store: CampaignStore, campaign_id: int | str) -> dict[str, Any]:
    campaign = await store.find(campaign_id)
    figures = await agent_figures(store.sessions, campaign, datetime.now(UTC))
    return campaign_json(campaign, await store.progress(campaign.id), figures)


async def index(request: web.Request, asker: Asker) -> dict[str, Any]:
    return {"campaigns": [campaign_json(c) for c in await asker.store.all()]}


async def show(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await _shown(asker.store, request.match_info["campaign"])


async def operate(request: web.Request, asker: Asker) -> dict[str, Any]:
    wanted = STATUS_OF[request.match_info["op"]]
    campaign = await asker.store.set_status(request.match_info["campaign"], wanted)
    return await _shown(asker.store, campaign.id)


async def get_settings(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await campaign_settings.show(asker.store.sessions, request.match_info["campaign"])


async def put_settings(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await campaign_settings.save(
        asker.store.sessions, request.match_info["campaign"], asker.actor, await json_body(request)
    )


async def settings_history(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await campaign_settings.history(asker.store.sessions, request.match_info["campaign"])


# (method, path under .../campaigns, operation, what the user must be allowed)
OPERATIONS: list[tuple[str, str, Operation, Action]] = [
    ("GET", "", index, Action.VIEW_REPORTS),
    ("GET", "/{campaign}", show, Action.VIEW_REPORTS),
    ("POST", "/{campaign}/{op:start|pause|stop}", operate, Action.EDIT_SURVEYS),
    ("GET", "/{campaign}/settings", get_settings, Action.VIEW_REPORTS),
    ("PUT", "/{campaign}/settings", put_settings, Action.EDIT_SURVEYS),
    ("GET", "/{campaign}/settings/history", settings_history, Action.VIEW_REPORTS),
]


def routes(store_key: web.AppKey[CampaignStore], region: str = "BA") -> list[web.RouteDef]:
    @needs(Action.EDIT_SURVEYS)
    async def create(request: web.Request) -> web.Response:
        from models.campaigns import create_campaign

        try:
            data = await request.json()
        except ValueError as exc:
            raise CampaignError("bad_json", "the body is not JSON", 400) from exc
        if not isinstance(data, dict):
            raise CampaignError("bad_json", "the body must be a JSON object", 400)
        store = request.app[store_key]
        if "mode" in data:
            campaign_id, _ = await create_agent_campaign(
                store.sessions, check_agent_create(data, region), datetime.now(UTC)
            )
        else:
            name, survey, settings, rows = check_create(data, region)
            campaign_id, _ = await create_campaign(
                store.sessions, name, survey, settings, rows, datetime.now(UTC)
            )
        return web.json_response(await _shown(store, campaign_id))

    @needs(Action.USE_DESK, others=Action.CONTROL_ANY_CALL)
    async def disposition(request: web.Request) -> web.Response:
        """An agent campaign call's disposition: {agent_id, disposition, due?, note?}."""
        try:
            data = await request.json()
        except ValueError as exc:
            raise CampaignError("bad_json", "the body is not JSON", 400) from exc
        at = datetime.now(UTC)
        agent_id, disp, due, note = check_disposition(data, at)
        check_acting_for(request, agent_id)
        store = DiallerStore(request.app[store_key].sessions)
        call_id = request.match_info["call_id"]
        try:
            await store.dispose(call_id, agent_id, disp, due=due, note=note, now=at)
        except LookupError as exc:
            raise CampaignError("unknown_call", f"no agent campaign call {call_id}", 404) from exc
        return web.json_response({"call_id": call_id, "disposition": disp.value})

    def asker(request: web.Request, user: User) -> Asker:
        return Asker(request.app[store_key], user.agent_id or "api")

    return [
        web.post("/api/campaigns/calls/{call_id}/disposition", disposition),
        web.post("/api/campaigns", create),
        *twin_routes(OPERATIONS, "/api/campaigns", bearer_asker=asker),
    ]


def desk_routes() -> list[web.RouteDef]:
    def asker(request: web.Request, dw: DeskWeb, user: User) -> Asker:
        return Asker(CampaignStore(dw.store.sessions), user.agent_id)

    return twin_routes(OPERATIONS, "/api/campaigns", desk_asker=asker)
