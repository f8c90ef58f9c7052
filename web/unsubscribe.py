"""The unsubscribe link of every notice e-mail (``core.notices.notice_email``): ``GET
/unsubscribe/{token}`` asks the client to confirm (a link opened by a mail scanner changes
nothing), ``POST`` records the opt-out from e-mail (also the one-click POST a mail client
sends for the List-Unsubscribe-Post header, RFC 8058). The token is signed: a client id
cannot be guessed or changed. In the client's language, from the token."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp_jinja2
from aiohttp import web
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.notices import LANGUAGES, Channel
from models.notices import opt_out
from web.http import page_context

Sessions = async_sessionmaker[AsyncSession]
SALT = "centrala-unsubscribe"


def unsubscribe_token(secret: str, client_id: int, language: str) -> str:
    return URLSafeSerializer(secret, salt=SALT).dumps([client_id, language])


def _read(secret: str, token: str) -> tuple[int, str] | None:
    try:
        client_id, language = URLSafeSerializer(secret, salt=SALT).loads(token)
    except (BadSignature, ValueError, TypeError):
        return None
    if not isinstance(client_id, int) or language not in LANGUAGES:
        return None
    return client_id, language


def routes(sessions_key: web.AppKey[Sessions], secret: str) -> list[web.RouteDef]:
    async def page(request: web.Request) -> web.Response:
        found = _read(secret, request.match_info["token"])
        if found is None:
            context = page_context("bs", state="unknown")
            return aiohttp_jinja2.render_template("unsubscribe.html", request, context, status=404)
        client_id, language = found
        state = "ask"
        if request.method == "POST":
            await opt_out(
                request.app[sessions_key],
                client_id,
                Channel.EMAIL,
                datetime.now(UTC),
                "unsubscribe",
            )
            state = "done"
        context = page_context(language, state=state, token=request.match_info["token"])
        return aiohttp_jinja2.render_template("unsubscribe.html", request, context)

    return [web.get("/unsubscribe/{token}", page), web.post("/unsubscribe/{token}", page)]
