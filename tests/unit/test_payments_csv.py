"""The payments CSV (core.csvrows.parse_payments): what a good file gives, and one line per
problem for a bad one (nothing is taken from a file with any)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from core.csvrows import PaymentRow, RowError, parse_payments

REGION = "BA"
HEADER = "payment_id,loan_id,client_id,payer_name,payer_number,amount,paid_at,matched\n"


def problems(text: str) -> list[str]:
    rows, errors = parse_payments(text, REGION)
    assert errors, rows
    return [str(e) for e in sorted(errors, key=RowError.sort_key)]


def test_a_good_file_gives_every_field() -> None:
    text = HEADER + (
        "P1,L1,C1,Amra Hodžić,061 100 200,1500.00,2026-11-01,yes\n"
        "P2,,,Neko Treći,,20,2026-11-02T10:30:00+01:00,no\n"
        "P3,L2,,Ion Popescu,0040721123456,99.5,2026-11-03,\n"
    )
    rows, errors = parse_payments(text, REGION)
    assert errors == []
    assert rows == [
        PaymentRow(2, "P1", "L1", "C1", "Amra Hodžić", "+38761100200", Decimal("1500.00"),
                   datetime(2026, 11, 1, tzinfo=UTC), True),
        PaymentRow(3, "P2", None, None, "Neko Treći", None, Decimal("20.00"),
                   datetime(2026, 11, 2, 9, 30, tzinfo=UTC), False),
        # Without a word on it, a payment naming its loan is matched to it.
        PaymentRow(4, "P3", "L2", None, "Ion Popescu", "+40721123456", Decimal("99.50"),
                   datetime(2026, 11, 3, tzinfo=UTC), True),
    ]  # fmt: skip


def test_excel_semicolons_decimal_comma_and_bom_with_only_the_required_columns() -> None:
    text = "\ufeffpayment_id;payer_name;amount;paid_at\r\nP9;Jane Doe;1500,5;15.03.2026\r\n"
    rows, errors = parse_payments(text, REGION)
    assert errors == []
    assert [(r.payment_id, r.amount, r.paid_at, r.matched, r.loan_external_id) for r in rows] == [
        ("P9", Decimal("1500.50"), datetime(2026, 3, 15, tzinfo=UTC), False, None)
    ]


def test_every_bad_value_is_reported_with_its_line_and_column() -> None:
    text = HEADER + (
        "P1,L1,,Amra,061 100 200,100,2026-11-01,yes\n"
        ",,,,112,0,yesterday,maybe\n"
        "P1,,,Amra,,-5,2026-11-01,yes\n"
    )
    assert problems(text) == [
        "line 3: amount '0': a payment of nothing",
        "line 3: matched 'maybe': expected 0 or 1 (or true/false, yes/no)",
        "line 3: paid_at 'yesterday': not a date or time (YYYY-MM-DD, or ISO 8601 like "
        "2026-03-15T10:30:00+01:00)",
        "line 3: payer_name '': required",
        "line 3: payer_number '112': not a phone number we can dial (a full national or "
        "+country number)",
        "line 3: payment_id '': required",
        "line 4: amount '-5': not an amount (digits with up to 2 decimals, like 1500.00 or "
        "1500,50; no sign, no thousands separators)",
        "line 4: matched 'yes': matched to no loan: give its loan_id, or matched no",
        "line 4: payment_id 'P1': duplicate payment_id, first on line 2",
    ]


def test_a_missing_required_column_rejects_the_file() -> None:
    (only,) = problems("payment_id,payer_name,amount\nP1,Amra,10\n")
    assert "missing required column(s): paid_at" in only


def test_control_characters_in_a_payer_name_are_refused() -> None:
    (only,) = problems(HEADER + "P1,,,Amra\u202eevil,,10,2026-11-01,no\n")
    assert only == "line 2: payer_name 'Amra\\u202eevil': contains a control character"
