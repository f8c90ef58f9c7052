"""Tests for models.importing's pure half: reading the CSV text and validating every row."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from core.csvrows import (
    AGENT_COLUMNS,
    CLIENT_COLUMNS,
    MAX_FIELD,
    MAX_FILE_BYTES,
    ImportRejected,
    RowError,
    decode_csv_bytes,
    detect_delimiter,
    parse_agents,
    parse_clients,
    parse_endpoint,
    read_table,
    show_value,
)
from core.enums import AgentRole, ClientType
from models.importing import ImportResult, read_csv_file

REGION = "BA"
CLIENT_HEADER = ",".join(CLIENT_COLUMNS)
AGENT_HEADER = ",".join(AGENT_COLUMNS)


def clients_csv(*rows: str, header: str = CLIENT_HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def agents_csv(*rows: str, header: str = AGENT_HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def client_errors(*rows: str, header: str = CLIENT_HEADER) -> list[RowError]:
    parsed, errors = parse_clients(clients_csv(*rows, header=header), REGION)
    assert not parsed or errors, "expected the rows to be refused"
    return errors


def agent_errors(*rows: str) -> list[RowError]:
    _, errors = parse_agents(agents_csv(*rows))
    return errors


def only_error(errors: list[RowError]) -> RowError:
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


GOOD_CLIENT = "C1,Ana Anić,061 123 456,bs,key,a1,1985-03-15,2030-01-31,1"


# ---- clients: good rows ---------------------------------------------------------------------


def test_good_client_row_is_parsed_into_typed_values() -> None:
    rows, errors = parse_clients(clients_csv(GOOD_CLIENT), REGION)
    assert errors == []
    (row,) = rows
    assert row.line == 2
    assert row.external_id == "C1"
    assert row.name == "Ana Anić"
    assert row.phones == ("+38761123456",)
    assert row.language == "bs"
    assert row.client_type is ClientType.KEY
    assert row.assigned_manager == "a1"
    assert row.birthday == date(1985, 3, 15)
    assert row.document_expiry == date(2030, 1, 31)
    assert row.overdue_debt is True
    assert row.has_segment is False


def test_optional_fields_may_be_empty() -> None:
    rows, errors = parse_clients(clients_csv("C1,Ana,,,new,,,,"), REGION)
    assert errors == []
    (row,) = rows
    assert row.phones == ()
    assert row.language is None
    assert row.assigned_manager is None
    assert row.birthday is None and row.document_expiry is None
    assert row.overdue_debt is False


def test_several_phones_separated_by_semicolons_are_each_normalised_and_deduplicated() -> None:
    raw = '"061 123 456; +387 62 111 222;0038761123456;;"'
    rows, errors = parse_clients(clients_csv(f"C1,Ana,{raw},bs,new,,,,0"), REGION)
    assert errors == []
    assert rows[0].phones == ("+38761123456", "+38762111222")


def test_semicolon_delimited_file_from_excel_is_read_and_phones_still_split() -> None:
    header = CLIENT_HEADER.replace(",", ";")
    text = clients_csv('C1;Ana;"061 123 456;062 111 222";bs;regular;;15.03.1985;;0', header=header)
    rows, errors = parse_clients(text, REGION)
    assert errors == []
    assert rows[0].phones == ("+38761123456", "+38762111222")
    assert rows[0].birthday == date(1985, 3, 15)


def test_delimiter_is_taken_from_the_header_line() -> None:
    assert detect_delimiter("a,b,c\n") == ","
    assert detect_delimiter("a;b;c\n") == ";"
    assert detect_delimiter("single\n") == ","


def test_utf8_bom_is_ignored_in_text_and_in_bytes() -> None:
    text = "\ufeff" + clients_csv(GOOD_CLIENT)
    rows, errors = parse_clients(text, REGION)
    assert errors == [] and rows[0].external_id == "C1"
    assert decode_csv_bytes(text.encode("utf-8")) == text.removeprefix("\ufeff")


def test_header_names_are_case_insensitive_and_stripped_and_extra_columns_ignored() -> None:
    header = " EXTERNAL_ID , Name,Phone,language,Client_Type,assigned_manager,birthday,"
    header += "document_expiry,overdue_debt,notes"
    rows, errors = parse_clients(
        clients_csv("C1,Ana,061123456,bs,new,,,,0,whatever", header=header), REGION
    )
    assert errors == []
    assert rows[0].external_id == "C1"


def test_columns_may_come_in_any_order() -> None:
    header = ",".join(reversed(CLIENT_COLUMNS))
    rows, errors = parse_clients(clients_csv("0,,,,new,bs,061123456,Ana,C1", header=header), REGION)
    assert errors == []
    assert (rows[0].external_id, rows[0].name) == ("C1", "Ana")


def test_optional_segment_column_is_read_when_present() -> None:
    header = CLIENT_HEADER + ",segment"
    rows, errors = parse_clients(clients_csv("C1,Ana,,,new,,,,0,retail", header=header), REGION)
    assert errors == []
    assert (rows[0].segment, rows[0].has_segment) == ("retail", True)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1985-03-15", date(1985, 3, 15)),
        ("15.03.1985", date(1985, 3, 15)),
        ("5.3.1985", date(1985, 3, 5)),
        ("15.03.1985.", date(1985, 3, 15)),
        ("", None),
    ],
)
def test_dates_are_iso_or_day_month_year_with_dots(raw: str, expected: date | None) -> None:
    rows, errors = parse_clients(clients_csv(f"C1,Ana,,,new,,{raw},,0"), REGION)
    assert errors == []
    assert rows[0].birthday == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("0", False),
        ("", False),
        ("TRUE", True),
        ("false", False),
        ("Yes", True),
        ("no", False),
    ],
)
def test_overdue_debt_accepts_0_1_true_false_yes_no(raw: str, expected: bool) -> None:
    rows, errors = parse_clients(clients_csv(f"C1,Ana,,,new,,,,{raw}"), REGION)
    assert errors == []
    assert rows[0].overdue_debt is expected


def test_the_notice_columns_email_and_preferred_channel() -> None:
    header = CLIENT_HEADER + ",email,preferred_channel"
    rows, errors = parse_clients(
        clients_csv(GOOD_CLIENT + ",ana@x.org,Viber", "C2,Bo,,,new,,,,0,,", header=header), REGION
    )
    assert errors == []
    assert [(r.email, r.preferred_channel, r.has_email) for r in rows] == [
        ("ana@x.org", "viber", True),
        (None, None, True),
    ]
    assert parse_clients(clients_csv(GOOD_CLIENT), REGION)[0][0].has_email is False
    bad = client_errors(GOOD_CLIENT + ",ana@,fax", header=header)
    assert [(e.column, e.message) for e in bad] == [
        ("email", "not an e-mail address (like ana@example.org)"),
        ("preferred_channel", "expected one of sms, viber, email, letter"),
    ]


def test_client_type_is_case_insensitive() -> None:
    rows, errors = parse_clients(clients_csv("C1,Ana,,,Regular,,,,0"), REGION)
    assert errors == [] and rows[0].client_type is ClientType.REGULAR


def test_empty_lines_and_excel_trailing_delimiter_lines_are_skipped_but_counted() -> None:
    text = CLIENT_HEADER + "\n\nC1,Ana,,,new,,,,0\r\n,,,,,,,,\n\nC2,Bo,,,new,,,,0\n"
    rows, errors = parse_clients(text, REGION)
    assert errors == []
    assert [(r.external_id, r.line) for r in rows] == [("C1", 3), ("C2", 6)]


def test_line_numbers_count_physical_lines_of_multiline_quoted_fields() -> None:
    text = clients_csv('C1,"Ana\nAnić",,,new,,,,0', "C2,Bo,061x,,new,,,,0")
    _, errors = parse_clients(text, REGION)
    assert [(e.line, e.column) for e in errors] == [(2, "name"), (4, "phone")]


# ---- clients: bad values --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        (",Ana,,,new,,,,0", "external_id", "required"),
        ("C1,,,,new,,,,0", "name", "required"),
        (f"C1,{'x' * 201},,,new,,,,0", "name", "longer than 200"),
        (f"{'x' * 65},Ana,,,new,,,,0", "external_id", "longer than 64"),
        ("C1,Ana,061 12x,,new,,,,0", "phone", "not a phone number"),
        ("C1,Ana,061123456;12,,new,,,,0", "phone", "not a phone number: '12'"),
        ("C1,Ana,,bosnian-lang,new,,,,0", "language", "language code"),
        ("C1,Ana,,b,new,,,,0", "language", "language code"),
        ("C1,Ana,,b s,new,,,,0", "language", "language code"),
        ("C1,Ana,,,vip,,,,0", "client_type", "one of: key, regular, new"),
        ("C1,Ana,,,,,,,0", "client_type", "one of"),
        ("C1,Ana,,,new,a b,,,0", "assigned_manager", "agent id"),
        ("C1,Ana,,,new,,31.02.2000,,0", "birthday", "no such date"),
        ("C1,Ana,,,new,,2000-13-01,,0", "birthday", "no such date"),
        ("C1,Ana,,,new,,03/15/1985,,0", "birthday", "not a date"),
        ("C1,Ana,,,new,,20000101,,0", "birthday", "not a date"),
        ("C1,Ana,,,new,,,tomorrow,0", "document_expiry", "not a date"),
        ("C1,Ana,,,new,,,,2", "overdue_debt", "expected 0 or 1"),
        ("C1,Ana,,,new,,,,maybe", "overdue_debt", "expected 0 or 1"),
    ],
)
def test_bad_client_value_is_an_error_naming_line_column_and_value(
    row: str, column: str, message: str
) -> None:
    error = only_error(client_errors(row))
    assert error.line == 2
    assert error.column == column
    assert message in error.message
    assert error.value is not None and error.value.startswith("'")


def test_every_bad_value_of_a_row_is_reported_not_just_the_first() -> None:
    errors = client_errors("C1,,061x,?,vip,,99.99.2000,,maybe")
    assert sorted(e.column or "" for e in errors) == [
        "birthday",
        "client_type",
        "language",
        "name",
        "overdue_debt",
        "phone",
    ]


def test_one_bad_row_among_good_ones_rejects_the_file() -> None:
    rows, errors = parse_clients(
        clients_csv("C1,Ana,,,new,,,,0", "C2,Bo,,,vip,,,,0", "C3,Cid,,,new,,,,0"), REGION
    )
    assert [e.line for e in errors] == [3]
    assert [r.external_id for r in rows] == ["C1", "C3"]  # the caller refuses on any error


@pytest.mark.parametrize(
    "hostile",
    ['"Ana\nAction: Originate"', '"Ana\x00"', '"Ana\rX"', '"Ana\u202eevil"', '"Ana\x1b[31m"'],
)
def test_control_characters_inside_quoted_name_are_rejected_and_shown_visibly(hostile: str) -> None:
    error = only_error(client_errors(f"C1,{hostile},,,new,,,,0"))
    assert error.column == "name"
    assert "control character" in error.message
    assert error.value is not None
    assert all(ch.isprintable() for ch in error.value)


def test_newline_inside_quoted_phone_is_rejected() -> None:
    error = only_error(client_errors('C1,Ana,"061123456\n062111222",,new,,,,0'))
    assert error.column == "phone"


def test_duplicate_external_id_is_an_error_on_the_second_occurrence() -> None:
    errors = client_errors("C1,Ana,,,new,,,,0", "C2,Bo,,,new,,,,0", "C1,Ana again,,,new,,,,0")
    error = only_error(errors)
    assert (error.line, error.column) == (4, "external_id")
    assert "first on line 2" in error.message


def test_missing_required_columns_give_one_clear_error() -> None:
    text = "external_id,name,phone\nC1,Ana,061123456\n"
    _, errors = parse_clients(text, REGION)
    error = only_error(errors)
    assert error.line == 1
    assert "missing required column(s): language, client_type, assigned_manager" in error.message


def test_a_required_column_given_twice_is_an_error() -> None:
    _, errors = parse_clients(clients_csv(header=CLIENT_HEADER + ",Name"), REGION)
    error = only_error(errors)
    assert (error.line, error.column) == (1, "name")


def test_empty_file_is_an_error() -> None:
    for text in ("", "\n\n", "\ufeff"):
        _, errors = parse_clients(text, REGION)
        assert "empty" in only_error(errors).message


def test_header_only_file_has_no_rows_and_no_errors() -> None:
    assert parse_clients(clients_csv(), REGION) == ([], [])


@pytest.mark.parametrize("row", ["C1,Ana,,,new,,,0", "C1,Ana,,,new,,,,0,extra"])
def test_row_with_the_wrong_number_of_fields_is_an_error(row: str) -> None:
    error = only_error(client_errors(row))
    assert error.line == 2
    assert "expected 9 fields" in error.message


def test_unterminated_quote_is_an_error_not_a_crash() -> None:
    _, errors = parse_clients(clients_csv("C1,Ana,,,new,,,,0", 'C2,"Bo,,,new,,,,0'), REGION)
    error = only_error(errors)
    assert error.line == 3
    assert "malformed CSV" in error.message


def test_text_after_closing_quote_is_an_error() -> None:
    _, errors = parse_clients(clients_csv('C1,"Ana"x,,,new,,,,0'), REGION)
    assert "malformed CSV" in only_error(errors).message


def test_field_longer_than_the_limit_is_an_error_even_in_an_ignored_column() -> None:
    header = CLIENT_HEADER + ",notes"
    big = "x" * (MAX_FIELD + 1)
    _, errors = parse_clients(clients_csv(f"C1,Ana,,,new,,,,0,{big}", header=header), REGION)
    error = only_error(errors)
    assert (error.line, error.column) == (2, "notes")
    assert error.value is not None and len(error.value) == 60


def test_huge_field_beyond_the_csv_module_limit_is_an_error_not_a_crash() -> None:
    big = "x" * 200_000
    _, errors = parse_clients(clients_csv(f"C1,{big},,,new,,,,0"), REGION)
    assert len(errors) == 1


def test_too_many_rows_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("core.csvrows.MAX_ROWS", 3)
    rows = [f"C{i},Ana,,,new,,,,0" for i in range(5)]
    _, errors = parse_clients(clients_csv(*rows), REGION)
    error = only_error(errors)
    assert (error.line, error.message) == (5, "more than 3 rows")


def test_text_larger_than_the_file_limit_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("core.csvrows.MAX_FILE_BYTES", 100)
    records, errors = read_table(clients_csv(*[GOOD_CLIENT] * 3), CLIENT_COLUMNS)
    assert records == []
    assert "larger than" in only_error(errors).message


# ---- bytes and files ------------------------------------------------------------------------


def test_file_that_is_not_utf8_is_rejected_naming_byte_offset_and_line() -> None:
    data = (clients_csv("C1,Ana,,,new,,,,0") + "C2,Šefik,,,new,,,,0\n").encode("cp1250")
    with pytest.raises(ImportRejected) as caught:
        decode_csv_bytes(data)
    error = only_error(caught.value.errors)
    offset = data.index("Š".encode("cp1250"))
    assert error.line == 3
    assert f"byte offset {offset}" in error.message
    assert "not UTF-8" in error.message


def test_utf16_file_is_rejected_with_a_hint() -> None:
    with pytest.raises(ImportRejected) as caught:
        decode_csv_bytes(clients_csv(GOOD_CLIENT).encode("utf-16"))
    assert "UTF-16" in caught.value.report()


def test_bom_is_counted_in_the_byte_offset() -> None:
    with pytest.raises(ImportRejected) as caught:
        decode_csv_bytes(b"\xef\xbb\xbfab\xff")
    assert "byte offset 5" in caught.value.errors[0].message


def test_file_larger_than_50_mib_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ImportRejected) as caught:
        read_csv_file(path)
    assert "larger than 50 MiB" in caught.value.report()


def test_unreadable_file_is_rejected_not_crashed(tmp_path: Path) -> None:
    with pytest.raises(ImportRejected):
        read_csv_file(tmp_path / "missing.csv")


# ---- agents ---------------------------------------------------------------------------------


def test_good_agent_row_is_parsed_with_queues_and_skills() -> None:
    rows, errors = parse_agents(agents_csv("a1,Ana,Supervisor,PJSIP/101,sales;support;sales,bs;en"))
    assert errors == []
    (row,) = rows
    assert (row.agent_id, row.name, row.role) == ("a1", "Ana", AgentRole.SUPERVISOR)
    assert row.endpoint == "PJSIP/101"
    assert row.queues == ("sales", "support")
    assert row.skills == ("bs", "en")


def test_agent_without_endpoint_queues_or_skills_is_allowed() -> None:
    rows, errors = parse_agents(agents_csv("a1,Ana,agent,,,"))
    assert errors == []
    assert (rows[0].endpoint, rows[0].queues, rows[0].skills) == (None, (), ())


def test_semicolon_delimited_agent_file_with_quoted_lists() -> None:
    text = agents_csv(
        'a1;Ana;agent;Local/101@agents;"sales;support";bs', header=AGENT_HEADER.replace(",", ";")
    )
    rows, errors = parse_agents(text)
    assert errors == []
    assert rows[0].queues == ("sales", "support")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("PJSIP/101", "PJSIP/101"),
        ("pjsip/101", "PJSIP/101"),
        ("SIP/alice", "SIP/alice"),
        ("IAX2/peer/101", "IAX2/peer/101"),
        ("Local/101@agents", "Local/101@agents"),
        ("Local/101@agents/n", "Local/101@agents/n"),
        ("PJSIP/+38761123456@trunk", "PJSIP/+38761123456@trunk"),
        ("DAHDI/g1/061123456", "DAHDI/g1/061123456"),
        ("PJSIP/*99#", "PJSIP/*99#"),
        ("", None),
    ],
)
def test_endpoint_accepts_asterisk_dial_strings(raw: str, expected: str | None) -> None:
    assert parse_endpoint(raw) == expected


@pytest.mark.parametrize(
    "endpoint",
    [
        "PJSIP/101&PJSIP/102",
        "PJSIP/101,30,tT",
        "Local/1@x\nAction: Originate",
        "Local/1@x\r\nAction: Originate",
        "PJSIP/101\x00",
        "PJSIP/10 1",
        "PJSIP/101/x/y",
        "PJSIP/",
        "PJSIP",
        "101",
        "Console/dsp",
        "Dial/PJSIP/101",
        "PJSIP/${SHELL(id)}",
        "PJSIP/101)",
        "PJSIP/101|x",
        "PJSIP/" + "1" * 200,
    ],
)
def test_endpoint_injection_attempts_are_rejected(endpoint: str) -> None:
    field = '"' + endpoint.replace('"', '""') + '"'
    error = only_error(agent_errors(f"a1,Ana,agent,{field},,"))
    assert error.column == "endpoint"
    assert "not an Asterisk endpoint" in error.message
    assert error.value is not None and "\n" not in error.value and "\x00" not in error.value


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        (",Ana,agent,,,", "agent_id", "required"),
        ("a 1,Ana,agent,,,", "agent_id", "agent id"),
        ("a1;DROP,Ana,agent,,,", "agent_id", "agent id"),
        ("a1,,agent,,,", "name", "required"),
        (f"a1,{'n' * 201},agent,,,", "name", "longer than 200"),
        ('a1,"Ana\x00",agent,,,', "name", "control character"),
        ("a1,Ana,boss,,,", "role", "one of: agent, supervisor, admin, manager"),
        ("a1,Ana,,,,", "role", "one of"),
        ('a1,Ana,agent,,"sales;sup port",', "queues", "queue name"),
        ('a1,Ana,agent,,"sales;x,y",', "queues", "queue name"),
        ('a1,Ana,agent,,,"bs;e n"', "skills", "not a skill name"),
    ],
)
def test_bad_agent_value_is_an_error(row: str, column: str, message: str) -> None:
    error = only_error(agent_errors(row))
    assert (error.line, error.column) == (2, column)
    assert message in error.message


def test_duplicate_agent_id_is_an_error_on_the_second_occurrence() -> None:
    error = only_error(agent_errors("a1,Ana,agent,,,", "a2,Bo,agent,,,", "a1,Ana,admin,,,"))
    assert (error.line, error.column) == (4, "agent_id")
    assert "first on line 2" in error.message


def test_missing_agent_columns_give_one_clear_error() -> None:
    _, errors = parse_agents("agent_id,name\na1,Ana\n")
    assert (
        "missing required column(s): role, endpoint, queues, skills" in only_error(errors).message
    )


# ---- report and result ----------------------------------------------------------------------


def test_show_value_reprs_and_truncates_to_60_characters() -> None:
    assert show_value("a\nb\x00") == r"'a\nb\x00'"
    shown = show_value("x" * 500)
    assert len(shown) == 60 and shown.endswith("…")


def test_report_is_one_line_per_error_sorted_by_line_with_a_heading() -> None:
    errors = [
        RowError.at(7, "endpoint", "PJSIP/1&PJSIP/2", "not an Asterisk endpoint"),
        RowError(None, None, None, "file-level problem"),
        RowError(3, None, None, "expected 6 fields, found 5"),
    ]
    report = ImportRejected(errors, "agents.csv").report().splitlines()
    assert report == [
        "agents.csv: import rejected, nothing was written (3 errors)",
        "  file: file-level problem",
        "  line 3: expected 6 fields, found 5",
        "  line 7: endpoint 'PJSIP/1&PJSIP/2': not an Asterisk endpoint",
    ]


def test_report_of_a_huge_number_of_errors_is_capped() -> None:
    errors = [RowError(i, "name", None, "required") for i in range(2, 1002)]
    report = ImportRejected(errors).report().splitlines()
    assert len(report) == 1 + 200 + 1
    assert report[-1] == "  ... and 800 more"


def test_summary_gives_the_counts() -> None:
    assert (
        ImportResult("clients", 3, 1, 2).summary() == "clients: 3 created, 1 updated, 2 unchanged"
    )
    assert ImportResult("agents", 1, 0, 0, 2).summary() == (
        "agents: 1 created, 0 updated, 0 unchanged, 2 queues created"
    )
