"""Call flows over HTTP: drafts, checks, "Simulate this call", publish, versions, diff and
roll back (``.../flows/{name}/...``), for machines under the bearer-token /api (``routes``)
and for the console on the desk (``desk_routes``: the session cookie, the CSRF header; editing
needs ``Action.EDIT_FLOWS``, admins only; simulating ``Action.SIMULATE_CALLS``, supervisors
too; the diagram ``SIMULATE_CALLS`` as well, so supervisors see it). Both answer what
``usecases.flow_editing`` and ``usecases.flow_simulation`` make of the same body; a draft
belongs to whoever asks (on the bearer API, "api"). An operation answers a dict (sent as JSON)
or a whole response (the diagram's SVG, ``web.flow_diagram``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from usecases import flow_editing
from usecases.flow_simulation import check_request, simulate_call
from web import flow_diagram
from web.api import json_body
from web.auth import Action, User
from web.http import DeskWeb, twin_routes
from web.ports import PROMPT_UPLOAD, PROMPTS, CallControl

Sessions = async_sessionmaker[AsyncSession]
API_OWNER = "api"  # the owner of drafts made through the shared bearer token


@dataclass(frozen=True)
class Asker:
    """Who asks, wherever from: the database, the region numbers are read in, the owner of
    the draft meant."""

    sessions: Sessions
    region: str
    owner: str
    live: CallControl | None = None  # the info line's live calls (None: no live part)
    install: flow_editing.Install | None = None  # makes prompts heard (web.ports.PROMPTS)


Operation = Callable[[web.Request, Asker], Awaitable[dict[str, Any] | web.Response]]
# The SVG is drawn from admins' text: no script may run in it even when opened on its own.
SVG_HEADERS = {
    "Content-Security-Policy": "default-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not 0 < len(name) <= 64:
        raise flow_editing.FlowEditError("unknown_flow", "no such flow", status=404)
    return name


async def simulate(request: web.Request, asker: Asker) -> dict[str, Any]:
    body = check_request(await json_body(request), datetime.now(UTC))
    version, simulation = await simulate_call(
        asker.sessions, _name(request), body, asker.region, asker.owner
    )
    return {"version": version, **simulation.to_json()}


async def get_draft(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await flow_editing.load_draft(asker.sessions, _name(request), asker.owner)


async def put_draft(request: web.Request, asker: Asker) -> dict[str, Any]:
    body = await json_body(request)
    return await flow_editing.save_draft(
        asker.sessions, _name(request), asker.owner, body, asker.region, asker.install
    )


async def upload_prompt(request: web.Request, asker: Asker) -> dict[str, Any]:
    """An uploaded recording (the body: the audio file) as what a prompt plays in a language,
    in the asker's draft."""
    prompt, lang = request.match_info["prompt"], request.match_info["lang"]
    upload = request.app.get(PROMPT_UPLOAD)
    if upload is None:
        raise flow_editing.FlowEditError(
            "no_uploads", "this server takes no recordings (no PBX sound directory)", status=503
        )
    data = await request.read()

    async def convert() -> str:
        assert upload is not None
        return await upload(data, prompt, lang)

    return await flow_editing.attach_recording(
        asker.sessions,
        _name(request),
        asker.owner,
        prompt,
        lang,
        convert,
        asker.region,
        asker.install,
    )


async def delete_draft(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await flow_editing.discard(asker.sessions, _name(request), asker.owner)


async def check_draft(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await flow_editing.check_definition(
        asker.sessions, _name(request), await json_body(request)
    )


async def publish(request: web.Request, asker: Asker) -> dict[str, Any]:
    body = await json_body(request)
    return await flow_editing.publish(
        asker.sessions, _name(request), asker.owner, body, datetime.now(UTC), asker.install
    )


async def list_versions(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await flow_editing.history(asker.sessions, _name(request))


def _version(request: web.Request) -> int:
    raw = request.match_info["version"]
    if not raw.isdigit() or len(raw) > 9:
        raise flow_editing.FlowEditError("unknown_version", f"no version {raw[:20]!r}", status=404)
    return int(raw)


async def get_version(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await flow_editing.show_version(asker.sessions, _name(request), _version(request))


async def cancel_schedule(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await flow_editing.cancel_schedule(
        asker.sessions, _name(request), _version(request), asker.owner
    )


async def live_view(request: web.Request, asker: Asker) -> dict[str, Any]:
    calls = list(asker.live.calls.values()) if asker.live is not None else []
    return await flow_editing.live_view(
        asker.sessions,
        _name(request),
        [(c.flow_version, c.ivr_node) for c in calls],
        datetime.now(UTC),
    )


async def get_calendars(request: web.Request, asker: Asker) -> dict[str, Any]:
    return await flow_editing.calendars(asker.sessions, _name(request))


async def put_calendar(request: web.Request, asker: Asker) -> dict[str, Any]:
    calendar = request.match_info["calendar"]
    if not 0 < len(calendar) <= 64:
        raise flow_editing.FlowEditError("bad_request", "calendar: a name", field="calendar")
    return await flow_editing.set_hours(
        asker.sessions,
        _name(request),
        calendar,
        asker.owner,
        await json_body(request),
        datetime.now(UTC),
        asker.install,
    )


async def compare(request: web.Request, asker: Asker) -> dict[str, Any]:
    from_, to = request.query.get("from"), request.query.get("to")
    if not from_ or not to:
        raise flow_editing.FlowEditError(
            "bad_request", "from= and to=: version numbers, 'active' or 'draft'"
        )
    return await flow_editing.compare(asker.sessions, _name(request), asker.owner, from_, to)


async def rollback(request: web.Request, asker: Asker) -> dict[str, Any]:
    body = await json_body(request)
    return await flow_editing.rollback(
        asker.sessions, _name(request), asker.owner, body, asker.install
    )


async def diagram(request: web.Request, asker: Asker) -> web.Response:
    which = request.query.get("version", "active")
    label, flow, problems = await flow_editing.diagram_source(
        asker.sessions, _name(request), asker.owner, which
    )
    svg = await flow_diagram.render(flow, problems=problems)
    # Saved, the file says what it shows (flow names are [a-z0-9_], labels "version 3"/"draft").
    filename = f"{flow.name}-{label.replace(' ', '-')}.svg"
    headers = {**SVG_HEADERS, "Content-Disposition": f'inline; filename="{filename}"'}
    return web.Response(text=svg, content_type="image/svg+xml", headers=headers)


# (method, path under .../flows/{name}, operation, what the desk's user must be allowed)
OPERATIONS: list[tuple[str, str, Operation, Action]] = [
    ("POST", "/simulate", simulate, Action.SIMULATE_CALLS),
    ("GET", "/draft", get_draft, Action.EDIT_FLOWS),
    ("PUT", "/draft", put_draft, Action.EDIT_FLOWS),
    ("DELETE", "/draft", delete_draft, Action.EDIT_FLOWS),
    ("POST", "/draft/check", check_draft, Action.EDIT_FLOWS),
    ("PUT", "/draft/prompts/{prompt}/{lang}", upload_prompt, Action.EDIT_FLOWS),
    ("POST", "/publish", publish, Action.EDIT_FLOWS),
    ("GET", "/versions", list_versions, Action.EDIT_FLOWS),
    ("GET", "/versions/{version}", get_version, Action.EDIT_FLOWS),
    ("GET", "/diff", compare, Action.EDIT_FLOWS),
    ("POST", "/rollback", rollback, Action.EDIT_FLOWS),
    ("GET", "/live", live_view, Action.SIMULATE_CALLS),
    ("GET", "/diagram.svg", diagram, Action.SIMULATE_CALLS),
    # Supervisors keep the hours: a new calendar is published (or scheduled) as a version.
    ("GET", "/calendars", get_calendars, Action.EDIT_HOURS),
    ("PUT", "/calendars/{calendar}", put_calendar, Action.EDIT_HOURS),
    ("DELETE", "/versions/{version}/schedule", cancel_schedule, Action.EDIT_HOURS),
]


def routes(
    sessions_key: web.AppKey[Sessions], region: str, live_key: web.AppKey[Any] | None = None
) -> list[web.RouteDef]:
    def asker(request: web.Request, user: User) -> Asker:
        # A person's token owns its drafts as their desk does; the host's is "api".
        live = request.app.get(live_key) if live_key is not None else None
        prompts = request.app.get(PROMPTS)
        return Asker(request.app[sessions_key], region, user.agent_id or API_OWNER, live, prompts)

    return twin_routes(OPERATIONS, "/api/flows/{name}", bearer_asker=asker)


def desk_routes() -> list[web.RouteDef]:
    def asker(request: web.Request, dw: DeskWeb, user: User) -> Asker:
        prompts = request.app.get(PROMPTS)
        return Asker(dw.store.sessions, dw.region, user.agent_id, dw.infoline, prompts)

    return twin_routes(OPERATIONS, "/api/flows/{name}", desk_asker=asker)
