"""The pure half of the loans import (models.importing: parse_loans, parse_instant,
parse_amount) and the clients file's optional time zone column."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from core.csvrows import (
    CLIENT_COLUMNS,
    LOAN_COLUMNS,
    RowError,
    parse_clients,
    parse_loans,
    parse_timezone,
)

LOAN_HEADER = ",".join(LOAN_COLUMNS)


def loans_csv(*rows: str, header: str = LOAN_HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def only_error(errors: list[RowError]) -> RowError:
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def loan_error(row: str) -> RowError:
    rows, errors = parse_loans(loans_csv(row))
    assert rows == []
    return only_error(errors)


# ---- loans: good rows -----------------------------------------------------------------------


def test_good_loan_rows_are_parsed_into_typed_values() -> None:
    rows, errors = parse_loans(
        loans_csv(
            "L1,C1,2026-01-15,,1500.00,cash",
            "L2,C1,2025-03-01T10:30:00+01:00,2025-09-01T12:00:00Z,2000,car",
        )
    )
    assert errors == []
    first, second = rows
    assert (first.line, first.loan_id, first.client_external_id) == (2, "L1", "C1")
    assert first.opened_at == datetime(2026, 1, 15, tzinfo=UTC)
    assert first.closed_at is None
    assert (first.amount, first.product) == (Decimal("1500.00"), "cash")
    assert second.opened_at == datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    assert second.opened_at.tzinfo is UTC
    assert second.closed_at == datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
    assert second.amount == Decimal("2000.00")


def test_amount_and_product_may_be_empty() -> None:
    rows, errors = parse_loans(loans_csv("L1,C1,2026-01-15,,,"))
    assert errors == []
    assert (rows[0].amount, rows[0].product) == (None, None)


def test_semicolon_file_with_decimal_comma_and_dotted_dates_as_excel_writes_it() -> None:
    text = loans_csv(
        "L1;C1;15.01.2026;20.02.2026;1500,5;cash", header=LOAN_HEADER.replace(",", ";")
    )
    rows, errors = parse_loans(text)
    assert errors == []
    assert rows[0].amount == Decimal("1500.50")
    assert rows[0].closed_at == datetime(2026, 2, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-03-15", datetime(2026, 3, 15, tzinfo=UTC)),  # a date is midnight UTC
        ("2026-03-15T10:30", datetime(2026, 3, 15, 10, 30, tzinfo=UTC)),  # no offset: UTC
        ("2026-03-15 10:30:15", datetime(2026, 3, 15, 10, 30, 15, tzinfo=UTC)),
        ("2026-03-15T10:30:00.250Z", datetime(2026, 3, 15, 10, 30, 0, 250000, tzinfo=UTC)),
        ("2026-03-15T00:30:00+02:00", datetime(2026, 3, 14, 22, 30, tzinfo=UTC)),
        ("2026-03-15T10:30-0500", datetime(2026, 3, 15, 15, 30, tzinfo=UTC)),
    ],
)
def test_opened_at_is_a_date_or_an_iso_datetime_read_in_utc(raw: str, expected: datetime) -> None:
    rows, errors = parse_loans(loans_csv(f"L1,C1,{raw},,,"))
    assert errors == []
    assert rows[0].opened_at == expected
    assert rows[0].opened_at.utcoffset() is not None


# ---- loans: bad values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        (",C1,2026-01-15,,,", "loan_id", "required"),
        (f"{'L' * 65},C1,2026-01-15,,,", "loan_id", "longer than 64"),
        ("L1,,2026-01-15,,,", "client_id", "required"),
        ('"L1\x00",C1,2026-01-15,,,', "loan_id", "control character"),
        ("L1,C1,,,,", "opened_at", "required"),
        ("L1,C1,yesterday,,,", "opened_at", "not a date or time"),
        ("L1,C1,2026-02-30,,,", "opened_at", "no such date"),
        ("L1,C1,2026-01-15T25:00,,,", "opened_at", "no such date or time"),
        ("L1,C1,2026-W03-1,,,", "opened_at", "not a date or time"),
        ("L1,C1,20260115,,,", "opened_at", "not a date or time"),
        ("L1,C1,0001-01-01T00:00+01:00,,,", "opened_at", "no such date or time"),
        ("L1,C1,2026-01-15,soon,,", "closed_at", "not a date or time"),
        ("L1,C1,2026-01-15,2026-01-14,,", "closed_at", "closed before it was opened"),
        ("L1,C1,2026-01-15,,-100,", "amount", "not an amount"),
        ('L1,C1,2026-01-15,,"1,500.00",', "amount", "not an amount"),
        ("L1,C1,2026-01-15,,1.5e3,", "amount", "not an amount"),
        ("L1,C1,2026-01-15,,12.345,", "amount", "not an amount"),
        ("L1,C1,2026-01-15,,1234567890123,", "amount", "not an amount"),
        (f"L1,C1,2026-01-15,,,{'p' * 65}", "product", "longer than 64"),
        ('L1,C1,2026-01-15,,,"cash\u202e"', "product", "control character"),
    ],
)
def test_bad_loan_value_is_an_error_naming_line_column_and_value(
    row: str, column: str, message: str
) -> None:
    error = loan_error(row)
    assert (error.line, error.column) == (2, column)
    assert message in error.message
    assert error.value is not None and error.value.startswith("'")


def test_duplicate_loan_id_is_an_error_on_the_second_occurrence() -> None:
    _, errors = parse_loans(loans_csv("L1,C1,2026-01-15,,,", "L1,C2,2026-01-16,,,"))
    error = only_error(errors)
    assert (error.line, error.column) == (3, "loan_id")
    assert "first on line 2" in error.message


def test_every_bad_value_of_a_loan_row_is_reported() -> None:
    _, errors = parse_loans(loans_csv(",,never,never,lots,"))
    columns = sorted(e.column or "" for e in errors)
    assert columns == ["amount", "client_id", "closed_at", "loan_id", "opened_at"]


def test_missing_loan_columns_give_one_clear_error() -> None:
    _, errors = parse_loans("loan_id,client_id\nL1,C1\n")
    message = only_error(errors).message
    assert "missing required column(s): opened_at, closed_at, amount, product" in message


# ---- clients: the optional time zone --------------------------------------------------------


def clients_with_timezone(zone: str) -> str:
    header = ",".join(CLIENT_COLUMNS) + ",timezone"
    return f"{header}\nC1,Ana,,,new,,,,0,{zone}\n"


def test_client_timezone_column_is_read_when_present() -> None:
    rows, errors = parse_clients(clients_with_timezone("Europe/Sarajevo"), "BA")
    assert errors == []
    assert (rows[0].timezone, rows[0].has_timezone) == ("Europe/Sarajevo", True)
    rows, _ = parse_clients(clients_with_timezone(""), "BA")
    assert (rows[0].timezone, rows[0].has_timezone) == (None, True)


def test_clients_file_without_the_column_leaves_the_timezone_unset() -> None:
    header = ",".join(CLIENT_COLUMNS)
    rows, errors = parse_clients(f"{header}\nC1,Ana,,,new,,,,0\n", "BA")
    assert errors == []
    assert (rows[0].timezone, rows[0].has_timezone) == (None, False)


@pytest.mark.parametrize(
    "zone",
    [
        "Mars/Olympus_Mons",
        "europe/sarajevo",
        "Europe",
        "localtime",  # this server's zone, not the client's
        "Factory",
        "../../etc/passwd",
        "/usr/share/zoneinfo/UTC",
        "Europe/Sarajevo\x00",
        "CET;rm",
        "A" * 70,
    ],
)
def test_bad_client_timezone_is_a_row_error_naming_it(zone: str) -> None:
    _, errors = parse_clients(clients_with_timezone(f'"{zone}"'), "BA")
    error = only_error(errors)
    assert (error.line, error.column) == (2, "timezone")
    assert "not an IANA time zone" in error.message
    assert error.value is not None and zone[:20] in error.value.replace("\\x00", "\x00")


@pytest.mark.parametrize("zone", ["Europe/Sarajevo", "UTC", "America/Argentina/Buenos_Aires"])
def test_iana_names_are_time_zones(zone: str) -> None:
    assert parse_timezone(zone) == zone
