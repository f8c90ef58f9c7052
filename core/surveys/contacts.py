"""A campaign's contact list from a CSV file, pure: the numbers to call and what the list says
about each (our client's id, a name, the language and time zone to call them in, the segment
they are counted in). All rows or none, checked and reported like the client import
(models.importing): one line per problem, and nothing is taken from a file with any.

Columns: ``number`` (required), ``client_id``, ``name``, ``language``, ``timezone``,
``segment`` (new, active, inactive). Comma or semicolon separated, UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.csvrows import (
    MAX_ID,
    MAX_NAME,
    CsvRecord,
    ImportRejected,
    InvalidValue,
    RecordFields,
    RowError,
    collect_rows,
    parse_language,
    parse_timezone,
    read_table,
    text_field,
)
from core.phones import normalise_dialable
from core.surveys.campaign import SEGMENT_ORDER, Segment

CONTACT_COLUMNS = ("number",)
CONTACT_OPTIONAL = ("client_id", "name", "language", "timezone", "segment")
# A cell starting with one of these is a formula to a spreadsheet. Contact lists come from
# outside, and names go back out in campaign reports that people open in Excel.
FORMULA_PREFIXES = ("=", "+", "-", "@")


@dataclass(frozen=True)
class ContactRow:
    line: int
    number: str  # E.164, in the numbering plan
    client_external_id: str | None = None  # clients.external_id, when the list names one
    name: str | None = None
    language: str | None = None
    timezone: str | None = None  # IANA
    segment: Segment | None = None


def parse_number(raw: str, region: str) -> str:
    if not raw:
        raise InvalidValue("required")
    number = normalise_dialable(raw, region)
    if number is None:
        # Short codes are refused too: a campaign must never dial 112 or a premium number.
        raise InvalidValue("not a phone number we can dial (a full national or +country number)")
    return number


_parse_client_id = text_field(MAX_ID, required=False)
_parse_text_name = text_field(MAX_NAME, required=False)


def parse_name(raw: str) -> str | None:
    name = _parse_text_name(raw)
    if name is not None and name.startswith(FORMULA_PREFIXES):
        raise InvalidValue(f"starts with {name[0]!r}: a spreadsheet would run it as a formula")
    return name


def parse_segment(raw: str) -> Segment | None:
    if not raw:
        return None
    # A survey list counts its contacts in the survey segments only (not "dormant").
    segment = next((s for s in SEGMENT_ORDER if s.value == raw.lower()), None)
    if segment is None:
        raise InvalidValue(f"expected one of: {', '.join(s.value for s in SEGMENT_ORDER)}")
    return segment


def parse_contact_rows(
    records: Iterable[CsvRecord], region: str
) -> tuple[list[ContactRow], list[RowError]]:
    first_line: dict[str, int] = {}  # number -> the line it first appeared on

    def row_of(record: CsvRecord, f: RecordFields) -> ContactRow:
        row = ContactRow(
            line=record.line,
            number=f.take("number", lambda raw: parse_number(raw, region)),
            client_external_id=f.take("client_id", _parse_client_id),
            name=f.take("name", parse_name),
            language=f.take("language", parse_language),
            timezone=f.take("timezone", parse_timezone),
            segment=f.take("segment", parse_segment),
        )
        # Written differently ("061 123 456", "+387 61 123 456"), still the same phone.
        if row.number is not None:
            first = first_line.setdefault(row.number, record.line)
            if first != record.line:
                message = f"duplicate number {row.number}, first on line {first}"
                f.errors.append(RowError.at(record.line, "number", f.raw("number"), message))
        return row

    return collect_rows(records, row_of)


def parse_contacts(text: str, region: str) -> list[ContactRow]:
    """The contacts of a CSV text; ``region`` reads national numbers (like "BA"). Raises
    ImportRejected with every problem when any row is bad."""
    records, errors = read_table(text, CONTACT_COLUMNS, CONTACT_OPTIONAL)
    rows, row_errors = parse_contact_rows(records, region)
    if errors or row_errors:
        raise ImportRejected(errors + row_errors)
    return rows
