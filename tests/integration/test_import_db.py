"""CSV import against real databases (SQLite and PostgreSQL), through import_rows and through
the `centrala import` command as operators run it."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from core.csvrows import ImportRejected
from core.enums import AgentRole, ClientType
from sqlalchemy import event, func, select
from sqlalchemy.orm import selectinload

from centrala.settings import Settings
from models.importing import import_csv, import_rows
from models.tables import Agent, Client, ClientPhone, Queue, QueueMember
from tests.conftest import Database

REGION = "BA"

AGENTS = """\
agent_id,name,role,endpoint,queues,skills
m1,Mirza Manager,manager,PJSIP/201,,bs;en
a1,Ana Agent,agent,PJSIP/101,sales;support,bs
a2,Bojan Agent,agent,Local/102@agents,support,ro;en
"""

# Semicolons, a BOM and Balkan dates, as Excel writes them in Sarajevo.
CLIENTS = """\ufeff\
external_id;name;phone;language;client_type;assigned_manager;birthday;document_expiry;overdue_debt
C1;Amra Hodžić;"061 100 200; +387 33 111 222";bs;key;m1;15.03.1985;2030-01-31;1
C2;Ion Popescu;0040721123456;ro;regular;;;;no
C3;Jane Doe;;en;new;m1;;;
"""


async def count(database: Database, model: type[Any]) -> int:
    async with database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def counts(database: Database) -> dict[str, int]:
    models = {"agents": Agent, "clients": Client, "phones": ClientPhone, "queues": Queue}
    models["members"] = QueueMember
    return {name: await count(database, model) for name, model in models.items()}


async def load_client(database: Database, external_id: str) -> Client:
    async with database.sessions() as session:
        client = await session.scalar(
            select(Client)
            .where(Client.external_id == external_id)
            .options(selectinload(Client.phones))
        )
        assert client is not None
        return client


async def load_agent(database: Database, agent_id: str) -> tuple[Agent, set[str]]:
    async with database.sessions() as session:
        agent = await session.get(Agent, agent_id)
        assert agent is not None
        queues = set(
            await session.scalars(
                select(QueueMember.queue_id).where(QueueMember.agent_id == agent_id)
            )
        )
        return agent, queues


async def import_both(database: Database) -> None:
    await import_rows(database.sessions, "agents", AGENTS, REGION)
    await import_rows(database.sessions, "clients", CLIENTS, REGION)


async def test_agents_then_clients_are_imported_and_read_back(database: Database) -> None:
    agents = await import_rows(database.sessions, "agents", AGENTS, REGION)
    assert (agents.created, agents.updated, agents.queues_created) == (3, 0, 2)
    clients = await import_rows(database.sessions, "clients", CLIENTS, REGION)
    assert (clients.created, clients.updated) == (3, 0)

    c1 = await load_client(database, "C1")
    assert c1.name == "Amra Hodžić"
    assert sorted(p.number for p in c1.phones) == ["+38733111222", "+38761100200"]
    assert c1.language == "bs"
    assert c1.client_type is ClientType.KEY
    assert c1.assigned_manager_id == "m1"
    assert c1.birthday == date(1985, 3, 15)
    assert c1.document_expiry == date(2030, 1, 31)
    assert c1.overdue_debt is True
    c2 = await load_client(database, "C2")
    assert [p.number for p in c2.phones] == ["+40721123456"]
    assert (c2.assigned_manager_id, c2.overdue_debt, c2.birthday) == (None, False, None)
    assert (await load_client(database, "C3")).phones == []

    a1, a1_queues = await load_agent(database, "a1")
    assert (a1.name, a1.role, a1.endpoint, a1.skills) == (
        "Ana Agent",
        AgentRole.AGENT,
        "PJSIP/101",
        ["bs"],
    )
    assert a1.active is True
    assert a1_queues == {"sales", "support"}
    async with database.sessions() as session:
        queues = {q.id: q.name for q in await session.scalars(select(Queue))}
    assert queues == {"sales": "sales", "support": "support"}


async def test_one_bad_row_among_good_ones_writes_nothing(database: Database) -> None:
    await import_both(database)
    before = await counts(database)
    bad_clients = CLIENTS + "C4;New Client;061 200 300;bs;key;;;;0\nC5;Broken;061x;bs;vip;;;;0\n"
    with pytest.raises(ImportRejected) as caught:
        await import_rows(database.sessions, "clients", bad_clients, REGION)
    assert {(e.line, e.column) for e in caught.value.errors} == {(6, "phone"), (6, "client_type")}
    bad_agents = AGENTS + "a3,Cleo,agent,PJSIP/103,newqueue,\na4,Dino,agent,PJSIP/1&PJSIP/2,,\n"
    with pytest.raises(ImportRejected):
        await import_rows(database.sessions, "agents", bad_agents, REGION)
    assert await counts(database) == before


async def test_reimport_is_idempotent_and_updates_changed_fields(database: Database) -> None:
    await import_both(database)
    before = await counts(database)
    again = await import_rows(database.sessions, "clients", CLIENTS, REGION)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    agents_again = await import_rows(database.sessions, "agents", AGENTS, REGION)
    assert (agents_again.created, agents_again.updated, agents_again.queues_created) == (0, 0, 0)
    assert await counts(database) == before
    first_phone_ids = {p.number: p.id for p in (await load_client(database, "C1")).phones}

    changed_clients = CLIENTS.replace(
        'C1;Amra Hodžić;"061 100 200; +387 33 111 222";bs;key;m1;15.03.1985;2030-01-31;1',
        'C1;Amra Hodžić-Begić;"061 100 200;062 999 888";en;regular;;15.03.1985;;0',
    )
    result = await import_rows(database.sessions, "clients", changed_clients, REGION)
    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    c1 = await load_client(database, "C1")
    assert c1.name == "Amra Hodžić-Begić"
    assert (c1.language, c1.client_type, c1.assigned_manager_id) == ("en", ClientType.REGULAR, None)
    assert (c1.document_expiry, c1.overdue_debt) == (None, False)
    phone_ids = {p.number: p.id for p in c1.phones}
    assert set(phone_ids) == {"+38761100200", "+38762999888"}
    assert phone_ids["+38761100200"] == first_phone_ids["+38761100200"]  # kept, not re-made

    changed_agents = AGENTS.replace(
        "a1,Ana Agent,agent,PJSIP/101,sales;support,bs",
        "a1,Ana Agent,supervisor,,support;vip,bs;de",
    )
    result = await import_rows(database.sessions, "agents", changed_agents, REGION)
    assert (result.created, result.updated, result.unchanged, result.queues_created) == (0, 1, 2, 1)
    a1, a1_queues = await load_agent(database, "a1")
    assert (a1.role, a1.endpoint, a1.skills) == (AgentRole.SUPERVISOR, None, ["bs", "de"])
    assert a1_queues == {"support", "vip"}
    assert (await load_agent(database, "a2"))[1] == {"support"}


async def test_segment_column_is_left_alone_when_the_file_has_none(database: Database) -> None:
    header, *rows = CLIENTS.removeprefix("\ufeff").splitlines()
    with_segment = "\n".join([header + ";segment"] + [r + ";retail" for r in rows]) + "\n"
    await import_rows(database.sessions, "agents", AGENTS, REGION)
    await import_rows(database.sessions, "clients", with_segment, REGION)
    result = await import_rows(database.sessions, "clients", CLIENTS, REGION)
    assert result.unchanged == 3
    assert (await load_client(database, "C1")).segment == "retail"


async def test_unknown_manager_is_rejected_and_nothing_written(database: Database) -> None:
    await import_rows(database.sessions, "agents", AGENTS, REGION)
    text = CLIENTS.replace("C3;Jane Doe;;en;new;m1", "C3;Jane Doe;;en;new;ghost")
    with pytest.raises(ImportRejected) as caught:
        await import_rows(database.sessions, "clients", text, REGION)
    (error,) = caught.value.errors
    assert (error.line, error.column, error.value) == (4, "assigned_manager", "'ghost'")
    assert "no agent" in error.message
    assert await count(database, Client) == 0


async def test_import_csv_reads_a_file_and_names_it_in_the_report(
    database: Database, tmp_path: Path
) -> None:
    settings = Settings(database_url=database.url, default_region=REGION)
    agents = tmp_path / "agents.csv"
    agents.write_text(AGENTS, encoding="utf-8")
    result = await import_csv(settings, "agents", agents)
    assert result.created == 3
    latin = tmp_path / "clients.csv"
    latin.write_bytes(CLIENTS.removeprefix("\ufeff").encode("cp1250"))
    with pytest.raises(ImportRejected) as caught:
        await import_csv(settings, "clients", latin)
    assert caught.value.report().startswith(f"{latin}: import rejected")
    assert "not UTF-8" in caught.value.report()


async def test_new_clients_go_in_batches_even_when_empty_fields_alternate(
    database: Database,
) -> None:
    # Regression: the ORM batches only runs of rows with the same columns and left out the
    # None values, so alternating empty languages made one INSERT per client (50 000: 90 s).
    header = CLIENTS.removeprefix("\ufeff").splitlines()[0]
    rows = [f"C{i};Ana;;{'bs' if i % 2 else ''};new;;;;0" for i in range(300)]
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        result = await import_rows(database.sessions, "clients", "\n".join([header, *rows]), REGION)
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)
    assert result.created == 300
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO CLIENTS")]
    assert len(inserts) == 1
    assert (await load_client(database, "C0")).language is None
    assert (await load_client(database, "C1")).language == "bs"


# ---- the command ----------------------------------------------------------------------------


async def centrala(database: Database, *args: str) -> tuple[int, str, str]:
    exe = shutil.which("centrala")
    command = [exe] if exe else [sys.executable, "-c", "from centrala.cli import main; main()"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENTRALA_")}
    env |= {"CENTRALA_DATABASE_URL": database.url, "CENTRALA_DEFAULT_REGION": REGION}
    proc = await asyncio.create_subprocess_exec(
        *command,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_imports_agents_and_clients_end_to_end(
    database: Database, tmp_path: Path
) -> None:
    agents = tmp_path / "agents.csv"
    agents.write_text(AGENTS, encoding="utf-8")
    clients = tmp_path / "clients.csv"
    clients.write_text(CLIENTS, encoding="utf-8")

    code, out, err = await centrala(database, "import", "agents", str(agents))
    assert (code, out.strip()) == (
        0,
        "agents: 3 created, 0 updated, 0 unchanged, 2 queues created",
    ), err
    code, out, err = await centrala(database, "import", "clients", str(clients))
    assert (code, out.strip()) == (0, "clients: 3 created, 0 updated, 0 unchanged"), err
    code, out, err = await centrala(database, "import", "clients", str(clients))
    assert (code, out.strip()) == (0, "clients: 0 created, 0 updated, 3 unchanged"), err
    c1 = await load_client(database, "C1")
    assert c1.assigned_manager_id == "m1"
    assert len(c1.phones) == 2


async def test_cli_rejects_a_bad_file_with_exit_2_and_the_report_on_stderr(
    database: Database, tmp_path: Path
) -> None:
    bad = tmp_path / "agents.csv"
    bad.write_text(
        AGENTS + 'a3,Cleo,agent,"Local/1@x\nAction: Originate",,\na4,Dino,boss,PJSIP/104,,\n',
        encoding="utf-8",
    )
    code, out, err = await centrala(database, "import", "agents", str(bad))
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert lines[0] == f"{bad}: import rejected, nothing was written (2 errors)"
    assert lines[1].startswith("  line 5: endpoint 'Local/1@x\\nAction: Originate': ")
    assert lines[2].startswith("  line 7: role 'boss': expected one of")
    assert await counts(database) == {
        "agents": 0,
        "clients": 0,
        "phones": 0,
        "queues": 0,
        "members": 0,
    }
