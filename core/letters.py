"""Printed letters to clients (the notices' letter channel): what goes where on an A4 page for
a DIN 5008 type B window envelope (the address field 85 x 45 mm, 20 mm from the left and
45 mm from the top, the return line above the address), and each client's letter merged
from the kind's template (``core.notices``: the subject as the heading, the text as the
body), dated in the client's language, or why the client gets none (the contact policy:
opted out of letters, no postal address; an address too long for the window).

Each letter printed is kept in the outbox (``outbox_row``: sent, ``printed``) under its key
(``letter_key``: the client, the kind, the day and the text), so the client's history shows
it, the frequency cap counts it, and the same batch printed again that day prints nobody
twice unless it is asked for as a reprint (``reprinted``: the letter as it was kept).

Pure: ``usecases.letters`` reads the clients, the ``letters`` adapter typesets the PDF."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from core.errors import DomainError
from core.notices import (
    MAX_TEXT,
    OFFER_TOPIC,
    TEXT_FIELD,
    Addressee,
    Channel,
    NoticeKind,
    NoticeState,
    Plan,
    Policy,
    Recipient,
    Skip,
    merged,
    notice_key,
    plan,
)

# ---- the page (millimetres from the page's top left corner) ------------------------------

PAGE_WIDTH = 210.0
PAGE_HEIGHT = 297.0


@dataclass(frozen=True)
class Box:
    left: float
    top: float
    width: float
    height: float

    def holds(self, left: float, top: float, right: float, bottom: float) -> bool:
        return (
            self.left <= left
            and right <= self.left + self.width
            and self.top <= top
            and bottom <= self.top + self.height
        )


# DIN 5008 type B: the window's field, its first 17.7 mm for notes (the return line in its
# last 5 mm), the address in the 27.3 mm below.
WINDOW = Box(20.0, 45.0, 85.0, 45.0)
RETURN_LINE = Box(20.0, 57.7, 85.0, 5.0)
ADDRESS = Box(20.0, 62.7, 85.0, 27.3)
INFO_BLOCK = Box(125.0, 50.0, 75.0, 40.0)  # the sender's details and the date, right of it
BODY = Box(25.0, 98.4, 165.0, 178.0)  # the heading and the text, to 20 mm above the foot
FOLD_MARKS = (105.0, 210.0)  # where a type B letter is folded to fit its envelope
# The address zone holds six 10 pt lines; a line longer than this many characters would
# wrap out of the window (DejaVu Sans at 10 pt: about 2 mm a character).
ADDRESS_LINES = 6
ADDRESS_CHARS = 40

# ---- the letter ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Letter:
    """One client's letter, every part as text to set."""

    client_id: int
    language: str
    sender: tuple[str, ...]  # the foundation's name, then its address
    return_line: str  # above the address: where the post brings it back
    address: tuple[str, ...]  # the client's name, then their postal address
    place_date: str
    subject: str
    body: tuple[str, ...]  # paragraphs
    closing: tuple[str, ...]


DEFAULT_SENDER = "Fondacija Centrala\nTitova 1\n71000 Sarajevo"
CLOSING = {"bs": "S poštovanjem,", "en": "Kind regards,"}
MONTHS = {
    "bs": (
        *("januar", "februar", "mart", "april", "maj", "juni", "juli", "august"),
        *("septembar", "oktobar", "novembar", "decembar"),
    ),
    "en": (
        *("January", "February", "March", "April", "May", "June", "July", "August"),
        *("September", "October", "November", "December"),
    ),
}


def sender_lines(setting: str) -> tuple[str, ...]:
    """The sender from its setting: lines separated by a newline or a written ``\\n`` (an
    environment variable's way)."""
    lines = tuple(x.strip() for x in setting.replace("\\n", "\n").split("\n") if x.strip())
    return lines or sender_lines(DEFAULT_SENDER)


def place_of(sender: Sequence[str]) -> str:
    """The town the letter is dated in: the sender's last line without its postcode."""
    return sender[-1].lstrip("0123456789- ").strip() or sender[-1]


def dated(place: str, day: date, language: str) -> str:
    """``Sarajevo, 2. decembar 2026.`` in Bosnian, ``Sarajevo, 2 December 2026`` in English."""
    if language == "en":
        return f"{place}, {day.day} {MONTHS['en'][day.month - 1]} {day.year}"
    return f"{place}, {day.day}. {MONTHS['bs'][day.month - 1]} {day.year}."


def window_address(name: str, postal: str) -> tuple[str, ...] | Skip:
    """The lines the window shows: the client's name, then their postal address's lines; or
    why not (blanks only: ``no_address``; more than the window holds: ``address_too_long``)."""
    lines = tuple(x.strip() for x in postal.splitlines() if x.strip())
    if not lines:
        return Skip("no_address")
    address = (name.strip(), *lines)
    if len(address) > ADDRESS_LINES or any(len(x) > ADDRESS_CHARS for x in address):
        return Skip("address_too_long")
    return address


def letter_for(
    kind: NoticeKind,
    client: Addressee,
    now: datetime,
    policy: Policy,
    *,
    sender: Sequence[str],
    day: date,
    product: str | None = None,
    message: str | None = None,
) -> Letter | Skip:
    """``client``'s letter of ``kind``, or why they get none: the contact policy through the
    letter channel (opted out, no postal address, an offer's topic already covered today,
    the frequency cap), or an address the window cannot show (``address_too_long``)."""
    decided = plan(
        kind,
        client.recipient,
        now,
        (Channel.LETTER,),
        policy,
        topic=OFFER_TOPIC if kind is NoticeKind.OFFER else None,
        channel=Channel.LETTER,
    )
    if not isinstance(decided, Plan):
        return decided
    address = window_address(client.name, decided.address)
    if isinstance(address, Skip):
        return address
    language, text = merged(kind, client, product=product, message=message)
    return Letter(
        client_id=client.recipient.client_id,
        language=language,
        sender=tuple(sender),
        return_line=", ".join(sender),
        address=address,
        place_date=dated(place_of(sender), day, language),
        subject=text.subject,
        body=tuple(p.strip() for p in text.text.split("\n") if p.strip()),
        closing=(CLOSING[language], sender[0]),
    )


# ---- the letter in the outbox -------------------------------------------------------------

PRINTED = "printed"  # a letter's provider id: the operators print, pack and post it
PRINTED_TODAY = "printed_today"  # the skip of a letter its client got that day already


def letter_key(
    kind: NoticeKind, client_id: int, day: date, product: str | None, message: str | None
) -> str:
    """One letter per client, kind, day and text: the same batch printed again that day
    prints nobody twice; another text (a product, a message) is another letter."""
    text = f"{product or ''}\x00{message or ''}"
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return notice_key(kind, client_id, f"letter-{day.isoformat()}-{digest}")


def outbox_row(letter: Letter, kind: NoticeKind, key: str, now: datetime) -> dict[str, object]:
    """The letter as the outbox keeps it: sent (printed) as its PDF is made; an offer's
    letter covers the offer's topic that day, as its message would."""
    return {
        "key": key,
        "client_id": letter.client_id,
        "kind": str(kind),
        "channel": str(Channel.LETTER),
        "language": letter.language,
        "address": "\n".join(letter.address),
        "topic": OFFER_TOPIC if kind is NoticeKind.OFFER else None,
        "subject": letter.subject,
        "body": "\n".join(letter.body),
        "html": "",
        "state": str(NoticeState.SENT),
        "attempts": 1,
        "not_before": now,
        "created_at": now,
        "sent_at": now,
        "provider_id": PRINTED,
    }


def reprinted(
    *,
    client_id: int,
    language: str,
    address: str,
    subject: str,
    body: str,
    sender: Sequence[str],
    day: date,
) -> Letter:
    """A letter printed before, from what the outbox kept of it (the printer jammed, the
    PDF was lost): the same address, heading and text, dated on its ``day``."""
    return Letter(
        client_id=client_id,
        language=language,
        sender=tuple(sender),
        return_line=", ".join(sender),
        address=tuple(x for x in address.split("\n") if x),
        place_date=dated(place_of(sender), day, language),
        subject=subject,
        body=tuple(p for p in body.split("\n") if p),
        closing=(CLOSING.get(language, CLOSING["bs"]), sender[0]),
    )


def sample(day: date) -> Letter:
    """A made-up client's letter (the README's picture, the tests')."""
    client = Addressee(
        Recipient(
            client_id=1,
            language="bs",
            zone=None,
            phone=None,
            email=None,
            postal_address="Ulica Žrtava fašizma 12\n71000 Sarajevo",
            preferred=None,
        ),
        "Đorđe Čolić",
    )
    made = letter_for(
        NoticeKind.OFFICE_CHANGE,
        client,
        datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
        Policy(),
        sender=sender_lines(DEFAULT_SENDER),
        day=day,
        message="od 1. januara naša poslovnica u Žepču radi u ulici Šehidska 12, "
        "svaki radni dan od 8 do 16 sati. Čekamo Vas!",
    )
    assert isinstance(made, Letter)
    return made


# ---- a request for a batch (``POST /api/letters``) ---------------------------------------

SEGMENTS = ("new", "active", "inactive", "dormant")
MAX_LETTERS = 10_000  # a batch: about 30 s of typesetting, a 16 MB PDF


class LetterRequestError(DomainError):
    """A batch asked for that cannot be printed as asked (400 unless said)."""

    def __init__(self, error_id: str, message: str, status: int = 400, **details: Any) -> None:
        super().__init__(message, error_id=error_id, status=status, details=details)


@dataclass(frozen=True)
class LetterRequest:
    kind: NoticeKind
    client_ids: tuple[int, ...]  # or ...
    segment: str | None  # ... a CRM segment's clients
    product: str | None
    message: str | None
    reprint: bool = False  # those printed that day already are printed again, as they were


def parse_request(data: Mapping[str, Any]) -> LetterRequest:
    """``{kind, clients: [ids] | segment, product?, message?, reprint?}``, checked: a
    ``LetterRequestError`` names what is wrong (bad_kind, bad_clients, bad_segment,
    needs_product, needs_message, too_long, bad_reprint, unknown_field)."""
    fields = {"kind", "clients", "segment", "product", "message", "reprint"}
    if unknown := sorted(set(data) - fields):
        raise LetterRequestError("unknown_field", f"unknown fields: {', '.join(unknown)}")
    raw_kind = data.get("kind")
    kinds = {str(k) for k in NoticeKind}
    if not isinstance(raw_kind, str) or raw_kind.replace("-", "_") not in kinds:
        raise LetterRequestError("bad_kind", f"kind: one of {', '.join(sorted(kinds))}")
    kind = NoticeKind(raw_kind.replace("-", "_"))
    clients, segment = data.get("clients"), data.get("segment")
    if (clients is None) == (segment is None):
        raise LetterRequestError("bad_clients", "give clients (a list of ids) or segment")
    ids: tuple[int, ...] = ()
    if clients is not None:
        if (
            not isinstance(clients, list)
            or not clients
            or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in clients)
        ):
            raise LetterRequestError("bad_clients", "clients: a list of client ids")
        if len(clients) > MAX_LETTERS:
            raise LetterRequestError("too_long", f"at most {MAX_LETTERS} clients a batch")
        ids = tuple(dict.fromkeys(clients))  # once each, in order
    elif segment not in SEGMENTS:
        raise LetterRequestError("bad_segment", f"segment: one of {', '.join(SEGMENTS)}")
    values: dict[str, str | None] = {}
    for name in ("product", "message"):
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise LetterRequestError(f"needs_{name}", f"{name}: a text")
        if value is not None and len(value) > MAX_TEXT:
            raise LetterRequestError("too_long", f"{name}: at most {MAX_TEXT} characters")
        values[name] = value.strip() if value else None
    needed = TEXT_FIELD.get(kind)
    if needed is not None and not values[needed]:
        raise LetterRequestError(f"needs_{needed}", f"{kind} needs {needed}")
    reprint = data.get("reprint", False)
    if not isinstance(reprint, bool):
        raise LetterRequestError("bad_reprint", "reprint: true or false")
    return LetterRequest(kind, ids, segment, values["product"], values["message"], reprint)
