"""Drafts of call flows (``flow_drafts``): one per flow and owner, changed in place until it
is published or discarded. A draft that passes validation and has test numbers is frozen
into ``flow_versions`` as a trial version; calls from those numbers run it (the call path
reads the numbers with the active versions, models.crm), everyone else the active version.

A number is on the test list of at most one draft of a flow, checked under the flow's lock.
Imports models.tables, models.flows and models.audit; the rules of what may be saved are the
caller's (usecases.flow_editing)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialplan.model import Flow
from models.audit import add_entry
from models.flows import TRIAL, checksum, lock_name, next_version
from models.tables import FlowDraft, FlowVersion


class TestNumberTaken(Exception):
    """A test number already on another draft of the same flow."""

    def __init__(self, number: str, owner: str) -> None:
        self.number = number
        self.owner = owner
        super().__init__(f"{number} is already a test number of {owner}'s draft of this flow")


@dataclass(frozen=True)
class Draft:
    name: str
    owner: str
    definition: dict[str, Any]
    base_version: int | None
    test_numbers: list[str]
    trial_version: int | None
    updated_at: datetime

    @classmethod
    def of(cls, row: FlowDraft) -> Draft:
        return cls(
            name=row.name,
            owner=row.owner,
            definition=dict(row.definition),
            base_version=row.base_version,
            test_numbers=list(row.test_numbers),
            trial_version=row.trial_version,
            updated_at=row.updated_at,
        )


async def get_draft(
    sessions: async_sessionmaker[AsyncSession], name: str, owner: str
) -> Draft | None:
    async with sessions() as session:
        row = await session.scalar(
            select(FlowDraft).where(FlowDraft.name == name, FlowDraft.owner == owner)
        )
        return None if row is None else Draft.of(row)


async def _trial_version(session: AsyncSession, trial: Flow) -> int:
    """The trial version holding exactly ``trial``: the one stored before, or a new one (a
    draft saved again unchanged does not grow the sequence)."""
    digest = checksum(trial)
    found = await session.scalar(
        select(FlowVersion.version).where(
            FlowVersion.name == trial.name,
            FlowVersion.status == TRIAL,
            FlowVersion.checksum == digest,
        )
    )
    if found is not None:
        return int(found)
    version = await next_version(session, trial.name)
    session.add(
        FlowVersion(
            name=trial.name,
            version=version,
            definition=trial.model_dump(mode="json"),
            checksum=digest,
            active=False,
            status=TRIAL,
        )
    )
    await session.flush()
    return version


async def store_draft(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    owner: str,
    definition: dict[str, Any],
    *,
    base_version: int | None,
    test_numbers: list[str],
    trial: Flow | None,
) -> Draft:
    """Save ``owner``'s draft of ``name``. ``trial``: the draft's flow when it may be tried
    from a phone (valid; None otherwise: its test numbers then get the active version).
    Raises TestNumberTaken (nothing written)."""
    async with sessions() as session, session.begin():
        await lock_name(session, f"flow:{name}")
        others = await session.execute(
            select(FlowDraft.owner, FlowDraft.test_numbers).where(
                FlowDraft.name == name, FlowDraft.owner != owner
            )
        )
        for other, numbers in others:
            for number in test_numbers:
                if number in numbers:
                    raise TestNumberTaken(number, str(other))
        trial_version = await _trial_version(session, trial) if trial and test_numbers else None
        row = await session.scalar(
            select(FlowDraft).where(FlowDraft.name == name, FlowDraft.owner == owner)
        )
        if row is None:
            row = FlowDraft(name=name, owner=owner)
            session.add(row)
        before = (list(row.test_numbers or []), row.trial_version)
        row.definition = definition
        row.base_version = base_version
        row.test_numbers = test_numbers
        row.trial_version = trial_version
        row.updated_at = datetime.now(UTC)
        await session.flush()
        if before != (test_numbers, trial_version):
            # What test callers hear changed: that is a change to the line, on the record.
            add_entry(
                session,
                owner,
                "flow.trial",
                f"flow:{name}",
                {"test_numbers": test_numbers, "trial_version": trial_version},
            )
        return Draft.of(row)


async def discard_draft(sessions: async_sessionmaker[AsyncSession], name: str, owner: str) -> bool:
    async with sessions() as session, session.begin():
        return await drop_draft(session, name, owner)


async def drop_draft(session: AsyncSession, name: str, owner: str) -> bool:
    """Delete the draft in the caller's transaction (the publish that made it live)."""
    result = await session.execute(
        delete(FlowDraft).where(FlowDraft.name == name, FlowDraft.owner == owner)
    )
    return bool(getattr(result, "rowcount", 0))


async def trial_numbers(session: AsyncSession) -> dict[tuple[str, str], int]:
    """(flow name, test number) -> trial version, for the call path."""
    rows = await session.execute(
        select(FlowDraft.name, FlowDraft.test_numbers, FlowDraft.trial_version).where(
            FlowDraft.trial_version.is_not(None)
        )
    )
    return {
        (str(name), str(number)): int(version)
        for name, numbers, version in rows
        if version is not None
        for number in numbers
    }
