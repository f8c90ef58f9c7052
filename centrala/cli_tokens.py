"""`centrala token ...`: per-user API tokens (models.api_tokens), straight on the database, for
the host's operator. The desk's /desk/api/tokens does the same for a logged-in user."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import click

from centrala.settings import get_settings

T = TypeVar("T")


@click.group()
def token() -> None:
    """Per-user tokens of the bearer API (/api): each acts with its agent's role."""


def _on_database(work: Callable[..., Awaitable[T]]) -> T:
    from sqlalchemy.exc import SQLAlchemyError

    from models.api_tokens import ApiTokenStore
    from models.db import create_engine, session_factory

    async def run() -> T:
        engine = create_engine(get_settings().effective_database_url)
        try:
            return await work(ApiTokenStore(session_factory(engine)))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except (SQLAlchemyError, OSError) as exc:
        raise click.ClickException(f"database: {exc}") from exc


def _when(value: datetime | None, never: str = "-") -> str:
    return never if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


@token.command("create")
@click.argument("agent_id")
@click.option("--name", required=True, help="what the token is for, e.g. 'CRM sync'")
@click.option("--expires-days", type=int, help="it stops working after N days (default: never)")
def token_create(agent_id: str, name: str, expires_days: int | None) -> None:
    """Make a token for AGENT_ID and print it, once: only its hash is kept."""
    from core.api_tokens import TokenRequestError
    from models.api_tokens import ApiTokenStore, Created, TooManyTokens, UnknownAgent

    async def work(store: ApiTokenStore) -> Created:
        return await store.create(agent_id, name, expires_days, "cli", datetime.now(UTC))

    try:
        created = _on_database(work)
    except TokenRequestError as exc:
        raise click.ClickException(str(exc).replace("expires_days", "--expires-days")) from exc
    except UnknownAgent as exc:
        raise click.ClickException(f"no agent {agent_id!r}") from exc
    except TooManyTokens as exc:
        raise click.ClickException(str(exc)) from exc
    row = created.row
    click.echo(created.token)
    click.echo(
        f"token {row.id} (ctk_{row.public_id}) for {row.agent_id}, expires "
        f"{_when(row.expires_at, 'never')}: shown only now",
        err=True,
    )


@token.command("list")
@click.argument("agent_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="one JSON document")
def token_list(agent_id: str | None, as_json: bool) -> None:
    """Every token (of AGENT_ID): state, expiry, last used when and from where."""
    from models.api_tokens import ApiTokenStore, TokenRow

    async def work(store: ApiTokenStore) -> list[TokenRow]:
        return await store.list(agent_id)

    rows = _on_database(work)
    now = datetime.now(UTC)
    if as_json:
        click.echo(json.dumps({"tokens": [r.to_json(now) for r in rows]}, indent=2))
        return
    if not rows:
        click.echo("no tokens")
        return
    for r in rows:
        used = f"{_when(r.last_used_at, 'never')} from {r.last_used_from}" if r.last_used_at else ""
        click.echo(
            f"{r.id:>4}  ctk_{r.public_id}  {r.agent_id:<12} {r.state(now):<8} "
            f"expires {_when(r.expires_at, 'never'):<20} used {used or 'never'}  {r.name}"
        )


@token.command("revoke")
@click.argument("token_id", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke a token (by its id in `centrala token list`): refused from now on."""
    from models.api_tokens import ApiTokenStore, TokenRow

    async def work(store: ApiTokenStore) -> TokenRow | None:
        return await store.revoke(token_id, datetime.now(UTC))

    row = _on_database(work)
    if row is None:
        raise click.ClickException(f"no token {token_id}")
    click.echo(f"token {row.id} (ctk_{row.public_id}) of {row.agent_id} revoked")
