"""Letters typeset by Typst (PyPI ``typst``, the binding to the Typst compiler).

Chosen by measuring 1000 one-page letters with Bosnian text in DejaVu Sans on this 2-core
machine: idle, Typst 1044 letters/s (216 MB peak), ReportLab 417/s (43 MB), fpdf2 66/s
(65 MB); with other work loading it (load 3), Typst 424-524/s, ReportLab 292-429/s, fpdf2
44/s. Typst is the fastest, uses both cores, justifies paragraphs, draws the PNG itself and
takes the letters as JSON data, never as markup (ReportLab's paragraphs parse theirs).

Its memory: one document's grows with its pages (5000 letters in one: 819 MB), and the
compiler keeps a cache of its last 10 compilations. So a batch is typeset ``CHUNK`` letters
at a time, the parts joined by PDFium (``pypdfium2``): 10,000 letters peak at 340 MB, 1000
at 182 MB (``bench/letters.py``). The compiler releases the GIL: ``render_async`` runs it
in a thread.

``render(letters)`` -> the PDF's bytes, ``render_to(letters, path)``, ``render_png(letter)``.
Imports ``core``."""

from __future__ import annotations

import asyncio
import ctypes
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import pypdfium2
import typst

from core.letters import ADDRESS, BODY, FOLD_MARKS, INFO_BLOCK, RETURN_LINE, Letter

HERE = Path(__file__).resolve().parent
TEMPLATE = (HERE / "letter.typ").read_bytes()
FONTS = str(HERE / "fonts")
CHUNK = 100  # letters typeset at once: the compiler's cache holds about ten of these
BOXES = json.dumps(
    {
        "info": asdict(INFO_BLOCK),
        "return_line": asdict(RETURN_LINE),
        "address": asdict(ADDRESS),
        "body": asdict(BODY),
        "folds": FOLD_MARKS,
    }
)


class LetterError(RuntimeError):
    """Typst refused the batch (a bug of ours: the template, the data's shape)."""


def _compile(
    letters: Sequence[Letter], fmt: Literal["pdf", "png"] = "pdf", ppi: float = 144
) -> bytes:
    data = json.dumps([asdict(x) for x in letters], ensure_ascii=False)
    try:
        # The stubs want the font paths of the input's type (bytes: the source itself).
        out = typst.compile(  # type: ignore[misc]
            TEMPLATE,
            format=fmt,
            ppi=ppi,
            font_paths=[FONTS],
            ignore_system_fonts=True,  # the same letters on every machine
            sys_inputs={"letters": data, "boxes": BOXES},
        )
    except Exception as exc:  # the binding raises its own TypstError, a RuntimeError, or ...
        raise LetterError(str(exc)) from exc
    assert isinstance(out, bytes)  # one page: one PNG
    return out


def render(letters: Sequence[Letter]) -> bytes:
    """One PDF, a page per letter, in the order given."""
    if not letters:
        raise ValueError("no letters to print")
    parts = [_compile(letters[i : i + CHUNK]) for i in range(0, len(letters), CHUNK)]
    if len(parts) == 1:
        return parts[0]
    joined = pypdfium2.PdfDocument.new()
    for part in parts:
        joined.import_pages(pypdfium2.PdfDocument(part))
    out = _Sink()
    joined.save(out)
    return out.data()


class _Sink:
    """A file-like PDFium writes the joined PDF into."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes | ctypes.Array[ctypes.c_char]) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def data(self) -> bytes:
        return b"".join(self.chunks)


def render_to(letters: Sequence[Letter], path: Path) -> int:
    """The PDF written to ``path`` (whole or not at all); its size in bytes."""
    pdf = render(letters)
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(pdf)
    partial.replace(path)
    return len(pdf)


async def render_async(letters: Sequence[Letter]) -> bytes:
    """``render`` off the event loop (Typst releases the GIL while it typesets)."""
    return await asyncio.to_thread(render, letters)


def render_png(letter: Letter, ppi: float = 72) -> bytes:
    """The letter's page as a PNG (the README's picture)."""
    return _compile([letter], fmt="png", ppi=ppi)
