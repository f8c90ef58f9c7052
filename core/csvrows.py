"""Over 500 lines: one small parser per field of four CSV contracts, plus the shared reader.

The pure half of the CSV imports (clients, agents, loans, payments, and the shape every CSV import
shares): reading the text into records of the known columns, validating every field, and
collecting every problem as a ``RowError`` (``ImportRejected`` carries them all). No database
and no files: ``models.importing`` reads the file and writes the rows.

The column names are a contract with operators' scripts (DESIGN.md): keep them.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from typing import TypeVar, cast
from zoneinfo import available_timezones

from core.enums import AgentRole, ClientType
from core.phones import normalise, normalise_dialable

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_ROWS = 200_000
MAX_FIELD = 1000
MAX_NAME = 200
MAX_ID = 64  # agents.id, clients.external_id, queues.id, clients.segment, loans.external_id
MAX_ENDPOINT = 200
MAX_VALUE_SHOWN = 60
MAX_REPORTED = 200

CLIENT_COLUMNS = (
    "external_id",
    "name",
    "phone",
    "language",
    "client_type",
    "assigned_manager",
    "birthday",
    "document_expiry",
    "overdue_debt",
)
CLIENT_OPTIONAL = ("segment", "timezone", "email", "preferred_channel")
AGENT_COLUMNS = ("agent_id", "name", "role", "endpoint", "queues", "skills")
LOAN_COLUMNS = ("loan_id", "client_id", "opened_at", "closed_at", "amount", "product")
PAYMENT_COLUMNS = ("payment_id", "payer_name", "amount", "paid_at")
PAYMENT_OPTIONAL = ("loan_id", "client_id", "payer_number", "matched")

ENDPOINT_TECHS = ("PJSIP", "SIP", "IAX2", "Local", "DAHDI")
# Only characters that cannot end the destination: a "," would start Dial() options, a "&"
# a second destination, a space or newline an AMI/dialplan injection.
_ENDPOINT = re.compile(r"([A-Za-z0-9]+)/([A-Za-z0-9_.+@:#*-]+(?:/[A-Za-z0-9_.+@:#*-]+)?)")
_AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")
_QUEUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SKILL = re.compile(r"\w[\w.+-]*")
_LANGUAGE = re.compile(r"[A-Za-z][A-Za-z_-]{1,7}")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_DOTTED_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})\.?")  # "15.03.1985." is common too
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?"
)
# Numeric(14, 2); a decimal comma too (the ";" files from Excel), no thousands separators:
# "1.500" would be one and a half in one country and fifteen hundred in the next.
_AMOUNT = re.compile(r"(\d{1,12})(?:[.,](\d{1,2}))?")
_TIMEZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+){0,2}")
# Listed by zoneinfo but no place's clock: "localtime" is this server's own zone.
_NOT_A_PLACE = frozenset({"localtime", "Factory"})
_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"", "0", "false", "no"})
# Control, format (bidi overrides), private-use, unassigned, line/paragraph separators.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})

T = TypeVar("T")
Row = TypeVar("Row")  # a parsed CSV row (ClientRow, AgentRow, ...)


# ---- results and errors ---------------------------------------------------------------------


def show_value(raw: str) -> str:
    """The value as it appears in a report: repr'd so control characters are visible."""
    shown = repr(raw)
    return shown if len(shown) <= MAX_VALUE_SHOWN else shown[: MAX_VALUE_SHOWN - 1] + "…"


@dataclass(frozen=True)
class RowError:
    """One problem. ``line`` is the line in the file where the record starts (the header is
    line 1), None for the file as a whole; ``value`` is already in display form."""

    line: int | None
    column: str | None
    value: str | None
    message: str

    @classmethod
    def at(cls, line: int | None, column: str | None, raw: str | None, message: str) -> RowError:
        return cls(line, column, None if raw is None else show_value(raw), message)

    def sort_key(self) -> tuple[int, str]:
        return (self.line or 0, self.column or "")

    def __str__(self) -> str:
        where = "file" if self.line is None else f"line {self.line}"
        what = " ".join(part for part in (self.column, self.value) if part)
        return f"{where}: {what}: {self.message}" if what else f"{where}: {self.message}"


class ImportRejected(Exception):
    """The file was not imported, and nothing was written."""

    def __init__(self, errors: Sequence[RowError], source: str | None = None) -> None:
        self.errors = sorted(errors, key=RowError.sort_key)
        self.source = source
        super().__init__(self.report())

    def with_source(self, source: str) -> ImportRejected:
        return ImportRejected(self.errors, source)

    def report(self) -> str:
        count = len(self.errors)
        head = f"{self.source}: " if self.source else ""
        noun = "error" if count == 1 else "errors"
        lines = [f"{head}import rejected, nothing was written ({count} {noun})"]
        lines += [f"  {error}" for error in self.errors[:MAX_REPORTED]]
        if count > MAX_REPORTED:
            lines.append(f"  ... and {count - MAX_REPORTED} more")
        return "\n".join(lines)


# ---- reading the CSV text -------------------------------------------------------------------


@dataclass(frozen=True)
class CsvRecord:
    line: int
    values: dict[str, str]  # known columns only, by lower-case header name


@dataclass(frozen=True)
class ClientRow:
    line: int
    external_id: str
    name: str
    phones: tuple[str, ...]
    language: str | None
    client_type: ClientType
    assigned_manager: str | None
    birthday: date | None
    document_expiry: date | None
    overdue_debt: bool
    segment: str | None = None
    has_segment: bool = False  # without the column, an update leaves the segment alone
    timezone: str | None = None
    has_timezone: bool = False  # likewise for the time zone
    email: str | None = None
    has_email: bool = False  # and the e-mail address (core.notices)
    preferred_channel: str | None = None
    has_preferred_channel: bool = False  # and the channel the client prefers


@dataclass(frozen=True)
class AgentRow:
    line: int
    agent_id: str
    name: str
    role: AgentRole
    endpoint: str | None
    queues: tuple[str, ...]
    skills: tuple[str, ...]


@dataclass(frozen=True)
class LoanRow:
    line: int
    loan_id: str
    client_external_id: str
    opened_at: datetime
    closed_at: datetime | None  # None: still open
    amount: Decimal | None
    product: str | None


@dataclass(frozen=True)
class PaymentRow:
    """A payment: ``loan_external_id`` is the loan it was matched to (or, with ``matched``
    False, the one it may belong to); ``client_external_id`` the payer when they are a client
    of ours. ``payer_number`` is dialable E.164 (procedural calls go to it)."""

    line: int
    payment_id: str
    loan_external_id: str | None
    client_external_id: str | None
    payer_name: str
    payer_number: str | None
    amount: Decimal
    paid_at: datetime
    matched: bool


def decode_csv_bytes(data: bytes) -> str:
    """UTF-8, with or without a BOM; anything else is rejected with the place it goes wrong."""
    if len(data) > MAX_FILE_BYTES:
        raise ImportRejected([_too_big()])
    bom = len(b"\xef\xbb\xbf") if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + bom
        line = data.count(b"\n", 0, offset) + 1
        hint = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        message = (
            f"not UTF-8{hint}: byte 0x{data[offset]:02x} at byte offset {offset}; "
            "save the file as 'CSV UTF-8'"
        )
        raise ImportRejected([RowError(line, None, None, message)]) from None


def _too_big() -> RowError:
    return RowError(None, None, None, f"file larger than {MAX_FILE_BYTES // 2**20} MiB")


def detect_delimiter(header_line: str) -> str:
    """Excel writes ";" where the decimal separator is a comma (Bosnia, Romania, ...)."""
    return ";" if header_line.count(";") > header_line.count(",") else ","


def read_table(
    text: str, required: Sequence[str], optional: Sequence[str] = ()
) -> tuple[list[CsvRecord], list[RowError]]:
    """Split the text into records of the known columns. Checks the shape only: the header,
    field counts, field lengths, the number of rows."""
    if len(text) > MAX_FILE_BYTES:
        return [], [_too_big()]
    text = text.removeprefix("\ufeff")
    # Blank lines before the header are skipped like any other blank line.
    header_line = next((ln for ln in io.StringIO(text, newline="") if ln.strip()), "")
    if not header_line:
        return [], [RowError(None, None, None, "the file is empty (no header line)")]
    delimiter = detect_delimiter(header_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    errors: list[RowError] = []
    try:
        header = next(h for h in reader if any(f.strip() for f in h))
    except csv.Error as exc:
        return [], [RowError(reader.line_num, None, None, f"malformed CSV header: {exc}")]
    header_no = reader.line_num

    names = [h.strip().lower() for h in header]
    known = set(required) | set(optional)
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in known:
            if name in index:
                errors.append(RowError(header_no, name, None, "column appears twice"))
            index[name] = i
    missing = [c for c in required if c not in index]
    if missing:
        errors.append(
            RowError(
                header_no,
                None,
                show_value(header_line.rstrip("\r\n")),
                f"missing required column(s): {', '.join(missing)} "
                f"(expected: {', '.join(required)})",
            )
        )
    if errors:
        return [], errors

    records: list[CsvRecord] = []
    end = reader.line_num  # the line where the previous record ended
    count = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # Quoting is broken: where the following records start is unknowable, stop here.
            errors.append(RowError(end + 1, None, None, f"malformed CSV: {exc}"))
            break
        line, end = end + 1, reader.line_num
        if not any(f.strip() for f in fields):
            continue  # blank line, or Excel's ";;;;;" after the data
        count += 1
        if count > MAX_ROWS:
            errors.append(RowError(line, None, None, f"more than {MAX_ROWS} rows"))
            break
        if len(fields) != len(header):
            message = f"expected {len(header)} fields, found {len(fields)}"
            errors.append(RowError(line, None, None, message))
            continue
        too_long = [i for i, f in enumerate(fields) if len(f) > MAX_FIELD]
        for i in too_long:
            message = f"field longer than {MAX_FIELD} characters ({len(fields[i])})"
            errors.append(RowError.at(line, names[i] or f"#{i + 1}", fields[i], message))
        if too_long:
            continue
        values = {name: fields[i].strip(" \t") for name, i in index.items()}
        records.append(CsvRecord(line, values))
    return records, errors


# ---- validating values ----------------------------------------------------------------------


class InvalidValue(ValueError):
    """A value a parser refuses; the message says why (RecordFields adds line and column)."""


class RecordFields:
    """Collects every bad value of one record instead of stopping at the first."""

    def __init__(self, record: CsvRecord) -> None:
        self.record = record
        self.errors: list[RowError] = []

    def raw(self, column: str) -> str:
        return self.record.values.get(column, "")

    def take(self, column: str, parse: Callable[[str], T]) -> T:
        raw = self.raw(column)
        try:
            return parse(raw)
        except InvalidValue as exc:
            self.errors.append(RowError.at(self.record.line, column, raw, str(exc)))
            # Never used: a record with errors gives no row.
            return cast(T, None)


def check_chars(value: str) -> None:
    """Refuse control and bidi characters: names end up in AGI commands and on screens."""
    if any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in value):
        raise InvalidValue("contains a control character")


def text_field(limit: int, *, required: bool) -> Callable[[str], str | None]:
    """A parser for free text up to ``limit`` characters; empty is None unless required."""

    def parse(raw: str) -> str | None:
        if not raw:
            if required:
                raise InvalidValue("required")
            return None
        check_chars(raw)
        if len(raw) > limit:
            raise InvalidValue(f"longer than {limit} characters")
        return raw

    return parse


def _required_text(limit: int) -> Callable[[str], str]:
    parse = text_field(limit, required=True)
    return lambda raw: cast(str, parse(raw))


def _identifier(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not raw:
            raise InvalidValue("required")
        if len(raw) > MAX_ID:
            raise InvalidValue(f"longer than {MAX_ID} characters")
        if not pattern.fullmatch(raw):
            raise InvalidValue(f"not a valid {what}")
        return raw

    return parse


parse_external_id = _required_text(MAX_ID)
parse_name = _required_text(MAX_NAME)
parse_segment = text_field(MAX_ID, required=False)
parse_product = text_field(MAX_ID, required=False)


parse_agent_id = _identifier(_AGENT_ID, "agent id (letters, digits, '_', '.', '@', '-')")
parse_queue_name = _identifier(_QUEUE, "queue name (letters, digits, '_', '.', '-')")


def parse_date(raw: str) -> date | None:
    """YYYY-MM-DD, or DD.MM.YYYY as written in the Balkans; empty is no date."""
    if not raw:
        return None
    if m := _ISO_DATE.fullmatch(raw):
        y, mo, d = m.groups()
    elif m := _DOTTED_DATE.fullmatch(raw):
        d, mo, y = m.groups()
    else:
        raise InvalidValue("not a date (YYYY-MM-DD or DD.MM.YYYY)")
    try:
        return date(int(y), int(mo), int(d))
    except ValueError:
        raise InvalidValue("no such date") from None


def parse_instant(raw: str) -> datetime | None:
    """A moment in UTC: a date (midnight UTC) or an ISO 8601 date and time, with an offset or
    read as UTC without one. Empty is none."""
    if not raw:
        return None
    if _ISO_DATE.fullmatch(raw) or _DOTTED_DATE.fullmatch(raw):
        day = cast(date, parse_date(raw))
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    if not _ISO_DATETIME.fullmatch(raw):
        raise InvalidValue(
            "not a date or time (YYYY-MM-DD, or ISO 8601 like 2026-03-15T10:30:00+01:00)"
        )
    try:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # 25:00, 2026-02-30, year 1 minus an offset
        raise InvalidValue("no such date or time") from None


def parse_required_instant(raw: str) -> datetime:
    if not raw:
        raise InvalidValue("required")
    return cast(datetime, parse_instant(raw))


def parse_amount(raw: str) -> Decimal | None:
    if not raw:
        return None
    m = _AMOUNT.fullmatch(raw)
    if m is None:
        raise InvalidValue(
            "not an amount (digits with up to 2 decimals, like 1500.00 or 1500,50; "
            "no sign, no thousands separators)"
        )
    whole, cents = m.groups()
    return Decimal(f"{whole}.{(cents or '').ljust(2, '0')}")


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_A_PLACE


def parse_timezone(raw: str) -> str | None:
    """An IANA time zone name, like Europe/Sarajevo; empty is none (the campaign's default).
    Only names zoneinfo lists: a path or a made-up zone would put calls on a guessed clock."""
    if not raw:
        return None
    if len(raw) > MAX_ID or not _TIMEZONE.fullmatch(raw) or raw not in _time_zones():
        raise InvalidValue("not an IANA time zone (like Europe/Sarajevo)")
    return raw


_EMAIL = re.compile(r"[^@\s,;<>\"()\[\]\\]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
CHANNELS = ("sms", "viber", "email", "letter")  # core.notices.Channel


def parse_email(raw: str) -> str | None:
    """An e-mail address (no display name); empty is none."""
    if not raw:
        return None
    if len(raw) > 254 or not _EMAIL.fullmatch(raw):
        raise InvalidValue("not an e-mail address (like ana@example.org)")
    return raw


def parse_channel(raw: str) -> str | None:
    """The channel a client prefers for notices; empty is none (each kind's own order)."""
    if not raw:
        return None
    value = raw.lower()
    if value not in CHANNELS:
        raise InvalidValue(f"expected one of {', '.join(CHANNELS)}")
    return value


def parse_flag(raw: str) -> bool:
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidValue("expected 0 or 1 (or true/false, yes/no)")


def parse_language(raw: str) -> str | None:
    if not raw:
        return None
    if not _LANGUAGE.fullmatch(raw):
        raise InvalidValue("not a language code (2-8 letters, '-' or '_', like bs, en, ro)")
    return raw


def parse_client_type(raw: str) -> ClientType:
    try:
        return ClientType(raw.lower())
    except ValueError:
        raise InvalidValue(f"expected one of: {', '.join(t.value for t in ClientType)}") from None


def parse_role(raw: str) -> AgentRole:
    try:
        return AgentRole(raw.lower())
    except ValueError:
        raise InvalidValue(f"expected one of: {', '.join(r.value for r in AgentRole)}") from None


def parse_manager(raw: str) -> str | None:
    return parse_agent_id(raw) if raw else None


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(";") if part.strip()]


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def parse_phones(raw: str, region: str) -> tuple[str, ...]:
    """Numbers separated by ";", each to E.164. The same number written twice is kept once."""
    check_chars(raw)
    numbers = []
    for part in _split(raw):
        number = normalise(part, region)
        if number is None:
            which = "" if part == raw else f": {show_value(part)}"
            raise InvalidValue(f"not a phone number{which}")
        numbers.append(number)
    return _unique(numbers)


def parse_endpoint(raw: str) -> str | None:
    """An Asterisk dial string for one destination: PJSIP/101, Local/101@agents,
    PJSIP/+38761123456@trunk. Empty means the agent has no phone yet."""
    if not raw:
        return None
    message = (
        f"not an Asterisk endpoint like PJSIP/101 (technology {', '.join(ENDPOINT_TECHS)}; "
        "one destination: no ',', '&', spaces or control characters)"
    )
    m = _ENDPOINT.fullmatch(raw)
    if len(raw) > MAX_ENDPOINT or m is None:
        raise InvalidValue(message)
    tech = next((t for t in ENDPOINT_TECHS if t.lower() == m.group(1).lower()), None)
    if tech is None:
        raise InvalidValue(message)
    return f"{tech}/{m.group(2)}"


def parse_queues(raw: str) -> tuple[str, ...]:
    return _unique(parse_queue_name(q) for q in _split(raw))


def parse_skills(raw: str) -> tuple[str, ...]:
    skills = _split(raw)
    for skill in skills:
        if len(skill) > MAX_ID or not _SKILL.fullmatch(skill):
            raise InvalidValue(f"not a skill name: {show_value(skill)}")
    return _unique(skills)


class _Duplicates:
    def __init__(self, column: str) -> None:
        self.column = column
        self.first: dict[str, int] = {}

    def check(self, line: int, value: str) -> RowError | None:
        first = self.first.setdefault(value, line)
        if first == line:
            return None
        return RowError.at(
            line, self.column, value, f"duplicate {self.column}, first on line {first}"
        )


def collect_rows(
    records: Iterable[CsvRecord], row_of: Callable[[CsvRecord, RecordFields], Row]
) -> tuple[list[Row], list[RowError]]:
    """Every record through ``row_of`` (which notes its problems in the fields' errors): the
    rows without a problem, and every problem of the others."""
    rows: list[Row] = []
    errors: list[RowError] = []
    for record in records:
        f = RecordFields(record)
        row = row_of(record, f)
        if f.errors:
            errors += f.errors
        else:
            rows.append(row)
    return rows, errors


def parse_client_rows(
    records: Iterable[CsvRecord], region: str
) -> tuple[list[ClientRow], list[RowError]]:
    seen = _Duplicates("external_id")

    def row_of(record: CsvRecord, f: RecordFields) -> ClientRow:
        external_id = f.take("external_id", parse_external_id)
        row = ClientRow(
            line=record.line,
            external_id=external_id,
            name=f.take("name", parse_name),
            phones=f.take("phone", lambda raw: parse_phones(raw, region)),
            language=f.take("language", parse_language),
            client_type=f.take("client_type", parse_client_type),
            assigned_manager=f.take("assigned_manager", parse_manager),
            birthday=f.take("birthday", parse_date),
            document_expiry=f.take("document_expiry", parse_date),
            overdue_debt=f.take("overdue_debt", parse_flag),
            segment=f.take("segment", parse_segment),
            has_segment="segment" in record.values,
            timezone=f.take("timezone", parse_timezone),
            has_timezone="timezone" in record.values,
            email=f.take("email", parse_email),
            has_email="email" in record.values,
            preferred_channel=f.take("preferred_channel", parse_channel),
            has_preferred_channel="preferred_channel" in record.values,
        )
        if external_id is not None and (dup := seen.check(record.line, external_id)):
            f.errors.append(dup)
        return row

    return collect_rows(records, row_of)


def parse_agent_rows(records: Iterable[CsvRecord]) -> tuple[list[AgentRow], list[RowError]]:
    seen = _Duplicates("agent_id")

    def row_of(record: CsvRecord, f: RecordFields) -> AgentRow:
        agent_id = f.take("agent_id", parse_agent_id)
        row = AgentRow(
            line=record.line,
            agent_id=agent_id,
            name=f.take("name", parse_name),
            role=f.take("role", parse_role),
            endpoint=f.take("endpoint", parse_endpoint),
            queues=f.take("queues", parse_queues),
            skills=f.take("skills", parse_skills),
        )
        if agent_id is not None and (dup := seen.check(record.line, agent_id)):
            f.errors.append(dup)
        return row

    return collect_rows(records, row_of)


def parse_loan_rows(records: Iterable[CsvRecord]) -> tuple[list[LoanRow], list[RowError]]:
    seen = _Duplicates("loan_id")

    def row_of(record: CsvRecord, f: RecordFields) -> LoanRow:
        loan_id = f.take("loan_id", parse_external_id)
        row = LoanRow(
            line=record.line,
            loan_id=loan_id,
            client_external_id=f.take("client_id", parse_external_id),
            opened_at=f.take("opened_at", parse_required_instant),
            closed_at=f.take("closed_at", parse_instant),
            amount=f.take("amount", parse_amount),
            product=f.take("product", parse_product),
        )
        if loan_id is not None and (dup := seen.check(record.line, loan_id)):
            f.errors.append(dup)
        if row.opened_at and row.closed_at and row.closed_at < row.opened_at:
            message = "closed before it was opened (opened_at is later)"
            f.errors.append(RowError.at(record.line, "closed_at", f.raw("closed_at"), message))
        return row

    return collect_rows(records, row_of)


def parse_payer_number(raw: str, region: str) -> str | None:
    """A number we may call the payer on, or empty. Only numbers in the numbering plan: a
    procedural call must never dial a short code the bank's statement happened to carry."""
    if not raw:
        return None
    check_chars(raw)
    number = normalise_dialable(raw, region)
    if number is None:
        raise InvalidValue("not a phone number we can dial (a full national or +country number)")
    return number


def parse_payment_amount(raw: str) -> Decimal:
    if not raw:
        raise InvalidValue("required")
    amount = cast(Decimal, parse_amount(raw))
    if not amount:
        raise InvalidValue("a payment of nothing")
    return amount


def _optional_id(raw: str) -> str | None:
    return parse_external_id(raw) if raw else None


def parse_payment_rows(
    records: Iterable[CsvRecord], region: str
) -> tuple[list[PaymentRow], list[RowError]]:
    seen = _Duplicates("payment_id")

    def row_of(record: CsvRecord, f: RecordFields) -> PaymentRow:
        payment_id = f.take("payment_id", parse_external_id)
        loan = f.take("loan_id", _optional_id)
        matched_raw = f.raw("matched")
        # Without a word on it, a payment that names its loan is matched to it.
        matched = f.take("matched", parse_flag) if matched_raw else loan is not None
        row = PaymentRow(
            line=record.line,
            payment_id=payment_id,
            loan_external_id=loan,
            client_external_id=f.take("client_id", _optional_id),
            payer_name=f.take("payer_name", parse_name),
            payer_number=f.take("payer_number", lambda raw: parse_payer_number(raw, region)),
            amount=f.take("amount", parse_payment_amount),
            paid_at=f.take("paid_at", parse_required_instant),
            matched=matched,
        )
        if payment_id is not None and (dup := seen.check(record.line, payment_id)):
            f.errors.append(dup)
        if matched and not f.raw("loan_id"):
            message = "matched to no loan: give its loan_id, or matched no"
            f.errors.append(RowError.at(record.line, "matched", matched_raw, message))
        return row

    return collect_rows(records, row_of)


def parse_clients(text: str, region: str) -> tuple[list[ClientRow], list[RowError]]:
    records, errors = read_table(text, CLIENT_COLUMNS, CLIENT_OPTIONAL)
    rows, row_errors = parse_client_rows(records, region)
    return rows, errors + row_errors


def parse_agents(text: str) -> tuple[list[AgentRow], list[RowError]]:
    records, errors = read_table(text, AGENT_COLUMNS)
    rows, row_errors = parse_agent_rows(records)
    return rows, errors + row_errors


def parse_loans(text: str) -> tuple[list[LoanRow], list[RowError]]:
    records, errors = read_table(text, LOAN_COLUMNS)
    rows, row_errors = parse_loan_rows(records)
    return rows, errors + row_errors


def parse_payments(text: str, region: str) -> tuple[list[PaymentRow], list[RowError]]:
    records, errors = read_table(text, PAYMENT_COLUMNS, PAYMENT_OPTIONAL)
    rows, row_errors = parse_payment_rows(records, region)
    return rows, errors + row_errors
