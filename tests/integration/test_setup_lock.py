"""Several `serve` instances started together on a fresh database (as the several-nodes
deployment starts them): one at a time migrates it and puts in the shipped flow and surveys
(``models.db.setup_lock``), so none fails on the tables the other is making and the fresh
install's flow is applied once. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select

from centrala.service import prepare_database
from centrala.settings import Settings
from models.db import create_engine, session_factory
from models.tables import FlowVersion
from tests.conftest import _reset_postgres, ensure_postgres_database, postgres_url


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_instances_started_together_set_a_fresh_database_up_once(
    backend: str, tmp_path: Path
) -> None:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    else:
        url = postgres_url("_fresh")
        await ensure_postgres_database(url)
        await _reset_postgres(url)  # no table at all: a fresh install
    settings = Settings(database_url=url, data_dir=tmp_path)
    engines = [create_engine(url) for _ in range(3)]
    try:
        await asyncio.gather(*(prepare_database(settings, session_factory(e)) for e in engines))
        async with session_factory(engines[0])() as session:
            flows = await session.scalar(select(func.count()).select_from(FlowVersion))
        assert flows == 1  # the shipped flow, applied by the first one only
    finally:
        for engine in engines:
            await engine.dispose()
