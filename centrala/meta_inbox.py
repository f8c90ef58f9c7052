"""The Facebook / Instagram inbox's wiring for `serve`: the webhook's routes when the app
secret and the verify token are set (none otherwise), the messages it takes handed to a
callback (`serve`'s: ``usecases.inquiries.receive_meta``, storing each message once by its
``mid``; by default it only logs each one: ``meta_message_received``, ids, no text), and the
Send API's account from the settings."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from aiohttp import web

from centrala.settings import Settings
from core.inquiries.meta import MetaMessage
from meta.graph import MetaAccount
from web.meta_hooks import OnMessages
from web.meta_hooks import routes as hook_routes

log = structlog.get_logger(__name__)


async def log_messages(messages: Sequence[MetaMessage]) -> None:
    for m in messages:
        log.info(
            "meta_message_received",
            platform=str(m.platform),
            page_id=m.page_id,
            client_id=m.client_id,
            mid=m.mid,
            echo=m.is_echo,
            chars=len(m.text),
            attachments=len(m.attachments),
            at=m.timestamp.isoformat(),
        )


def meta_routes(settings: Settings, on_messages: OnMessages = log_messages) -> list[web.RouteDef]:
    """``/webhooks/meta``'s routes, or none when the webhook is not configured."""
    if not (settings.meta_app_secret and settings.meta_verify_token):
        return []
    return hook_routes(settings.meta_app_secret, settings.meta_verify_token, on_messages)


def meta_account(settings: Settings) -> MetaAccount | None:
    """The Send API's account, or None when no Page access token is set (no replies)."""
    if not settings.meta_page_token:
        return None
    return MetaAccount(
        page_token=settings.meta_page_token,
        graph_url=settings.meta_graph_url,
        version=settings.meta_graph_version,
        app_secret=settings.meta_app_secret,
        timeout=settings.meta_timeout_seconds,
    )
