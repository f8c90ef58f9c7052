"""``/webhooks/meta``: the Facebook / Instagram inbox's webhook (Meta's Messenger Platform).

``GET`` is the subscription's verification request: the challenge echoed as plain text
when ``hub.mode`` is ``subscribe`` and ``hub.verify_token`` is ours, else 403.

``POST`` is a notification. The body is bounded (413) and its ``X-Hub-Signature-256``
checked on the raw bytes before anything is parsed: a missing or wrong signature is 403
``bad_signature`` and nothing is read from it or handed on. Then JSON that is not Meta's
notification is 400 ``bad_payload``; the people's messages (``core.inquiries.meta.
parse_webhook``: echoes flagged, reads and deliveries left out) go to ``on_messages``, the
injected callback that stores them, and the answer is 200 ``EVENT_RECEIVED``. The callback
failing is 500: Meta delivers the notification again (it retries what was not answered
200), so the callback must take a message it already has as done (its ``mid`` is unique).
It is awaited before the answer, so it only stores: Meta waits a few seconds at most."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence

import structlog
from aiohttp import web

from core.inquiries.meta import (
    SIGNATURE_HEADER,
    MetaMessage,
    MetaPayloadError,
    handshake,
    parse_webhook,
    verify_signature,
)
from web.errors import error_json

log = structlog.get_logger(__name__)
PATH = "/webhooks/meta"
MAX_BODY = 1024 * 1024  # Meta batches up to 1000 events of well under 1 KB each
OnMessages = Callable[[Sequence[MetaMessage]], Awaitable[None]]


def routes(app_secret: str, verify_token: str, on_messages: OnMessages) -> list[web.RouteDef]:
    secret = app_secret.encode("utf-8")

    async def verify(request: web.Request) -> web.Response:
        challenge = handshake(request.query, verify_token)
        if challenge is None:
            log.warning("meta_handshake_refused", peer=request.remote)
            return error_json(403, "bad_verify_token", "not a verification request of ours")
        log.info("meta_handshake")
        return web.Response(text=challenge, content_type="text/plain")

    async def notification(request: web.Request) -> web.Response:
        if (request.content_length or 0) > MAX_BODY:
            return error_json(413, "payload_too_large", f"at most {MAX_BODY} bytes")
        raw = await request.read()
        if len(raw) > MAX_BODY:
            return error_json(413, "payload_too_large", f"at most {MAX_BODY} bytes")
        if not verify_signature(secret, raw, request.headers.get(SIGNATURE_HEADER)):
            log.warning("meta_bad_signature", peer=request.remote, size=len(raw))
            return error_json(403, "bad_signature", f"{SIGNATURE_HEADER} does not match")
        try:
            messages = parse_webhook(json.loads(raw))
        except MetaPayloadError as exc:
            log.warning("meta_bad_payload", at=exc.details.get("at"), error=str(exc))
            return error_json(400, exc.error_id, str(exc), exc.details)
        except ValueError as exc:  # not JSON, or not UTF-8
            log.warning("meta_bad_payload", error=str(exc))
            return error_json(400, "bad_payload", f"not JSON: {exc}")
        if messages:
            try:
                await on_messages(messages)
            except Exception:
                log.exception("meta_messages_not_stored", messages=len(messages))
                return error_json(
                    500, "not_stored", "the messages were not stored; deliver them again"
                )
        log.info("meta_webhook", messages=len(messages))
        return web.Response(text="EVENT_RECEIVED", content_type="text/plain")

    return [web.get(PATH, verify), web.post(PATH, notification)]
