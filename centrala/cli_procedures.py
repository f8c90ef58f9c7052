"""`centrala procedures ...`: the procedural calls' tasks (core.procedures), straight on the
database. `centrala serve` runs the same ``generate_procedures`` on a schedule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import click

from centrala.settings import get_settings


@click.group()
def procedures() -> None:
    """Procedural calls generated from CRM events (payments, loans, ID documents)."""


@procedures.command("generate")
def procedures_generate() -> None:
    """Close the open tasks whose cause has gone, then add the tasks the CRM's payments,
    loans and ID documents call for now. Running it again adds nothing twice."""
    from sqlalchemy.exc import SQLAlchemyError

    from models.db import create_engine, session_factory
    from models.procedures import GenerateResult, generate_procedures

    async def run() -> GenerateResult:
        engine = create_engine(get_settings().effective_database_url)
        try:
            return await generate_procedures(session_factory(engine), datetime.now(UTC))
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(run())
    except (SQLAlchemyError, OSError) as exc:
        raise click.ClickException(f"database: {exc}") from exc
    click.echo(result.summary())
