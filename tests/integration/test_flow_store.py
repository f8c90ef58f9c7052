"""Versioned flows in real databases (SQLite and PostgreSQL): models.flows and the
`centrala dialplan check/apply` commands as operators run them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from dialplan.model import Flow
from dialplan.validate import FlowError
from models.flows import active_flow, apply_flow, checksum, flow_version, known_queue_ids
from models.tables import FlowVersion, Queue
from tests.conftest import Database

INFOLINE = Path(__file__).parents[2] / "dialplan" / "infoline.yaml"
BASE: dict[str, Any] = yaml.safe_load(INFOLINE.read_text(encoding="utf-8"))
FLOW = Flow.model_validate(BASE)


def changed(**update: Any) -> Flow:
    return FLOW.model_copy(update=update)


async def versions(database: Database, name: str = "infoline") -> list[tuple[int, bool]]:
    async with database.sessions() as session:
        rows = await session.execute(
            select(FlowVersion.version, FlowVersion.active)
            .where(FlowVersion.name == name)
            .order_by(FlowVersion.version)
        )
        return [(v, a) for v, a in rows.all()]


async def queues(database: Database) -> dict[str, Queue]:
    async with database.sessions() as session:
        return {q.id: q for q in (await session.scalars(select(Queue))).all()}


async def test_first_apply_creates_version_1_active_with_its_queues(database: Database) -> None:
    assert await apply_flow(database.sessions, FLOW, created_by="admin") == 1
    assert await versions(database) == [(1, True)]
    assert await active_flow(database.sessions, "infoline") == (1, FLOW)

    rows = await queues(database)
    assert set(rows) == set(FLOW.queues)
    urgent = rows["urgent"]
    assert (urgent.name, urgent.strategy, urgent.priority, urgent.max_wait_seconds) == (
        "Urgent (lost documents, fraud)",
        "longest_idle",
        100,
        120,
    )
    assert urgent.settings["calendar"] == "always"
    assert urgent.settings["overflow"] == {"queue": "supervisor", "callback": False}
    assert "name" not in urgent.settings and "priority" not in urgent.settings
    async with database.sessions() as session:
        row = await session.scalar(select(FlowVersion))
    assert row is not None
    assert row.checksum == checksum(FLOW) and len(row.checksum) == 64
    assert row.created_by == "admin" and row.created_at.tzinfo is not None


async def test_applying_the_same_flow_again_changes_nothing(database: Database) -> None:
    assert await apply_flow(database.sessions, FLOW) == 1
    assert await apply_flow(database.sessions, Flow.model_validate(BASE)) == 1
    assert await versions(database) == [(1, True)]


async def test_changed_flow_becomes_version_2_and_version_1_stays_fetchable(
    database: Database,
) -> None:
    await apply_flow(database.sessions, FLOW)
    v2 = changed(description="Edited by an admin")
    assert await apply_flow(database.sessions, v2) == 2
    assert await versions(database) == [(1, False), (2, True)]
    assert await active_flow(database.sessions, "infoline") == (2, v2)
    assert await flow_version(database.sessions, "infoline", 1) == FLOW  # calls in progress
    assert await flow_version(database.sessions, "infoline", 3) is None
    assert await active_flow(database.sessions, "other") is None
    # Going back to the first text makes a new version 3, not a reactivation of 1.
    assert await apply_flow(database.sessions, FLOW) == 3


async def test_apply_updates_queues_of_the_file_and_leaves_others_alone(
    database: Database,
) -> None:
    async with database.sessions() as session, session.begin():
        session.add(Queue(id="collections", name="Collections", settings={"x": 1}))
        session.add(Queue(id="general", name="Old name", priority=7, settings={"old": True}))
    assert await known_queue_ids(database.sessions) == {"collections", "general"}
    general = FLOW.queues["general"].model_copy(update={"max_wait_seconds": 240})
    await apply_flow(database.sessions, changed(queues={**FLOW.queues, "general": general}))
    rows = await queues(database)
    assert rows["collections"].name == "Collections" and rows["collections"].settings == {"x": 1}
    assert rows["general"].name == "Info line operators"
    assert (rows["general"].priority, rows["general"].max_wait_seconds) == (0, 240)
    assert "old" not in rows["general"].settings


async def test_flow_may_use_a_queue_defined_only_in_the_database(database: Database) -> None:
    data = {**BASE, "routes": [*BASE["routes"][:-1], {"name": "rest", "queue": "collections"}]}
    flow = Flow.model_validate(data)
    with pytest.raises(FlowError, match="unknown queue 'collections'"):
        await apply_flow(database.sessions, flow)
    async with database.sessions() as session, session.begin():
        session.add(Queue(id="collections", name="Collections"))
    assert await apply_flow(database.sessions, flow) == 1


async def test_invalid_flow_writes_nothing(database: Database) -> None:
    with pytest.raises(FlowError) as err:
        await apply_flow(database.sessions, changed(start="nowhere"))
    assert "start: no node named 'nowhere'" in err.value.problems
    assert await versions(database) == []
    assert await queues(database) == {}


async def test_concurrent_applies_get_distinct_versions_and_one_active(
    database: Database,
) -> None:
    await apply_flow(database.sessions, FLOW)
    a, b = changed(description="edit A"), changed(description="edit B")
    results = await asyncio.gather(
        apply_flow(database.sessions, a), apply_flow(database.sessions, b)
    )
    assert sorted(results) == [2, 3]
    rows = await versions(database)
    assert [v for v, _ in rows] == [1, 2, 3]
    assert [v for v, active in rows if active] == [3]
    active = await active_flow(database.sessions, "infoline")
    assert active is not None
    winner = a if results[0] == 3 else b
    assert active == (3, winner)


async def test_many_concurrent_applies_never_share_a_version(database: Database) -> None:
    flows = [changed(description=f"edit {i}") for i in range(6)]
    results = await asyncio.gather(*(apply_flow(database.sessions, f) for f in flows))
    assert sorted(results) == [1, 2, 3, 4, 5, 6]
    async with database.sessions() as session:
        active = await session.scalar(
            select(func.count()).select_from(FlowVersion).where(FlowVersion.active)
        )
    assert active == 1


async def test_flows_of_different_names_are_versioned_separately(database: Database) -> None:
    await apply_flow(database.sessions, FLOW)
    other = changed(name="sales_line")
    assert await apply_flow(database.sessions, other) == 1
    assert await versions(database, "infoline") == [(1, True)]
    assert await versions(database, "sales_line") == [(1, True)]


# ---- the command --------------------------------------------------------------------------


def centrala(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CENTRALA_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "centrala.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        cwd=Path(__file__).parents[2],
    )


async def test_cli_check_and_apply_end_to_end(database: Database, tmp_path: Path) -> None:
    out = centrala(database.url, "dialplan", "check", str(INFOLINE))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "OK: flow infoline, 15 nodes, 6 routes"
    assert await versions(database) == []  # check writes nothing

    out = centrala(database.url, "dialplan", "apply", str(INFOLINE))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "flow infoline version 1 active"
    out = centrala(database.url, "dialplan", "apply", str(INFOLINE))
    assert out.stdout.strip() == "flow infoline version 1 active"

    edited = tmp_path / "infoline.json"
    edited.write_text(changed(description="edited").model_dump_json(), encoding="utf-8")
    out = centrala(database.url, "dialplan", "apply", str(edited))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "flow infoline version 2 active"
    assert await versions(database) == [(1, False), (2, True)]
    assert set(await queues(database)) == set(FLOW.queues)


async def test_cli_rejects_a_broken_flow_with_one_problem_per_line(
    database: Database, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    text = INFOLINE.read_text(encoding="utf-8")
    broken.write_text(
        text.replace("next: goodbye", "next: goodby").replace("queue: finance", "queue: financ"),
        encoding="utf-8",
    )
    for command in ("check", "apply"):
        out = centrala(database.url, "dialplan", command, str(broken))
        assert out.returncode == 2, out
        lines = [line for line in out.stderr.splitlines() if not line.startswith("note:")]
        assert f"{broken}: nodes.callback_request.next: no node named 'goodby'" in lines
        assert any("unknown queue 'financ'" in line for line in lines)
        assert out.stdout == ""
    assert await versions(database) == []

    unparsable = tmp_path / "bad.yaml"
    unparsable.write_text("name: [x\n", encoding="utf-8")
    out = centrala(database.url, "dialplan", "check", str(unparsable))
    assert out.returncode == 2 and "line " in out.stderr


async def test_cli_check_knows_the_database_queues_and_works_without_a_database(
    database: Database, tmp_path: Path
) -> None:
    data = {**BASE, "routes": [*BASE["routes"][:-1], {"name": "rest", "queue": "collections"}]}
    flow_file = tmp_path / "flow.yaml"
    flow_file.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    out = centrala(database.url, "dialplan", "check", str(flow_file))
    assert out.returncode == 2 and "unknown queue 'collections'" in out.stderr

    async with database.sessions() as session, session.begin():
        session.add(Queue(id="collections", name="Collections"))
    out = centrala(database.url, "dialplan", "check", str(flow_file))
    assert out.returncode == 0, out.stderr

    # No database: the file alone decides (and a missing SQLite file is not created).
    missing = tmp_path / "none" / "centrala.db"
    out = centrala(f"sqlite+aiosqlite:///{missing}", "dialplan", "check", str(INFOLINE))
    assert out.returncode == 0, out.stderr
    assert "database not reachable" in out.stderr
    assert not missing.exists()
    out = centrala(
        "postgresql+asyncpg://centrala:centrala@127.0.0.1:9/none",
        "dialplan",
        "check",
        str(INFOLINE),
    )
    assert out.returncode == 0, out.stderr
