"""Call flows over HTTP: "Simulate this call" (``POST .../flows/{name}/simulate``), for
machines under the bearer-token /api (``routes``) and for supervisors and admins on the desk
(``desk_routes``: the session cookie, the CSRF header, ``Action.SIMULATE_CALLS``; agents may
not). Both answer what ``usecases.flow_simulation`` makes of the same body."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.simulation import SimulationError
from usecases.flow_simulation import check_request, simulate_call
from web.auth import Action, User
from web.errors import needs
from web.http import DeskWeb, _api

Sessions = async_sessionmaker[AsyncSession]


async def _body(request: web.Request) -> dict[str, Any]:
    # body_exists, not can_read_body: the body deadline (web/server.py) has read it already.
    if not request.body_exists:
        return {}
    try:
        data = await request.json()
    except ValueError as exc:
        raise SimulationError("bad_json", "the body is not JSON") from exc
    if not isinstance(data, dict):
        raise SimulationError("bad_json", "the body must be a JSON object")
    return data


async def simulation_response(
    request: web.Request, sessions: Sessions, region: str
) -> web.Response:
    body = check_request(await _body(request), datetime.now(UTC))
    name = request.match_info["name"]
    version, simulation = await simulate_call(sessions, name, body, region)
    return web.json_response({"version": version, **simulation.to_json()})


def routes(sessions_key: web.AppKey[Sessions], region: str) -> list[web.RouteDef]:
    @needs(Action.SIMULATE_CALLS)
    async def simulate(request: web.Request) -> web.Response:
        return await simulation_response(request, request.app[sessions_key], region)

    return [web.post("/api/flows/{name}/simulate", simulate)]


@_api(Action.SIMULATE_CALLS)
async def desk_simulate(request: web.Request, dw: DeskWeb, user: User) -> web.Response:
    return await simulation_response(request, dw.store.sessions, dw.region)


def desk_routes() -> list[web.RouteDef]:
    return [web.post("/desk/api/flows/{name}/simulate", desk_simulate)]
