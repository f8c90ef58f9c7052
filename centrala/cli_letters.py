"""`centrala letters ...`: printed letters to clients. `render KIND (--clients FILE.csv |
--segment S) --out FILE.pdf [--reprint]` typesets a kind's letter to each client the contact
policy lets through by letter (a postal address, not opted out, not printed that day
already unless reprinted), one A4 PDF for window envelopes, keeps each new one in the
outbox as printed once the PDF is written, and says how many and who was skipped why;
`queued --out FILE.pdf` prints the letters the notices queued (clients whose channel is a
letter); `sample --out FILE.png` draws the README's sample letter. The clients' list is read as
`centrala notices send` reads it. Its imports are inside the commands: every `centrala`
command loads this module."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click

from centrala.cli_notices import (
    SEND_KINDS,
    _run,
    _today,
    asked,
    client_ids,
    whom_and_what,
)

KINDS = {**SEND_KINDS, "document-expiry": "document_expiry", "birthday": "birthday"}


@click.group()
def letters() -> None:
    """Printed letters to clients (one PDF a batch, A4, for window envelopes)."""


@letters.command("render")
@click.argument("kind", type=click.Choice(sorted(KINDS)))
@whom_and_what
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="the PDF to write",
)
@click.option(
    "--reprint",
    is_flag=True,
    help="print again the letters of this batch printed today already (as they were)",
)
def letters_render(
    kind: str,
    segment: str | None,
    clients_file: Path | None,
    out: Path,
    product: str | None,
    message: str | None,
    reprint: bool,
) -> None:
    """A kind's letter to each listed client, in their language, into one PDF."""
    from centrala.logs import configure_logging
    from centrala.settings import get_settings
    from core.letters import PRINTED_TODAY, sender_lines
    from core.notices import NoticeKind
    from usecases.letters import Composed, compose, record

    configure_logging("console", "WARNING")
    notice_kind = NoticeKind(KINDS[kind])
    _, wanted = asked(kind, notice_kind, segment, clients_file, product, message)
    settings = get_settings()

    async def make(sessions: Any) -> Composed:
        now = datetime.now(UTC)
        ids = await client_ids(sessions, segment, wanted, now, "nothing was printed")
        return await compose(
            sessions,
            notice_kind,
            ids,
            now,
            settings.notice_policy,
            sender=sender_lines(settings.letters_sender),
            day=_today(settings),
            product=product,
            message=message,
            reprint=reprint,
        )

    def hint(composed: Composed) -> str:
        return " (--reprint prints them again)" if composed.skipped[PRINTED_TODAY] else ""

    _print_batch(kind, out, settings, make, record, hint)


@letters.command("queued")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="the PDF to write",
)
@click.option(
    "--limit",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="letters at most in this batch (the oldest first)",
)
def letters_queued(out: Path, limit: int) -> None:
    """The letters the notices queued for printing (clients whose channel is a letter),
    into one PDF, each marked printed once it is written."""
    from centrala.logs import configure_logging
    from centrala.settings import get_settings
    from core.letters import sender_lines
    from usecases.letters import Waiting, printed, waiting

    configure_logging("console", "WARNING")
    settings = get_settings()

    async def make(sessions: Any) -> Waiting:
        sender = sender_lines(settings.letters_sender)
        return await waiting(sessions, sender=sender, day=_today(settings), limit=limit)

    async def keep(sessions: Any, batch: Waiting) -> bool:
        return await printed(sessions, batch, datetime.now(UTC))

    _print_batch("queued", out, settings, make, keep, lambda _: "")


class _Batch(Protocol):
    letters: list[Any]

    def summary(self) -> str: ...


B = TypeVar("B", bound=_Batch)


def _print_batch(
    label: str,
    out: Path,
    settings: Any,
    make: Callable[[Any], Awaitable[B]],
    keep: Callable[[Any, B], Awaitable[bool]],
    hint: Callable[[B], str],
) -> None:
    """The batch ``make`` gives typeset into ``out``: kept (``keep``: in the outbox, as
    printed) once its PDF is on disk, and handed over (renamed) once kept, so a failure on
    the way leaves neither a letter unkept nor a PDF without its record; made again without
    the letters another batch kept first. Nobody to print: exit 1, nothing written."""
    from letters.pdf import render
    from models.db import create_engine, session_factory

    partial = out.with_name(out.name + ".part")

    def write(batch: B) -> int:
        pdf = render(batch.letters)
        try:
            partial.write_bytes(pdf)
        except OSError as exc:
            raise click.ClickException(f"cannot write {out}: {exc}") from exc
        return len(pdf)

    async def work() -> tuple[B, int]:
        engine = create_engine(settings.effective_database_url)
        sessions = session_factory(engine)
        try:
            batch = await make(sessions)
            size = await asyncio.to_thread(write, batch) if batch.letters else 0
            if await keep(sessions, batch) and batch.letters:
                size = await asyncio.to_thread(write, batch)  # without another batch's
            return batch, size
        finally:
            await engine.dispose()

    try:
        batch, size = _run(work)
    except BaseException:  # nothing kept: no PDF either
        partial.unlink(missing_ok=True)
        raise
    if not batch.letters:
        partial.unlink(missing_ok=True)
        click.echo(f"{label}: {batch.summary()}; nothing to print, {out} not written{hint(batch)}")
        sys.exit(1)
    try:
        partial.replace(out)
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc}") from exc
    pages = len(batch.letters)
    click.echo(f"{label}: {batch.summary()}; {out}: {pages} pages, {size // 1024} KB")


@letters.command("sample")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="the PNG to write",
)
@click.option("--ppi", default=72.0, show_default=True, help="pixels per inch")
def letters_sample(out: Path, ppi: float) -> None:
    """The sample letter (a made-up client, Bosnian) as a PNG."""
    from datetime import date

    from core.letters import sample
    from letters.pdf import render_png

    out.write_bytes(render_png(sample(date(2026, 12, 2)), ppi))
    click.echo(f"{out}: the sample letter at {ppi:g} ppi")
