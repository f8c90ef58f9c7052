"""`centrala procedures ...`: the procedural calls' tasks (core.procedures), straight on the
database. `centrala serve` runs the same ``generate_procedures`` on a schedule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from centrala.settings import get_settings

if TYPE_CHECKING:
    from core.procedures import ProcedureRules


@click.group()
def procedures() -> None:
    """Procedural calls generated from CRM events (payments, loans, ID documents)."""


def _read_rules(path: Path | None) -> ProcedureRules:
    from pydantic import ValidationError

    from core.procedures import ProcedureRules
    from dialplan.validate import FlowError, read_document

    if path is None:
        return ProcedureRules()
    try:
        data = read_document(path.read_text(encoding="utf-8"), str(path))
        return ProcedureRules.model_validate(data or {})
    except (OSError, UnicodeDecodeError, FlowError) as exc:
        raise click.ClickException(f"{path}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'rules'}: {e['msg']}" for e in exc.errors()
        )
        raise click.ClickException(f"{path}: {problems}") from exc


@procedures.command("generate")
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML/JSON: document_days, monitoring_days, payment_days, ... (core.procedures)",
)
def procedures_generate(rules_file: Path | None) -> None:
    """Close the open tasks whose cause has gone, then add the tasks the CRM's payments,
    loans and ID documents call for now. Running it again adds nothing twice."""
    from sqlalchemy.exc import SQLAlchemyError

    from models.db import create_engine, session_factory
    from models.procedures import GenerateResult, generate_procedures

    rules = _read_rules(rules_file)

    async def run() -> GenerateResult:
        engine = create_engine(get_settings().effective_database_url)
        try:
            return await generate_procedures(session_factory(engine), datetime.now(UTC), rules)
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(run())
    except (SQLAlchemyError, OSError) as exc:
        raise click.ClickException(f"database: {exc}") from exc
    click.echo(result.summary())
