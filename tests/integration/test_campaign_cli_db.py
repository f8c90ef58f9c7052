"""`centrala survey apply` and `centrala campaign create|start|pause|stop|status` on SQLite and
PostgreSQL, run as operators run them: targets from CRM segments or from a CSV list, a broken
list creates nothing, the states move only the allowed ways."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from models.campaigns import CampaignStore
from models.surveys import active_survey
from models.tables import Campaign, CampaignContact, Client, ClientPhone, Loan
from tests.conftest import Database
from tests.integration.test_loans_db import centrala

REPO = Path(__file__).resolve().parents[2]


async def seed_borrowers(database: Database) -> None:
    now = datetime.now(UTC)
    async with database.sessions() as session, session.begin():
        for ext, phone, opened, closed in (
            ("NEW", "+38761100001", now - timedelta(days=10), None),
            ("OLD", "+38761100002", now - timedelta(days=900), now - timedelta(days=400)),
            ("NONE", "+38761100003", None, None),
        ):
            client = Client(external_id=ext, name=ext.title(), language="bs")
            session.add(client)
            await session.flush()
            session.add(ClientPhone(client_id=client.id, number=phone))
            if opened is not None:
                session.add(
                    Loan(
                        client_id=client.id,
                        external_id=f"L-{ext}",
                        opened_at=opened,
                        closed_at=closed,
                    )
                )


async def contacts(database: Database, name: str) -> list[CampaignContact]:
    async with database.sessions() as session:
        campaign = await session.scalar(select(Campaign).where(Campaign.name == name))
        assert campaign is not None
        rows = await session.scalars(
            select(CampaignContact)
            .where(CampaignContact.campaign_id == campaign.id)
            .order_by(CampaignContact.number)
        )
        return list(rows)


async def test_survey_apply_versions_a_changed_survey(database: Database, tmp_path: Path) -> None:
    nps = REPO / "surveys" / "nps.yaml"
    code, out, err = await centrala(database, "survey", "apply", str(nps))
    assert code == 0, err
    assert "version 1 active" in out
    code, out, _ = await centrala(database, "survey", "apply", str(nps))
    assert "version 1 active" in out  # the same definition: unchanged
    changed = tmp_path / "nps.yaml"
    changed.write_text(nps.read_text().replace("timeout_seconds: 7", "timeout_seconds: 8"))
    code, out, err = await centrala(database, "survey", "apply", str(changed))
    assert code == 0 and "version 2 active" in out, err
    stored = await active_survey(database.sessions, "nps")
    assert stored is not None and stored.version == 2
    broken = tmp_path / "broken.yaml"
    broken.write_text(nps.read_text().replace("start: recommend", "start: nowhere"))
    code, _, err = await centrala(database, "survey", "check", str(broken))
    assert code == 2 and "nowhere" in err


async def test_campaign_from_segments_and_its_life(database: Database) -> None:
    await seed_borrowers(database)
    assert (await centrala(database, "survey", "apply", str(REPO / "surveys" / "nps.yaml")))[0] == 0
    code, out, err = await centrala(
        database, "campaign", "create", "nps-winter", "--segment", "new", "--segment", "inactive",
        "--concurrency", "12",
    )  # fmt: skip
    assert code == 0, err
    assert "2 contacts" in out
    rows = await contacts(database, "nps-winter")
    assert [(r.number, r.segment) for r in rows] == [
        ("+38761100001", "new"),
        ("+38761100002", "inactive"),
    ]
    for op, state in (("start", "running"), ("pause", "paused"), ("start", "running")):
        code, out, err = await centrala(database, "campaign", op, "nps-winter")
        assert code == 0 and out.strip() == f"campaign nps-winter: {state}", err
    code, out, err = await centrala(database, "campaign", "status", "nps-winter", "--json")
    assert code == 0, err
    (status,) = json.loads(out)
    assert status["status"] == "running" and status["settings"]["concurrency"] == 12
    assert status["progress"]["contacts"] == 2 and status["progress"]["by_status"] == {"pending": 2}
    assert (await centrala(database, "campaign", "stop", "nps-winter"))[0] == 0
    code, _, err = await centrala(database, "campaign", "start", "nps-winter")
    assert code == 1 and "stopped, cannot become running" in err
    code, _, err = await centrala(database, "campaign", "create", "nps-winter", "--segment", "new")
    assert code == 1 and "exists" in err


async def test_campaign_from_a_csv_list_all_or_nothing(database: Database, tmp_path: Path) -> None:
    await seed_borrowers(database)
    assert (await centrala(database, "survey", "apply", str(REPO / "surveys" / "nps.yaml")))[0] == 0
    good = tmp_path / "list.csv"
    good.write_text(
        "number,client_id,name,language,timezone\n"
        "061 100 001,NEW,Nova,en,Europe/Sarajevo\n"
        "+38762999888,,Neko Novi,,America/New_York\n"
    )
    code, _, err = await centrala(database, "campaign", "create", "list", "--contacts", str(good))
    assert code == 0, err
    rows = await contacts(database, "list")
    assert [(r.number, r.language, r.timezone, r.client_id is not None) for r in rows] == [
        ("+38761100001", "en", "Europe/Sarajevo", True),
        ("+38762999888", None, "America/New_York", False),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("number,name\n+38761100001,Ok\n112,=HYPERLINK(1)\n")
    code, _, err = await centrala(database, "campaign", "create", "bad", "--contacts", str(bad))
    assert code == 2 and "line 3" in err
    async with database.sessions() as session:
        assert await session.scalar(select(Campaign).where(Campaign.name == "bad")) is None
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("number,client_id\n+38761100005,NOBODY\n")
    code, _, err = await centrala(database, "campaign", "create", "u", "--contacts", str(unknown))
    assert code == 1 and "NOBODY" in err


async def test_the_do_not_call_list(database: Database) -> None:
    code, out, err = await centrala(
        database, "dnc", "add", "061 100 001", "--reason", "asked", "--until", "2027-01-31"
    )
    assert code == 0 and "+38761100001 on the do-not-call list until 2027-01-31" in out, err
    code, out, _ = await centrala(database, "dnc", "add", "+38761100001", "--reason", "again")
    assert code == 0  # a second add replaces the reason and the expiry
    code, out, _ = await centrala(database, "dnc", "list")
    assert out.splitlines() == ["+38761100001\t-\tagain"]
    store = CampaignStore(database.sessions)
    assert await store.do_not_call() == {"+38761100001": None}
    code, _, err = await centrala(database, "dnc", "add", "not-a-number")
    assert code == 2 and "not a phone number" in err
    assert (await centrala(database, "dnc", "remove", "+38761100001"))[0] == 0
    code, _, err = await centrala(database, "dnc", "remove", "+38761100001")
    assert code == 1 and "not on the do-not-call list" in err
