"""`centrala campaign create --mode …` on SQLite and PostgreSQL: the README's agent-campaign
commands, run as written (a lead list for `leads.csv`), then the mistakes an operator makes
(no queue, two sources, a bad settings value), each refused with nothing written."""

from __future__ import annotations

import json
import re
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from models.tables import Campaign, CampaignContact, Client
from tests.conftest import Database
from tests.integration.test_campaign_cli_db import seed_borrowers
from tests.integration.test_loans_db import centrala

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[list[str]]:
    """The commands of the README's agent-campaign block, split as a shell would."""
    text = README.read_text().split("### Agent campaigns: the agent dialler", 1)[1]
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block is not None, "the agent campaigns' command block is gone from the README"
    lines = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("centrala ")]


async def test_the_readme_agent_campaign_commands(database: Database, tmp_path: Path) -> None:
    await seed_borrowers(database)  # one inactive borrower: OLD
    async with database.sessions() as session, session.begin():
        client = await session.scalar(select(Client).where(Client.external_id == "NEW"))
        assert client is not None
        client.document_expiry = (datetime.now(UTC) + timedelta(days=10)).date()
    leads = tmp_path / "leads.csv"
    leads.write_text("number,name,language\n+38761200001,Lea,bs\n+38761200002,Luka,en\n")
    commands = readme_commands()
    assert [c[:2] for c in commands] == [
        ["campaign", "create"],
        ["campaign", "create"],
        ["procedures", "generate"],
        ["campaign", "create"],
        ["campaign", "start"],
        ["campaign", "status"],
    ]
    outputs = []
    for args in commands:
        args = [str(leads) if a == "leads.csv" else a for a in args]
        code, out, err = await centrala(database, *args)
        assert code == 0, (args, err)
        outputs.append(out)
    assert "(id 1, sales, progressive) created with 1 contacts: draft" in outputs[0]
    assert "leads, predictive) created with 2 contacts" in outputs[1]
    assert "(id 3, procedural, preview) created with 1 contacts" in outputs[3]
    assert "winback: running" in outputs[4]
    assert "0 dials, 0 live answers, 0 connected, 0 abandoned" in outputs[5]
    async with database.sessions() as session:
        campaigns = {c.name: c for c in await session.scalars(select(Campaign))}
        numbers = list(await session.scalars(select(CampaignContact.number)))
    assert campaigns["winback"].kind == "sales"
    assert campaigns["winback"].settings["segment"] == "inactive"
    assert campaigns["leads-dec"].settings["abandon_cap_percent"] == 2.5
    assert campaigns["leads-dec"].settings["mode"] == "predictive"
    assert sorted(numbers) == ["+38761100001", "+38761100002", "+38761200001", "+38761200002"]
    assert campaigns["id-renewals"].settings["procedure"] == "document_expiry"

    code, out, err = await centrala(database, "campaign", "status", "leads-dec", "--json")
    assert code == 0, err
    (shown,) = json.loads(out)
    assert shown["kind"] == "leads" and shown["dialler"]["abandonment"]["whole_run"] == {
        "live": 0,
        "abandoned": 0,
        "rate_percent": None,
    }


async def test_mistakes_are_refused_and_write_nothing(database: Database, tmp_path: Path) -> None:
    await seed_borrowers(database)
    leads = tmp_path / "leads.csv"
    leads.write_text("number\n+38761200001\n")
    bad_settings = tmp_path / "bad.yaml"
    bad_settings.write_text("ring_seconds: 5\n")
    base = ["campaign", "create", "x", "--mode", "progressive"]
    for args, says in (
        ([*base, "--segment", "inactive"], "needs --queue"),
        ([*base, "--queue", "sales", "--segment", "inactive", "--contacts", str(leads)], "one of"),
        ([*base, "--queue", "sales"], "exactly one of"),
        (
            [*base, "--queue", "sales", "--segment", "inactive", "--settings", str(bad_settings)],
            "ring_seconds",
        ),
        (["campaign", "create", "x", "--segment", "new", "--queue", "sales"], "need --mode"),
    ):
        code, out, err = await centrala(database, *args)
        assert code == 2 or code == 1, (args, out)
        assert says in err, (args, err)
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Campaign)) == 0
