"""An SMS's text as the network carries it: its encoding (GSM 03.38 7-bit, or UCS-2 when one
character is outside that alphabet), the payload of each part (concatenated messages: 153
septets or 67 UTF-16 units a part, never splitting an escape pair or a surrogate pair), the
user data header that ties the parts together, and what a delivery receipt says. Pure: the
SMPP adapter (``sms/``) sends what this computes.

GSM 7-bit payloads are unpacked, one septet per byte, as SMPP carries them with
data_coding 0 (the SMSC packs them for the air)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Literal

Encoding = Literal["gsm7", "ucs2"]
ReportState = Literal["delivered", "failed", "expired"]

# SMPP data_coding of each encoding: 0 the SMSC's default alphabet (GSM 03.38), 8 UCS-2.
DATA_CODING: dict[Encoding, int] = {"gsm7": 0, "ucs2": 8}
ENCODING_OF_DATA_CODING: dict[int, Encoding] = {0: "gsm7", 8: "ucs2"}

# What one message holds, alone and as a part of a concatenated one (whose 6-byte UDH takes
# 7 septets or 3 UTF-16 units of the 140 bytes).
SINGLE: dict[Encoding, int] = {"gsm7": 160, "ucs2": 70}
PART: dict[Encoding, int] = {"gsm7": 153, "ucs2": 67}
MAX_PARTS = 10  # a notice longer than this is a mistake in its template, not a message

# GSM 03.38 default alphabet, by septet value; 0x1B is the escape to the extension table.
_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_ESCAPE = 0x1B
_EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
_SEPTET = {ch: i for i, ch in enumerate(_BASIC) if i != _ESCAPE}
_FROM_SEPTET = {i: ch for ch, i in _SEPTET.items()}
_FROM_EXTENSION = {v: k for k, v in _EXTENSION.items()}


class SmsTooLong(ValueError):
    """The text needs more parts than allowed."""

    def __init__(self, encoding: Encoding, needed: int, allowed: int) -> None:
        super().__init__(
            f"the SMS needs {needed} {encoding} parts, at most {allowed} are allowed "
            f"({PART[encoding]} characters a part)"
        )
        self.encoding = encoding
        self.needed = needed
        self.allowed = allowed


def encoding(text: str) -> Encoding:
    """gsm7 when every character is in the GSM default alphabet or its extension table."""
    if all(ch in _SEPTET or ch in _EXTENSION for ch in text):
        return "gsm7"
    return "ucs2"


def _units(text: str, enc: Encoding) -> list[bytes]:
    """Each character's bytes, kept whole: an escape pair, a surrogate pair."""
    if enc == "gsm7":
        return [
            bytes([_SEPTET[ch]]) if ch in _SEPTET else bytes([_ESCAPE, _EXTENSION[ch]])
            for ch in text
        ]
    return [ch.encode("utf-16-be") for ch in text]


def _size(unit: bytes, enc: Encoding) -> int:
    """Septets (gsm7) or UTF-16 code units (ucs2) a character takes."""
    return len(unit) if enc == "gsm7" else len(unit) // 2


def length(text: str) -> int:
    """The text's length in its encoding's units: septets or UTF-16 code units."""
    enc = encoding(text)
    return sum(_size(u, enc) for u in _units(text, enc))


def parts(text: str, max_parts: int = MAX_PARTS) -> list[bytes]:
    """The payload of each part (without the UDH), in order; SmsTooLong past ``max_parts``."""
    enc = encoding(text)
    units = _units(text, enc)
    if sum(_size(u, enc) for u in units) <= SINGLE[enc]:
        return [b"".join(units)]
    found: list[bytes] = []
    current: list[bytes] = []
    used = 0
    for unit in units:
        size = _size(unit, enc)
        if used + size > PART[enc]:
            found.append(b"".join(current))
            current, used = [], 0
        current.append(unit)
        used += size
    found.append(b"".join(current))
    if len(found) > max_parts:
        raise SmsTooLong(enc, len(found), max_parts)
    return found


def count(text: str, max_parts: int = MAX_PARTS) -> tuple[Encoding, int]:
    """(encoding, number of parts): what the message costs."""
    return encoding(text), len(parts(text, max_parts))


def decode(payload: bytes, enc: Encoding) -> str:
    """The text of a payload (a part, or a whole message from a phone)."""
    if enc == "ucs2":
        return payload.decode("utf-16-be", errors="replace")
    out: list[str] = []
    escaped = False
    for septet in payload:
        if escaped:
            out.append(_FROM_EXTENSION.get(septet, _FROM_SEPTET.get(septet, " ")))
            escaped = False
        elif septet == _ESCAPE:
            escaped = True
        else:
            out.append(_FROM_SEPTET.get(septet & 0x7F, " "))
    return "".join(out)


def udh(reference: int, total: int, sequence: int) -> bytes:
    """The concatenation header of part ``sequence`` (1-based) of ``total``: IEI 00, an 8-bit
    reference shared by the parts."""
    if not (0 <= reference <= 255 and 1 <= sequence <= total <= 255):
        raise ValueError(f"UDH out of range: ref {reference}, {sequence}/{total}")
    return bytes([0x05, 0x00, 0x03, reference, total, sequence])


def split_udh(short_message: bytes) -> tuple[bytes, bytes]:
    """(UDH with its length byte, payload) of a message sent with esm_class UDHI."""
    if not short_message:
        return b"", b""
    n = short_message[0] + 1
    return short_message[:n], short_message[n:]


@dataclass(frozen=True)
class Receipt:
    """What an SMSC's delivery receipt says of a message it was given."""

    provider_id: str
    state: ReportState | None  # None: not final yet (ENROUTE, ACCEPTD)
    done: datetime | None
    error: str | None


_STATES: dict[str, ReportState | None] = {
    "DELIVRD": "delivered",
    "EXPIRED": "expired",
    "UNDELIV": "failed",
    "REJECTD": "failed",
    "DELETED": "failed",
    "UNKNOWN": "failed",
    "ENROUTE": None,
    "ACCEPTD": None,
}
# SMPP 3.4's message_state TLV (0x0427) values, for SMSCs that send it instead of the text.
MESSAGE_STATES: dict[int, str] = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
_FIELD = re.compile(r"(id|stat|err|done date):(\S*)", re.IGNORECASE)


def parse_receipt(text: str, zone: tzinfo) -> Receipt | None:
    """The receipt in a deliver_sm's text (SMPP 3.4 appendix B: ``id:… sub:… dlvrd:… submit
    date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000 text:…``); None when the text
    is not one. The dates are in the SMSC's ``zone``."""
    fields: dict[str, str] = {}
    for m in _FIELD.finditer(text):
        fields.setdefault(m.group(1).lower(), m.group(2))
    if "id" not in fields or "stat" not in fields:
        return None
    stat = fields["stat"].upper()
    state = _STATES.get(stat, "failed")
    done = _parse_date(fields.get("done date", ""), zone)
    err = fields.get("err")
    error = None
    if state != "delivered":
        error = stat if not err or err.strip("0") == "" else f"{stat} err:{err}"
    return Receipt(fields["id"], state, done, error)


def _parse_date(value: str, zone: tzinfo) -> datetime | None:
    # By length: strptime would read 10 digits as YYMMDDhhmm + one-digit minute and second.
    pattern = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S"}.get(len(value))
    if pattern is None or not value.isdigit():
        return None
    try:
        return datetime.strptime(value, pattern).replace(tzinfo=zone)
    except ValueError:
        return None


def receipt_state(stat: str) -> ReportState | None:
    """The outbox's state for a receipt's stat word (None: not final)."""
    return _STATES.get(stat.upper(), "failed")
