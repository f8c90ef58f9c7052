"""The public contact form (no log-in): ``GET /contact`` is a plain page of our own, ``POST
/contact`` takes the form it posts and the foundation's website's own form (form-encoded
``name``, ``email``, ``phone``, ``message``, the honeypot ``website`` and the signed render
time ``rendered`` from ``GET /contact/stamp``). ``core.inquiries.webform`` judges it: a bot
gets the same thank-you page as a person and nothing is stored; a person gets each wrong
field named, their text kept in the form. An address posting more than ``LIMIT`` forms in
``WINDOW`` seconds waits (429). A stored form is a written inquiry
(``usecases.inquiries.receive``); the page gives its reference, and a sender with an e-mail
address gets a receipt (queued to leave with the answers). ``Accept:
application/json`` answers JSON (the website's script). Imports core, models, usecases and
web."""

from __future__ import annotations

import collections
import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.enums import DeskLanguage
from core.inquiries import ContactForm, check_contact_form
from models.inquiries import add_receipt
from usecases.inquiries import InquirySetup, form_arrival, receive
from web.http import page_context
from web.i18n import from_accept_language, t

Sessions = async_sessionmaker[AsyncSession]
log = structlog.get_logger(__name__)
LIMIT = 5  # forms an address may post ...
WINDOW = 600.0  # ... in this many seconds
MAX_ADDRESSES = 10_000  # remembered at most (the oldest forgotten): a flood cannot fill memory
FIELDS = ("name", "email", "phone", "message")


def stamp(secret: str, now: float) -> str:
    """The render time, signed: the time trap's clock cannot be set by the poster."""
    at = str(int(now))
    mac = hmac.new(secret.encode(), f"contact:{at}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{at}.{mac}"


def stamped_at(secret: str, value: str) -> float | None:
    at, _, mac = value.partition(".")
    if not at.isdigit() or len(at) > 12:
        return None
    if not hmac.compare_digest(stamp(secret, float(at)).partition(".")[2], mac):
        return None
    return float(at)


def _post_id(given: str | None, form: ContactForm) -> str:
    """The post's own id: the page's (a double click sends it twice: stored once) with the
    text's digest, so another post given the same id by mistake or malice is not lost as
    its duplicate; without one, a fresh id."""
    if not given:
        return uuid.uuid4().hex
    digest = hashlib.sha256(f"{form.email}\0{form.phone}\0{form.message}".encode()).hexdigest()
    return f"{given[:64]}:{digest[:16]}"


class Limiter:
    """Posts per address in a sliding window."""

    def __init__(self, limit: int = LIMIT, window: float = WINDOW) -> None:
        self.limit, self.window = limit, window
        self.seen: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )

    def wait(self, address: str, now: float) -> float:
        """0 and the post counted, or the seconds to wait."""
        times = self.seen.pop(address, collections.deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        self.seen[address] = times
        if len(self.seen) > MAX_ADDRESSES:
            self.seen.popitem(last=False)
        if len(times) >= self.limit:
            return self.window - (now - times[0])
        times.append(now)
        return 0.0


def _language(request: web.Request) -> str:
    """``?lang=``, else the browser's Accept-Language (the page's visitors are no agents)."""
    wanted = request.query.get("lang", "")
    if wanted in {str(x.value) for x in DeskLanguage}:
        return wanted
    return str(from_accept_language(request.headers.get("Accept-Language")).value)


def routes(
    sessions_key: web.AppKey[Sessions],
    setup_key: web.AppKey[InquirySetup],
    secret: str,
    limiter: Limiter | None = None,
) -> list[web.RouteDef]:
    posts = limiter or Limiter()

    def render(
        request: web.Request, language: str, status: int = 200, **shown: Any
    ) -> web.Response:
        context = page_context(
            language,
            stamp=stamp(secret, time.time()),
            post_id=uuid.uuid4().hex,  # the page's: a double click sends it twice
            fields=shown.pop("fields", {}),
            errors=shown.pop("errors", {}),
            **shown,
        )
        return aiohttp_jinja2.render_template("contact.html", request, context, status=status)

    async def page(request: web.Request) -> web.Response:
        return render(request, _language(request))

    async def stamp_json(request: web.Request) -> web.Response:
        return web.json_response(
            {"rendered": stamp(secret, time.time())},
            headers={"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"},
        )

    async def post(request: web.Request) -> web.Response:
        language = _language(request)
        wants_json = "application/json" in request.headers.get("Accept", "")
        address = request.remote or "?"
        wait = posts.wait(address, time.monotonic())
        if wait > 0:
            log.info("contact_form_limited", address=address)
            headers = {"Retry-After": str(int(wait) + 1)}
            if wants_json:
                return web.json_response({"error_id": "rate_limited"}, status=429, headers=headers)
            raise web.HTTPTooManyRequests(text=t(language, "contact.limited"), headers=headers)
        form = await request.post()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        rendered = stamped_at(secret, fields.get("rendered", ""))
        checked = check_contact_form(fields, rendered, time.time())
        if checked.spam is not None:  # thanked, stored nowhere: a bot learns nothing
            log.info("contact_form_spam", reason=checked.spam, address=address)
            if wants_json:
                return web.json_response({"ok": True})
            return render(request, language, sent=True, reference=None)
        if checked.form is None:
            errors = {e.field: e.error_id for e in checked.errors}
            if wants_json:
                return web.json_response({"ok": False, "errors": errors}, status=400)
            kept = {k: fields.get(k, "") for k in FIELDS}
            return render(request, language, status=400, fields=kept, errors=errors)
        subject = t(language, "contact.subject", name=checked.form.name)
        arrival = form_arrival(
            checked.form, _post_id(fields.get("post_id"), checked.form), datetime.now(UTC), subject
        )
        setup = request.app.get(setup_key) or InquirySetup()
        received = await receive(request.app[sessions_key], setup, arrival)
        reference = f"#INQ-{received.inquiry_id}" if received.inquiry_id else None
        if received.created and received.inquiry_id and checked.form.email:
            # The sender's receipt, in the page's language, by e-mail with the answers.
            await add_receipt(
                request.app[sessions_key],
                received.inquiry_id,
                t(language, "contact.receipt_subject", reference=reference),
                t(language, "contact.receipt_text", name=checked.form.name, reference=reference),
                datetime.now(UTC),
            )
        if wants_json:
            return web.json_response({"ok": True, "reference": reference})
        return render(request, language, sent=True, reference=reference)

    return [
        web.get("/contact", page),
        web.get("/contact/stamp", stamp_json),
        web.post("/contact", post),
    ]
