"""The ``centrala`` command. Names of commands and options are a contract with operators'
scripts (DESIGN.md): keep them."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

from centrala.settings import Settings, get_settings


def _settings() -> Settings:
    return get_settings()


@click.group()
def main() -> None:
    """Centrala: call-centre platform on a self-hosted Asterisk."""


# ---- pbx ----------------------------------------------------------------------------------


@main.group()
def pbx() -> None:
    """The local Asterisk 22 (a Debian sid chroot), for machines without Docker."""


@pbx.command("up")
def pbx_up() -> None:
    """Build (once), configure and start the local Asterisk; wait until ARI answers."""
    from centrala.pbx import LocalPBX, PBXError

    try:
        status = LocalPBX(_settings()).up(lambda m: click.echo(m, err=True))
    except PBXError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(status.as_dict()))


@pbx.command("down")
def pbx_down() -> None:
    """Stop the local Asterisk, leaving no process behind."""
    from centrala.pbx import LocalPBX

    stopped = LocalPBX(_settings()).down()
    click.echo("stopped" if stopped else "not running")


@pbx.command("status")
def pbx_status() -> None:
    """Print whether the local Asterisk runs and ARI answers (exit 1 when not running)."""
    from centrala.pbx import LocalPBX

    status = LocalPBX(_settings()).status()
    click.echo(json.dumps(status.as_dict()))
    if not status.running:
        sys.exit(1)


@pbx.command("cli")
@click.argument("command")
def pbx_cli(command: str) -> None:
    """Run one Asterisk CLI command in the local Asterisk."""
    from centrala.pbx import LocalPBX, PBXError

    try:
        click.echo(LocalPBX(_settings()).cli(command), nl=False)
    except PBXError as exc:
        raise click.ClickException(str(exc)) from exc


# ---- db -----------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The CRM database."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply Alembic migrations (default: to the newest)."""
    from models.db import upgrade

    settings = _settings()
    upgrade(settings, revision)
    click.echo(f"database at {revision}: {settings.effective_database_url.split('@')[-1]}")


@db.command("revision")
@click.option("-m", "--message", required=True, help="what the migration changes")
def db_revision(message: str) -> None:
    """Write a new migration from the difference between models/tables.py and the database
    (upgrade the database first). Review the generated file before committing it."""
    from alembic import command

    from models.db import alembic_config

    command.revision(
        alembic_config(_settings().effective_database_url), message=message, autogenerate=True
    )


# ---- import -------------------------------------------------------------------------------


@main.group("import")
def import_() -> None:
    """Import clients or agents from CSV. All rows or none: a bad row aborts the import."""


def _run_import(kind: str, path: Path) -> None:
    from centrala.logs import configure_logging
    from models.importing import ImportRejected, import_csv

    configure_logging("console", "WARNING")
    try:
        result = asyncio.run(import_csv(_settings(), kind, path))
    except ImportRejected as exc:
        click.echo(exc.report(), err=True)
        sys.exit(2)
    click.echo(result.summary())


@import_.command("clients")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_clients(path: Path) -> None:
    """Import clients (external_id, name, phone, language, client_type, ...)."""
    _run_import("clients", path)


@import_.command("agents")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_agents(path: Path) -> None:
    """Import agents (agent_id, name, role, endpoint, queues, skills)."""
    _run_import("agents", path)


# ---- serve --------------------------------------------------------------------------------


@main.command()
def serve() -> None:
    """Run Centrala: ARI apps, FastAGI server, AMI client and the web/status API."""
    from centrala.logs import configure_logging
    from centrala.service import run

    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
