"""CSV import of clients, agents, loans and payments: all rows or none.

Three steps, so that a bad file never leaves half an import behind: the text is parsed and
every row validated by pure functions; then the rows are checked against the database (unknown
managers, loans of unknown clients, payments of unknown loans or clients); then everything is
written in one transaction. Any error raises ImportRejected with every problem found, and
nothing is written. Importing the same file twice changes nothing.

The column names are a contract with operators' scripts (DESIGN.md): keep them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute, selectinload

from core.csvrows import (
    MAX_FILE_BYTES,
    AgentRow,
    ClientRow,
    ImportRejected,
    LoanRow,
    PaymentRow,
    RowError,
    decode_csv_bytes,
    parse_agents,
    parse_clients,
    parse_loans,
    parse_payments,
)
from models.db import create_engine, session_factory
from models.tables import (
    Agent,
    Client,
    ClientPhone,
    Loan,
    Payment,
    Queue,
    QueueMember,
)

ImportKind = Literal["clients", "agents", "loans", "payments"]
KINDS: tuple[ImportKind, ...] = ("clients", "agents", "loans", "payments")

_IN_CHUNK = 500  # ids per IN (...) query, well under SQLite's and asyncpg's parameter limits


@dataclass(frozen=True)
class ImportResult:
    kind: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    queues_created: int = 0

    def summary(self) -> str:
        text = f"{self.kind}: {self.created} created, {self.updated} updated, "
        text += f"{self.unchanged} unchanged"
        if self.kind == "agents":
            text += f", {self.queues_created} queues created"
        return text


def read_csv_file(path: Path) -> str:
    """Blocking: call it in a thread from async code."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ImportRejected([RowError(None, None, None, f"cannot read: {exc.strerror}")]) from None
    return decode_csv_bytes(data)


# ---- writing --------------------------------------------------------------------------------


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


async def _existing_ids(
    session: AsyncSession, column: InstrumentedAttribute[str], ids: Iterable[str]
) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(sorted(set(ids))):
        found.update(await session.scalars(select(column).where(column.in_(chunk))))
    return found


def _assign(obj: Any, values: dict[str, Any]) -> bool:
    """Set the attributes that differ; True when any did."""
    changed = False
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


def _sync_phones(client: Client, numbers: Sequence[str]) -> bool:
    # Numbers that stay keep their rows: deleting and re-inserting one would trip the
    # (client_id, number) unique key, since the flush inserts before it deletes.
    wanted = set(numbers)
    have = {p.number for p in client.phones}
    for phone in [p for p in client.phones if p.number not in wanted]:
        client.phones.remove(phone)
    client.phones.extend(ClientPhone(number=n) for n in numbers if n not in have)
    return wanted != have


async def _write_clients(session: AsyncSession, rows: Sequence[ClientRow]) -> ImportResult:
    managers = {r.assigned_manager for r in rows if r.assigned_manager}
    known = await _existing_ids(session, Agent.id, managers)
    unknown = [
        RowError.at(r.line, "assigned_manager", r.assigned_manager, "no agent with this id")
        for r in rows
        if r.assigned_manager and r.assigned_manager not in known
    ]
    if unknown:
        raise ImportRejected(unknown)

    existing: dict[str, Client] = {}
    for chunk in _chunks([r.external_id for r in rows]):
        found = await session.scalars(
            select(Client).where(Client.external_id.in_(chunk)).options(selectinload(Client.phones))
        )
        existing.update((c.external_id, c) for c in found)

    updated = unchanged = 0
    new_clients: list[dict[str, Any]] = []
    new_phones: dict[str, tuple[str, ...]] = {}
    for r in rows:
        values: dict[str, Any] = {
            "name": r.name,
            "language": r.language,
            "client_type": r.client_type,
            "assigned_manager_id": r.assigned_manager,
            "birthday": r.birthday,
            "document_expiry": r.document_expiry,
            "overdue_debt": r.overdue_debt,
        }
        if r.has_segment:
            values["segment"] = r.segment
        if r.has_timezone:
            values["timezone"] = r.timezone
        if r.has_email:
            values["email"] = r.email
        if r.has_preferred_channel:
            values["preferred_channel"] = r.preferred_channel
        client = existing.get(r.external_id)
        if client is None:
            new_clients.append({"external_id": r.external_id, **values})
            new_phones[r.external_id] = r.phones
        else:
            phones_changed = _sync_phones(client, r.phones)
            if _assign(client, values) or phones_changed:
                updated += 1
            else:
                unchanged += 1
    await session.flush()

    # New clients go in as batched INSERTs: through the unit of work every row would be a
    # round trip of its own, minutes for a large file. render_nulls: the ORM batches only runs
    # of rows with the same columns, and leaves out None values, so rows alternating an empty
    # and a filled field would each go alone.
    if new_clients:
        ids = await session.execute(
            insert(Client).returning(Client.external_id, Client.id),
            new_clients,
            execution_options={"render_nulls": True},
        )
        phone_rows = [
            {"client_id": client_id, "number": number}
            for external_id, client_id in ids
            for number in new_phones[external_id]
        ]
        if phone_rows:
            await session.execute(insert(ClientPhone), phone_rows)
    return ImportResult("clients", len(new_clients), updated, unchanged)


async def _write_agents(session: AsyncSession, rows: Sequence[AgentRow]) -> ImportResult:
    existing: dict[str, Agent] = {}
    for chunk in _chunks([r.agent_id for r in rows]):
        found = await session.scalars(
            select(Agent).where(Agent.id.in_(chunk)).options(selectinload(Agent.memberships))
        )
        existing.update((a.id, a) for a in found)

    wanted_queues = {q for r in rows for q in r.queues}
    have_queues = await _existing_ids(session, Queue.id, wanted_queues)
    new_queues = sorted(wanted_queues - have_queues)
    session.add_all(Queue(id=q, name=q) for q in new_queues)

    created = updated = unchanged = 0
    changed: dict[str, bool] = {}
    for r in rows:
        values: dict[str, Any] = {
            "name": r.name,
            "role": r.role,
            "endpoint": r.endpoint,
            "skills": list(r.skills),
        }
        agent = existing.get(r.agent_id)
        if agent is None:
            session.add(Agent(id=r.agent_id, active=True, **values))
            created += 1
        else:
            changed[r.agent_id] = _assign(agent, values)
    # Agents and queues exist before their memberships refer to them.
    await session.flush()

    for r in rows:
        agent = existing.get(r.agent_id)
        current = {m.queue_id: m for m in agent.memberships} if agent else {}
        for queue_id, member in current.items():
            if queue_id not in r.queues:
                await session.delete(member)
        # Kept memberships keep their penalty; new ones start at 0.
        session.add_all(
            QueueMember(queue_id=q, agent_id=r.agent_id, penalty=0)
            for q in r.queues
            if q not in current
        )
        if agent is not None:
            if changed[r.agent_id] or set(current) != set(r.queues):
                updated += 1
            else:
                unchanged += 1
    return ImportResult("agents", created, updated, unchanged, len(new_queues))


async def _client_ids(session: AsyncSession, external_ids: Iterable[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(sorted(set(external_ids))):
        pairs = await session.execute(
            select(Client.external_id, Client.id).where(Client.external_id.in_(chunk))
        )
        found.update((external_id, client_id) for external_id, client_id in pairs)
    return found


async def _write_loans(session: AsyncSession, rows: Sequence[LoanRow]) -> ImportResult:
    client_ids = await _client_ids(session, (r.client_external_id for r in rows))
    unknown = [
        RowError.at(r.line, "client_id", r.client_external_id, "no client with this external id")
        for r in rows
        if r.client_external_id not in client_ids
    ]
    if unknown:
        raise ImportRejected(unknown)

    existing: dict[str, Loan] = {}
    for chunk in _chunks([r.loan_id for r in rows]):
        found = await session.scalars(select(Loan).where(Loan.external_id.in_(chunk)))
        existing.update((loan.external_id, loan) for loan in found)

    updated = unchanged = 0
    new_loans: list[dict[str, Any]] = []
    for r in rows:
        values: dict[str, Any] = {
            "client_id": client_ids[r.client_external_id],
            "opened_at": r.opened_at,
            "closed_at": r.closed_at,
            "amount": r.amount,
            "product": r.product,
        }
        loan = existing.get(r.loan_id)
        if loan is None:
            new_loans.append({"external_id": r.loan_id, **values})
        elif _assign(loan, values):
            updated += 1
        else:
            unchanged += 1
    await session.flush()
    if new_loans:  # batched, as for clients
        await session.execute(insert(Loan), new_loans, execution_options={"render_nulls": True})
    return ImportResult("loans", len(new_loans), updated, unchanged)


async def _loan_ids(session: AsyncSession, external_ids: Iterable[str]) -> dict[str, Loan]:
    found: dict[str, Loan] = {}
    for chunk in _chunks(sorted(set(external_ids))):
        found.update(
            (loan.external_id, loan)
            for loan in await session.scalars(select(Loan).where(Loan.external_id.in_(chunk)))
        )
    return found


async def _write_payments(session: AsyncSession, rows: Sequence[PaymentRow]) -> ImportResult:
    loans = await _loan_ids(session, (r.loan_external_id for r in rows if r.loan_external_id))
    client_ids = await _client_ids(
        session, (r.client_external_id for r in rows if r.client_external_id)
    )
    unknown = [
        RowError.at(r.line, "loan_id", r.loan_external_id, "no loan with this external id")
        for r in rows
        if r.loan_external_id and r.loan_external_id not in loans
    ] + [
        RowError.at(r.line, "client_id", r.client_external_id, "no client with this external id")
        for r in rows
        if r.client_external_id and r.client_external_id not in client_ids
    ]
    if unknown:
        raise ImportRejected(unknown)

    existing: dict[str, Payment] = {}
    for chunk in _chunks([r.payment_id for r in rows]):
        found = await session.scalars(select(Payment).where(Payment.external_id.in_(chunk)))
        existing.update((p.external_id, p) for p in found)

    updated = unchanged = 0
    new_payments: list[dict[str, Any]] = []
    for r in rows:
        loan = loans[r.loan_external_id] if r.loan_external_id else None
        payer = client_ids[r.client_external_id] if r.client_external_id else None
        values: dict[str, Any] = {
            "loan_id": loan.id if loan else None,
            # The loan's client when it names a loan, else the payer when a client of ours.
            "client_id": loan.client_id if loan else payer,
            "payer_client_id": payer,
            "payer_name": r.payer_name,
            "payer_number": r.payer_number,
            "amount": r.amount,
            "paid_at": r.paid_at,
            "matched": r.matched,
        }
        payment = existing.get(r.payment_id)
        if payment is None:
            new_payments.append({"external_id": r.payment_id, **values})
        elif _assign(payment, values):
            updated += 1
        else:
            unchanged += 1
    await session.flush()
    if new_payments:  # batched, as for clients
        await session.execute(
            insert(Payment), new_payments, execution_options={"render_nulls": True}
        )
    return ImportResult("payments", len(new_payments), updated, unchanged)


_ParsedRows = list[ClientRow] | list[AgentRow] | list[LoanRow] | list[PaymentRow]


def _parse(kind: str, text: str, region: str) -> _ParsedRows:
    rows: _ParsedRows
    if kind == "clients":
        rows, errors = parse_clients(text, region)
    elif kind == "agents":
        rows, errors = parse_agents(text)
    elif kind == "loans":
        rows, errors = parse_loans(text)
    elif kind == "payments":
        rows, errors = parse_payments(text, region)
    else:
        raise ValueError(f"unknown import kind {kind!r}, expected one of {KINDS}")
    if errors:
        raise ImportRejected(errors)
    return rows


async def import_rows(
    sessions: async_sessionmaker[AsyncSession], kind: str, text: str, region: str
) -> ImportResult:
    """Import CSV text of ``kind`` ("clients", "agents", "loans" or "payments"), all rows or
    none."""
    # Parsing 200 000 rows takes a while: keep it off the event loop.
    rows = await asyncio.to_thread(_parse, kind, text, region)
    try:
        async with sessions() as session, session.begin():
            if kind == "clients":
                return await _write_clients(session, cast(list[ClientRow], rows))
            if kind == "loans":
                return await _write_loans(session, cast(list[LoanRow], rows))
            if kind == "payments":
                return await _write_payments(session, cast(list[PaymentRow], rows))
            return await _write_agents(session, cast(list[AgentRow], rows))
    except IntegrityError:
        message = (
            "the database changed during the import (another import at the same time?); "
            "nothing was written, run it again"
        )
        raise ImportRejected([RowError(None, None, None, message)]) from None


async def import_csv(database_url: str, kind: str, path: Path, region: str) -> ImportResult:
    """Import the CSV file at ``path`` into the database at ``database_url``, all rows or
    none; national phone numbers are read as numbers of ``region``."""
    if kind not in KINDS:
        raise ValueError(f"unknown import kind {kind!r}, expected one of {KINDS}")
    try:
        text = await asyncio.to_thread(read_csv_file, path)
        engine = create_engine(database_url)
        try:
            return await import_rows(session_factory(engine), kind, text, region)
        finally:
            await engine.dispose()
    except ImportRejected as exc:
        raise exc.with_source(str(path)) from None
