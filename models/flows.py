"""Versioned storage of call flows in the ``flow_versions`` table.

``apply_flow`` validates a flow and, in one transaction, stores it as the next version of its
name, makes it the only active one and upserts its queues into the ``queues`` table. New calls
take the active version (``active_flow``); a call in progress keeps the version it started
with and fetches it by number (``flow_version``), so an apply never changes a call midway.

Concurrent applies of one name are serialised: on PostgreSQL by a transaction-scoped advisory
lock on the name, on SQLite by taking the database's write lock first thing. The unique keys
(name, version) and "one active per name" back this up; a conflict is retried.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialplan.model import Flow, QueueDef
from dialplan.validate import FlowError, validate
from models.tables import FlowVersion, Queue

ATTEMPTS = 3
_QUEUE_COLUMNS = {"name", "strategy", "priority", "max_wait_seconds"}


def canonical_json(flow: Flow) -> str:
    """The flow as JSON with sorted keys and no spaces: equal flows give equal text."""
    return json.dumps(
        flow.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def checksum(flow: Flow) -> str:
    return hashlib.sha256(canonical_json(flow).encode()).hexdigest()


def _lock_key(name: str) -> int:
    # A signed 64-bit key for pg_advisory_xact_lock, stable across processes.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def lock_name(session: AsyncSession, name: str) -> None:
    """Serialise writers of one named thing (a flow, a survey) until the transaction ends."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(name)})
    elif dialect == "sqlite":
        # A write as the first statement takes SQLite's write lock now (waiting for another
        # writer through busy_timeout), before we read the versions: no stale read.
        await session.execute(
            update(FlowVersion).where(FlowVersion.id == -1).values(active=FlowVersion.active)
        )


def queue_row(queue_id: str, queue: QueueDef) -> dict[str, Any]:
    """The ``queues`` row of a queue the flow declares."""
    return {
        "id": queue_id,
        "name": queue.name,
        "strategy": queue.strategy,
        "priority": queue.priority,
        "max_wait_seconds": queue.max_wait_seconds,
        "settings": queue.model_dump(mode="json", exclude=_QUEUE_COLUMNS),
    }


async def _upsert_queues(session: AsyncSession, flow: Flow) -> None:
    if not flow.queues:
        return
    rows = [queue_row(qid, q) for qid, q in flow.queues.items()]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(Queue).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Queue.id],
        set_={col: stmt.excluded[col] for col in (*sorted(_QUEUE_COLUMNS), "settings")},
    )
    await session.execute(stmt)


async def _apply_once(
    sessions: async_sessionmaker[AsyncSession], flow: Flow, digest: str, created_by: str | None
) -> int:
    async with sessions() as session, session.begin():
        await lock_name(session, f"flow:{flow.name}")
        active = await session.scalar(
            select(FlowVersion).where(FlowVersion.name == flow.name, FlowVersion.active)
        )
        if active is not None and active.checksum == digest:
            return active.version
        latest = await session.scalar(
            select(func.max(FlowVersion.version)).where(FlowVersion.name == flow.name)
        )
        version = (latest or 0) + 1
        await session.execute(
            update(FlowVersion)
            .where(FlowVersion.name == flow.name, FlowVersion.active)
            .values(active=False)
        )
        session.add(
            FlowVersion(
                name=flow.name,
                version=version,
                definition=flow.model_dump(mode="json"),
                checksum=digest,
                active=True,
                created_by=created_by,
            )
        )
        await session.flush()
        await _upsert_queues(session, flow)
        return version


async def apply_flow(
    sessions: async_sessionmaker[AsyncSession], flow: Flow, created_by: str | None = None
) -> int:
    """Validate ``flow`` (raising FlowError) and make it the active version of its name.

    Returns the new version number, or the active one unchanged (nothing written) when the
    flow is the same as the active version. The flow's queues are upserted in the same
    transaction; queues it does not declare are left alone."""
    problems = validate(flow, await known_queue_ids(sessions))
    if problems:
        raise FlowError(problems)
    digest = checksum(flow)
    for attempt in range(ATTEMPTS):
        try:
            return await _apply_once(sessions, flow, digest, created_by)
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def active_flow(
    sessions: async_sessionmaker[AsyncSession], name: str
) -> tuple[int, Flow] | None:
    """The active version of the flow ``name`` and its number, or None when never applied."""
    async with sessions() as session:
        row = await session.scalar(
            select(FlowVersion).where(FlowVersion.name == name, FlowVersion.active)
        )
    if row is None:
        return None
    return row.version, Flow.model_validate(row.definition)


async def active_version(sessions: async_sessionmaker[AsyncSession], name: str) -> int | None:
    """Only the number of the active version (a caller that caches flows by version)."""
    async with sessions() as session:
        return await session.scalar(
            select(FlowVersion.version).where(FlowVersion.name == name, FlowVersion.active)
        )


async def flow_version(
    sessions: async_sessionmaker[AsyncSession], name: str, version: int
) -> Flow | None:
    """Version ``version`` of the flow ``name``, active or not (for calls in progress)."""
    async with sessions() as session:
        definition = await session.scalar(
            select(FlowVersion.definition).where(
                FlowVersion.name == name, FlowVersion.version == version
            )
        )
    return None if definition is None else Flow.model_validate(definition)


async def known_queue_ids(sessions: async_sessionmaker[AsyncSession]) -> set[str]:
    """Ids of the queues in the database."""
    async with sessions() as session:
        return set((await session.scalars(select(Queue.id))).all())
