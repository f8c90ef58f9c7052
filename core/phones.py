"""Caller numbers to E.164, so "061 123 456", "+387 61 123 456" and "0038761123456" all find
the same client. Pure; caller IDs are attacker-controlled, so anything odd gives None."""

from __future__ import annotations

import re

import phonenumbers

MAX_INPUT = 40
_ALLOWED = re.compile(r"^\+?[0-9 ()./-]+$")


def normalise(raw: str | None, region: str) -> str | None:
    """The number in E.164 (``+38761123456``), or None when it cannot be a phone number."""
    if not raw:
        return None
    text = raw.strip()
    if len(text) > MAX_INPUT or not _ALLOWED.fullmatch(text):
        return None
    digits = re.sub(r"[^0-9]", "", text)
    if not digits:
        return None
    candidates = [text]
    if not text.startswith("+") and not text.startswith("0"):
        # Carriers often drop the "+" of international numbers: "38761123456".
        candidates.append("+" + digits)
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    # Not in the numbering plan (a short code, a test number): keep a stable key that still
    # matches itself, but only when it looks like a dialable string.
    if 3 <= len(digits) <= 15:
        return ("+" if text.startswith("+") else "") + digits
    return None


def normalise_dialable(raw: str | None, region: str) -> str | None:
    """Like ``normalise``, but only a number in the numbering plan. For lists we dial out to:
    the stable key ``normalise`` keeps for odd caller IDs would let a short code (112, a
    premium service) into a campaign."""
    number = normalise(raw, region)
    if number is None or not number.startswith("+"):
        return None
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(parsed) else None
