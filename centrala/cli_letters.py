"""`centrala letters ...`: printed letters to clients. `render KIND (--clients FILE.csv |
--segment S) --out FILE.pdf` typesets a kind's letter to each client the contact policy lets
through by letter (a postal address, not opted out), one A4 PDF for window envelopes, and
says how many and who was skipped why; `sample --out FILE.png` draws the README's sample
letter. The clients' list is read as `centrala notices send` reads it. Its imports are inside
the commands: every `centrala` command loads this module."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

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
def letters_render(
    kind: str,
    segment: str | None,
    clients_file: Path | None,
    out: Path,
    product: str | None,
    message: str | None,
) -> None:
    """A kind's letter to each listed client, in their language, into one PDF."""
    from centrala.logs import configure_logging
    from centrala.settings import get_settings
    from core.letters import sender_lines
    from core.notices import NoticeKind
    from letters.pdf import render_to
    from models.db import create_engine, session_factory
    from usecases.letters import Composed, compose

    configure_logging("console", "WARNING")
    notice_kind = NoticeKind(KINDS[kind])
    _, wanted = asked(kind, notice_kind, segment, clients_file, product, message)
    settings = get_settings()

    async def work() -> Composed:
        engine = create_engine(settings.effective_database_url)
        sessions = session_factory(engine)
        try:
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
            )
        finally:
            await engine.dispose()

    composed: Composed = _run(work)
    if not composed.letters:
        click.echo(f"{kind}: {composed.summary()}; nothing to print, {out} not written")
        sys.exit(1)
    try:
        size = render_to(composed.letters, out)
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc}") from exc
    pages = len(composed.letters)
    click.echo(f"{kind}: {composed.summary()}; {out}: {pages} pages, {size // 1024} KB")


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
