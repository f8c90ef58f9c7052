"""`centrala notices ...`: the notices to clients by hand. `run birthday [--date DAY]` queues
a day's birthday greetings (what `serve` does each day; once per client and year however
often it runs) and sends what is due; `status` counts the outbox by kind, channel and state.
Its imports are inside the commands: every `centrala` command loads this module."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
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


@notices.command("run")
@click.argument("job", type=click.Choice(["birthday"]))
@click.option("--date", "day", help="the day, YYYY-MM-DD (default: today, the call centre's)")
def notices_run(job: str, day: str | None) -> None:
    """Queue a job's notices and send the due ones now."""
    from zoneinfo import ZoneInfo

    from centrala.logs import configure_logging
    from centrala.noticing import notice_setup, sms_gateway
    from centrala.settings import get_settings
    from models.db import create_engine, session_factory
    from sms.smpp import SmscLoginRefused
    from usecases.notices import birthdays, deliver

    configure_logging("console", "WARNING")  # a failure's line on stderr; the counts below
    settings = get_settings()
    policy = settings.notice_policy
    try:
        when = (
            date.fromisoformat(day) if day else datetime.now(ZoneInfo(policy.default_zone)).date()
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--date") from exc
    if not (settings.smtp_host or settings.sms_smpp_host):
        raise click.ClickException(
            "no channel is configured: set CENTRALA_SMTP_HOST or CENTRALA_SMS_SMPP_HOST"
        )

    async def work() -> tuple[Any, Any]:
        engine = create_engine(settings.effective_database_url)
        sessions = session_factory(engine)
        gateway = sms_gateway(settings, sessions) if settings.sms_smpp_host else None
        try:
            if gateway is not None:
                await gateway.start()  # an SMSC that is down: its messages wait, queued
            setup = notice_setup(settings, gateway)
            queued = await birthdays(sessions, setup, when, datetime.now(UTC))
            sent = await deliver(sessions, setup, lambda: datetime.now(UTC))
            return queued, sent
        except SmscLoginRefused as exc:
            raise click.ClickException(f"SMS: {exc}") from exc
        finally:
            if gateway is not None:
                await gateway.stop()
            await engine.dispose()

    queued, sent = _run(work)
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(queued.skipped.items())) or "none"
    click.echo(
        f"{job} {when.isoformat()}: queued {queued.added} (already {queued.already}, "
        f"skipped: {skipped}); sent {sent.sent}, to retry {sent.retried}, failed {sent.failed}"
    )


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
