"""The agent desktop and the supervisor's wallboard: pages, browser API, WebSocket pushes.
``desk_ctx`` and ``setup_desk`` are all `centrala serve` needs to wire it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from ari_app.agents import AgentDesk
from ari_app.infoline import InfolineApp
from centrala.settings import Settings
from core.acd import ACD
from models.crm import CRM
from web.auth import Sessions
from web.http import WEB, DeskWeb, routes, setup_templates
from web.notifier import Notifier
from web.reports import routes as report_routes
from web.store import DeskStore


def desk_ctx(
    settings_key: web.AppKey[Settings],
    crm_key: web.AppKey[CRM],
    acd_key: web.AppKey[ACD],
    desk_key: web.AppKey[AgentDesk],
    infoline_key: web.AppKey[InfolineApp],
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[settings_key]
        store = DeskStore(app[crm_key].sessions)
        notifier = Notifier(
            store,
            app[acd_key],
            app[desk_key],
            disposition_required=settings.disposition_required,
        )
        app[WEB] = DeskWeb(
            store=store,
            sessions=Sessions(settings.effective_web_secret(), settings.session_hours * 3600),
            notifier=notifier,
            acd=app[acd_key],
            desk=app[desk_key],
            infoline=app[infoline_key],
            region=settings.default_region,
            disposition_required=settings.disposition_required,
        )
        app[infoline_key].desk_listeners.append(notifier.on_notice)
        notifier.start()
        yield
        await notifier.stop()

    return ctx


async def _close_sockets(app: web.Application) -> None:
    # Open WebSockets would hold the shutdown for aiohttp's whole shutdown timeout.
    if WEB in app:
        await app[WEB].notifier.close_sockets()


def setup_desk(app: web.Application) -> None:
    setup_templates(app)
    app.router.add_routes(routes())
    app.router.add_routes(report_routes())
    app.on_shutdown.append(_close_sockets)


__all__ = ["WEB", "desk_ctx", "setup_desk"]
