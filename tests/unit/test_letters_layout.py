"""Printed letters (core/letters.py, letters/pdf.py): each client's letter merged in their
language, or skipped with the contact policy's reason (opted out of letters, no postal
address) or an address the window cannot show; the PDF read back with PDFium: a page per
letter in order (also across the batch's typeset parts), the Bosnian letters as text, the
address and the return line inside the window envelope's field; the sample letter as a PNG
of A4's proportions (`centrala letters sample`, README)."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime
from pathlib import Path

import pypdfium2
import pytest
from click.testing import CliRunner

from centrala.cli import main
from core.letters import (
    ADDRESS,
    PAGE_HEIGHT,
    RETURN_LINE,
    WINDOW,
    Letter,
    LetterRequestError,
    dated,
    letter_for,
    letter_key,
    outbox_row,
    parse_request,
    place_of,
    reprinted,
    sender_lines,
)
from core.notices import Addressee, Channel, NoticeKind, NoticeState, Policy, Recipient, Skip
from letters import pdf

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 12, 2)
NOW = datetime(2026, 12, 2, 11, tzinfo=UTC)
SENDER = sender_lines("Fondacija Centrala\\nTitova 1\\n71000 Sarajevo")
MM = 72 / 25.4  # PDF points in a millimetre


def client(
    cid: int = 7,
    name: str = "Šefika Ćorić",
    address: str | None = "Ulica Žrtava fašizma 12\n71000 Sarajevo",
    language: str = "bs",
    opted_out: frozenset[Channel] = frozenset(),
) -> Addressee:
    return Addressee(
        Recipient(cid, language, None, None, None, address, None, opted_out=opted_out),
        name,
        date(2027, 1, 1),
    )


def letter(c: Addressee, kind: NoticeKind = NoticeKind.ANNOUNCEMENT, **values: str) -> Letter:
    made = letter_for(
        kind, c, NOW, Policy(), sender=SENDER, day=DAY, message="čćžšđ ČĆŽŠĐ", **values
    )
    assert isinstance(made, Letter), made
    return made


def test_a_letter_is_merged_in_the_clients_language_with_the_sender_and_the_date() -> None:
    bs = letter(client(), NoticeKind.OFFER, product="Kredit 5000 KM")
    assert bs.address == ("Šefika Ćorić", "Ulica Žrtava fašizma 12", "71000 Sarajevo")
    assert bs.subject == "Ponuda za Vas: Kredit 5000 KM"  # the template's subject, the heading
    assert bs.body == ("Poštovani/a Šefika Ćorić, za Vas imamo ponudu: Kredit 5000 KM. "
                       "Pozovite 0800 100 200.",)  # fmt: skip
    assert bs.place_date == "Sarajevo, 2. decembar 2026."
    assert bs.return_line == "Fondacija Centrala, Titova 1, 71000 Sarajevo"
    assert bs.closing == ("S poštovanjem,", "Fondacija Centrala")
    en = letter(client(language="en"), NoticeKind.DOCUMENT_EXPIRY)
    assert en.subject == "Your document expires on 01.01.2027"
    assert en.place_date == "Sarajevo, 2 December 2026"
    assert en.closing[0] == "Kind regards,"
    assert dated("Tuzla", date(2027, 3, 1), "de") == "Tuzla, 1. mart 2027."  # Bosnian else
    assert place_of(("X", "75000 Tuzla")) == "Tuzla"
    assert sender_lines("  \n ") == ("Fondacija Centrala", "Titova 1", "71000 Sarajevo")


def test_clients_without_a_postal_address_or_opted_out_of_letters_are_skipped_with_why() -> None:
    def why(c: Addressee) -> str:
        made = letter_for(NoticeKind.OFFICE_CHANGE, c, NOW, Policy(), sender=SENDER, day=DAY)
        assert isinstance(made, Skip), made
        return made.reason

    assert why(client(address=None)) == "no_address"
    assert why(client(address="  ")) == "no_address"
    assert why(client(opted_out=frozenset({Channel.LETTER}))) == "opted_out"
    assert why(client(address="\n".join(f"Line {i}" for i in range(6)))) == "address_too_long"
    assert why(client(address="Ulica " + "x" * 40)) == "address_too_long"
    # Out of e-mail and SMS only: the letter still goes (the policy is per channel).
    assert letter(client(opted_out=frozenset({Channel.EMAIL, Channel.SMS}))).client_id == 7
    # Five address lines and the name: the window's six.
    assert len(letter(client(address="\n".join(f"Line {i}" for i in range(5)))).address) == 6


def boxes(
    page: pypdfium2.PdfPage, text: str, after: str = ""
) -> list[tuple[float, float, float, float]]:
    """Each character of ``text`` (found in the page's text, past ``after``) as (left, top,
    right, bottom) in millimetres from the page's top left corner."""
    found = page.get_textpage()
    whole = found.get_text_range()
    assert after in whole and text in whole, whole
    start = whole.index(text, whole.index(after) + len(after))
    out = []
    for i in range(start, start + len(text)):
        if whole[i].isspace():
            continue
        left, bottom, right, top = found.get_charbox(i)
        out.append((left / MM, PAGE_HEIGHT - top / MM, right / MM, PAGE_HEIGHT - bottom / MM))
    return out


def test_the_address_and_the_return_line_fall_inside_the_window_field() -> None:
    longest = "Ulica Maršala Tita 123, stan 45, ulaz B"  # 39 of the 40 characters allowed
    made = letter(client(name="Šćekić-Đurđević Čedomir", address=f"{longest}\n71000 Sarajevo"))
    page = pypdfium2.PdfDocument(pdf.render([made]))[0]
    assert page.get_size() == pytest.approx((210 * MM, 297 * MM), abs=0.5)  # A4
    lines = [boxes(page, line, after=made.return_line) for line in made.address]
    for line in lines:
        for box in line:
            assert ADDRESS.holds(*box), (box, ADDRESS)
            assert WINDOW.holds(*box)
    # One under the other, in order.
    assert [line[0][1] for line in lines] == sorted(line[0][1] for line in lines)
    for box in boxes(page, made.return_line):
        assert RETURN_LINE.holds(*box), (box, RETURN_LINE)
    # The heading and the body start below the window.
    assert min(b[1] for b in boxes(page, made.subject)) > WINDOW.top + WINDOW.height


def test_bosnian_letters_come_back_out_of_the_pdf_a_page_per_letter_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = ["Čedo Ćatić", "Žana Šarić", "Đula Đurić", "Ana Kovač", "Emir Hodžić"]
    batch = [letter(client(i, name)) for i, name in enumerate(names)]
    monkeypatch.setattr(pdf, "CHUNK", 2)  # three typeset parts, joined
    document = pypdfium2.PdfDocument(pdf.render(batch))
    assert len(document) == 5
    for page, name in zip(document, names, strict=True):
        text = page.get_textpage().get_text_range()
        assert name in text
        assert "čćžšđ ČĆŽŠĐ" in text  # the message, merged into the body
        assert "Obavještenje" in text and "S poštovanjem," in text
    with pytest.raises(ValueError, match="no letters"):
        pdf.render([])


def test_a_clients_name_is_set_as_text_never_as_markup() -> None:
    odd = letter(client(name='#pagebreak() *Bold* "quoted" \\ $x$ [x]', address="A 1"))
    text = pypdfium2.PdfDocument(pdf.render([odd]))[0].get_textpage().get_text_range()
    assert '#pagebreak() *Bold* "quoted" \\ $x$ [x]' in text


def test_the_commands_bad_input_is_exit_2_naming_the_line_or_the_option(tmp_path: Path) -> None:
    """Found before the database is opened: nothing is written."""
    listed = tmp_path / "list.csv"
    out = tmp_path / "bad.pdf"
    run = ["letters", "render", "announcement", "--clients", str(listed), "--out", str(out)]

    def error(text: str, *args: str) -> str:
        listed.write_text(text)
        done = CliRunner().invoke(main, [*run, *args])
        assert done.exit_code == 2, done.output
        return done.output

    assert "line 3: no external_id" in error(
        "external_id,name\nK1,Ana\n,Nobody\n", "--message", "x"
    )
    assert "line 1: no external_id column" in error("id\n1\n", "--message", "x")
    assert "no client in it" in error("external_id\n", "--message", "x")
    assert "announcement needs --message" in error("external_id\nK1\n")
    assert "at most 500 characters" in error("external_id\nK1\n", "--message", "x" * 501)
    assert "give --segment or --clients" in error("external_id\nK1\n", "--segment", "new")
    done = CliRunner().invoke(
        main, ["letters", "render", "offer", "--segment", "new", "--out", "x"]
    )
    assert done.exit_code == 2 and "offer needs --product" in done.output
    assert not out.exists()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_sample_letter_renders_as_a_png_of_a4_proportions(tmp_path: Path) -> None:
    """`centrala letters sample --out docs/letter-sample.png` (README), and the picture the
    README shows is one such."""
    out = tmp_path / "letter-sample.png"
    done = CliRunner().invoke(main, ["letters", "sample", "--out", str(out), "--ppi", "100"])
    assert done.exit_code == 0, done.output
    width, height = png_size(out.read_bytes())
    assert height / width == pytest.approx(297 / 210, rel=0.01)
    assert width == pytest.approx(210 / 25.4 * 100, abs=2)
    shown = png_size((ROOT / "docs" / "letter-sample.png").read_bytes())
    assert shown[1] / shown[0] == pytest.approx(297 / 210, rel=0.01)
    assert "(docs/letter-sample.png)" in (ROOT / "README.md").read_text()


def test_a_letter_kept_in_the_outbox_reprints_as_it_was_printed() -> None:
    made = letter(client(language="en", name="Bob O'Neill"))
    key = letter_key(NoticeKind.ANNOUNCEMENT, 7, DAY, None, "čćžšđ ČĆŽŠĐ")
    row = outbox_row(made, NoticeKind.ANNOUNCEMENT, key, NOW)
    assert row["channel"] == Channel.LETTER and row["state"] == NoticeState.SENT
    assert row["provider_id"] == "printed" and row["sent_at"] == NOW and row["topic"] is None
    assert len(str(row["address"])) <= 254  # the column: six lines of 40 and their breaks
    again = reprinted(
        client_id=7,
        language=str(row["language"]),
        address=str(row["address"]),
        subject=str(row["subject"]),
        body=str(row["body"]),
        sender=SENDER,
        day=DAY,
    )
    assert again == made
    offer = letter(client(), NoticeKind.OFFER, product="Kredit")
    assert outbox_row(offer, NoticeKind.OFFER, "k", NOW)["topic"] == "offer"  # covers the day


def test_a_letters_key_is_one_per_client_kind_day_and_text() -> None:
    key = letter_key(NoticeKind.OFFER, 7, DAY, "Kredit", None)
    assert key == letter_key(NoticeKind.OFFER, 7, DAY, "Kredit", None)
    others = {
        letter_key(NoticeKind.OFFER, 8, DAY, "Kredit", None),
        letter_key(NoticeKind.ANNOUNCEMENT, 7, DAY, "Kredit", None),
        letter_key(NoticeKind.OFFER, 7, date(2026, 12, 3), "Kredit", None),
        letter_key(NoticeKind.OFFER, 7, DAY, "Kredit 2", None),
        letter_key(NoticeKind.OFFER, 7, DAY, None, "Kredit"),  # a product is not a message
    }
    assert key not in others and len(others) == 5
    assert all(len(k) <= 120 for k in (key, *others))  # the outbox's key column


def test_a_batch_asks_for_a_reprint_with_true_or_false() -> None:
    asked = {"kind": "birthday", "clients": [1]}
    assert parse_request(asked).reprint is False
    assert parse_request({**asked, "reprint": True}).reprint is True
    with pytest.raises(LetterRequestError) as bad:
        parse_request({**asked, "reprint": "yes"})
    assert bad.value.error_id == "bad_reprint"
