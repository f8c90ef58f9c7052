"""The Facebook / Instagram inbox's facts (Meta's Messenger Platform), decided without I/O:

* ``verify_signature``: a webhook's ``X-Hub-Signature-256`` (``sha256=`` and the hex
  HMAC-SHA256 of the raw body under the app secret), checked on the bytes as they came,
  before anything is parsed: Meta signs the body it sent (its JSON escapes non-ASCII as
  ``\\uXXXX``), so a body parsed and written again would not match.
* ``handshake``: the subscription's verification request (``hub.mode=subscribe``,
  ``hub.verify_token``, ``hub.challenge``): the challenge to echo, or None.
* ``parse_webhook``: the people's messages in a notification's JSON, Messenger's (object
  ``page``) and Instagram's (object ``instagram``; the same ``entry[].messaging[]`` shape),
  as ``MetaMessage``. Echoes (a message the Page or Instagram account sent itself, from
  the Page's inbox or through us) are returned flagged ``is_echo``; reads, deliveries,
  reactions, edits, referrals, opt-ins, handovers, ``standby`` (a thread another app owns)
  and whatever Meta adds later are left out and never raise. A notification whose shape is
  not Meta's (no ``entry`` list, a message without its sender, id or time) raises
  ``MetaPayloadError`` (``bad_payload``, 400), naming where.
* ``may_reply``: whether the standard messaging window (24 hours from the person's last
  message) is open, and ``text_parts``: a reply cut to the platform's text limit on word
  boundaries (Messenger 2000 characters, Instagram 1000 bytes of UTF-8).

Imports: the standard library and ``core``."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from core.errors import DomainError
from core.inquiries.model import InquiryChannel

SIGNATURE_HEADER = "X-Hub-Signature-256"
# Meta's ``object`` per platform: what it names the notification's source.
OBJECTS: Mapping[str, InquiryChannel] = {
    "page": InquiryChannel.FACEBOOK,
    "instagram": InquiryChannel.INSTAGRAM,
}
# Standard messaging: a business may answer within 24 hours of the person's last message
# (Messenger Platform and Instagram Messaging policy). Longer windows exist, but not for us
# by default: the HUMAN_AGENT message tag lets a person (never automation) answer for
# 7 days, and only for an app Meta granted the Human Agent permission in App Review; the
# window after a click-to-Messenger ad may run 7 days too. Neither is used here.
STANDARD_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)  # documented, unused: needs Meta's approval
# A text message's limit: Messenger's 2000 characters (counted here in UTF-16 units, the
# stricter count: an emoji is two), Instagram's 1000 bytes of UTF-8.
MESSENGER_TEXT_LIMIT = 2000
INSTAGRAM_TEXT_LIMIT = 1000
_CHALLENGE = re.compile(r"^[\x21-\x7e]{1,256}$")  # Meta's is digits; echo nothing odd
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
# Meta's timestamps are milliseconds since the epoch; the App Dashboard's test
# notifications have sent seconds (as strings): anything below this is seconds.
_MILLISECONDS_FROM = 10**11


class MetaPayloadError(DomainError):
    """A webhook notification that is not Meta's shape; ``details["at"]`` says where."""

    def __init__(self, at: str, message: str) -> None:
        super().__init__(f"{at}: {message}", error_id="bad_payload", status=400, details={"at": at})


class Attachment(NamedTuple):
    type: str  # image, video, audio, file, sticker, share, story_mention, fallback, ...
    url: str | None  # Meta's CDN link (expires); None: none given (a fallback, a template)


@dataclass(frozen=True)
class MetaMessage:
    """One message in a conversation with our Page or Instagram professional account."""

    platform: InquiryChannel  # FACEBOOK or INSTAGRAM
    page_id: str  # the entry's id: our Page's, or our Instagram account's
    sender_id: str  # the person's page-scoped id (PSID / IGSID); ours on an echo
    recipient_id: str
    mid: str  # Meta's message id: unique, the key that makes a redelivery change nothing
    text: str  # "" for attachments alone
    attachments: tuple[Attachment, ...]
    timestamp: datetime  # when the person sent it (aware, UTC)
    is_echo: bool = False  # sent by the Page / account itself (its inbox, or our reply)
    postback: str | None = None  # a button's payload; the text is the button's title
    unsupported: bool = False  # Instagram: content the API cannot show (text "" then)

    @property
    def client_id(self) -> str:
        """The person's id in this conversation, whoever sent the message: the recipient to
        reply to."""
        return self.recipient_id if self.is_echo else self.sender_id


# ---- the webhook's security -----------------------------------------------------------


def verify_signature(secret: bytes, raw_body: bytes, header: str | None) -> bool:
    """Whether ``header`` (``X-Hub-Signature-256``) is ``sha256=`` and the HMAC-SHA256 of
    ``raw_body`` under ``secret``, compared in constant time. A missing, malformed or
    other-algorithm header is False, and so is any header under an empty secret (anyone
    can compute that one)."""
    if not secret or header is None or not header.startswith("sha256="):
        return False
    given = header.removeprefix("sha256=")
    if not _HEX64.match(given):
        return False
    expected = hmac.new(secret, raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given.lower())


def signature(secret: bytes, raw_body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``raw_body`` (for the tests' and
    the stand-ins' requests)."""
    return "sha256=" + hmac.new(secret, raw_body, hashlib.sha256).hexdigest()


def handshake(params: Mapping[str, str], verify_token: str) -> str | None:
    """The challenge to answer a verification request with (as plain text), or None when
    it is not one of ours: ``hub.mode`` is not ``subscribe``, ``hub.verify_token`` is not
    ours (compared in constant time), or the challenge is missing or odd."""
    if not verify_token or params.get("hub.mode") != "subscribe":
        return None
    challenge = params.get("hub.challenge") or ""
    try:
        given = (params.get("hub.verify_token") or "").encode("utf-8")
    except UnicodeEncodeError:  # aiohttp's surrogates for bytes that are not UTF-8
        return None
    if not hmac.compare_digest(given, verify_token.encode("utf-8")):
        return None
    return challenge if _CHALLENGE.match(challenge) else None


# ---- the notification's messages ------------------------------------------------------


def parse_webhook(payload: object) -> list[MetaMessage]:
    """The people's messages (and the echoes, flagged) of a notification, in its order.
    An ``object`` other than ``page`` or ``instagram`` is not an inbox's: nothing."""
    if not isinstance(payload, dict):
        raise MetaPayloadError("$", "not a JSON object")
    platform = OBJECTS.get(_str(payload, "object", "$"))
    if platform is None:
        return []
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise MetaPayloadError("entry", "not a list")
    found: list[MetaMessage] = []
    for i, entry in enumerate(entries):
        at = f"entry[{i}]"
        if not isinstance(entry, dict):
            raise MetaPayloadError(at, "not an object")
        page_id = _id(entry.get("id"), f"{at}.id")
        events = entry.get("messaging", [])
        # "changes" (comments, mentions) and "standby" (a thread another app owns: the
        # Page's own inbox answers it) are not this inbox's messages.
        if not isinstance(events, list):
            raise MetaPayloadError(f"{at}.messaging", "not a list")
        for j, event in enumerate(events):
            message = _message(platform, page_id, event, f"{at}.messaging[{j}]")
            if message is not None:
                found.append(message)
    return found


def _message(platform: InquiryChannel, page_id: str, event: object, at: str) -> MetaMessage | None:
    if not isinstance(event, dict):
        raise MetaPayloadError(at, "not an object")
    if "message" in event:
        kind = "message"
    elif "postback" in event:
        kind = "postback"
    else:
        return None  # read, delivery, reaction, message_edit, referral, optin, ...
    body = event[kind]
    if not isinstance(body, dict):
        raise MetaPayloadError(f"{at}.{kind}", "not an object")
    sender = event.get("sender")
    if isinstance(sender, dict) and "id" not in sender and "user_ref" in sender:
        # A guest of a website's chat plugin, who can be answered only by that reference:
        # Centrala embeds no chat plugin, so this is none of its conversations.
        return None
    sender_id = _id(sender.get("id") if isinstance(sender, dict) else None, f"{at}.sender.id")
    recipient = event.get("recipient")
    recipient_id = _id(
        recipient.get("id") if isinstance(recipient, dict) else None, f"{at}.recipient.id"
    )
    timestamp = _time(event.get("timestamp"), f"{at}.timestamp")
    if kind == "postback":
        mid = body.get("mid")
        if mid is None:  # older postbacks carry no id: one stable across redeliveries
            mid = f"postback-{sender_id}-{int(timestamp.timestamp() * 1000)}"
        return MetaMessage(
            platform=platform,
            page_id=page_id,
            sender_id=sender_id,
            recipient_id=recipient_id,
            mid=_id(mid, f"{at}.postback.mid"),
            text=_optional_str(body, "title", f"{at}.postback"),
            attachments=(),
            timestamp=timestamp,
            postback=_optional_str(body, "payload", f"{at}.postback") or None,
        )
    if body.get("is_deleted") is True:
        return None  # Instagram: the person unsent a message (its mid was delivered before)
    return MetaMessage(
        platform=platform,
        page_id=page_id,
        sender_id=sender_id,
        recipient_id=recipient_id,
        mid=_id(body.get("mid"), f"{at}.message.mid"),
        text=_optional_str(body, "text", f"{at}.message"),
        attachments=_attachments(body.get("attachments"), f"{at}.message.attachments"),
        timestamp=timestamp,
        is_echo=body.get("is_echo") is True,
        unsupported=body.get("is_unsupported") is True,
    )


def _attachments(value: object, at: str) -> tuple[Attachment, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MetaPayloadError(at, "not a list")
    found = []
    for k, attachment in enumerate(value):
        if not isinstance(attachment, dict) or not isinstance(attachment.get("type"), str):
            raise MetaPayloadError(f"{at}[{k}]", "an attachment needs its type")
        # The payload's shape varies by type (a template's elements, a location's
        # coordinates, a fallback's none): only a link is kept.
        payload = attachment.get("payload")
        url = payload.get("url") if isinstance(payload, dict) else None
        found.append(Attachment(attachment["type"], url if isinstance(url, str) else None))
    return tuple(found)


def _str(container: dict[str, Any], key: str, at: str) -> str:
    value = container.get(key)
    if not isinstance(value, str):
        raise MetaPayloadError(f"{at}.{key}" if at != "$" else key, "not a string")
    return value


def _optional_str(container: dict[str, Any], key: str, at: str) -> str:
    value = container.get(key, "")
    if not isinstance(value, str):
        raise MetaPayloadError(f"{at}.{key}", "not a string")
    return value


def _id(value: object, at: str) -> str:
    """An id: Meta sends strings; a bare number is taken as its digits."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MetaPayloadError(at, "missing")
    text = str(value)
    if not text or len(text) > 512:
        raise MetaPayloadError(at, "empty or too long")
    return text


def _time(value: object, at: str) -> datetime:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise MetaPayloadError(at, "not a time")
    seconds = value / 1000 if value >= _MILLISECONDS_FROM else value
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise MetaPayloadError(at, "not a time") from None


# ---- replying -------------------------------------------------------------------------


def may_reply(last_inbound_at: datetime | None, now: datetime) -> bool:
    """Whether a reply may go out as a standard message now: the person wrote within the
    last 24 hours. None (they never wrote): no."""
    if last_inbound_at is None:
        return False
    if last_inbound_at.tzinfo is None or now.tzinfo is None:
        raise ValueError("may_reply needs aware times")
    return now - last_inbound_at < STANDARD_WINDOW


def reply_deadline(last_inbound_at: datetime) -> datetime:
    """When the standard messaging window closes (for the desk: "answer by")."""
    return last_inbound_at + STANDARD_WINDOW


def _utf16_units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _utf8_bytes(char: str) -> int:
    return len(char.encode("utf-8", "surrogatepass"))


LIMITS: Mapping[InquiryChannel, tuple[int, Callable[[str], int]]] = {
    InquiryChannel.FACEBOOK: (MESSENGER_TEXT_LIMIT, _utf16_units),
    InquiryChannel.INSTAGRAM: (INSTAGRAM_TEXT_LIMIT, _utf8_bytes),
}


def text_parts(
    text: str, platform: InquiryChannel = InquiryChannel.FACEBOOK, limit: int | None = None
) -> tuple[str, ...]:
    """``text`` as the messages it takes on ``platform``, in order: each within the limit
    (``limit`` overrides the platform's, in its unit), cut after a paragraph's or line's
    end in the window's second half, else at the last space; a word longer than a whole
    message is cut where the limit falls. The whitespace at a cut is dropped, nothing else.
    A blank text is an error: there is nothing to send."""
    default, cost = LIMITS[platform]
    limit = limit or default
    if limit < 4:  # a character costs up to 4 (UTF-8): a smaller limit could fit none
        raise ValueError(f"a limit of {limit} fits no character for sure")
    rest = text.strip()
    if not rest:
        raise DomainError("an empty reply", error_id="empty_reply", status=400)
    parts: list[str] = []
    while rest:
        fits = _fitting(rest, limit, cost)
        if fits == len(rest):
            parts.append(rest)
            break
        # The character just past the limit may be the space to cut at.
        window = rest[: fits + 1]
        cut = window.rfind("\n")
        if cut < fits // 2:
            cut = max((i for i, c in enumerate(window) if c.isspace()), default=0)
        if cut <= 0:
            cut = fits
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return tuple(parts)


def _fitting(text: str, limit: int, cost: Callable[[str], int]) -> int:
    """How many characters of ``text``, from its start, fit within ``limit``."""
    total = 0
    for i, char in enumerate(text):
        total += cost(char)
        if total > limit:
            return i
    return len(text)
