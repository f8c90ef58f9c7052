"""Every HTTP route: the agent desktop and the supervisor's wallboard (pages, browser API,
WebSocket pushes), the bearer-token REST API (agents, calls, campaigns, survey reports, the
call simulator, flow editing, the roster and the audit trail) and its per-user tokens, the
survey report pages, ``/status``, and the one error middleware.

May import ``core``, ``dialplan``, ``models`` and ``usecases``, never ``ari_app`` or ``agi``:
the Stasis apps are injected by ``centrala serve`` under the keys of ``web.ports``, typed by
that module's Protocols. ``desk_ctx`` and ``setup_desk`` are all `serve` needs to wire the
desk."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from aiohttp import web

from core.acd import ACD
from models.api_tokens import ApiTokenStore
from models.crm import CRM
from models.web_sessions import WebSessionStore
from web.admin_api import desk_routes as admin_desk_routes
from web.admin_pages import routes as admin_pages
from web.agent_report_api import desk_routes as agent_report_desk_routes
from web.agent_report_page import routes as agent_report_pages
from web.auth import Sessions
from web.calllog_api import desk_routes as calllog_desk_routes
from web.campaign_api import desk_routes as campaign_desk_routes
from web.campaign_report_api import desk_routes as campaign_report_desk_routes
from web.campaign_report_page import routes as campaign_report_pages
from web.errors import API_TOKENS
from web.flow_api import desk_routes as flow_desk_routes
from web.http import WEB, DeskWeb, routes, setup_templates
from web.inquiries_api import desk_routes as inquiry_desk_routes
from web.notice_report_api import desk_routes as notice_report_desk_routes
from web.notices_api import desk_routes as notice_desk_routes
from web.notifier import Notifier
from web.ports import AGENT_DIALLER, SOFTPHONES, AgentCommands, CallControl, ManualCalls
from web.queue_report_api import desk_routes as queue_report_desk_routes
from web.queue_report_page import routes as queue_report_pages
from web.recordings import routes as recording_routes
from web.reports import routes as report_routes
from web.store import DeskStore
from web.survey_edit_api import desk_routes as survey_desk_routes
from web.tokens import routes as token_routes

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DeskConfig:
    """The settings the desk reads (``centrala serve`` takes them from its Settings)."""

    web_secret: str
    session_seconds: float
    region: str
    disposition_required: bool
    secure_cookies: bool = False
    trusted_proxy: str | None = None
    # How often open WebSockets are checked against the sessions table, for revocations made
    # outside this process (a password change from the CLI, a demotion).
    session_recheck_seconds: float = 5.0


def desk_ctx(
    config: DeskConfig,
    crm_key: web.AppKey[CRM],
    acd_key: web.AppKey[ACD],
    desk_key: web.AppKey[AgentCommands],
    infoline_key: web.AppKey[CallControl],
    outbound_key: web.AppKey[ManualCalls] | None = None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        crm = app[crm_key]
        store = DeskStore(
            crm.sessions,
            live_facts=getattr(crm.writer, "live_facts", None),
            writer=crm.writer,
            remember=crm.agent,
        )
        notifier = Notifier(
            store,
            app[acd_key],
            app[desk_key],
            disposition_required=config.disposition_required,
        )
        app[WEB] = DeskWeb(
            store=store,
            sessions=Sessions(config.web_secret, config.session_seconds),
            notifier=notifier,
            acd=app[acd_key],
            desk=app[desk_key],
            infoline=app[infoline_key],
            region=config.region,
            disposition_required=config.disposition_required,
            web_sessions=WebSessionStore(
                crm.sessions, timedelta(seconds=config.session_seconds), writer=crm.writer
            ),
            secure_cookies=config.secure_cookies,
            trusted_proxy=config.trusted_proxy,
            outbound=app.get(outbound_key) if outbound_key is not None else None,
            softphones=app.get(SOFTPHONES),
            dialler=app.get(AGENT_DIALLER),
        )
        # The per-user API tokens: the /api guard resolves them, the desk lists and makes them.
        app[API_TOKENS] = ApiTokenStore(crm.sessions)
        app[infoline_key].desk_listeners.append(notifier.on_notice)
        if AGENT_DIALLER in app:
            notifier.campaigns = app[AGENT_DIALLER].figures
        notifier.start()
        recheck = asyncio.create_task(_recheck_sockets(app[WEB], config.session_recheck_seconds))
        yield
        recheck.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await recheck
        await notifier.stop()

    return ctx


PURGE_EVERY = 3600.0  # seconds between clean-ups of expired web_sessions rows


async def _recheck_sockets(dw: DeskWeb, every: float) -> None:
    next_purge = time.monotonic()
    failing = False  # said once while it lasts, not every round
    while True:
        try:
            if time.monotonic() >= next_purge:
                next_purge = time.monotonic() + PURGE_EVERY
                await dw.web_sessions.purge(datetime.now(UTC))
            await dw.recheck_sockets()
            if failing:
                failing = False
                log.info("session_recheck_resumed")
        except Exception:  # the database is away: the sockets stay, the next round retries
            if not failing:
                failing = True
                log.warning("session_recheck_failed", exc_info=True)
        await asyncio.sleep(every)


async def _close_sockets(app: web.Application) -> None:
    # Open WebSockets would hold the shutdown for aiohttp's whole shutdown timeout.
    if WEB in app:
        await app[WEB].notifier.close_sockets()


def setup_desk(app: web.Application) -> None:
    setup_templates(app)
    app.router.add_routes(routes())
    app.router.add_routes(report_routes())
    app.router.add_routes(calllog_desk_routes())
    app.router.add_routes(recording_routes())
    app.router.add_routes(flow_desk_routes())
    app.router.add_routes(admin_desk_routes())
    app.router.add_routes(survey_desk_routes())
    app.router.add_routes(campaign_desk_routes())
    app.router.add_routes(queue_report_desk_routes())
    app.router.add_routes(queue_report_pages())
    app.router.add_routes(campaign_report_desk_routes())
    app.router.add_routes(campaign_report_pages())
    app.router.add_routes(agent_report_desk_routes())
    app.router.add_routes(agent_report_pages())
    app.router.add_routes(admin_pages())
    app.router.add_routes(notice_desk_routes())
    app.router.add_routes(inquiry_desk_routes())
    app.router.add_routes(notice_report_desk_routes())
    app.router.add_routes(token_routes())
    app.on_shutdown.append(_close_sockets)


__all__ = ["WEB", "DeskConfig", "desk_ctx", "setup_desk"]
