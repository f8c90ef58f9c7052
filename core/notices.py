"""Over 500 lines: the one contact policy and everything it decides about a message (its
channel, time, key, states, fallback and text) stay together, where a newcomer looks.

Notices to clients (birthday greetings, offers, office changes, documents expiring,
announcements) by SMS, Viber, e-mail or letter: the kinds and channels, the shipped templates
and their merge, the one contact policy every channel goes through (opt-outs per channel,
quiet hours in the client's zone, a frequency cap across channels, the preferred channel, no
message about what a call already covered today), each message's key (one message per client
and occasion, however often a job runs) and the outbox's states with the providers' reports
applied once each, in any order.

Pure: ``usecases.notices`` reads the clients and writes the outbox; the channels' adapters
(``mail.smtp``, ``sms``, ``viber``) send. A Viber message that fails, or stays silent past its
validity, falls back to one SMS (``needs_fallback``, ``fallback_plan``)."""

from __future__ import annotations

import calendar
import email.policy
import enum
import html
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from core.errors import DomainError


class NoticeKind(enum.StrEnum):
    BIRTHDAY = "birthday"
    OFFER = "offer"
    OFFICE_CHANGE = "office_change"
    DOCUMENT_EXPIRY = "document_expiry"
    ANNOUNCEMENT = "announcement"


class Channel(enum.StrEnum):
    SMS = "sms"
    VIBER = "viber"
    EMAIL = "email"
    LETTER = "letter"


class NoticeState(enum.StrEnum):
    QUEUED = "queued"  # waiting for its time (quiet hours) or its next attempt
    SENDING = "sending"  # claimed by an instance, handed to the provider
    SENT = "sent"  # the provider took it (its id kept)
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"


FINAL = frozenset({NoticeState.DELIVERED, NoticeState.FAILED, NoticeState.EXPIRED})
_RANK = {
    NoticeState.QUEUED: 0,
    NoticeState.SENDING: 1,
    NoticeState.SENT: 2,
    NoticeState.DELIVERED: 3,
    NoticeState.FAILED: 3,
    NoticeState.EXPIRED: 3,
}


def after_report(current: NoticeState, reported: NoticeState) -> NoticeState:
    """The state once a provider's report of ``reported`` comes in: a report only moves a
    message forward (a late "sent" after "delivered" changes nothing; a second "delivered"
    neither), so reports apply once each, in any order."""
    return reported if _RANK[reported] > _RANK[current] else current


def moved_by(reported: NoticeState) -> frozenset[NoticeState]:
    """The states a report of ``reported`` moves a message out of (``after_report`` as a
    set: one conditional write applies it)."""
    return frozenset(s for s in NoticeState if after_report(s, reported) is not s)


# A provider that is down: the message waits and is tried again after these waits, then
# hourly, for a day; then it is failed (expired), never dropped silently.
RETRY_WAITS = (30, 60, 120, 300, 600, 1800)
GIVE_UP_AFTER = timedelta(days=1)


def retry_at(attempts: int, failed_at: datetime, queued_at: datetime) -> datetime | None:
    """When a message whose ``attempts``-th sending failed (the provider down) is tried
    again; None: it has waited a day, it expires."""
    wait = RETRY_WAITS[attempts - 1] if attempts <= len(RETRY_WAITS) else 3600
    again = failed_at + timedelta(seconds=wait)
    return None if again - queued_at > GIVE_UP_AFTER else again


# A sending claimed this long ago and not finished (its `serve` died) is looked at again.
CLAIM_LEASE = timedelta(minutes=5)


def notice_key(kind: NoticeKind, client_id: int, occasion: str) -> str:
    """One message per client, kind and occasion (the year of a birthday, the date of the
    document, the campaign of an offer): the outbox's unique key."""
    return f"{kind}:{client_id}:{occasion}"


# ---- the contact policy ------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """The call centre's rules for messages (the operators' settings)."""

    quiet_from: time = time(20, 0)  # no message from 20:00 ...
    quiet_until: time = time(9, 0)  # ... to 09:00 on the client's clock
    cap: int = 3  # messages and outbound calls to a client ...
    cap_days: int = 7  # ... in this many days, every channel together
    default_zone: str = "Europe/Sarajevo"


# Each kind's channels in order when the client states no preference.
DEFAULT_CHANNELS: Mapping[NoticeKind, tuple[Channel, ...]] = {
    NoticeKind.BIRTHDAY: (Channel.VIBER, Channel.SMS, Channel.EMAIL),
    NoticeKind.OFFER: (Channel.EMAIL, Channel.VIBER, Channel.SMS, Channel.LETTER),
    NoticeKind.OFFICE_CHANGE: (Channel.SMS, Channel.VIBER, Channel.EMAIL, Channel.LETTER),
    NoticeKind.DOCUMENT_EXPIRY: (Channel.SMS, Channel.VIBER, Channel.EMAIL, Channel.LETTER),
    NoticeKind.ANNOUNCEMENT: (Channel.SMS, Channel.VIBER, Channel.EMAIL),
}
# What an offer is about, for "a client called today about an offer is not also messaged
# about it": an offer's message and a call of these campaign kinds share it.
OFFER_TOPIC = "offer"
OFFER_CAMPAIGNS = frozenset({"sales", "leads"})
# Greetings are never worth breaking the cap for; notices a client must have are.
CAPPED = frozenset({NoticeKind.BIRTHDAY, NoticeKind.OFFER, NoticeKind.ANNOUNCEMENT})


@dataclass(frozen=True)
class Contact:
    """A contact the client had: a message (its channel) or an outbound call (``voice``),
    with its topic (an offer's product, a campaign's kind)."""

    at: datetime
    channel: str
    topic: str | None = None


@dataclass(frozen=True)
class Recipient:
    """What the policy needs to know of a client."""

    client_id: int
    language: str
    zone: str | None
    phone: str | None  # E.164, the first one on file
    email: str | None
    postal_address: str | None
    preferred: Channel | None
    opted_out: frozenset[Channel] = frozenset()
    do_not_call: bool = False  # the number is on the DNC list: no SMS or Viber to it either
    contacts: tuple[Contact, ...] = ()


@dataclass(frozen=True)
class Plan:
    channel: Channel
    address: str
    not_before: datetime  # quiet hours: the next moment the client may be messaged


SKIP_REASONS = ("contacted_today", "frequency_cap", "no_address", "no_channel", "opted_out")


@dataclass(frozen=True)
class Skip:
    reason: str  # one of SKIP_REASONS


def address_of(r: Recipient, channel: Channel) -> str | None:
    if channel in (Channel.SMS, Channel.VIBER):
        return None if r.do_not_call else r.phone
    if channel is Channel.EMAIL:
        return r.email
    return r.postal_address


def next_allowed(now: datetime, zone: ZoneInfo, policy: Policy) -> datetime:
    """``now`` when it is outside the quiet hours on the client's clock, else the end of
    them (that morning, or the next)."""
    local = now.astimezone(zone)
    quiet = (
        policy.quiet_from <= local.time() or local.time() < policy.quiet_until
        if policy.quiet_from > policy.quiet_until
        else policy.quiet_from <= local.time() < policy.quiet_until
    )
    if not quiet:
        return now
    day = local.date() if local.time() < policy.quiet_until else local.date() + timedelta(days=1)
    return datetime.combine(day, policy.quiet_until, tzinfo=zone)


def plan(
    kind: NoticeKind,
    r: Recipient,
    now: datetime,
    configured: Iterable[Channel],
    policy: Policy,
    *,
    topic: str | None = None,
    channel: Channel | None = None,
) -> Plan | Skip:
    """Through which channel, to which address and from when ``r`` gets a notice of
    ``kind`` (``channel``: the one a supervisor asked for), or why not."""
    zone = ZoneInfo(r.zone or policy.default_zone)
    today = now.astimezone(zone).date()
    if topic is not None and any(
        c.topic == topic and c.at.astimezone(zone).date() == today for c in r.contacts
    ):
        return Skip("contacted_today")
    if kind in CAPPED:
        since = now - timedelta(days=policy.cap_days)
        if sum(1 for c in r.contacts if c.at > since) >= policy.cap:
            return Skip("frequency_cap")
    usable = set(configured)
    if channel is not None:
        order: Sequence[Channel] = (channel,)
    else:
        order = DEFAULT_CHANNELS[kind]
        if r.preferred is not None:
            order = (r.preferred, *(c for c in order if c is not r.preferred))
    reasons = []
    for candidate in order:
        if candidate not in usable:
            reasons.append("no_channel")
            continue
        if candidate in r.opted_out:
            reasons.append("opted_out")
            continue
        address = address_of(r, candidate)
        if not address:
            reasons.append("no_address")
            continue
        return Plan(candidate, address, next_allowed(now, zone, policy))
    # The most telling reason: an opt-out says more than a missing address.
    for reason in ("opted_out", "no_address", "no_channel"):
        if reason in reasons:
            return Skip(reason)
    return Skip("no_channel")


# Where a client's opt-out came from (contact_opt_outs.source): the e-mail's unsubscribe
# link, a STOP reply to an SMS, an agent on the desk.
OPT_OUT_SOURCES = ("agent", "stop_reply", "unsubscribe")


# ---- Viber's fallback to SMS ------------------------------------------------------------

# A Viber message that failed, or has no final report this long after its validity ended
# (the provider's report on its way), gets one SMS instead.
REPORT_GRACE = timedelta(seconds=60)
NO_REPORT = "no delivery report in time"


def fallback_key(key: str) -> str:
    """The key of a Viber message's SMS: one per Viber message, however often a sweep or a
    report asks for it."""
    return f"{key}:sms"


def needs_fallback(
    channel: Channel, state: NoticeState, sent_at: datetime | None, now: datetime, wait: timedelta
) -> bool:
    """Whether a Viber message in ``state`` gets its SMS now: refused at sending (failed),
    reported undeliverable, rejected or expired, or sent ``wait`` (its validity and the
    grace) ago with no final report. Delivered, or still in its time: no.

    The fallback is ours alone: the provider's own failover is never asked for, and each
    Viber message carries a validity period equal to our wait (``wait`` is it and the grace
    for its report to reach us), after which the provider drops it undelivered. So by the
    time we queue the SMS for a silent message, the Viber message can no longer reach the
    client: a client never gets both (the late report it may still send changes nothing,
    ``after_report``)."""
    if channel is not Channel.VIBER:
        return False
    if state in (NoticeState.FAILED, NoticeState.EXPIRED):
        return True
    return state is NoticeState.SENT and sent_at is not None and sent_at + wait <= now


def fallback_plan(
    kind: NoticeKind, r: Recipient, now: datetime, configured: Iterable[Channel], policy: Policy
) -> Plan | Skip:
    """Where and from when a Viber message's SMS goes, or why none: the policy's SMS rules
    (not opted out of SMS, no number on the DNC list, an SMS provider configured, the quiet
    hours), but neither the frequency cap nor "contacted today": the SMS replaces a message
    the policy let through already, it is not another contact."""
    return plan(kind, replace(r, contacts=()), now, configured, policy, channel=Channel.SMS)


# A client's reply that opts them out of SMS and Viber: the word alone, any case, with or
# without punctuation ("Stop.", "ODJAVA!").
STOP_WORDS = frozenset({"stop", "stopp", "odjava", "odjavi", "unsubscribe"})


def is_stop(reply: str) -> bool:
    return "".join(c for c in reply.lower() if c.isalnum()) in STOP_WORDS


# ---- templates ---------------------------------------------------------------------------

FIELDS = frozenset(
    {"name", "first_name", "document_expiry", "product", "message", "unsubscribe_url"}
)


class TemplateError(ValueError):
    """A template naming a field there is none of."""


def fields_of(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}


def check_template(text: str) -> None:
    for name in fields_of(text):
        if name not in FIELDS:
            raise TemplateError(f"unknown field {{{name}}}; fields: {', '.join(sorted(FIELDS))}")


@dataclass(frozen=True)
class Template:
    subject: str  # e-mail's subject (and a letter's heading)
    text: str  # SMS, Viber, the e-mail's plain part, the letter's body

    def __post_init__(self) -> None:
        check_template(self.subject)
        check_template(self.text)


SHIPPED: Mapping[tuple[NoticeKind, str], Template] = {
    (NoticeKind.BIRTHDAY, "bs"): Template(
        "Sretan rođendan, {first_name}!",
        "Dragi/a {first_name}, sretan rođendan! Želimo Vam zdravlje i sreću. Vaša fondacija.",
    ),
    (NoticeKind.BIRTHDAY, "en"): Template(
        "Happy birthday, {first_name}!",
        "Dear {first_name}, happy birthday! We wish you health and happiness. Your foundation.",
    ),
    (NoticeKind.OFFER, "bs"): Template(
        "Ponuda za Vas: {product}",
        "Poštovani/a {name}, za Vas imamo ponudu: {product}. Pozovite 0800 100 200.",
    ),
    (NoticeKind.OFFER, "en"): Template(
        "An offer for you: {product}",
        "Dear {name}, we have an offer for you: {product}. Call 0800 100 200.",
    ),
    (NoticeKind.OFFICE_CHANGE, "bs"): Template(
        "Obavještenje o promjeni", "Poštovani/a {name}, obavještavamo Vas: {message}"
    ),
    (NoticeKind.OFFICE_CHANGE, "en"): Template(
        "A change at our office", "Dear {name}, please note: {message}"
    ),
    (NoticeKind.DOCUMENT_EXPIRY, "bs"): Template(
        "Vaš dokument ističe {document_expiry}",
        "Poštovani/a {name}, Vaš lični dokument ističe {document_expiry}. "
        "Molimo donesite nam novi.",
    ),
    (NoticeKind.DOCUMENT_EXPIRY, "en"): Template(
        "Your document expires on {document_expiry}",
        "Dear {name}, your ID document expires on {document_expiry}. Please bring us the new one.",
    ),
    (NoticeKind.ANNOUNCEMENT, "bs"): Template("Obavještenje", "Poštovani/a {name}, {message}"),
    (NoticeKind.ANNOUNCEMENT, "en"): Template("Announcement", "Dear {name}, {message}"),
}
# The text a supervisor's notice of a kind merges in (its option or field), and how long.
TEXT_FIELD: Mapping[NoticeKind, str] = {
    NoticeKind.OFFER: "product",
    NoticeKind.OFFICE_CHANGE: "message",
    NoticeKind.ANNOUNCEMENT: "message",
}
MAX_TEXT = 500  # an offer's product or a notice's text: a message, not a letter
LANGUAGES = ("bs", "en")  # Bosnian first: a client with no language or another gets it


def template_for(kind: NoticeKind, language: str | None) -> tuple[str, Template]:
    lang = language if language in LANGUAGES else LANGUAGES[0]
    return lang, SHIPPED[(kind, lang)]


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def render(template: Template, values: Mapping[str, str]) -> Rendered:
    """The template with the client's fields merged in: the text as is, the HTML escaped
    (a client's name is data, never markup)."""
    missing = {k: "" for k in FIELDS if k not in values}
    plain = {**missing, **values}
    escaped = {k: html.escape(v) for k, v in plain.items()}
    # The HTML is the text's paragraphs, each merged with escaped values.
    paragraphs = [
        "<p>" + string.Formatter().vformat(_html_source(p), (), escaped) + "</p>"
        for p in template.text.split("\n")
        if p.strip()
    ]
    return Rendered(
        subject=template.subject.format_map(plain),
        text=template.text.format_map(plain),
        html="\n".join(paragraphs),
    )


@dataclass(frozen=True)
class Addressee:
    """A client as a notice needs them: the policy's facts and the template's."""

    recipient: Recipient
    name: str
    document_expiry: date | None = None


def merged(
    kind: NoticeKind,
    client: Addressee,
    *,
    product: str | None = None,
    message: str | None = None,
) -> tuple[str, Rendered]:
    """The kind's template in the client's language (the one it falls back to) merged with
    their fields: every channel's text, a letter's too."""
    lang, template = template_for(kind, client.recipient.language)
    values = merge_values(
        client.name, document_expiry=client.document_expiry, product=product, message=message
    )
    return lang, render(template, values)


def _html_source(paragraph: str) -> str:
    """A paragraph of the template with its literal text escaped, its fields kept."""
    out = []
    for literal, name, spec, conversion in string.Formatter().parse(paragraph):
        out.append(html.escape(literal).replace("{", "{{").replace("}", "}}"))
        if name is not None:
            out.append("{" + name + (f"!{conversion}" if conversion else "")
                       + (f":{spec}" if spec else "") + "}")  # fmt: skip
    return "".join(out)


def merge_values(
    name: str,
    *,
    document_expiry: date | None = None,
    product: str | None = None,
    message: str | None = None,
    unsubscribe_url: str | None = None,
) -> dict[str, str]:
    first = name.split()[0] if name.split() else name
    return {
        "name": name,
        "first_name": first,
        "document_expiry": document_expiry.strftime("%d.%m.%Y") if document_expiry else "",
        "product": product or "",
        "message": message or "",
        "unsubscribe_url": unsubscribe_url or "",
    }


# ---- a supervisor's notice ---------------------------------------------------------------

# What a supervisor sends by hand (the daily jobs send the rest), by the names the command
# and the API take.
SEND_KINDS: Mapping[str, NoticeKind] = {
    "offer": NoticeKind.OFFER,
    "office-change": NoticeKind.OFFICE_CHANGE,
    "announcement": NoticeKind.ANNOUNCEMENT,
}
SEGMENTS = ("new", "active", "inactive", "dormant")  # core.surveys.campaign.Segment's
MAX_LISTED = 100_000  # clients named one by one in a request


class NoticeRequestError(DomainError):
    """A supervisor's notice that cannot be sent as asked: ``field`` is what to fix."""

    error_id = "bad_notice"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, details={"field": field})
        self.field = field


@dataclass(frozen=True)
class SupervisorNotice:
    """An offer, office change or announcement to a segment or to listed clients."""

    kind: NoticeKind
    text: str  # the offer's product, or the notice's message
    segment: str | None
    external_ids: tuple[str, ...]
    channel: Channel | None  # None: each client's own (the policy's order)

    @property
    def topic(self) -> str | None:
        return OFFER_TOPIC if self.kind is NoticeKind.OFFER else None

    @property
    def product(self) -> str | None:
        return self.text if self.kind is NoticeKind.OFFER else None

    @property
    def message(self) -> str | None:
        return None if self.kind is NoticeKind.OFFER else self.text


def check_supervisor_notice(
    kind: str,
    text: str | None,
    *,
    segment: str | None = None,
    external_ids: Sequence[str] = (),
    channel: str | None = None,
) -> SupervisorNotice:
    """The request checked, before anything is read or queued; NoticeRequestError names
    the field to fix."""
    if kind not in SEND_KINDS:
        raise NoticeRequestError("kind", f"kind: one of {', '.join(sorted(SEND_KINDS))}")
    notice_kind = SEND_KINDS[kind]
    needed = TEXT_FIELD[notice_kind]
    if not isinstance(text, str) or not text.strip():
        raise NoticeRequestError(needed, f"{kind} needs its {needed}")
    if len(text) > MAX_TEXT:
        raise NoticeRequestError(needed, f"{needed}: at most {MAX_TEXT} characters")
    if (segment is None) == (not external_ids):
        raise NoticeRequestError("clients", "a segment or a list of clients, one of them")
    if segment is not None and segment not in SEGMENTS:
        raise NoticeRequestError("segment", f"segment: one of {', '.join(SEGMENTS)}")
    if len(external_ids) > MAX_LISTED:
        raise NoticeRequestError("clients", f"at most {MAX_LISTED:,} clients at once")
    wanted = tuple(dict.fromkeys(e.strip() for e in external_ids if e.strip()))
    if segment is None and not wanted:
        raise NoticeRequestError("clients", "no client in the list")
    if channel is not None and channel not in set(Channel):
        raise NoticeRequestError("channel", f"channel: one of {', '.join(Channel)}")
    return SupervisorNotice(
        notice_kind, text.strip(), segment, wanted, Channel(channel) if channel else None
    )


# ---- whose birthday ----------------------------------------------------------------------


def birthday_dates(day: date) -> list[tuple[int, int]]:
    """The (month, day) of the birthdays whose greeting is due on ``day``: 29 February's on
    the 28th when the year has none."""
    found = [(day.month, day.day)]
    if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
        found.append((2, 29))
    return found


def notice_email(
    notice_id: int,
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    html_body: str,
    unsubscribe_url: str,
    language: str,
    now: datetime,
    domain: str,
) -> EmailMessage:
    """A notice as an e-mail: plain text and HTML, the unsubscribe link in both and in the
    List-Unsubscribe headers (one-click, RFC 8058), and an id of the notice's own: were it
    sent again after a crash at the wrong moment, a mail client shows it once."""
    footer = UNSUBSCRIBE_LINE[language if language in LANGUAGES else LANGUAGES[0]]
    msg = EmailMessage(policy=LONG_LINES)
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<notice-{notice_id}@{domain}>"
    msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(f"{text}\n\n{footer}: {unsubscribe_url}\n")
    link = html.escape(unsubscribe_url, quote=True)
    msg.add_alternative(
        f"<!doctype html><html><body>{html_body}\n"
        f'<p style="font-size:small"><a href="{link}">{html.escape(footer)}</a></p>'
        "</body></html>\n",
        subtype="html",
    )
    return msg


# The unsubscribe URL is longer than a folded header line (78): at the default limit the
# header would become an encoded word no mail client reads as a link. RFC 5322's own limit.
LONG_LINES = email.policy.default.clone(max_line_length=998)
UNSUBSCRIBE_LINE = {
    "bs": "Ne želite više ovakve poruke? Odjavite se",
    "en": "Rather not get these? Unsubscribe",
}
