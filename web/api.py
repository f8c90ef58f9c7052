"""The agents' JSON API: log in with a phone (any Asterisk dial string), log out, pause with
a reason, be ready again; and the ACD's live picture for wallboards. Bearer-token protected
(web.errors.api_guard): each handler declares the action it needs with ``needs``; an agent's
token acts for that agent and the calls they hold, a supervisor's or an admin's for anyone.
Checks (is this a valid dial string? a known mode?) come before any effect."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from core.acd import ACD, AgentMode
from core.dialler import check_skip_reason
from core.errors import AgentDeskError, CallControlError, DomainError
from web.auth import Action, may, may_control_call
from web.errors import api_principal, check_acting_for, needs
from web.ports import AgentCampaigns, AgentCommands, CallControl, ManualCalls

MAX_REASON = 80


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object ({} without a body); 400 ``bad_json`` otherwise. Shared by
    the routes of web.flow_api and web.admin_api."""
    # body_exists, not can_read_body: the body deadline (web/server.py) has read it already.
    if not request.body_exists:
        return {}
    try:
        data = await request.json()
    except ValueError as exc:
        raise AgentDeskError("bad_json", "the body is not JSON", 400) from exc
    if not isinstance(data, dict):
        raise AgentDeskError("bad_json", "the body must be a JSON object", 400)
    return data


def check_login(data: dict[str, Any]) -> tuple[str | None, AgentMode]:
    """Validate a login request; pure."""
    from core.csvrows import parse_endpoint

    endpoint = data.get("endpoint")
    if endpoint is not None:
        if not isinstance(endpoint, str):
            raise AgentDeskError("bad_endpoint", "endpoint must be a string", 422)
        try:
            endpoint = parse_endpoint(endpoint)
        except ValueError as exc:
            raise AgentDeskError("bad_endpoint", f"endpoint {endpoint!r}: {exc}", 422) from exc
    mode = data.get("mode", "per_call")
    try:
        return endpoint, AgentMode(mode)
    except ValueError as exc:
        raise AgentDeskError("bad_mode", "mode must be per_call or nailed", 422) from exc


def check_reason(data: dict[str, Any]) -> str:
    reason = data.get("reason", "break")
    if (
        not isinstance(reason, str)
        or not reason.strip()
        or len(reason) > MAX_REASON
        or any(not c.isprintable() for c in reason)
    ):
        raise AgentDeskError("bad_reason", f"reason: 1-{MAX_REASON} printable characters", 422)
    return reason.strip()


def check_transfer(data: dict[str, Any]) -> tuple[str, str]:
    target, mode = data.get("to"), data.get("mode", "blind")
    if not isinstance(target, str):
        raise CallControlError("bad_target", "to: agent:ID, queue:ID, supervisor or survey", 422)
    if mode not in ("blind", "attended"):
        raise CallControlError("bad_mode", "mode must be blind or attended", 422)
    return target, "transfer" if mode == "blind" else "consult"


def check_call_request(data: dict[str, Any]) -> dict[str, Any]:
    """What to call: ``number``, ``client_id`` (the client's number on record) or
    ``callback_id`` (a callback task); optional ``queue`` (whose number is presented). Pure."""
    number, client_id, callback_id, queue = (
        data.get("number"),
        data.get("client_id"),
        data.get("callback_id"),
        data.get("queue"),
    )
    given = [k for k in ("number", "client_id", "callback_id") if data.get(k) is not None]
    if len(given) != 1:
        raise AgentDeskError("bad_call", "give exactly one of number, client_id, callback_id", 422)
    if number is not None and (not isinstance(number, str) or len(number) > 40):
        raise AgentDeskError("bad_number", "number: a string of at most 40 characters", 422)
    for name, value in (("client_id", client_id), ("callback_id", callback_id)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise AgentDeskError("bad_call", f"{name} must be an integer", 422)
    if queue is not None and (not isinstance(queue, str) or not 0 < len(queue) <= 64):
        raise AgentDeskError("bad_call", "queue: a queue id", 422)
    return {"number": number, "client_id": client_id, "callback_id": callback_id, "queue": queue}


def placed(agent_id: str, call: Any) -> dict[str, Any]:
    return {
        "call_id": call.call_id,
        "agent_id": agent_id,
        "number": call.number,
        "presented": call.presented,
        "queue": call.queue,
    }


def live_call_agent(infoline: CallControl, call_id: str) -> str | None:
    """The agent a live call is with (None: with nobody yet); 404 when it is not live."""
    channel = infoline.by_call.get(call_id)
    session = infoline.calls.get(channel) if channel else None
    if session is None:
        raise CallControlError("unknown_call", f"no live call {call_id!r}", 404)
    return session.agent_id


def check_api_control(request: web.Request, infoline: CallControl, call_id: str) -> None:
    """An agent's token controls the calls its agent holds; CONTROL_ANY_CALL any call."""
    user = api_principal(request)
    if may(user.role, Action.CONTROL_ANY_CALL):
        return
    if not may_control_call(user, live_call_agent(infoline, call_id)):
        raise CallControlError("not_your_call", "this call is with another agent", 403)


def routes(
    desk_key: web.AppKey[AgentCommands],
    acd_key: web.AppKey[ACD],
    infoline_key: web.AppKey[CallControl],
    outbound_key: web.AppKey[ManualCalls] | None = None,
    dialler_key: web.AppKey[AgentCampaigns] | None = None,
) -> list[web.RouteDef]:
    @needs(Action.USE_DESK, others=Action.PAUSE_AGENTS)
    async def login(request: web.Request) -> web.Response:
        endpoint, mode = check_login(await json_body(request))
        agent_id = request.match_info["agent_id"]
        await request.app[desk_key].login(agent_id, endpoint, mode)
        return web.json_response({"agent_id": agent_id, "mode": str(mode)})

    @needs(Action.USE_DESK, others=Action.PAUSE_AGENTS)
    async def logout(request: web.Request) -> web.Response:
        agent_id = request.match_info["agent_id"]
        await request.app[desk_key].logout(agent_id)
        return web.json_response({"agent_id": agent_id, "status": "logged_out"})

    @needs(Action.USE_DESK, others=Action.PAUSE_AGENTS)
    async def pause(request: web.Request) -> web.Response:
        reason = check_reason(await json_body(request))
        agent_id = request.match_info["agent_id"]
        request.app[desk_key].pause(agent_id, reason)
        return web.json_response({"agent_id": agent_id, "status": "paused", "reason": reason})

    @needs(Action.USE_DESK, others=Action.PAUSE_AGENTS)
    async def ready(request: web.Request) -> web.Response:
        agent_id = request.match_info["agent_id"]
        request.app[desk_key].ready(agent_id)
        return web.json_response({"agent_id": agent_id})

    @needs(Action.VIEW_WALLBOARD)
    async def snapshot(request: web.Request) -> web.Response:
        return web.json_response(dict(request.app[acd_key].snapshot(time.monotonic())))

    @needs(Action.USE_DESK)
    async def transfer(request: web.Request) -> web.Response:
        target, op = check_transfer(await json_body(request))
        call_id = request.match_info["call_id"]
        check_api_control(request, request.app[infoline_key], call_id)
        await request.app[infoline_key].control(call_id, op, target)
        return web.json_response({"call_id": call_id, "operation": op, "to": target})

    @needs(Action.USE_DESK)
    async def transfer_step(request: web.Request) -> web.Response:
        call_id, step = request.match_info["call_id"], request.match_info["step"]
        check_api_control(request, request.app[infoline_key], call_id)
        await request.app[infoline_key].control(call_id, step)
        return web.json_response({"call_id": call_id, "operation": step})

    @needs(Action.USE_DESK, others=Action.CONTROL_ANY_CALL)
    async def call(request: web.Request) -> web.Response:
        wanted = check_call_request(await json_body(request))
        agent_id = request.match_info["agent_id"]
        assert outbound_key is not None
        made = await request.app[outbound_key].call_from_desk(agent_id, **wanted)
        return web.json_response(placed(agent_id, made), status=202)

    @needs(Action.USE_DESK, others=Action.CONTROL_ANY_CALL)
    async def recording(request: web.Request) -> web.Response:
        # The machines' API pauses on the agent's behalf: who, for the trail, if they say.
        call_id, step = request.match_info["call_id"], request.match_info["step"]
        by = (await json_body(request)).get("agent_id")
        if by is not None and (not isinstance(by, str) or not 0 < len(by) <= 64):
            raise AgentDeskError("bad_agent", "agent_id: the agent's id", 422)
        user = api_principal(request)
        if by is not None:
            check_acting_for(request, by)
        elif user.agent_id:  # a person's token: the trail names them
            by = user.agent_id
        check_api_control(request, request.app[infoline_key], call_id)
        await request.app[infoline_key].control(call_id, f"{step}_recording", by)
        return web.json_response({"call_id": call_id, "recording": step})

    @needs(Action.USE_DESK, others=Action.CONTROL_ANY_CALL)
    async def preview(request: web.Request) -> web.Response:
        """The next contact of the agent's preview campaigns, held for them: call or skip."""
        assert dialler_key is not None
        agent_id = request.match_info["agent_id"]
        held = await request.app[dialler_key].preview_next(agent_id)
        return web.json_response({"agent_id": agent_id, "contact": held and held.json()})

    @needs(Action.USE_DESK, others=Action.CONTROL_ANY_CALL)
    async def preview_step(request: web.Request) -> web.Response:
        assert dialler_key is not None
        agent_id, step = request.match_info["agent_id"], request.match_info["step"]
        contact_id = int(request.match_info["contact_id"])
        dialler = request.app[dialler_key]
        if step == "call":
            d = await dialler.preview_call(agent_id, contact_id)
            return web.json_response({"agent_id": agent_id, "call_id": d.call_id})
        reason = check_skip_reason(await json_body(request))
        await dialler.preview_skip(agent_id, contact_id, reason)
        return web.json_response({"agent_id": agent_id, "skipped": contact_id, "reason": reason})

    extra = [web.post("/api/agents/{agent_id}/call", call)] if outbound_key else []
    if dialler_key is not None:
        extra += [
            web.get("/api/agents/{agent_id}/preview", preview),
            web.post(
                "/api/agents/{agent_id}/preview/{contact_id:\\d+}/{step:call|skip}", preview_step
            ),
        ]
    return [
        *extra,
        web.post("/api/calls/{call_id}/recording/{step:pause|resume}", recording),
        web.post("/api/calls/{call_id}/transfer", transfer),
        web.post("/api/calls/{call_id}/transfer/{step:complete|cancel}", transfer_step),
        web.post("/api/calls/{call_id}/{step:hold|resume}", transfer_step),
        web.post("/api/agents/{agent_id}/login", login),
        web.post("/api/agents/{agent_id}/logout", logout),
        web.post("/api/agents/{agent_id}/pause", pause),
        web.post("/api/agents/{agent_id}/ready", ready),
        web.get("/api/acd", snapshot),
    ]


def query_choice(query: dict[str, str], name: str, allowed: Iterable[str]) -> str | None:
    """A query's filter ``name``: one of ``allowed``, or None when not given; 400
    ``bad_filter`` naming the field otherwise."""
    value = query.get(name, "").strip() or None
    names = sorted(str(v) for v in allowed)
    if value is not None and value not in names:
        raise DomainError(
            f"{name}: one of {', '.join(names)}",
            error_id="bad_filter",
            details={"field": name},
        )
    return value


def query_number(query: dict[str, str], name: str, default: int | None, top: int) -> int | None:
    """A query's whole number ``name`` from 1 to ``top`` (``default`` when not given)."""
    raw = query.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) <= top:
        raise DomainError(
            f"{name}: a whole number from 1 to {top}",
            error_id="bad_filter",
            details={"field": name},
        )
    return int(raw)
