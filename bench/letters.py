"""How fast a batch of printed letters is typeset (``centrala letters render`` without the
database): ``--letters`` clients with Bosnian names and addresses, each one's office-change
letter merged (``core.letters.letter_for``) and the batch typeset into one A4 PDF by Typst
(``letters.pdf.render``, ``CHUNK`` letters at a time, the parts joined), the PDF written to
a temporary file and read back with PDFium (a page per letter, the last one's name in it).
Prints the letters per second and the process's peak resident memory, and how much of it the
batch added.

    .venv/bin/python bench/letters.py --letters 1000

The library was chosen by the same measure against ReportLab and fpdf2 (letters/pdf.py
gives the figures and says why Typst).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pypdfium2  # noqa: E402

from core.letters import DEFAULT_SENDER, Letter, letter_for, sender_lines  # noqa: E402
from core.notices import Addressee, NoticeKind, Policy, Recipient  # noqa: E402
from letters.pdf import CHUNK, render_to  # noqa: E402

FIRST = ["Đorđe", "Šefika", "Čedomir", "Žana", "Ćamil", "Amra", "Emir", "Lejla"]
LAST = ["Čolić", "Šarić", "Đurić", "Žunić", "Ćatić", "Hodžić", "Kovačević", "Begović"]
STREETS = ["Žrtava fašizma", "Maršala Tita", "Ferhadija", "Čobanija", "Đulagina", "Šenoina"]
TOWNS = ["71000 Sarajevo", "75000 Tuzla", "72000 Zenica", "88000 Mostar", "78000 Banja Luka"]


def peak_mb() -> float:
    """The process's peak resident memory so far (Linux: kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def clients(n: int) -> list[Addressee]:
    return [
        Addressee(
            Recipient(
                client_id=i,
                language="en" if i % 5 == 0 else "bs",
                zone=None,
                phone=None,
                email=None,
                postal_address=f"{STREETS[i % len(STREETS)]} {i % 200 + 1}\n"
                f"{TOWNS[i % len(TOWNS)]}",
                preferred=None,
            ),
            f"{FIRST[i % len(FIRST)]} {LAST[i // len(FIRST) % len(LAST)]}",
        )
        for i in range(1, n + 1)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--letters", type=int, default=1000, help="letters in the batch")
    args = parser.parse_args()
    batch = clients(args.letters)
    sender = sender_lines(DEFAULT_SENDER)
    now = datetime.now(UTC)
    before = peak_mb()  # the interpreter, the libraries, the clients made up
    started = time.perf_counter()
    made = [
        letter_for(
            NoticeKind.OFFICE_CHANGE,
            c,
            now,
            Policy(),
            sender=sender,
            day=date(2026, 12, 2),
            message="od 1. januara naša poslovnica u Žepču radi u ulici Šehidska 12, "
            "svaki radni dan od 8 do 16 sati. Čekamo Vas!",
        )
        for c in batch
    ]
    letters = [x for x in made if isinstance(x, Letter)]
    merged = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "letters.pdf"
        size = render_to(letters, out)
        seconds = time.perf_counter() - started
        peak = peak_mb()
        document = pypdfium2.PdfDocument(out)
        pages = len(document)
        last = document[pages - 1].get_textpage().get_text_range()
    if pages != len(letters) or letters[-1].address[0] not in last:
        sys.exit(f"the PDF has {pages} pages for {len(letters)} letters, or they are out of order")
    print(
        f"typeset {len(letters)} letters in {seconds:.2f} s (merge {merged - started:.2f} s): "
        f"{len(letters) / seconds:.0f} letters/s; {pages} pages, {size / 1e6:.1f} MB PDF, "
        f"{CHUNK} letters a part"
    )
    print(f"memory: peak {peak:.0f} MB during it, {peak - before:.0f} MB above the peak before")


if __name__ == "__main__":
    main()
