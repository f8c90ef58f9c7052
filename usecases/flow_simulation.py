"""Simulating a call to a stored flow ("Simulate this call": ``POST /api/flows/{name}/simulate``
and the admin console's page): the request checked (``check_request``, pure), then the flow's
active version (or the one asked for), the queues' live settings and the caller's CRM facts are
read as the live info line reads them, and ``core.simulation.simulate`` walks the call.

May import ``core``, ``dialplan`` and ``models`` (see ``usecases``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.phones import normalise
from core.routing import Caller
from core.simulation import Press, Simulation, SimulationError, parse_keys, simulate
from dialplan.model import Flow
from models.calllog import find_clients
from models.crm import caller_of, queue_settings
from models.flows import active_flow, flow_version
from models.tables import Client, ClientPhone
from usecases.flow_editing import draft_flow

FIELDS = frozenset({"caller", "at", "keys", "version", "draft"})
MAX_NUMBER = 40
MAX_AT = 64


@dataclass(frozen=True)
class SimulationRequest:
    """What to simulate: the caller (a client on file, a number, or neither: a withheld
    number), the moment the call is answered, the keys, and the flow version (None: the
    active one)."""

    client_id: int | None
    number: str | None
    at: datetime
    presses: list[Press]
    version: int | None
    draft: bool = False  # the asker's draft instead of a stored version


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_request(body: Mapping[str, Any], now: datetime) -> SimulationRequest:
    """The request's body, checked (SimulationError, 400, with a stable error_id); ``at``
    defaults to ``now``."""
    unknown = set(body) - FIELDS
    if unknown:
        raise SimulationError(
            "bad_request", f"unknown fields {sorted(unknown)}: use {sorted(FIELDS)}"
        )
    caller = body.get("caller")
    caller = {} if caller is None else caller
    if not isinstance(caller, Mapping) or set(caller) - {"client_id", "number"} or len(caller) > 1:
        raise SimulationError(
            "bad_caller", 'caller: {"client_id": N} or {"number": "+387..."}', field="caller"
        )
    client_id, number = caller.get("client_id"), caller.get("number")
    if client_id is not None and (not _integer(client_id) or client_id < 1):
        raise SimulationError("bad_caller", "client_id: a client's id", field="caller")
    if number is not None and (not isinstance(number, str) or not 0 < len(number) <= MAX_NUMBER):
        raise SimulationError(
            "bad_caller",
            f"number: a phone number (at most {MAX_NUMBER} characters)",
            field="caller",
        )
    at = now
    if body.get("at") is not None:
        text = body["at"]
        try:
            if not isinstance(text, str) or len(text) > MAX_AT:
                raise ValueError(text)
            at = datetime.fromisoformat(text)
        except ValueError as exc:
            raise SimulationError(
                "bad_time", "at: an ISO date and time with its zone", field="at"
            ) from exc
        if at.tzinfo is None or at.utcoffset() is None:
            raise SimulationError(
                "bad_time", "at: give the zone (2026-12-01T10:00:00+01:00)", field="at"
            )
    keys = body.get("keys", "")
    if not isinstance(keys, str | list):
        raise SimulationError("bad_keys", 'keys: a string like "9 2" or a list', field="keys")
    version = body.get("version")
    if version is not None and (not _integer(version) or version < 1):
        raise SimulationError("bad_version", "version: a flow version number", field="version")
    draft = body.get("draft", False)
    if not isinstance(draft, bool) or (draft and version is not None):
        raise SimulationError(
            "bad_version", "draft: true (your draft) or false; not with version", field="draft"
        )
    return SimulationRequest(
        client_id=client_id,
        number=number,
        at=at,
        presses=parse_keys(keys),
        version=version,
        draft=draft,
    )


async def _caller(
    session: AsyncSession, request: SimulationRequest, region: str
) -> tuple[Caller, str | None, str | None]:
    """The caller as the info line would know them, with the number they call from and its
    E.164 form. A client named by id calls from their first number on file; a number is
    looked up as a live call's is (the first client, by id, with it among their phones)."""
    if request.client_id is not None:
        client = await session.get(Client, request.client_id)
        if client is None:
            raise SimulationError(
                "unknown_client", f"no client {request.client_id}", field="caller"
            )
        phone = await session.scalar(
            select(ClientPhone.number)
            .where(ClientPhone.client_id == client.id)
            .order_by(ClientPhone.id)
            .limit(1)
        )
        return caller_of(client), phone, phone
    if request.number is None:
        return Caller(), None, None
    e164 = normalise(request.number, region)
    if e164 is None:
        raise SimulationError(
            "bad_caller", f"{request.number!r} is not a phone number", field="caller"
        )
    clients = (await find_clients(session, {e164})).get(e164, [])
    return caller_of(clients[0] if clients else None), request.number, e164


async def simulate_call(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    request: SimulationRequest,
    region: str,
    owner: str = "api",
) -> tuple[int | None, Simulation]:
    """The flow version simulated (a draft: its trial version, None when it has none) and
    the simulation (SimulationError ``unknown_flow``, 404, when the flow or the version asked
    for is not stored; ``owner``: whose draft ``"draft": true`` means)."""
    found: tuple[int | None, Flow] | None
    if request.draft:
        found = await draft_flow(sessions, name, owner)
    elif request.version is None:
        found = await active_flow(sessions, name)
    else:
        flow = await flow_version(sessions, name, request.version)
        found = None if flow is None else (request.version, flow)
    if found is None:
        which = f"version {request.version} of " if request.version is not None else ""
        raise SimulationError(
            "unknown_flow", f"no {which}flow {name!r}", status=404, flow=name[:64]
        )
    version, flow = found
    async with sessions() as session:
        queues = await queue_settings(session)
        caller, number, e164 = await _caller(session, request, region)
    simulation = simulate(
        flow,
        caller,
        request.at,
        request.presses,
        queues=queues,
        caller_number=number,
        caller_e164=e164,
        region=region,
    )
    return version, simulation
