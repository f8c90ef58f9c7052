"""A campaign's contact list from CSV (core.surveys.contacts.parse_contacts): numbers to E.164, the
optional columns validated, all rows or none with one error per problem."""

from __future__ import annotations

import pytest
from core.csvrows import MAX_FIELD, ImportRejected, RowError
from core.surveys.campaign import Segment
from core.surveys.contacts import ContactRow, parse_contacts

REGION = "BA"
HEADER = "number,client_id,name,language,timezone,segment"


def contacts_csv(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def rejected(*rows: str, header: str = HEADER) -> list[RowError]:
    with pytest.raises(ImportRejected) as caught:
        parse_contacts(contacts_csv(*rows, header=header), REGION)
    assert caught.value.report().startswith("import rejected, nothing was written")
    return caught.value.errors


def only_error(errors: list[RowError]) -> RowError:
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


# ---- good lists -----------------------------------------------------------------------------


def test_full_row_is_parsed_into_a_contact() -> None:
    rows = parse_contacts(
        contacts_csv("061 123 456,C1,Amra Hodžić,bs,Europe/Sarajevo,Active"), REGION
    )
    assert rows == [
        ContactRow(
            line=2,
            number="+38761123456",
            client_external_id="C1",
            name="Amra Hodžić",
            language="bs",
            timezone="Europe/Sarajevo",
            segment=Segment.ACTIVE,
        )
    ]


def test_a_list_of_numbers_alone_is_enough() -> None:
    rows = parse_contacts("number\n+387 61 123 456\n0040721123456\n", REGION)
    assert [(r.line, r.number) for r in rows] == [(2, "+38761123456"), (3, "+40721123456")]
    assert rows[0] == ContactRow(2, "+38761123456")


def test_empty_optional_fields_are_none() -> None:
    (row,) = parse_contacts(contacts_csv("061123456,,,,,"), REGION)
    assert row == ContactRow(2, "+38761123456")


def test_semicolon_file_with_bom_and_columns_in_any_order() -> None:
    text = "\ufeffsegment;number;name\nnew;061 123 456;Ana\ninactive;062 111 222;Bo\n"
    rows = parse_contacts(text, REGION)
    assert [(r.number, r.name, r.segment) for r in rows] == [
        ("+38761123456", "Ana", Segment.NEW),
        ("+38762111222", "Bo", Segment.INACTIVE),
    ]


def test_header_only_file_is_an_empty_list() -> None:
    assert parse_contacts(contacts_csv(), REGION) == []


# ---- bad values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        (",C1,Ana,,,", "number", "required"),
        ("061 12x,C1,Ana,,,", "number", "not a phone number"),
        ("112,,,,,", "number", "not a phone number we can dial"),  # never an emergency number
        ("0800,,,,,", "number", "not a phone number we can dial"),
        ('"061123456;062111222",,,,,', "number", "not a phone number"),
        ("=1+2,,,,,", "number", "not a phone number"),
        (f"061123456,{'c' * 65},,,,", "client_id", "longer than 64"),
        ('061123456,"C1\nAction: Originate",,,,', "client_id", "control character"),
        (f"061123456,,{'n' * 201},,,", "name", "longer than 200"),
        ('061123456,,"Ana\x1b[31m",,,', "name", "control character"),
        ('061123456,,"Ana\u202eevil",,,', "name", "control character"),
        ('061123456,,"=HYPERLINK(""http://x"",""click"")",,,', "name", "formula"),
        ("061123456,,@SUM(A1),,,", "name", "formula"),
        ("061123456,,+cmd,,,", "name", "formula"),
        ("061123456,,-2+3,,,", "name", "formula"),
        ("061123456,,,bosnian-lang,,", "language", "language code"),
        ("061123456,,,,Mars/Olympus_Mons,", "timezone", "not an IANA time zone"),
        ("061123456,,,,localtime,", "timezone", "not an IANA time zone"),
        ("061123456,,,,../../etc/passwd,", "timezone", "not an IANA time zone"),
        ("061123456,,,,,vip", "segment", "expected one of: new, active, inactive"),
    ],
)
def test_bad_value_is_a_row_error_naming_line_column_and_value(
    row: str, column: str, message: str
) -> None:
    error = only_error(rejected(row))
    assert (error.line, error.column) == (2, column)
    assert message in error.message
    assert error.value is not None and all(ch.isprintable() for ch in error.value)


def test_the_same_number_written_twice_differently_names_both_lines() -> None:
    errors = rejected("061 123 456,,Ana,,,", "062 111 222,,Bo,,,", "+387 61 123 456,,Ana2,,,")
    error = only_error(errors)
    assert (error.line, error.column, error.value) == (4, "number", "'+387 61 123 456'")
    assert error.message == "duplicate number +38761123456, first on line 2"
    assert str(error).startswith("line 4: number ")


def test_every_problem_of_every_row_is_reported_and_no_row_is_returned() -> None:
    errors = rejected("061 123 456,,Ana,,,", "x,,=evil,?,Nowhere/Land,vip", "061 123 456,,Bo,,,")
    assert sorted((e.line, e.column or "") for e in errors) == [
        (3, "language"),
        (3, "name"),
        (3, "number"),
        (3, "segment"),
        (3, "timezone"),
        (4, "number"),
    ]


def test_missing_number_column_is_one_file_error() -> None:
    error = only_error(rejected("Ana", header="name"))
    assert error.line == 1
    assert "missing required column(s): number" in error.message


def test_over_long_field_and_wrong_field_count_are_errors_not_crashes() -> None:
    big = "x" * (MAX_FIELD + 1)
    errors = rejected(f"061123456,,{big},,,", "062111222,,Bo")
    assert [(e.line, e.column) for e in errors] == [(2, "name"), (3, None)]
    assert "longer than" in errors[0].message and "expected 6 fields" in errors[1].message


def test_huge_field_and_broken_quotes_are_errors() -> None:
    errors = rejected(f"061123456,,{'x' * 200_000},,,")
    assert len(errors) == 1
    errors = rejected("061123456,,Ana,,,", '062111222,,"Bo,,,')
    assert "malformed CSV" in only_error(errors).message
