"""An SMS's encoding and parts (core/sms.py): the GSM alphabet and its extension table, UCS-2
for Bosnian letters and emoji, the 160/153 and 70/67 limits, escape and surrogate pairs never
split, the parts decoding back to the text (hypothesis), and delivery receipts read."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import sms
from core.sms import SmsTooLong, count, decode, encoding, parts

GSM_BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCZÄÖÑÜ§¿az"
GSM_EXTENSION = "^{}\\[~]|€\f"
BOSNIAN = "čćžšđČĆŽŠĐ"


def test_plain_text_is_gsm7_in_one_part() -> None:
    assert encoding("Sretan rodjendan!") == "gsm7"
    assert count("Sretan rodjendan!") == ("gsm7", 1)
    assert parts("A@") == [bytes([0x41, 0x00])]  # unpacked: one septet a byte, @ is 0


@pytest.mark.parametrize("letter", list(BOSNIAN))
def test_each_bosnian_letter_makes_the_message_ucs2(letter: str) -> None:
    text = f"Poštovani {letter}"
    assert encoding(f"Postovani {letter}") == "ucs2"
    assert encoding(text) == "ucs2"
    assert parts(text) == [text.encode("utf-16-be")]


def test_an_emoji_makes_it_ucs2_and_counts_two_units() -> None:
    assert encoding("Hvala 🙂") == "ucs2"
    assert sms.length("🙂") == 2
    assert count("🙂" * 35) == ("ucs2", 1)  # 70 units
    assert count("🙂" * 35 + "a") == ("ucs2", 2)


def test_the_extension_table_counts_two_septets() -> None:
    assert encoding(GSM_BASIC + GSM_EXTENSION) == "gsm7"
    assert sms.length("€") == 2
    assert parts("€") == [bytes([0x1B, 0x65])]
    assert count("€" * 80) == ("gsm7", 1)  # 160 septets
    assert count("€" * 80 + "a") == ("gsm7", 2)


def test_the_escape_character_itself_is_not_gsm_text() -> None:
    assert encoding("a\x1bb") == "ucs2"


@pytest.mark.parametrize(
    ("enc", "char", "single", "part"),
    [("gsm7", "a", 160, 153), ("ucs2", "č", 70, 67)],
)
def test_the_limits(enc: str, char: str, single: int, part: int) -> None:
    assert count(char * single) == (enc, 1)
    assert count(char * (single + 1)) == (enc, 2)
    assert count(char * part * 2) == (enc, 2)
    assert count(char * (part * 2 + 1)) == (enc, 3)
    got = parts(char * (part * 3))
    assert [len(decode(p, enc)) for p in got] == [part, part, part]  # type: ignore[arg-type]


def test_an_escape_pair_is_never_split() -> None:
    text = "a" * 152 + "€" + "b" * 10  # the € would straddle the 153rd septet
    got = parts(text)
    assert got[0] == b"a" * 152
    assert got[1].startswith(bytes([0x1B, 0x65]))


def test_a_surrogate_pair_is_never_split() -> None:
    text = "č" * 66 + "🙂" + "ž" * 10  # the emoji would take units 67 and 68
    got = parts(text)
    assert len(got[0]) == 66 * 2
    assert got[1].decode("utf-16-be").startswith("🙂")


def test_too_long_is_a_clear_error() -> None:
    assert count("č" * 67 * 10) == ("ucs2", 10)
    with pytest.raises(SmsTooLong, match="11 ucs2 parts, at most 10"):
        parts("č" * (67 * 10 + 1))
    with pytest.raises(SmsTooLong, match="3 gsm7 parts, at most 2"):
        count("a" * 307, max_parts=2)


def test_the_udh_of_a_part() -> None:
    assert sms.udh(0x2A, 3, 2) == bytes([5, 0, 3, 0x2A, 3, 2])
    assert sms.split_udh(sms.udh(1, 2, 1) + b"xy") == (bytes([5, 0, 3, 1, 2, 1]), b"xy")
    with pytest.raises(ValueError):
        sms.udh(1, 2, 3)


gsm_text = st.text(alphabet=st.sampled_from(list(GSM_BASIC + GSM_EXTENSION)), max_size=700)
any_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300
)  # no lone surrogates: they are not text a template makes


@given(st.one_of(gsm_text, any_text, st.text(alphabet=st.sampled_from(list(BOSNIAN + "ab 🙂€")))))
def test_the_parts_decode_back_to_the_text_within_the_limits(text: str) -> None:
    try:
        enc, n = count(text)
    except SmsTooLong as exc:
        assert exc.needed > 10
        return
    got = parts(text)
    assert len(got) == n
    assert "".join(decode(p, enc) for p in got) == text
    if enc == "gsm7":
        sizes = [len(p) for p in got]  # septets
        assert all(p[-1:] != b"\x1b" for p in got)  # no escape cut from its character
        if text:
            assert encoding(text) == "gsm7"
    else:
        sizes = [len(p) // 2 for p in got]  # UTF-16 units
        for p in got:
            p.decode("utf-16-be")  # strict: no surrogate pair cut in two
    if n == 1:
        assert sizes[0] <= sms.SINGLE[enc]
    else:
        assert all(size <= sms.PART[enc] for size in sizes)
        assert sum(sizes) > sms.SINGLE[enc]


def test_a_receipt_read() -> None:
    text = (
        "id:7f3a sub:001 dlvrd:001 submit date:2612020915 done date:2612020916 "
        "stat:DELIVRD err:000 text:Postovani"
    )
    receipt = sms.parse_receipt(text, UTC)
    assert receipt == sms.Receipt(
        "7f3a", "delivered", datetime(2026, 12, 2, 9, 16, tzinfo=UTC), None
    )
    sarajevo = ZoneInfo("Europe/Sarajevo")
    failed = sms.parse_receipt(text.replace("DELIVRD err:000", "UNDELIV err:013"), sarajevo)
    assert failed is not None
    assert failed.state == "failed" and failed.error == "UNDELIV err:013"
    assert failed.done == datetime(2026, 12, 2, 9, 16, tzinfo=sarajevo)
    expired = sms.parse_receipt("id:9 stat:EXPIRED err:0", UTC)
    assert expired == sms.Receipt("9", "expired", None, "EXPIRED")
    assert sms.parse_receipt("id:9 stat:ENROUTE", UTC) == sms.Receipt("9", None, None, "ENROUTE")
    assert sms.parse_receipt("STOP", UTC) is None
