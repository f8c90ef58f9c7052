"""Procedural call tasks in the database, a thin adapter around ``core.procedures``: the facts
read from ``payments``, ``loans`` and ``clients`` with set-based queries, the tasks written to
``procedure_tasks``, and the re-check that closes a task whose cause has gone.

* ``generate_procedures`` (`centrala procedures generate`, and `serve` on a schedule): first
  re-checks every open task (closing those whose cause went away), then adds the tasks the
  facts call for. (kind, cause_key) is unique and the insert skips what is there, so running
  it twice, or on two instances at once, adds nothing twice.
* ``open_tasks``: what an agent campaign needs per contact of a procedure kind.
* ``recheck_tasks``: the dialler asks right before dialling; a task whose cause has gone is
  closed with the reason, and is not called.

May import ``models`` and ``core`` (tests/unit/test_layers.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.procedures import (
    LOAN_KINDS,
    PAYMENT_KINDS,
    DocumentFacts,
    Facts,
    LoanFacts,
    PaymentFacts,
    ProcedureKind,
    ProcedureRules,
    TaskFacts,
    TaskNeed,
    document_needs,
    loan_needs,
    payment_needs,
    recheck,
)
from models.tables import Client, ClientPhone, Loan, Payment, ProcedureTask

Sessions = async_sessionmaker[AsyncSession]
OPEN, CLOSED = "open", "closed"
_IN_CHUNK = 500  # ids per IN (...), rows per INSERT: well under SQLite's parameter limit


@dataclass(frozen=True)
class GenerateResult:
    created: int = 0
    existing: int = 0  # called for, and already there (open or closed)
    closed: int = 0  # open tasks whose cause had gone
    no_number: int = 0  # called for, but nobody to call

    def summary(self) -> str:
        return (
            f"procedures: {self.created} created, {self.existing} already there, "
            f"{self.closed} closed, {self.no_number} without a number"
        )


@dataclass(frozen=True)
class OpenTask:
    """A task as an agent campaign's contact: whom to call and why."""

    task_id: int
    kind: ProcedureKind
    client_id: int | None
    number: str
    name: str | None
    language: str | None
    timezone: str | None

    @property
    def purpose(self) -> str:
        return self.kind.value


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


# ---- reading the facts --------------------------------------------------------------------


def _payment_query() -> Any:
    return (
        select(
            Payment.id,
            Payment.external_id,
            Payment.amount,
            Payment.paid_at,
            Payment.matched,
            Payment.payer_name,
            Payment.payer_number,
            Payment.payer_client_id,
            Payment.loan_id,
            Loan.client_id,
            Client.name,
        )
        .outerjoin(Loan, Loan.id == Payment.loan_id)
        .outerjoin(Client, Client.id == Loan.client_id)
    )


def _payment_facts(row: Any) -> PaymentFacts:
    (pid, ext, amount, paid_at, matched, name, number, payer, loan, loan_client, client_name) = row
    return PaymentFacts(
        payment_id=pid,
        external_id=ext,
        amount=Decimal(amount),
        paid_at=paid_at,
        matched=bool(matched),
        payer_name=name,
        payer_number=number,
        payer_client_id=payer,
        loan_id=loan,
        loan_client_id=loan_client,
        loan_client_name=client_name,
    )


async def _payments(
    session: AsyncSession, *, since: datetime | None = None, ids: Collection[int] = ()
) -> dict[int, PaymentFacts]:
    found: dict[int, PaymentFacts] = {}
    if since is not None:
        for row in await session.execute(_payment_query().where(Payment.paid_at >= since)):
            found[row[0]] = _payment_facts(row)
    for chunk in _chunks(sorted(set(ids))):
        for row in await session.execute(_payment_query().where(Payment.id.in_(chunk))):
            found[row[0]] = _payment_facts(row)
    return found


def _money(value: Any) -> Decimal:
    # SQLite hands sums of NUMERIC back as floats: back to cents.
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


async def _loans(
    session: AsyncSession, condition: Any, *, with_payments: Any = None
) -> dict[int, LoanFacts]:
    """The loans matching ``condition``, with their matched payments added up; the payments
    themselves for the loans matching ``with_payments`` (early repayment reads them)."""
    paid = (
        select(Payment.loan_id, func.sum(Payment.amount).label("paid"))
        .where(Payment.matched, Payment.loan_id.is_not(None))
        .group_by(Payment.loan_id)
        .subquery()
    )
    rows = await session.execute(
        select(
            Loan.id,
            Loan.external_id,
            Loan.client_id,
            Loan.opened_at,
            Loan.closed_at,
            Loan.amount,
            paid.c.paid,
        )
        .outerjoin(paid, paid.c.loan_id == Loan.id)
        .where(condition)
    )
    loans = {r[0]: LoanFacts(r[0], r[1], r[2], r[3], r[4], r[5], _money(r[6])) for r in rows.all()}
    if with_payments is not None and loans:
        payments: dict[int, list[tuple[datetime, Decimal]]] = defaultdict(list)
        query = (
            select(Payment.loan_id, Payment.paid_at, Payment.amount)
            .join(Loan, Loan.id == Payment.loan_id)
            .where(Payment.matched, with_payments)
        )
        for loan_id, at, amount in await session.execute(query):
            if loan_id is not None:  # the join says so; the column's type does not
                payments[loan_id].append((at, _money(amount)))
        for loan_id, made in payments.items():
            if loan_id in loans:
                loans[loan_id] = replace(loans[loan_id], payments=tuple(sorted(made)))
    return loans


async def _documents(session: AsyncSession, condition: Any) -> dict[int, DocumentFacts]:
    rows = await session.execute(
        select(Client.id, Client.external_id, Client.document_expiry).where(condition)
    )
    return {cid: DocumentFacts(cid, ext, expiry) for cid, ext, expiry in rows}


async def _first_phones(session: AsyncSession, client_ids: Iterable[int]) -> dict[int, str]:
    numbers: dict[int, str] = {}
    for chunk in _chunks(sorted(set(client_ids))):
        first = (
            select(func.min(ClientPhone.id))
            .where(ClientPhone.client_id.in_(chunk))
            .group_by(ClientPhone.client_id)
        )
        rows = await session.execute(
            select(ClientPhone.client_id, ClientPhone.number).where(ClientPhone.id.in_(first))
        )
        numbers.update((cid, number) for cid, number in rows)
    return numbers


# ---- re-checking ----------------------------------------------------------------------------


async def _current_facts(
    session: AsyncSession, tasks: Sequence[ProcedureTask]
) -> dict[int, Facts | None]:
    """Each task's payment, loan or client as it is now (None: gone)."""
    payment_ids = [t.payment_id for t in tasks if t.kind in PAYMENT_KINDS and t.payment_id]
    loan_ids = [t.loan_id for t in tasks if t.kind in LOAN_KINDS and t.loan_id]
    client_ids = [
        t.client_id for t in tasks if t.kind == ProcedureKind.DOCUMENT_EXPIRY and t.client_id
    ]
    payments = await _payments(session, ids=payment_ids)
    loans: dict[int, LoanFacts] = {}
    for chunk in _chunks(sorted(set(loan_ids))):
        loans.update(await _loans(session, Loan.id.in_(chunk)))
    documents: dict[int, DocumentFacts] = {}
    for chunk in _chunks(sorted(set(client_ids))):
        documents.update(await _documents(session, Client.id.in_(chunk)))
    facts: dict[int, Facts | None] = {}
    for t in tasks:
        if t.kind in PAYMENT_KINDS:
            facts[t.id] = payments.get(t.payment_id) if t.payment_id else None
        elif t.kind in LOAN_KINDS:
            facts[t.id] = loans.get(t.loan_id) if t.loan_id else None
        else:
            facts[t.id] = documents.get(t.client_id) if t.client_id else None
    return facts


async def _recheck(
    session: AsyncSession, tasks: Sequence[ProcedureTask], now: datetime, rules: ProcedureRules
) -> dict[int, str | None]:
    facts = await _current_facts(session, tasks)
    reasons: dict[int, str | None] = {}
    closing: dict[str, list[int]] = defaultdict(list)  # reason -> open tasks to close
    for t in tasks:
        task = TaskFacts(ProcedureKind(t.kind), t.cause_key, t.status, t.closed_reason)
        reasons[t.id] = reason = recheck(task, facts[t.id], now, rules)
        if reason is not None and t.status == OPEN:
            closing[reason].append(t.id)
    lost: list[int] = []
    for reason, ids in closing.items():
        # Guarded: a task closed meanwhile (by a call, another instance) keeps its reason.
        result = await session.execute(
            update(ProcedureTask)
            .where(ProcedureTask.id.in_(ids), ProcedureTask.status == OPEN)
            .values(status=CLOSED, closed_reason=reason, closed_at=now)
            .returning(ProcedureTask.id)
        )
        done = set(result.scalars())
        lost += [task_id for task_id in ids if task_id not in done]
    if lost:
        reasons.update(dict.fromkeys(lost, "task_removed"))
        rows = await session.execute(
            select(ProcedureTask.id, ProcedureTask.closed_reason).where(ProcedureTask.id.in_(lost))
        )
        reasons.update((task_id, reason or CLOSED) for task_id, reason in rows)
    return reasons


async def recheck_tasks(
    sessions: Sessions,
    task_ids: Collection[int],
    now: datetime,
    rules: ProcedureRules | None = None,
) -> dict[int, str | None]:
    """Right before dialling: per task id, None when it still stands (call it), else why not
    (``core.procedures.ClosedReason``, the reason it was closed with before, or
    ``task_removed``). Tasks whose cause has gone are closed with that reason."""
    rules = rules or ProcedureRules()
    reasons: dict[int, str | None] = {task_id: "task_removed" for task_id in task_ids}
    async with sessions() as session, session.begin():
        for chunk in _chunks(sorted(set(task_ids))):
            tasks = list(
                await session.scalars(select(ProcedureTask).where(ProcedureTask.id.in_(chunk)))
            )
            reasons.update(await _recheck(session, tasks, now, rules))
    return reasons


async def close_tasks(
    sessions: Sessions, task_ids: Collection[int], reason: str, now: datetime
) -> int:
    """Close open tasks for a reason of the caller's (the call was made: ``called``); returns
    how many were open."""
    closed = 0
    async with sessions() as session, session.begin():
        for chunk in _chunks(sorted(set(task_ids))):
            result = await session.execute(
                update(ProcedureTask)
                .where(ProcedureTask.id.in_(chunk), ProcedureTask.status == OPEN)
                .values(status=CLOSED, closed_reason=reason[:40], closed_at=now)
                .returning(ProcedureTask.id)
            )
            closed += len(result.all())
    return closed


# ---- generating ---------------------------------------------------------------------------


async def _needs(session: AsyncSession, now: datetime, rules: ProcedureRules) -> list[TaskNeed]:
    needs: list[TaskNeed] = []
    since = now - timedelta(days=rules.payment_days)
    for p in (await _payments(session, since=since)).values():
        needs += payment_needs(p, now, rules)

    monitored_from = now - timedelta(days=rules.monitoring_days + rules.monitoring_window_days)
    closed_lately = and_(
        Loan.closed_at.is_not(None),
        Loan.closed_at >= now - timedelta(days=rules.early_repayment_days),
        Loan.closed_at <= now,
    )
    has_payments = Loan.id.in_(
        select(Payment.loan_id).where(Payment.matched, Payment.loan_id.is_not(None))
    )
    candidates = or_(
        and_(Loan.opened_at >= monitored_from, Loan.opened_at <= now), closed_lately, has_payments
    )
    for loan in (await _loans(session, candidates, with_payments=closed_lately)).values():
        needs += loan_needs(loan, now, rules)

    today = now.date()
    expiring = and_(
        Client.document_expiry >= today,
        Client.document_expiry <= today + timedelta(days=rules.document_days),
    )
    for document in (await _documents(session, expiring)).values():
        needs += document_needs(document, now, rules)
    return needs


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(ProcedureTask)


async def generate_procedures(
    sessions: Sessions, now: datetime, rules: ProcedureRules | None = None
) -> GenerateResult:
    """Close the open tasks whose cause has gone, then add the tasks the CRM's facts call for
    as of ``now`` (core.procedures). Idempotent on (kind, cause_key)."""
    rules = rules or ProcedureRules()
    async with sessions() as session, session.begin():
        open_rows = list(
            await session.scalars(select(ProcedureTask).where(ProcedureTask.status == OPEN))
        )
        closed = 0
        for chunk in _chunks(open_rows):
            reasons = await _recheck(session, chunk, now, rules)
            closed += sum(1 for reason in reasons.values() if reason is not None)

        needs = await _needs(session, now, rules)
        phones = await _first_phones(
            session, (n.client_id for n in needs if n.number is None and n.client_id is not None)
        )
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        no_number = 0
        for need in needs:
            number = need.number or (phones.get(need.client_id) if need.client_id else None)
            if number is None:
                no_number += 1
                continue
            rows.setdefault(
                (need.kind.value, need.cause_key),
                {
                    "kind": need.kind.value,
                    "cause_key": need.cause_key,
                    "client_id": need.client_id,
                    "number": number,
                    "payment_id": need.payment_id,
                    "loan_id": need.loan_id,
                    "status": OPEN,
                    "created_at": now,
                    "due_at": now,
                },
            )
        created = 0
        for chunk in _chunks(list(rows.values())):
            stmt = (
                _insert(session)
                .values(list(chunk))
                .on_conflict_do_nothing(index_elements=["kind", "cause_key"])
                .returning(ProcedureTask.id)
            )
            created += len((await session.execute(stmt)).all())
    return GenerateResult(created, len(rows) - created, closed, no_number)


# ---- what a campaign dials ----------------------------------------------------------------


async def open_tasks(sessions: Sessions, kind: ProcedureKind | str) -> list[OpenTask]:
    """The open tasks of ``kind``, oldest due first, with what a campaign contact needs: the
    client's name, language and zone (a payer who is no client: the payment's payer name)."""
    kind = ProcedureKind(kind)
    async with sessions() as session:
        rows = await session.execute(
            select(
                ProcedureTask.id,
                ProcedureTask.client_id,
                ProcedureTask.number,
                func.coalesce(Client.name, Payment.payer_name),
                Client.language,
                Client.timezone,
            )
            .outerjoin(Client, Client.id == ProcedureTask.client_id)
            .outerjoin(Payment, Payment.id == ProcedureTask.payment_id)
            .where(ProcedureTask.status == OPEN, ProcedureTask.kind == kind.value)
            .order_by(ProcedureTask.due_at, ProcedureTask.id)
        )
        return [
            OpenTask(task_id, kind, client_id, number, name, language, zone)
            for task_id, client_id, number, name, language, zone in rows
        ]
