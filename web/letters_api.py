"""Printed letters over HTTP: ``POST /api/letters`` (bearer token) and its desk twin
``POST /desk/api/letters`` (a supervisor's or admin's session), both needing
``Action.PRINT_LETTERS``: ``{kind, clients: [ids] | segment, product?, message?,
reprint?}`` answers the batch as one PDF (an attachment; ``X-Centrala-Letters``: how many,
``X-Centrala-Reprinted``: how many of them were printed that day already, and
``X-Centrala-Skipped``: who was skipped why), typeset off the event loop, its new letters
kept in the outbox as printed before it is answered. 400 for a bad request
(``core.letters.parse_request``'s error ids, ``unknown_clients``), 422 ``nothing_to_print``
when no client may get one. ``POST /api/letters/queued`` (``{limit?}``) answers the letters
the notices queued for printing the same way, each marked printed. Imports core, models,
usecases, letters and web."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.letters import MAX_LETTERS, LetterRequestError, parse_request
from core.notices import Policy
from letters.pdf import render_async
from models.notices import segment_clients
from usecases.letters import Composed, compose, printed, record, waiting
from web.api import json_body
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
        reprint=asked.reprint,
    )
    if composed.unknown:
        raise LetterRequestError(
            "unknown_clients",
            f"{len(composed.unknown)} unknown client id(s); nothing was printed",
            client_ids=composed.unknown[:100],
        )
    nothing_to_print(composed)
    pdf = await render_async(composed.letters)
    if await record(sessions, composed):  # another batch kept some first: without them
        nothing_to_print(composed)
        pdf = await render_async(composed.letters)
    skipped = ", ".join(f"{k}={v}" for k, v in sorted(composed.skipped.items()))
    day = now.astimezone(ZoneInfo(config.policy.default_zone)).date().isoformat()
    return _pdf(
        pdf,
        f"letters-{asked.kind}-{day}.pdf",
        len(composed.letters),
        {"X-Centrala-Reprinted": str(composed.reprinted), "X-Centrala-Skipped": skipped},
    )


def _pdf(pdf: bytes, name: str, letters: int, more: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Centrala-Letters": str(letters),
            **(more or {}),
            "Cache-Control": "no-store",
        },
    )


async def print_queued(request: web.Request, asker: tuple[Sessions, LetterConfig]) -> web.Response:
    """The letters the notices queued for printing (``{limit?}``: the oldest first, 1000 by
    default), each marked printed before the PDF is answered."""
    sessions, config = asker
    body = await json_body(request)  # {} without one
    limit = body.get("limit", 1000)
    if set(body) - {"limit"}:
        raise LetterRequestError("unknown_field", "only limit may be given")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LETTERS:
        raise LetterRequestError("bad_limit", f"limit: 1 to {MAX_LETTERS}")
    now = datetime.now(UTC)
    day = now.astimezone(ZoneInfo(config.policy.default_zone)).date()
    batch = await waiting(sessions, sender=config.sender, day=day, limit=limit)
    pdf = await render_async(batch.letters) if batch.letters else b""
    if await printed(sessions, batch, now) and batch.letters:  # another batch took some
        pdf = await render_async(batch.letters)
    if not batch.letters:
        raise LetterRequestError(
            "nothing_to_print", "no letter is waiting to be printed", status=422
        )
    return _pdf(pdf, f"letters-queued-{day.isoformat()}.pdf", len(batch.letters))


def nothing_to_print(composed: Composed) -> None:
    if not composed.letters:
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(composed.skipped.items()))
        raise LetterRequestError(
            "nothing_to_print",
            "no client may get this letter: " + (skipped or "none asked"),
            status=422,
            skipped=dict(composed.skipped),
        )


OPERATIONS: list[tuple[str, str, Reply, Action]] = [
    ("POST", "", print_letters, Action.PRINT_LETTERS),
    ("POST", "/queued", print_queued, Action.PRINT_LETTERS),
]


def routes(sessions_key: web.AppKey[Sessions], config: LetterConfig) -> list[web.RouteDef]:
    """Both: the bearer API's and the desk's (the desk's sessions are `serve`'s too)."""

    def bearer(request: web.Request, user: User) -> tuple[Sessions, LetterConfig]:
        return request.app[sessions_key], config

    def desk(request: web.Request, dw: DeskWeb, user: User) -> tuple[Sessions, LetterConfig]:
        return dw.store.sessions, config

    return twin_routes(OPERATIONS, "/api/letters", bearer_asker=bearer, desk_asker=desk)
