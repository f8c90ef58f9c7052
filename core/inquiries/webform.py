"""The public contact form: its spam defences and its fields' checks.

Spam is told apart from a person's mistake: a bot (the hidden honeypot field filled, the
form sent faster than a person can type, no render time) gets the same "thank you" as a
person and nothing is stored, so it learns nothing; a person gets each wrong field named.
The render time reaches us signed by the web layer (it checks the signature; here it is a
number). The rate limit per address is the web layer's too: it needs state."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from core.phones import normalise

MIN_SECONDS = 3.0  # nobody fills in name, e-mail and a message faster
MAX_AGE_SECONDS = 24 * 3600  # a page rendered longer ago: sent again, not stored stale
HONEYPOT = "website"  # hidden from people by CSS; bots fill every field
MAX_NAME = 100
MAX_EMAIL = 254  # RFC 5321's path limit less the angle brackets
MAX_MESSAGE = 5000
MAX_PHONE = 40
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)


# Every FieldError's error_id (the page's texts name each).
ERROR_IDS = (
    "contact_required",
    "form_expired",
    "invalid_characters",
    "invalid_email",
    "invalid_phone",
    "required",
    "too_long",
)


@dataclass(frozen=True)
class ContactForm:
    name: str
    email: str | None
    phone: str | None  # E.164
    message: str


@dataclass(frozen=True)
class FieldError:
    field: str
    error_id: str
    message: str


@dataclass(frozen=True)
class ContactCheck:
    """Exactly one of: ``spam`` (a reason, for the log), ``errors`` (for the person),
    ``form`` (to store)."""

    spam: str | None = None
    errors: tuple[FieldError, ...] = ()
    form: ContactForm | None = None


def _controls(text: str, newlines: bool) -> bool:
    allowed = {"\n", "\r", "\t"} if newlines else set()
    return any(unicodedata.category(c) == "Cc" and c not in allowed for c in text)


def check_contact_form(
    fields: Mapping[str, str],
    rendered_at: float | None,
    now: float,
    *,
    region: str = "BA",
    min_seconds: float = MIN_SECONDS,
    max_age_seconds: float = MAX_AGE_SECONDS,
    honeypot: str = HONEYPOT,
) -> ContactCheck:
    """The verdict on a posted form (``rendered_at`` and ``now`` in seconds since the
    epoch; ``rendered_at`` None when the signed time was missing or forged)."""
    if fields.get(honeypot, "").strip():
        return ContactCheck(spam="honeypot")
    if rendered_at is None:
        return ContactCheck(spam="no_render_time")
    if now - rendered_at < min_seconds:
        return ContactCheck(spam="too_fast")

    errors: list[FieldError] = []
    if now - rendered_at > max_age_seconds:
        errors.append(FieldError("form", "form_expired", "The page is old: please send it again."))

    name = " ".join(fields.get("name", "").split())
    if not name:
        errors.append(FieldError("name", "required", "Please write your name."))
    elif len(name) > MAX_NAME or _controls(name, newlines=False):
        errors.append(FieldError("name", "too_long", f"A name has at most {MAX_NAME} characters."))

    email = fields.get("email", "").strip() or None
    if email is not None and (len(email) > MAX_EMAIL or not _EMAIL.match(email)):
        errors.append(FieldError("email", "invalid_email", "This is not an e-mail address."))

    raw_phone = fields.get("phone", "").strip() or None
    phone = None
    if raw_phone is not None:
        phone = normalise(raw_phone[: MAX_PHONE + 1], region)
        if phone is None:
            errors.append(FieldError("phone", "invalid_phone", "This is not a phone number."))
    if email is None and raw_phone is None:
        # We answer by e-mail or call back: without either there is nobody to answer.
        errors.append(
            FieldError("email", "contact_required", "Please give an e-mail address or a phone.")
        )

    message = fields.get("message", "").replace("\r\n", "\n").strip()
    if not message:
        errors.append(FieldError("message", "required", "Please write your message."))
    elif len(message) > MAX_MESSAGE:
        errors.append(
            FieldError("message", "too_long", f"A message has at most {MAX_MESSAGE} characters.")
        )
    elif _controls(message, newlines=True):
        errors.append(
            FieldError("message", "invalid_characters", "The message has control characters.")
        )

    if errors:
        return ContactCheck(errors=tuple(errors))
    return ContactCheck(form=ContactForm(name, email, phone, message))
