"""Payments and procedural tasks against real databases (SQLite and PostgreSQL): the payments
import, tasks generated from payments, loans and ID documents (once, however often it runs),
the re-check that closes a task whose cause went away, the open tasks as an agent campaign's
contacts, and the dormant segment."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update

from core.csvrows import ImportRejected
from core.procedures import ProcedureKind, ProcedureRules
from core.surveys.campaign import CampaignSettings, Segment, SegmentRules
from core.surveys.contacts import parse_contacts
from models.campaigns import CampaignError, CampaignStore
from models.importing import import_rows
from models.procedures import (
    GenerateResult,
    _recheck,
    close_tasks,
    generate_procedures,
    open_tasks,
    recheck_tasks,
)
from models.segments import select_targets
from models.sources import ListSource, ProcedureSource, SegmentSource, contacts_for, source_named
from models.tables import CampaignContact, Client, Loan, Payment, ProcedureTask, Survey
from tests.conftest import Database
from tests.integration.test_loans_db import counting_statements

REGION = "BA"
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
K = ProcedureKind


def day(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).date().isoformat()


CLIENTS = f"""\
external_id,name,phone,language,client_type,assigned_manager,birthday,document_expiry,overdue_debt,timezone
C1,Amra Hodžić,061 100 201,bs,regular,,,{day(-20)},0,Europe/Sarajevo
C2,Ion Popescu,0040721123456,ro,regular,,,{day(-90)},0,
C3,Jane Doe,061 100 203,en,regular,,,,0,
C4,No Phone,,bs,regular,,,{day(-5)},0,
"""
# L1: Amra's, repaid in a lump five days ago; L2: Ion's, open, disbursed 35 days ago;
# L3: Jane's, open for a year; L4: Amra's old loan, overpaid.
LOANS = f"""\
loan_id,client_id,opened_at,closed_at,amount,product
L1,C1,{day(300)},{day(5)},1000.00,cash
L2,C2,{day(35)},,2000.00,car
L3,C3,{day(365)},,500.00,cash
L4,C1,{day(700)},{day(400)},300.00,cash
"""
PAYMENTS = f"""\
payment_id,loan_id,client_id,payer_name,payer_number,amount,paid_at,matched
P1,,,Neko Treći,062 555 111,50.00,{day(3)},no
P2,L3,,Mirza Doe,,100.00,{day(4)},yes
P3,L1,C1,Amra Hodžić,,900.00,{day(7)},yes
P4,L1,,HODZIC Amra,,100.00,{day(200)},yes
P5,L4,C1,Amra Hodžić,,350.00,{day(400)},yes
P6,,,Nobody,,10.00,{day(3)},no
"""


async def seed(database: Database) -> None:
    for kind, text in (("clients", CLIENTS), ("loans", LOANS), ("payments", PAYMENTS)):
        await import_rows(database.sessions, kind, text, REGION)


async def tasks(database: Database) -> dict[tuple[str, str], ProcedureTask]:
    async with database.sessions() as session:
        rows = await session.scalars(select(ProcedureTask))
        return {(t.kind, t.cause_key): t for t in rows}


async def client_id(database: Database, external_id: str) -> int:
    async with database.sessions() as session:
        found = await session.scalar(select(Client.id).where(Client.external_id == external_id))
        assert found is not None
        return found


async def set_rows(database: Database, model: Any, where: Any, **values: Any) -> None:
    async with database.sessions() as session, session.begin():
        await session.execute(update(model).where(where).values(**values))


# ---- the payments import --------------------------------------------------------------------


async def test_payments_are_imported_with_their_loans_and_clients(database: Database) -> None:
    await import_rows(database.sessions, "clients", CLIENTS, REGION)
    await import_rows(database.sessions, "loans", LOANS, REGION)
    result = await import_rows(database.sessions, "payments", PAYMENTS, REGION)
    assert (result.created, result.updated, result.unchanged) == (6, 0, 0)
    c1 = await client_id(database, "C1")
    c3 = await client_id(database, "C3")
    async with database.sessions() as session:
        rows = {p.external_id: p for p in await session.scalars(select(Payment))}
        loans = {loan.external_id: loan.id for loan in await session.scalars(select(Loan))}
    p1, p2, p3 = rows["P1"], rows["P2"], rows["P3"]
    assert (p1.loan_id, p1.client_id, p1.payer_number, p1.matched) == (
        None,
        None,
        "+38762555111",
        False,
    )
    assert (p1.amount, p1.paid_at) == (Decimal("50.00"), NOW.replace(hour=0) - timedelta(days=3))
    # A loan's payment belongs to the loan's client; the payer is who the file names.
    assert (p2.loan_id, p2.client_id, p2.payer_client_id, p2.matched) == (
        loans["L3"],
        c3,
        None,
        True,
    )
    assert (p3.client_id, p3.payer_client_id) == (c1, c1)

    again = await import_rows(database.sessions, "payments", PAYMENTS, REGION)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 6)
    matched = PAYMENTS.replace("P1,,,Neko Treći,062 555 111,50.00", "P1,L3,,Neko Treći,,50.00")
    matched = matched.replace(f"{day(3)},no\nP2", f"{day(3)},yes\nP2")
    changed = await import_rows(database.sessions, "payments", matched, REGION)
    assert (changed.created, changed.updated, changed.unchanged) == (0, 1, 5)


async def test_payments_of_unknown_loans_or_clients_write_nothing(database: Database) -> None:
    await import_rows(database.sessions, "clients", CLIENTS, REGION)
    await import_rows(database.sessions, "loans", LOANS, REGION)
    bad = PAYMENTS + f"P7,L9,,X,,1,{day(1)},yes\nP8,,C9,Y,,1,{day(1)},no\n"
    with pytest.raises(ImportRejected) as caught:
        await import_rows(database.sessions, "payments", bad, REGION)
    assert [str(e) for e in caught.value.errors] == [
        "line 8: loan_id 'L9': no loan with this external id",
        "line 9: client_id 'C9': no client with this external id",
    ]
    async with database.sessions() as session:
        assert (await session.scalars(select(Payment))).all() == []


# ---- generating -----------------------------------------------------------------------------


async def test_generate_makes_one_task_per_cause_and_nothing_twice(database: Database) -> None:
    await seed(database)
    result = await generate_procedures(database.sessions, NOW)
    # P6 names nobody to ask (no task at all); C4's document has no phone to call.
    assert result == GenerateResult(created=6, existing=0, closed=0, no_number=1)
    found = await tasks(database)
    c1, c2, c3 = [await client_id(database, c) for c in ("C1", "C2", "C3")]
    wanted = {
        (K.UNKNOWN_PAYMENT, "payment:P1"): (None, "+38762555111"),
        (K.THIRD_PARTY_PAYMENT, "payment:P2"): (c3, "+38761100203"),
        (K.EARLY_REPAYMENT, "loan:L1"): (c1, "+38761100201"),
        (K.OVERPAYMENT, "loan:L4"): (c1, "+38761100201"),
        (K.LOAN_MONITORING, "loan:L2"): (c2, "+40721123456"),
        (K.DOCUMENT_EXPIRY, f"document:C1:{day(-20)}"): (c1, "+38761100201"),
    }
    assert {key: (t.client_id, t.number) for key, t in found.items()} == wanted
    assert {t.status for t in found.values()} == {"open"}
    assert {t.created_at for t in found.values()} == {NOW}

    again = await generate_procedures(database.sessions, NOW + timedelta(hours=1))
    assert again == GenerateResult(created=0, existing=6, closed=0, no_number=1)
    assert len(await tasks(database)) == 6


async def test_generate_closes_open_tasks_whose_cause_went_away(database: Database) -> None:
    await seed(database)
    await generate_procedures(database.sessions, NOW)
    await set_rows(database, Loan, Loan.external_id == "L2", closed_at=NOW - timedelta(hours=1))
    result = await generate_procedures(database.sessions, NOW)
    assert (result.created, result.closed) == (0, 1)
    monitoring = (await tasks(database))[(K.LOAN_MONITORING, "loan:L2")]
    assert (monitoring.status, monitoring.closed_reason, monitoring.closed_at) == (
        "closed",
        "loan_closed",
        NOW,
    )


# ---- the re-check at dial time --------------------------------------------------------------


async def test_recheck_closes_tasks_whose_cause_went_away_with_the_reason(
    database: Database,
) -> None:
    await seed(database)
    await generate_procedures(database.sessions, NOW)
    ids = {key: t.id for key, t in (await tasks(database)).items()}
    unknown = ids[(K.UNKNOWN_PAYMENT, "payment:P1")]
    document = ids[(K.DOCUMENT_EXPIRY, f"document:C1:{day(-20)}")]
    monitoring = ids[(K.LOAN_MONITORING, "loan:L2")]
    third = ids[(K.THIRD_PARTY_PAYMENT, "payment:P2")]
    assert await recheck_tasks(database.sessions, [unknown, document, monitoring, third], NOW) == {
        unknown: None,
        document: None,
        monitoring: None,
        third: None,
    }

    # The payment was matched since, the document renewed, the loan closed.
    matched = PAYMENTS.replace("P1,,,Neko Treći,062 555 111,50.00", "P1,L3,,Neko Treći,,50.00")
    matched = matched.replace(f"{day(3)},no\nP2", f"{day(3)},yes\nP2")
    await import_rows(database.sessions, "payments", matched, REGION)
    await set_rows(database, Client, Client.external_id == "C1", document_expiry=date(2031, 1, 1))
    await set_rows(database, Loan, Loan.external_id == "L2", closed_at=NOW - timedelta(days=1))
    later = NOW + timedelta(minutes=5)
    reasons = await recheck_tasks(
        database.sessions, [unknown, document, monitoring, third, 999], later
    )
    assert reasons == {
        unknown: "payment_matched",
        document: "document_renewed",
        monitoring: "loan_closed",
        third: None,
        999: "task_removed",
    }
    rows = {t.id: t for t in (await tasks(database)).values()}
    assert [
        (rows[i].status, rows[i].closed_reason, rows[i].closed_at) for i in (unknown, third)
    ] == [
        ("closed", "payment_matched", later),
        ("open", None, None),
    ]
    # Asked again, a closed task keeps the reason it was closed with.
    assert await recheck_tasks(database.sessions, [unknown], later + timedelta(hours=1)) == {
        unknown: "payment_matched"
    }
    assert [t.task_id for t in await open_tasks(database.sessions, K.UNKNOWN_PAYMENT)] == []


async def test_a_task_closed_after_its_call_is_not_reopened_by_generate(database: Database) -> None:
    await seed(database)
    await generate_procedures(database.sessions, NOW)
    (task,) = await open_tasks(database.sessions, K.OVERPAYMENT)
    assert await close_tasks(database.sessions, [task.task_id], "called", NOW) == 1
    assert await close_tasks(database.sessions, [task.task_id], "called", NOW) == 0
    result = await generate_procedures(database.sessions, NOW + timedelta(days=1))
    assert result.created == 0
    assert await open_tasks(database.sessions, K.OVERPAYMENT) == []
    assert await recheck_tasks(database.sessions, [task.task_id], NOW) == {task.task_id: "called"}


async def test_a_task_closed_meanwhile_keeps_the_reason_it_was_closed_with(
    database: Database,
) -> None:
    """Two instances re-check the same task: the one that finds it closed already (by the
    other, or by its call) reports that reason and overwrites nothing."""
    await seed(database)
    await generate_procedures(database.sessions, NOW)
    async with database.sessions() as session:
        stale = list(
            await session.scalars(
                select(ProcedureTask).where(ProcedureTask.kind == K.UNKNOWN_PAYMENT)
            )
        )
    (task,) = stale
    await close_tasks(database.sessions, [task.id], "called", NOW)
    await set_rows(database, Payment, Payment.external_id == "P1", matched=True)
    async with database.sessions() as session, session.begin():
        assert task.status == "open"  # as that instance read it
        reasons = await _recheck(session, stale, NOW, ProcedureRules())
    assert reasons == {task.id: "called"}
    assert (await tasks(database))[(K.UNKNOWN_PAYMENT, "payment:P1")].closed_reason == "called"


# ---- what a campaign dials ------------------------------------------------------------------


async def test_open_tasks_become_contacts_with_their_task_and_purpose(database: Database) -> None:
    await seed(database)
    await generate_procedures(database.sessions, NOW)
    (unknown,) = await open_tasks(database.sessions, "unknown_payment")
    assert (unknown.client_id, unknown.number, unknown.name, unknown.language) == (
        None,
        "+38762555111",
        "Neko Treći",  # no client: the payer's name from the payment
        None,
    )
    contacts = await contacts_for(database.sessions, ProcedureSource(K.DOCUMENT_EXPIRY), NOW)
    (contact,) = contacts
    (document,) = await open_tasks(database.sessions, K.DOCUMENT_EXPIRY)
    assert (contact.number, contact.name, contact.language, contact.timezone) == (
        "+38761100201",
        "Amra Hodžić",
        "bs",
        "Europe/Sarajevo",
    )
    assert (contact.task_id, contact.purpose) == (document.task_id, "document_expiry")

    async with database.sessions() as session, session.begin():
        survey = Survey(name="none", version=1, definition={}, active=False)
        session.add(survey)
        await session.flush()
        survey_id = survey.id
    store = CampaignStore(database.sessions)
    campaign_id, count = await store.create("docs", survey_id, CampaignSettings(), contacts)
    assert count == 1
    async with database.sessions() as session:
        row = await session.scalar(
            select(CampaignContact).where(CampaignContact.campaign_id == campaign_id)
        )
    assert row is not None
    assert (row.task_id, row.purpose, row.name) == (
        document.task_id,
        "document_expiry",
        "Amra Hodžić",
    )


async def test_a_lead_list_is_a_source_and_names_only_known_clients(database: Database) -> None:
    await seed(database)
    rows = parse_contacts("number,client_id,name\n061 222 333,,Lead One\n061 100 201,C1,\n", REGION)
    contacts = await contacts_for(database.sessions, ListSource(tuple(rows)), NOW)
    c1 = await client_id(database, "C1")
    assert [(c.number, c.client_id, c.name, c.task_id, c.purpose) for c in contacts] == [
        ("+38761222333", None, "Lead One", None, None),
        ("+38761100201", c1, None, None, None),
    ]
    unknown = parse_contacts("number,client_id\n061 222 333,C404\n", REGION)
    with pytest.raises(CampaignError) as caught:
        await contacts_for(database.sessions, ListSource(tuple(unknown)), NOW)
    assert caught.value.error_id == "unknown_client"


# ---- the dormant segment --------------------------------------------------------------------


async def test_dormant_clients_had_no_loan_opened_closed_or_paid_for_six_months(
    database: Database,
) -> None:
    await seed(database)
    # Jane (C3): open loan for a year, but paid 4 days ago (P2): active, not dormant.
    # Amra (C1): L1 closed 5 days ago. Ion (C2): disbursed 35 days ago. Nobody dormant yet.
    dormant = source_named("dormant")
    assert await contacts_for(database.sessions, dormant, NOW) == []
    # Half a year on, with nothing new: all three are dormant.
    later = NOW + timedelta(days=200)
    contacts = await contacts_for(database.sessions, dormant, later)
    assert sorted((c.number, c.segment) for c in contacts) == [
        ("+38761100201", "dormant"),
        ("+38761100203", "dormant"),
        ("+40721123456", "dormant"),
    ]
    # A payment on Jane's loan 10 days before that `later` keeps her out (configurable days).
    await set_rows(
        database, Payment, Payment.external_id == "P2", paid_at=later - timedelta(days=10)
    )
    contacts = await contacts_for(database.sessions, dormant, later)
    assert "+38761100203" not in {c.number for c in contacts}
    short = SegmentSource((Segment.DORMANT,), SegmentRules(dormant_days=5))
    assert "+38761100203" in {c.number for c in await contacts_for(database.sessions, short, later)}
    # An unmatched payment is no activity on a loan.
    await set_rows(database, Payment, Payment.external_id == "P2", matched=False)
    assert "+38761100203" in {
        c.number for c in await contacts_for(database.sessions, dormant, later)
    }


async def test_the_dormant_query_costs_no_more_round_trips(database: Database) -> None:
    await seed(database)
    with counting_statements(database) as statements:
        targets = await select_targets(
            database.sessions, {Segment.DORMANT, Segment.INACTIVE}, SegmentRules(), NOW
        )
    assert len(statements) == 3
    assert targets == []
    assert source_named("document_expiry") == ProcedureSource(K.DOCUMENT_EXPIRY)
    with pytest.raises(ValueError, match="no source 'vip'"):
        source_named("vip")
