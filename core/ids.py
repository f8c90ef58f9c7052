"""Integer row ids typed by outsiders (a URL path, a CLI argument). Pure."""

from __future__ import annotations

import re

# Integer primary keys are 32-bit on PostgreSQL: a larger number must read as "no such row",
# not reach the database and come back as an overflow error.
MAX_ROW_ID = 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")  # ASCII only: str.isdigit() also takes "²" and "٣"


def row_id(text: str) -> int | None:
    """The id ``text`` names, or None when it cannot name a row."""
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if 0 < value <= MAX_ROW_ID else None
