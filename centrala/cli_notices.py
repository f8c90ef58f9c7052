"""`centrala notices ...`: the notices to clients by hand. `run birthday|document-expiry
[--date DAY]` queues a day's birthday greetings or expiring-document notices (what `serve`
does each day; once per client and occasion however often it runs) and sends what is due;
`send KIND (--segment S | --clients FILE.csv)` a supervisor's offer, office change or
announcement; `status` counts the outbox by kind, channel and state. Its imports are inside
the commands: every `centrala` command loads this module."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click


@click.group()
def notices() -> None:
    """Notices to clients (SMS, Viber, e-mail, letters) through the outbox."""


def _run(work: Any) -> Any:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return asyncio.run(work())
    except (SQLAlchemyError, OSError) as exc:
        raise click.ClickException(f"database: {exc}") from exc


def _queue_and_send(settings: Any, queue_fn: Any) -> tuple[Any, Any]:
    """``queue_fn(sessions, setup)`` queues the notices; then the due ones are sent, through
    every channel the settings configure (the SMS gateway bound for the while)."""
    from centrala.noticing import notice_setup, sms_gateway
    from models.db import create_engine, session_factory
    from sms.smpp import SmscLoginRefused
    from usecases.notices import deliver, fallbacks

    if not (settings.smtp_host or settings.sms_smpp_host or settings.viber_base_url):
        raise click.ClickException(
            "no channel is configured: set CENTRALA_SMTP_HOST, CENTRALA_SMS_SMPP_HOST or "
            "CENTRALA_VIBER_BASE_URL"
        )

    async def work() -> tuple[Any, Any]:
        engine = create_engine(settings.effective_database_url)
        sessions = session_factory(engine)
        gateway = sms_gateway(settings, sessions) if settings.sms_smpp_host else None
        try:
            if gateway is not None:
                await gateway.start()  # an SMSC that is down: its messages wait, queued
            setup = notice_setup(settings, gateway)
            queued = await queue_fn(sessions, setup)
            await fallbacks(sessions, setup, datetime.now(UTC))  # failed Viber's SMS, too
            sent = await deliver(sessions, setup, lambda: datetime.now(UTC))
            return queued, sent
        except SmscLoginRefused as exc:
            raise click.ClickException(f"SMS: {exc}") from exc
        finally:
            if gateway is not None:
                await gateway.stop()
            await engine.dispose()

    result: tuple[Any, Any] = _run(work)
    return result


def _echo(label: str, queued: Any, sent: Any) -> None:
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(queued.skipped.items())) or "none"
    click.echo(
        f"{label}: queued {queued.added} (already {queued.already}, skipped: {skipped}); "
        f"sent {sent.sent}, to retry {sent.retried}, failed {sent.failed}"
    )


def _today(settings: Any) -> date:
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(settings.notice_policy.default_zone)).date()


@notices.command("run")
@click.argument("job", type=click.Choice(["birthday", "document-expiry"]))
@click.option("--date", "day", help="the day, YYYY-MM-DD (default: today, the call centre's)")
def notices_run(job: str, day: str | None) -> None:
    """Queue a job's notices and send the due ones now."""
    from centrala.logs import configure_logging
    from centrala.settings import get_settings
    from usecases.notices import birthdays, document_expiries

    configure_logging("console", "WARNING")  # a failure's line on stderr; the counts below
    settings = get_settings()
    try:
        when = date.fromisoformat(day) if day else _today(settings)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--date") from exc

    async def queue_fn(sessions: Any, setup: Any) -> Any:
        now = datetime.now(UTC)
        if job == "birthday":
            return await birthdays(sessions, setup, when, now)
        return await document_expiries(sessions, setup, when, now, settings.notices_document_days)

    _echo(f"{job} {when.isoformat()}", *_queue_and_send(settings, queue_fn))


SEND_KINDS = {"offer": "offer", "office-change": "office_change", "announcement": "announcement"}


def whom_and_what(command: Any) -> Any:
    """A supervisor's notice's options (``notices send``, ``letters render``): the clients,
    of a segment or a list, and the text the kind merges in."""
    for option in reversed(
        [
            click.option(
                "--segment",
                type=click.Choice(["new", "active", "inactive", "dormant"]),
                help="the clients of a CRM segment (from their loans)",
            ),
            click.option(
                "--clients",
                "clients_file",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="a CSV with an external_id column",
            ),
            click.option("--product", help="an offer's product"),
            click.option("--message", help="an office change's or announcement's text"),
        ]
    ):
        command = option(command)
    return command


@notices.command("send")
@click.argument("kind", type=click.Choice(sorted(SEND_KINDS)))
@whom_and_what
@click.option("--channel", type=click.Choice(["sms", "viber", "email", "letter"]))
def notices_send(
    kind: str,
    segment: str | None,
    clients_file: Path | None,
    channel: str | None,
    product: str | None,
    message: str | None,
) -> None:
    """A supervisor's offer, office change or announcement to a segment or a list of
    clients, under the contact policy; once per client for the same text on the same day."""
    from centrala.logs import configure_logging
    from centrala.settings import get_settings
    from core.notices import OFFER_TOPIC, Channel, NoticeKind
    from usecases.notices import occasion_of, queue

    configure_logging("console", "WARNING")
    notice_kind = NoticeKind(SEND_KINDS[kind])
    text, wanted = asked(kind, notice_kind, segment, clients_file, product, message)
    settings = get_settings()
    occasion = occasion_of(_today(settings), text or "")

    async def queue_fn(sessions: Any, setup: Any) -> Any:
        now = datetime.now(UTC)
        ids = await client_ids(sessions, segment, wanted, now, "nothing was sent")
        return await queue(
            sessions,
            setup,
            notice_kind,
            ids,
            now,
            occasion=occasion,
            topic=OFFER_TOPIC if notice_kind is NoticeKind.OFFER else None,
            channel=Channel(channel) if channel else None,
            product=product,
            message=message,
        )

    _echo(kind, *_queue_and_send(settings, queue_fn))


def asked(
    kind: str,
    notice_kind: Any,
    segment: str | None,
    clients_file: Path | None,
    product: str | None,
    message: str | None,
) -> tuple[str | None, dict[str, int]]:
    """``whom_and_what``'s options checked: the kind's text, and the listed external ids
    with their lines (none: the segment's clients)."""
    if (segment is None) == (clients_file is None):
        raise click.UsageError("give --segment or --clients, one of them")
    text = text_of(kind, notice_kind, product, message)
    return text, external_ids(clients_file) if clients_file is not None else {}


def text_of(kind: str, notice_kind: Any, product: str | None, message: str | None) -> str | None:
    """The text ``kind`` merges in (``--product`` or ``--message``; None: it needs none),
    checked: a usage error names the option."""
    from core.notices import MAX_TEXT, TEXT_FIELD

    field = TEXT_FIELD.get(notice_kind)
    if field is None:
        return None
    text = product if field == "product" else message
    if not text or not text.strip():
        raise click.UsageError(f"{kind} needs --{field}")
    if len(text) > MAX_TEXT:
        raise click.BadParameter(f"at most {MAX_TEXT} characters", param_hint=f"--{field}")
    return text


def external_ids(path: Path) -> dict[str, int]:
    """The external_id column of a CSV (UTF-8, comma or semicolon), in order, once each,
    with the line each first appears on (for the errors)."""
    import csv

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read it: {exc}", param_hint="--clients") from exc
    header = text.split("\n", 1)[0]
    delimiter = ";" if header.count(";") > header.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    if not reader.fieldnames or "external_id" not in reader.fieldnames:
        raise click.BadParameter("line 1: no external_id column", param_hint="--clients")
    seen: dict[str, int] = {}
    for row in reader:
        value = (row.get("external_id") or "").strip()
        if not value:
            raise click.BadParameter(
                f"line {reader.line_num}: no external_id", param_hint="--clients"
            )
        seen.setdefault(value, reader.line_num)
    if not seen:
        raise click.BadParameter("no client in it", param_hint="--clients")
    return seen


async def client_ids(
    sessions: Any, segment: str | None, wanted: dict[str, int], now: datetime, nothing: str
) -> list[int]:
    """The ids of a CRM segment's clients, or of the listed ones in the list's order (an
    unknown one, named with its line, is a bad parameter: ``nothing`` was done)."""
    from models.notices import ids_of, segment_clients

    if segment is not None:
        return await segment_clients(sessions, segment, now)
    found = await ids_of(sessions, list(wanted))
    if unknown := [e for e in wanted if e not in found]:
        shown = ", ".join(f"{e} (line {wanted[e]})" for e in unknown[:10])
        more = " …" if len(unknown) > 10 else ""
        raise click.BadParameter(
            f"{len(unknown)} unknown external_id(s): {shown}{more}; {nothing}",
            param_hint="--clients",
        )
    return [found[e] for e in wanted]


@notices.command("status")
@click.option("--json", "as_json", is_flag=True, help="as JSON")
def notices_status(as_json: bool) -> None:
    """The outbox: messages by kind, channel and state."""
    from centrala.settings import get_settings
    from models.db import create_engine, session_factory
    from models.notices import counts

    settings = get_settings()

    async def work() -> dict[tuple[str, str, str], int]:
        engine = create_engine(settings.effective_database_url)
        try:
            return await counts(session_factory(engine))
        finally:
            await engine.dispose()

    found = _run(work)
    if as_json:
        rows = [{"kind": k, "channel": c, "state": s, "count": n} for (k, c, s), n in found.items()]
        click.echo(json.dumps(sorted(rows, key=lambda r: (r["kind"], r["channel"], r["state"]))))
        return
    if not found:
        click.echo("the outbox is empty")
    for (kind, channel, state), n in sorted(found.items()):
        click.echo(f"{kind:16} {channel:7} {state:10} {n}")
