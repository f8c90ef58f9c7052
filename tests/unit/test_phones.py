from __future__ import annotations

import re

import pytest
from core.phones import normalise, normalise_dialable
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("061 123 456", "BA", "+38761123456"),
        ("+387 61 123 456", "BA", "+38761123456"),
        ("0038761123456", "BA", "+38761123456"),
        ("38761123456", "BA", "+38761123456"),  # carrier dropped the "+"
        ("0721 000 111", "RO", "+40721000111"),
        ("+40 (721) 000-111", "BA", "+40721000111"),
        ("0800100200", "BA", "0800100200"),  # not in the plan: kept as its digits
        ("112", "BA", "112"),
    ],
)
def test_numbers_written_many_ways_become_one_key(raw: str, region: str, expected: str) -> None:
    assert normalise(raw, region) == expected


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "anonymous",
        "unknown",
        "12ab34",
        "1\n2",
        "1\x002",
        "+",
        "--",
        "12",
        "1" * 41,
        "+387 61 123 456\n"[:-1] + ";rm",
    ],
)
def test_anything_that_is_not_a_phone_number_gives_none(raw: str | None) -> None:
    assert normalise(raw, "BA") is None


@given(st.text(max_size=60))
def test_normalise_never_raises_and_gives_a_plain_key(raw: str) -> None:
    result = normalise(raw, "BA")
    assert result is None or re.fullmatch(r"\+?[0-9]{3,15}", result)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("061 123 456", "+38761123456"),
        ("38761123456", "+38761123456"),
        ("+1 202 555 0143", "+12025550143"),
        ("112", None),  # emergency: kept by normalise as a caller id, never dialled from a list
        ("0800", None),
        ("+12345", None),
        ("-12345", None),
        ("", None),
    ],
)
def test_dialable_numbers_are_only_those_in_the_numbering_plan(
    raw: str, expected: str | None
) -> None:
    assert normalise_dialable(raw, "BA") == expected
