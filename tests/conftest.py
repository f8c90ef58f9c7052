"""Shared fixtures. Database tests run on SQLite and on a real PostgreSQL: the PostgreSQL URL
comes from CENTRALA_TEST_POSTGRES_URL (the test script starts the server). An unreachable
PostgreSQL fails the tests; nothing is skipped."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from models.db import create_engine, session_factory, upgrade_async

# The images are built and run on a Docker engine by scripts/test-docker (it starts one and
# names it here); the machines this suite runs on have none, and a build takes minutes.
if not os.environ.get("CENTRALA_TEST_DOCKER_HOST"):
    collect_ignore = ["docker"]

POSTGRES_URL = os.environ.get(
    "CENTRALA_TEST_POSTGRES_URL",
    "postgresql+asyncpg://centrala:centrala@127.0.0.1:5432/centrala_test",
)


@dataclass
class Database:
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @property
    def backend(self) -> str:
        return self.engine.dialect.name


async def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def ensure_postgres_database(url: str) -> None:
    """Create the database named in ``url`` if missing (the test role has CREATEDB)."""
    parsed = make_url(url)
    admin = create_engine(
        parsed.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    try:
        async with admin.connect() as conn:
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}
            )
            if not exists:
                await conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        await admin.dispose()


def postgres_url(suffix: str = "") -> str:
    """The test PostgreSQL URL, or a sibling database (``_calls``) for tests that share the
    server with a running `centrala serve`."""
    parsed = make_url(POSTGRES_URL)
    return parsed.set(database=f"{parsed.database}{suffix}").render_as_string(hide_password=False)


async def make_database(backend: str, tmp_path: Path, suffix: str = "") -> Database:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'centrala.db'}"
    else:
        url = postgres_url(suffix)
        await ensure_postgres_database(url)
        await _reset_postgres(url)
    await upgrade_async(url)
    engine = create_engine(url)
    return Database(url, engine, session_factory(engine))


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty CRM database, once on each backend."""
    db = await make_database(request.param, tmp_path)
    try:
        yield db
    finally:
        await db.engine.dispose()
