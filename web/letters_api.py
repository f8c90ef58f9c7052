"""Printed letters over HTTP: ``POST /api/letters`` (bearer token) and its desk twin
``POST /desk/api/letters`` (a supervisor's or admin's session), both needing
``Action.PRINT_LETTERS``: ``{kind, clients: [ids] | segment, product?, message?}`` answers
the batch as one PDF (an attachment; ``X-Centrala-Letters``: how many, and
``X-Centrala-Skipped``: who was skipped why), typeset off the event loop. 400 for a bad
request (``core.letters.parse_request``'s error ids, ``unknown_clients``), 422
``nothing_to_print`` when no client may get one. Imports core, models, usecases, letters
and web."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.letters import LetterRequestError, parse_request
from core.notices import Policy
from letters.pdf import render_async
from models.notices import segment_clients
from usecases.letters import compose
from web.auth import Action, User
from web.http import DeskWeb, Reply, _json, twin_routes

Sessions = async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class LetterConfig:
    """What `serve`'s settings say of letters: the sender, the contact policy."""

    sender: Sequence[str]
    policy: Policy


async def print_letters(request: web.Request, asker: tuple[Sessions, LetterConfig]) -> web.Response:
    sessions, config = asker
    asked = parse_request(await _json(request))
    now = datetime.now(UTC)
    ids = (
        await segment_clients(sessions, asked.segment, now)
        if asked.segment is not None
        else list(asked.client_ids)
    )
    composed = await compose(
        sessions,
        asked.kind,
        ids,
        now,
        config.policy,
        sender=config.sender,
        day=now.astimezone(ZoneInfo(config.policy.default_zone)).date(),
        product=asked.product,
        message=asked.message,
    )
    if composed.unknown:
        raise LetterRequestError(
            "unknown_clients",
            f"{len(composed.unknown)} unknown client id(s); nothing was printed",
            client_ids=composed.unknown[:100],
        )
    skipped = ", ".join(f"{k}={v}" for k, v in sorted(composed.skipped.items()))
    if not composed.letters:
        raise LetterRequestError(
            "nothing_to_print",
            "no client may get this letter: " + (skipped or "none asked"),
            status=422,
            skipped=dict(composed.skipped),
        )
    pdf = await render_async(composed.letters)
    day = now.astimezone(ZoneInfo(config.policy.default_zone)).date().isoformat()
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="letters-{asked.kind}-{day}.pdf"',
            "X-Centrala-Letters": str(len(composed.letters)),
            "X-Centrala-Skipped": skipped,
            "Cache-Control": "no-store",
        },
    )


OPERATIONS: list[tuple[str, str, Reply, Action]] = [
    ("POST", "", print_letters, Action.PRINT_LETTERS),
]


def routes(sessions_key: web.AppKey[Sessions], config: LetterConfig) -> list[web.RouteDef]:
    """Both: the bearer API's and the desk's (the desk's sessions are `serve`'s too)."""

    def bearer(request: web.Request, user: User) -> tuple[Sessions, LetterConfig]:
        return request.app[sessions_key], config

    def desk(request: web.Request, dw: DeskWeb, user: User) -> tuple[Sessions, LetterConfig]:
        return dw.store.sessions, config

    return twin_routes(OPERATIONS, "/api/letters", bearer_asker=bearer, desk_asker=desk)
