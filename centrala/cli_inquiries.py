"""`centrala inquiries status [--json]`: the written inquiries' backlog (not closed, by kind
and state) and those that breached their SLA or come near it. Its imports are inside the
command: every `centrala` command loads this module."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from centrala.cli_notices import _run


@click.group()
def inquiries() -> None:
    """Written inquiries: e-mail, the contact form, Facebook and Instagram."""


@inquiries.command("status")
@click.option("--json", "as_json", is_flag=True, help="as JSON")
def inquiries_status(as_json: bool) -> None:
    """The backlog by kind and state, and the SLA breaches and near-breaches."""
    from centrala.inquiring import inquiry_setup
    from centrala.settings import get_settings
    from models.db import create_engine, session_factory
    from models.inquiries import backlog
    from usecases.inquiries import Late, late, queue_calendars

    settings = get_settings()
    setup = inquiry_setup(settings)

    async def work() -> tuple[dict[tuple[str, str], int], list[Late]]:
        engine = create_engine(settings.effective_database_url)
        sessions = session_factory(engine)
        try:
            setup.calendars.update(await queue_calendars(sessions))  # the queues' hours
            return await backlog(sessions), await late(sessions, setup, datetime.now(UTC))
        finally:
            await engine.dispose()

    counts, overdue = _run(work)

    def due(x: Late) -> str | None:
        at = x.sla.first_response_due or x.sla.resolution_due
        return at.isoformat() if at is not None else None

    if as_json:
        shown: dict[str, Any] = {
            "backlog": [
                {"kind": k, "state": s, "count": n} for (k, s), n in sorted(counts.items())
            ],
            "late": [
                {
                    "id": x.inquiry.id,
                    "kind": x.inquiry.kind,
                    "state": x.inquiry.state,
                    "owner": x.inquiry.owner_id,
                    "breached": x.sla.breached,
                    "due": due(x),
                }
                for x in overdue
            ],
        }
        click.echo(json.dumps(shown))
        return
    if not counts:
        click.echo("no inquiry is open")
    for (kind, state), n in sorted(counts.items()):
        click.echo(f"{kind:20} {state:8} {n}")
    for x in overdue:
        what = "BREACHED" if x.sla.breached else "near"
        click.echo(
            f"{what:8} #INQ-{x.inquiry.id} {x.inquiry.kind} {x.inquiry.state} "
            f"owner={x.inquiry.owner_id or '-'} due={due(x) or '-'}"
        )
