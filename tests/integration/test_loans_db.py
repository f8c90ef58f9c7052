"""Loans against real databases (SQLite and PostgreSQL): `centrala import loans`, the clients'
time zone column, and the campaign's segment query (models.segments) on hand-built clients."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from core.csvrows import ImportRejected
from core.enums import AgentRole
from core.surveys.campaign import ClientFacts, Segment, SegmentRules
from core.surveys.interpreter import SurveyStatus
from sqlalchemy import delete, event, func, select

from models.importing import import_rows
from models.segments import client_facts, select_targets
from models.tables import Agent, Call, Client, ClientPhone, Direction, Loan, Survey
from tests.conftest import Database

REGION = "BA"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CHECKOUT = Path(__file__).resolve().parents[2]
RULES = SegmentRules()  # new: first loan within 90 days; inactive: none open for 182 days

CLIENTS = """\
external_id,name,phone,language,client_type,assigned_manager,birthday,document_expiry,overdue_debt
C1,Amra Hodžić,061 100 200,bs,regular,,,,0
C2,Ion Popescu,0040721123456,ro,regular,,,,0
"""

LOANS = """\
loan_id,client_id,opened_at,closed_at,amount,product
L1,C1,2026-01-15,,1500.00,cash
L2,C1,2025-03-01T10:30:00+01:00,2025-09-01,2000,car
L3,C2,2026-06-30,,,
"""


async def centrala(database: Database, *args: str) -> tuple[int, str, str]:
    """The command as operators run it, from this checkout's code (``python -m`` puts the
    working directory first; an installed `centrala` script may be another checkout's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENTRALA_")}
    env |= {"CENTRALA_DATABASE_URL": database.url, "CENTRALA_DEFAULT_REGION": REGION}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "centrala.cli",
        *args,
        cwd=CHECKOUT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def days_ago(days: int) -> datetime:
    return NOW - timedelta(days=days)


async def loans_by_id(database: Database) -> dict[str, Loan]:
    async with database.sessions() as session:
        return {loan.external_id: loan for loan in await session.scalars(select(Loan))}


async def client_ids(database: Database) -> dict[str, int]:
    async with database.sessions() as session:
        rows = await session.execute(select(Client.external_id, Client.id))
        return {external_id: client_id for external_id, client_id in rows}


# ---- the loans import -----------------------------------------------------------------------


async def test_loans_are_imported_for_their_clients_and_read_back(database: Database) -> None:
    await import_rows(database.sessions, "clients", CLIENTS, REGION)
    result = await import_rows(database.sessions, "loans", LOANS, REGION)
    assert result.summary() == "loans: 3 created, 0 updated, 0 unchanged"
    loans, ids = await loans_by_id(database), await client_ids(database)
    assert loans["L1"].client_id == ids["C1"]
    assert loans["L1"].opened_at == datetime(2026, 1, 15, tzinfo=UTC)
    assert (loans["L1"].closed_at, loans["L1"].amount, loans["L1"].product) == (
        None,
        Decimal("1500.00"),
        "cash",
    )
    assert loans["L2"].opened_at == datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    assert loans["L2"].closed_at == datetime(2025, 9, 1, tzinfo=UTC)
    assert loans["L2"].amount == Decimal("2000.00")
    assert (loans["L3"].client_id, loans["L3"].amount, loans["L3"].product) == (
        ids["C2"],
        None,
        None,
    )


async def test_reimport_is_idempotent_and_a_closed_loan_is_updated(database: Database) -> None:
    await import_rows(database.sessions, "clients", CLIENTS, REGION)
    await import_rows(database.sessions, "loans", LOANS, REGION)
    again = await import_rows(database.sessions, "loans", LOANS, REGION)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    before = {k: v.id for k, v in (await loans_by_id(database)).items()}

    closed = LOANS.replace(
        "L1,C1,2026-01-15,,1500.00,cash", "L1,C1,2026-01-15,2026-11-01,1500,cash"
    )
    result = await import_rows(database.sessions, "loans", closed, REGION)
    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    loans = await loans_by_id(database)
    assert loans["L1"].closed_at == datetime(2026, 11, 1, tzinfo=UTC)
    assert {k: v.id for k, v in loans.items()} == before  # updated in place, not re-made


async def test_unknown_client_is_a_row_error_and_nothing_is_written(database: Database) -> None:
    await import_rows(database.sessions, "clients", CLIENTS, REGION)
    text = LOANS + "L4,C9,2026-01-01,,,\nL5,C1,2026-01-02,,,\nL6,ghost,2026-01-03,,,\n"
    with pytest.raises(ImportRejected) as caught:
        await import_rows(database.sessions, "loans", text, REGION)
    assert [(e.line, e.column, e.value) for e in caught.value.errors] == [
        (5, "client_id", "'C9'"),
        (7, "client_id", "'ghost'"),
    ]
    assert "no client with this external id" in caught.value.errors[0].message
    assert await loans_by_id(database) == {}


async def test_one_bad_row_rejects_the_whole_loans_file(database: Database) -> None:
    await import_rows(database.sessions, "clients", CLIENTS, REGION)
    with pytest.raises(ImportRejected) as caught:
        await import_rows(database.sessions, "loans", LOANS + "L4,C1,someday,,,\n", REGION)
    assert [(e.line, e.column) for e in caught.value.errors] == [(5, "opened_at")]
    assert await loans_by_id(database) == {}


async def test_a_deleted_client_takes_its_loans_along(database: Database) -> None:
    await import_rows(database.sessions, "clients", CLIENTS, REGION)
    await import_rows(database.sessions, "loans", LOANS, REGION)
    async with database.sessions() as session, session.begin():
        await session.execute(delete(Client).where(Client.external_id == "C1"))
    assert sorted(await loans_by_id(database)) == ["L3"]


async def test_cli_imports_loans_and_rejects_a_bad_file_with_exit_2(
    database: Database, tmp_path: Path
) -> None:
    clients, loans = tmp_path / "clients.csv", tmp_path / "loans.csv"
    clients.write_text(CLIENTS, encoding="utf-8")
    loans.write_text(LOANS, encoding="utf-8")
    code, _, err = await centrala(database, "import", "clients", str(clients))
    assert code == 0, err
    code, out, err = await centrala(database, "import", "loans", str(loans))
    assert (code, out.strip()) == (0, "loans: 3 created, 0 updated, 0 unchanged"), err

    loans.write_text(LOANS + "L9,nobody,2026-01-01,,,\n", encoding="utf-8")
    code, out, err = await centrala(database, "import", "loans", str(loans))
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == [
        f"{loans}: import rejected, nothing was written (1 error)",
        "  line 5: client_id 'nobody': no client with this external id",
    ]


async def test_client_timezone_is_imported_and_left_alone_without_the_column(
    database: Database,
) -> None:
    header, *rows = CLIENTS.splitlines()
    zoned = "\n".join([header + ",timezone", rows[0] + ",Europe/Sarajevo", rows[1] + ","]) + "\n"
    await import_rows(database.sessions, "clients", zoned, REGION)
    result = await import_rows(database.sessions, "clients", CLIENTS, REGION)
    assert result.unchanged == 2
    async with database.sessions() as session:
        rows = await session.execute(select(Client.external_id, Client.timezone))
        zones = {external_id: zone for external_id, zone in rows}
    assert zones == {"C1": "Europe/Sarajevo", "C2": None}
    with pytest.raises(ImportRejected) as caught:
        await import_rows(database.sessions, "clients", zoned.replace("Europe/", "Europa/"), REGION)
    (error,) = caught.value.errors
    assert (
        str(error)
        == "line 2: timezone 'Europa/Sarajevo': not an IANA time zone (like Europe/Sarajevo)"
    )


# ---- the segment query ----------------------------------------------------------------------


async def add_client(
    database: Database,
    external_id: str,
    phones: tuple[str, ...],
    loans: tuple[tuple[datetime, datetime | None], ...] = (),
    **fields: Any,
) -> int:
    async with database.sessions() as session, session.begin():
        client = Client(external_id=external_id, name=external_id, **fields)
        client.phones = [ClientPhone(number=n) for n in phones]
        session.add(client)
        await session.flush()
        session.add_all(
            Loan(client_id=client.id, external_id=f"{external_id}-{i}", opened_at=o, closed_at=c)
            for i, (o, c) in enumerate(loans)
        )
        return client.id


async def add_survey_call(
    database: Database,
    client_id: int,
    started_at: datetime,
    status: str | None,
    survey: bool = True,
) -> None:
    async with database.sessions() as session, session.begin():
        survey_id = await session.scalar(select(Survey.id))
        if survey_id is None:
            row = Survey(name="nps", version=1, definition={"name": "nps"}, active=True)
            session.add(row)
            await session.flush()
            survey_id = row.id
        session.add(
            Call(
                channel_id=f"chan-{client_id}-{started_at.timestamp()}",
                direction=Direction.OUTBOUND,
                handler="ari",
                client_id=client_id,
                started_at=started_at,
                survey_id=survey_id if survey else None,
                survey_status=status,
            )
        )


async def hand_built(database: Database) -> dict[str, int]:
    """A new borrower, an active one, one inactive for seven months, one closed two months ago
    (in no segment), one without loans, an active one surveyed ten days ago, and one without a
    phone (never a target)."""
    async with database.sessions() as session, session.begin():
        session.add(Agent(id="m1", name="Mirza", role=AgentRole.MANAGER))
    ids = {
        "new": await add_client(
            database,
            "NEW",
            ("+38761000001", "+38762000001"),  # the first phone is the one called
            ((days_ago(30), None),),
            language="bs",
            timezone="Europe/Sarajevo",
            assigned_manager_id="m1",
        ),
        "active": await add_client(
            database,
            "ACTIVE",
            ("+38761000002",),
            ((days_ago(400), days_ago(300)), (days_ago(200), None), (days_ago(100), None)),
            language="en",
        ),
        "inactive": await add_client(
            database, "INACTIVE", ("+38761000003",), ((days_ago(500), days_ago(213)),)
        ),
        "recent": await add_client(
            database, "RECENT", ("+38761000004",), ((days_ago(300), days_ago(60)),)
        ),
        "never": await add_client(database, "NEVER", ("+38761000005",)),
        "surveyed": await add_client(
            database, "SURVEYED", ("+38761000006",), ((days_ago(150), None),)
        ),
        "no_phone": await add_client(database, "NOPHONE", (), ((days_ago(10), None),)),
    }
    surveyed = ids["surveyed"]
    await add_survey_call(database, surveyed, days_ago(40), SurveyStatus.COMPLETED)
    await add_survey_call(database, surveyed, days_ago(10), SurveyStatus.REFUSED)
    # None of these is a survey that ran: still in progress, not a survey call, no status.
    await add_survey_call(database, surveyed, days_ago(2), SurveyStatus.IN_PROGRESS)
    await add_survey_call(database, surveyed, days_ago(1), None, survey=False)
    await add_survey_call(database, surveyed, days_ago(3), None)
    await add_survey_call(database, surveyed, NOW + timedelta(days=1), SurveyStatus.COMPLETED)
    await add_survey_call(database, ids["inactive"], days_ago(5), SurveyStatus.NO_CONSENT)
    return ids


def expected_facts(ids: dict[str, int]) -> list[ClientFacts]:
    return [
        ClientFacts(
            ids["new"],
            "+38761000001",
            timezone="Europe/Sarajevo",
            first_loan_at=days_ago(30),
            open_loans=1,
            assigned_manager="m1",
            language="bs",
        ),
        ClientFacts(
            ids["active"],
            "+38761000002",
            first_loan_at=days_ago(400),
            open_loans=2,
            last_loan_closed_at=days_ago(300),
            language="en",
        ),
        ClientFacts(
            ids["inactive"],
            "+38761000003",
            first_loan_at=days_ago(500),
            last_loan_closed_at=days_ago(213),
            last_surveyed_at=days_ago(5),
        ),
        ClientFacts(
            ids["recent"],
            "+38761000004",
            first_loan_at=days_ago(300),
            last_loan_closed_at=days_ago(60),
        ),
        ClientFacts(ids["never"], "+38761000005"),
        ClientFacts(
            ids["surveyed"],
            "+38761000006",
            first_loan_at=days_ago(150),
            open_loans=1,
            last_surveyed_at=days_ago(10),
        ),
    ]


async def test_client_facts_of_hand_built_clients_are_exact(database: Database) -> None:
    ids = await hand_built(database)
    assert await client_facts(database.sessions, now=NOW) == expected_facts(ids)


async def test_client_facts_of_chosen_clients_in_chunks(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await hand_built(database)
    monkeypatch.setattr("models.segments._IN_CHUNK", 2)
    wanted = [ids["surveyed"], ids["new"], ids["no_phone"], ids["recent"], ids["new"], 99999]
    facts = await client_facts(database.sessions, client_ids=wanted, now=NOW)
    expected = {f.client_id: f for f in expected_facts(ids)}
    assert facts == [expected[ids[k]] for k in ("new", "recent", "surveyed")]
    assert await client_facts(database.sessions, client_ids=[], now=NOW) == []


async def test_client_facts_as_they_stood_at_an_earlier_now(database: Database) -> None:
    ids = await hand_built(database)
    then = days_ago(250)  # the inactive client's loan was still open, RECENT's was new
    facts = {f.client_id: f for f in await client_facts(database.sessions, now=then)}
    assert facts[ids["inactive"]] == ClientFacts(
        ids["inactive"], "+38761000003", first_loan_at=days_ago(500), open_loans=1
    )
    assert facts[ids["recent"]].open_loans == 1
    # Loans not opened yet are not seen: ACTIVE had only its first one, already closed.
    active = facts[ids["active"]]
    assert (active.open_loans, active.last_loan_closed_at) == (0, days_ago(300))
    assert facts[ids["surveyed"]].first_loan_at is None
    assert facts[ids["surveyed"]].last_surveyed_at is None


def targets_by_name(
    ids: dict[str, int], targets: list[tuple[ClientFacts, Segment | None]]
) -> dict[str, Segment | None]:
    names = {client_id: name for name, client_id in ids.items()}
    return {names[facts.client_id or 0]: segment for facts, segment in targets}


async def test_select_targets_pairs_each_client_with_the_segment_it_is_counted_in(
    database: Database,
) -> None:
    ids = await hand_built(database)
    everyone = await select_targets(database.sessions, None, RULES, NOW)
    assert [facts for facts, _ in everyone] == expected_facts(ids)
    assert targets_by_name(ids, everyone) == {
        "new": Segment.NEW,  # new and active: counted as new
        "active": Segment.ACTIVE,
        "inactive": Segment.INACTIVE,
        "recent": None,
        "never": None,
        "surveyed": Segment.ACTIVE,  # the survey cap is next_action's business, not the list's
    }
    inactive = await select_targets(database.sessions, [Segment.INACTIVE], RULES, NOW)
    assert targets_by_name(ids, inactive) == {"inactive": Segment.INACTIVE}
    active = await select_targets(database.sessions, {Segment.ACTIVE}, RULES, NOW)
    assert targets_by_name(ids, active) == {
        "new": Segment.ACTIVE,  # a campaign for active borrowers counts them as active
        "active": Segment.ACTIVE,
        "surveyed": Segment.ACTIVE,
    }
    new_or_gone = await select_targets(
        database.sessions, [Segment.NEW, Segment.INACTIVE], RULES, NOW
    )
    assert targets_by_name(ids, new_or_gone) == {"new": Segment.NEW, "inactive": Segment.INACTIVE}
    assert await select_targets(database.sessions, [], RULES, NOW) == []


async def test_select_targets_follows_configured_rules(database: Database) -> None:
    ids = await hand_built(database)
    rules = SegmentRules(new_days=200, inactive_days=30)
    targets = await select_targets(database.sessions, [Segment.NEW, Segment.INACTIVE], rules, NOW)
    assert targets_by_name(ids, targets) == {
        "new": Segment.NEW,
        "inactive": Segment.INACTIVE,
        "recent": Segment.INACTIVE,  # closed 60 days ago: inactive after 30
        "surveyed": Segment.NEW,  # first loan 150 days ago: new within 200
    }


@contextmanager
def counting_statements(database: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", count)


async def test_the_query_count_does_not_grow_with_the_clients(database: Database) -> None:
    await hand_built(database)
    with counting_statements(database) as few:
        assert len(await client_facts(database.sessions, now=NOW)) == 6
    async with database.sessions() as session, session.begin():
        start = int(await session.scalar(select(func.max(Client.id))) or 0)
        session.add_all(
            Client(
                external_id=f"BULK{i}",
                name="bulk",
                phones=[ClientPhone(number=f"+3876110{i:05d}")],
            )
            for i in range(500)
        )
    async with database.sessions() as session, session.begin():
        new_ids = (await session.scalars(select(Client.id).where(Client.id > start))).all()
        session.add_all(
            Loan(client_id=client_id, external_id=f"BULK-L{client_id}", opened_at=days_ago(10))
            for client_id in new_ids
        )
    with counting_statements(database) as many:
        facts = await client_facts(database.sessions, now=NOW)
    assert len(facts) == 506
    assert len(many) == len(few) == 3
    assert sum(1 for f in facts if f.open_loans == 1 and f.first_loan_at == days_ago(10)) == 500


async def test_new_loans_go_in_batches_even_when_empty_fields_alternate(
    database: Database,
) -> None:
    # Regression: the ORM batches only runs of rows with the same columns, and dropped the
    # None ones, so alternating open and closed loans went in one INSERT per row.
    await import_rows(database.sessions, "clients", CLIENTS, REGION)
    rows = [
        f"L{i},C{1 + i % 2},2026-01-15,{'2026-02-01' if i % 2 else ''},{'' if i % 3 else 10},"
        for i in range(300)
    ]
    text = "loan_id,client_id,opened_at,closed_at,amount,product\n" + "\n".join(rows) + "\n"
    with counting_statements(database) as statements:
        result = await import_rows(database.sessions, "loans", text, REGION)
    assert result.created == 300
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO LOANS")]
    assert len(inserts) == 1
    loans = await loans_by_id(database)
    assert (loans["L0"].closed_at, loans["L1"].closed_at) == (
        None,
        datetime(2026, 2, 1, tzinfo=UTC),
    )
    assert (loans["L0"].amount, loans["L1"].amount) == (Decimal("10.00"), None)
