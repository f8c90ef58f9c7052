"""Versioned storage of call flows in the ``flow_versions`` table.

``apply_flow`` validates a flow and, in one transaction, stores it as the next version of its
name, makes it the only active one and upserts the queues it changes into the ``queues``
table (where supervisors edit them live, models.roster). New calls
take the active version (``active_flow``); a call in progress keeps the version it started
with and fetches it by number (``flow_version``), so an apply never changes a call midway.

Concurrent applies of one name are serialised: on PostgreSQL by a transaction-scoped advisory
lock on the name, on SQLite by taking the database's write lock first thing. The unique keys
(name, version) and "one active per name" back this up; a conflict is retried.

Every version is numbered in one sequence per name: the published ones (the history, with
who, when and the note), the scheduled ones (``publish_due`` makes them live at their time,
or refuses them when another publish overtook them) and the trial ones (a draft frozen for its
test numbers' calls, models.flow_drafts), which are never active and never listed. Each
publish writes its audit entry in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialplan.model import Flow, QueueDef
from dialplan.validate import FlowError, validate
from models.audit import add_entry
from models.tables import FlowVersion, Queue

ATTEMPTS = 3
PUBLISHED = "published"
SCHEDULED = "scheduled"
REFUSED = "refused"  # a scheduled version another publish overtook: never went live
After = Callable[[AsyncSession], Awaitable[object]]
TRIAL = "trial"
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


def _readable(row: FlowVersion | None) -> Flow | None:
    """A stored version as a flow, or None when it no longer reads (a model changed since)."""
    if row is None:
        return None
    try:
        return Flow.model_validate(row.definition)
    except ValidationError:
        return None


async def _upsert_queues(session: AsyncSession, flow: Flow, previous: Flow | None) -> None:
    """The flow's queues into the live table: those it declares differently from the version
    it replaces (all, for a first version). A queue it leaves as it was keeps what a
    supervisor set live since (models.roster), instead of being reset by every publish."""
    before = previous.queues if previous is not None else {}
    changed = {qid: q for qid, q in flow.queues.items() if before.get(qid) != q}
    if not changed:
        return
    rows = [queue_row(qid, q) for qid, q in changed.items()]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(Queue).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Queue.id],
        set_={col: stmt.excluded[col] for col in (*sorted(_QUEUE_COLUMNS), "settings")},
    )
    await session.execute(stmt)


class PublishConflict(Exception):
    """Another version was published since the draft was taken: publishing it would undo
    that change unseen."""

    def __init__(self, expected: int | None, active: StoredVersion | None) -> None:
        self.expected = expected
        self.active = active
        by = f" by {active.created_by}" if active and active.created_by else ""
        when = f" at {active.created_at:%Y-%m-%d %H:%M} UTC" if active else ""
        now = active.version if active else None
        super().__init__(
            f"version {now} was published{by}{when} since this draft was taken from version "
            f"{expected}: compare them, then take the draft onto version {now} or discard it"
        )


@dataclass(frozen=True)
class StoredVersion:
    """A published version as the history lists it."""

    version: int
    active: bool
    created_at: datetime
    created_by: str | None
    note: str | None
    base_version: int | None
    checksum: str
    status: str = PUBLISHED
    publish_at: datetime | None = None

    @classmethod
    def of(cls, row: FlowVersion) -> StoredVersion:
        return cls(
            version=row.version,
            active=row.active,
            created_at=row.created_at,
            created_by=row.created_by,
            note=row.note,
            base_version=row.base_version,
            checksum=row.checksum,
            status=row.status,
            publish_at=row.publish_at,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "status": self.status,
            "active": self.active,
            # A scheduled version's row is written when scheduled and changed when it goes live.
            "published_at": (self.publish_at or self.created_at).isoformat(),
            "published_by": self.created_by,
            "note": self.note,
            "base_version": self.base_version,
            "checksum": self.checksum,
        }


@dataclass(frozen=True)
class Published:
    version: int
    changed: bool  # False: the flow equals the active version, nothing was written


async def next_version(session: AsyncSession, name: str) -> int:
    """The next number of ``name``'s one sequence (published and trial versions alike).
    The caller holds ``lock_name(session, f"flow:{name}")``."""
    latest = await session.scalar(
        select(func.max(FlowVersion.version)).where(FlowVersion.name == name)
    )
    return (latest or 0) + 1


async def _apply_once(
    sessions: async_sessionmaker[AsyncSession],
    flow: Flow,
    digest: str,
    created_by: str | None,
    note: str | None,
    expect_active: int | Literal["any"] | None,
    action: str,
    after: After | None,
) -> Published:
    async with sessions() as session, session.begin():
        await lock_name(session, f"flow:{flow.name}")
        active = await session.scalar(
            select(FlowVersion).where(FlowVersion.name == flow.name, FlowVersion.active)
        )
        if expect_active != "any" and expect_active != (active.version if active else None):
            raise PublishConflict(expect_active, StoredVersion.of(active) if active else None)
        if active is not None and active.checksum == digest:
            if after is not None:
                await after(session)
            return Published(active.version, changed=False)
        version = await next_version(session, flow.name)
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
                status=PUBLISHED,
                note=note,
                base_version=active.version if active else None,
            )
        )
        await session.flush()
        await _upsert_queues(session, flow, _readable(active))
        detail: dict[str, Any] = {
            "version": version,
            "replaced": active.version if active else None,
        }
        if note:
            detail["note"] = note
        add_entry(session, created_by or "cli", action, f"flow:{flow.name}", detail)
        if after is not None:
            await after(session)
        return Published(version, changed=True)


async def publish_flow(
    sessions: async_sessionmaker[AsyncSession],
    flow: Flow,
    created_by: str | None = None,
    *,
    note: str | None = None,
    expect_active: int | Literal["any"] | None = "any",
    action: str = "flow.publish",
    after: After | None = None,
) -> Published:
    """Validate ``flow`` (raising FlowError) and make it the active version of its name.

    ``expect_active``: the version the edit was taken from; another one active raises
    PublishConflict (nothing written). A flow equal to the active version writes nothing.
    ``after`` runs in the same transaction (the publish of a draft drops the draft).
    The queues it declares differently from the active version are upserted in the same
    transaction (a supervisor's live edit of a queue the flow leaves alone stays); others are
    left alone."""
    problems = validate(flow, await known_queue_ids(sessions))
    if problems:
        raise FlowError(problems)
    digest = checksum(flow)
    for attempt in range(ATTEMPTS):
        try:
            return await _apply_once(
                sessions, flow, digest, created_by, note, expect_active, action, after
            )
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def apply_flow(
    sessions: async_sessionmaker[AsyncSession], flow: Flow, created_by: str | None = None
) -> int:
    """``publish_flow`` for `centrala dialplan apply`: the new (or unchanged active) version."""
    published = await publish_flow(sessions, flow, created_by, action="flow.apply")
    return published.version


async def schedule_flow(
    sessions: async_sessionmaker[AsyncSession],
    flow: Flow,
    created_by: str,
    *,
    at: datetime,
    note: str | None = None,
    expect_active: int | Literal["any"] | None = "any",
    action: str = "flow.schedule",
    after: After | None = None,
) -> int:
    """Store ``flow`` to be published at ``at`` (``publish_due`` does it), validated now; its
    number. It goes live only if the version active now still is then: a publish between
    overtakes it (``refused``), as a draft would be refused."""
    problems = validate(flow, await known_queue_ids(sessions))
    if problems:
        raise FlowError(problems)
    async with sessions() as session, session.begin():
        await lock_name(session, f"flow:{flow.name}")
        active = await session.scalar(
            select(FlowVersion).where(FlowVersion.name == flow.name, FlowVersion.active)
        )
        if expect_active != "any" and expect_active != (active.version if active else None):
            raise PublishConflict(expect_active, StoredVersion.of(active) if active else None)
        version = await next_version(session, flow.name)
        session.add(
            FlowVersion(
                name=flow.name,
                version=version,
                definition=flow.model_dump(mode="json"),
                checksum=checksum(flow),
                active=False,
                created_by=created_by,
                status=SCHEDULED,
                note=note,
                base_version=active.version if active else None,
                publish_at=at,
            )
        )
        await session.flush()
        detail: dict[str, Any] = {"version": version, "at": at.isoformat()}
        if note:
            detail["note"] = note
        add_entry(session, created_by, action, f"flow:{flow.name}", detail)
        if after is not None:
            await after(session)
        return version


@dataclass(frozen=True)
class DueOutcome:
    name: str
    version: int
    published: bool  # False: refused, another version went live since it was scheduled


async def _publish_scheduled(
    sessions: async_sessionmaker[AsyncSession], row_id: int, now: datetime
) -> DueOutcome | None:
    async with sessions() as session, session.begin():
        name = await session.scalar(select(FlowVersion.name).where(FlowVersion.id == row_id))
        if name is None:
            return None
        await lock_name(session, f"flow:{name}")
        row = await session.get(FlowVersion, row_id)
        if row is None or row.status != SCHEDULED:  # another instance did it
            return None
        active = await session.scalar(
            select(FlowVersion).where(FlowVersion.name == name, FlowVersion.active)
        )
        subject = f"flow:{name}"
        if (active.version if active else None) != row.base_version:
            row.status = REFUSED
            add_entry(
                session,
                row.created_by or "cli",
                "flow.schedule_refused",
                subject,
                {"version": row.version, "active": active.version if active else None},
            )
            return DueOutcome(name, row.version, published=False)
        if active is not None:
            active.active = False
            await session.flush()
        row.active, row.status = True, PUBLISHED
        row.publish_at = now
        await session.flush()
        flow = Flow.model_validate(row.definition)
        await _upsert_queues(session, flow, _readable(active))
        detail = {"version": row.version, "replaced": active.version if active else None}
        add_entry(
            session, row.created_by or "cli", "flow.publish", subject, {**detail, "scheduled": True}
        )
        return DueOutcome(name, row.version, published=True)


async def publish_due(
    sessions: async_sessionmaker[AsyncSession], now: datetime
) -> list[DueOutcome]:
    """Publish every scheduled version whose time has come, oldest first (or refuse it when
    another version went live since it was scheduled). Safe to run in several processes."""
    async with sessions() as session:
        due = list(
            await session.scalars(
                select(FlowVersion.id)
                .where(FlowVersion.status == SCHEDULED, FlowVersion.publish_at <= now)
                .order_by(FlowVersion.publish_at, FlowVersion.id)
            )
        )
    outcomes = []
    for row_id in due:
        if (outcome := await _publish_scheduled(sessions, row_id, now)) is not None:
            outcomes.append(outcome)
    return outcomes


async def cancel_scheduled(
    sessions: async_sessionmaker[AsyncSession], name: str, version: int, actor: str
) -> bool:
    """Take a scheduled version back before it goes live (False: there is none such)."""
    async with sessions() as session, session.begin():
        await lock_name(session, f"flow:{name}")
        row = await session.scalar(
            select(FlowVersion).where(
                FlowVersion.name == name,
                FlowVersion.version == version,
                FlowVersion.status == SCHEDULED,
            )
        )
        if row is None:
            return False
        await session.delete(row)
        add_entry(session, actor, "flow.schedule_cancelled", f"flow:{name}", {"version": version})
        return True


async def versions(sessions: async_sessionmaker[AsyncSession], name: str) -> list[StoredVersion]:
    """The versions of ``name`` published, scheduled or refused (not trials), newest first."""
    async with sessions() as session:
        rows = await session.scalars(
            select(FlowVersion)
            .where(FlowVersion.name == name, FlowVersion.status != TRIAL)
            .order_by(FlowVersion.version.desc())
        )
        return [StoredVersion.of(row) for row in rows]


async def published_version(
    sessions: async_sessionmaker[AsyncSession], name: str, version: int
) -> Flow | None:
    """Published version ``version`` of ``name`` (not a trial one), or None."""
    async with sessions() as session:
        definition = await session.scalar(
            select(FlowVersion.definition).where(
                FlowVersion.name == name,
                FlowVersion.version == version,
                FlowVersion.status == PUBLISHED,
            )
        )
    return None if definition is None else Flow.model_validate(definition)


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
