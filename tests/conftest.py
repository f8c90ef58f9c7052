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
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from centrala.settings import Settings
from models.db import create_engine, session_factory, upgrade_async

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


async def make_database(backend: str, tmp_path: Path) -> Database:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'centrala.db'}"
    else:
        url = POSTGRES_URL
        await _reset_postgres(url)
    await upgrade_async(Settings(database_url=url))
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
