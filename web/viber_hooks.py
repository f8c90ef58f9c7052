"""``POST /hooks/viber/{token}``: Infobip's delivery reports on our Viber messages (the
webhook each message names, ``centrala.noticing.viber_account``). Infobip's per-message
webhook carries no signature or credentials, so the path's token is the secret: compared in
constant time, any other answered 404 as an unknown path. The body is bounded; JSON that is
not a report is 400 with what is wrong. Each final report is applied once, in any order
(``models.notices.report``); a failure's SMS is queued at once (``usecases.notices.
fallbacks``, which also decides nothing twice)."""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime

import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.notices import report
from usecases.notices import fallbacks
from viber.infobip import parse_reports
from web.errors import error_json
from web.notices_api import NOTICE_SETUP

Sessions = async_sessionmaker[AsyncSession]
log = structlog.get_logger(__name__)
PATH = "/hooks/viber/{token}"
MAX_BODY = 1024 * 1024  # Infobip sends up to 100 reports at a time: far under this


def routes(sessions_key: web.AppKey[Sessions], token: str) -> list[web.RouteDef]:
    async def reports(request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.match_info["token"].encode(), token.encode()):
            raise web.HTTPNotFound()
        if (request.content_length or 0) > MAX_BODY:
            return error_json(413, "report_too_large", f"at most {MAX_BODY} bytes")
        raw = await request.read()
        if len(raw) > MAX_BODY:
            return error_json(413, "report_too_large", f"at most {MAX_BODY} bytes")
        try:
            found = parse_reports(json.loads(raw))
        except ValueError as exc:  # also JSON that is not JSON, or not UTF-8
            return error_json(400, "bad_report", f"not Infobip's delivery reports: {exc}")
        sessions = request.app[sessions_key]
        now = datetime.now(UTC)
        applied = 0
        for one in found:
            if one.state is None:
                continue  # PENDING and the like: not final, nothing to apply
            known = await report(sessions, one.message_id, one.state, one.at or now, one.error)
            applied += 1
            log.info("viber_report", provider_id=one.message_id, state=one.state, known=known)
        setup = request.app.get(NOTICE_SETUP)
        if setup is not None and applied:
            await fallbacks(sessions, setup, now)
        return web.json_response({"applied": applied})

    return [web.post(PATH, reports)]
