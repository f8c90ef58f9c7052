"""Engine, sessions and migrations. SQLite (aiosqlite) is the embedded default; PostgreSQL
(asyncpg) is the production database. Both run the same Alembic migrations."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:  # alembic (with mako and pygments) costs every command a third of a second
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def private_sqlite_file(database: str) -> None:
    """Create the SQLite file readable by its owner only (it holds clients' numbers, calls and
    password hashes), in a directory made owner-only when we create it; tighten the mode of
    one made before. SQLite gives its -wal and -shm files the database's mode."""
    path = Path(database)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            private_sqlite_file(parsed.database)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets the web pages read while the call handlers write.
            cur.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL cannot corrupt the database; it only skips an fsync per
            # commit (a power cut may lose the last commits, a process crash loses nothing).
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Blocking: for the CLI and for test fixtures (call it in a thread from async code)."""
    if make_url(url).get_backend_name() == "sqlite":
        db = make_url(url).database
        if db and db != ":memory:":
            private_sqlite_file(db)
    from alembic import command

    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(upgrade, url, revision)


# PostgreSQL advisory lock key of the set-up (b"centrala" as a number): one instance at a time.
SETUP_LOCK = int.from_bytes(b"centrala", "big") & 0x7FFF_FFFF_FFFF_FFFF


@contextlib.asynccontextmanager
async def setup_lock(url: str) -> AsyncIterator[None]:
    """One instance at a time migrates and fills a fresh database: several `serve`s started
    together on it would otherwise race to create the same tables (and the second one fail).
    PostgreSQL: a session advisory lock, gone with its connection if the holder dies. SQLite
    (one host): an exclusive lock on a file beside the database."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SETUP_LOCK})
                try:
                    yield
                finally:
                    await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SETUP_LOCK})
        finally:
            await engine.dispose()
        return
    db = parsed.database
    if parsed.get_backend_name() != "sqlite" or not db or db == ":memory:":
        yield
        return
    fd = os.open(f"{db}.setup-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# SQLSTATEs of a server that is away: class 08 (connection exception), and the server
# shutting down or not yet accepting (admin_shutdown, crash_shutdown, cannot_connect_now).
_AWAY_STATES = ("57P01", "57P02", "57P03")


def is_outage(exc: BaseException) -> bool:
    """The database is away (refused, reset, shutting down, starting), not a bad statement:
    the call path goes on from memory and the journal. asyncpg's errors reach us as OSError
    when the port is closed, else wrapped by SQLAlchemy (DBAPIError around its adapter's
    error, whose cause is asyncpg's own), so the whole chain is looked at."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    seen: BaseException | None = exc
    for _ in range(6):  # exc, its orig / cause, ...: a short chain
        if seen is None:
            return False
        if isinstance(seen, OSError | TimeoutError | OperationalError | InterfaceError):
            return True
        state = str(getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None) or "")
        if state.startswith("08") or state in _AWAY_STATES:
            return True
        kind = type(seen)
        if kind.__module__.startswith("asyncpg") and (
            "Connection" in kind.__name__ or "CannotConnectNow" in kind.__name__
        ):
            return True
        nxt = seen.orig if isinstance(seen, DBAPIError) else None
        seen = nxt if nxt is not None else seen.__cause__
    return False
