"""`centrala import payments` and `centrala procedures generate` on SQLite and PostgreSQL, run
as operators run them: the README's commands of *Procedural calls and sales targets*, as
written there, and a bad payments file rejected whole with exit 2."""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from models.tables import Payment, ProcedureTask
from tests.conftest import Database
from tests.integration.test_loans_db import centrala

README = Path(__file__).resolve().parents[2] / "README.md"


def day(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).date().isoformat()


def files() -> dict[str, str]:
    """Three tasks' worth: an unknown payment, an overpaid loan, an expiring ID document."""
    return {
        "clients.csv": (
            "external_id,name,phone,language,client_type,assigned_manager,birthday,"
            "document_expiry,overdue_debt\n"
            f"C1,Amra Hodžić,061 100 201,bs,regular,,,{day(-10)},0\n"
            "C2,Ion Popescu,0040721123456,ro,regular,,,,0\n"
        ),
        "loans.csv": (
            "loan_id,client_id,opened_at,closed_at,amount,product\n"
            f"L1,C2,{day(400)},{day(100)},300.00,cash\n"
        ),
        "payments.csv": (
            "payment_id,loan_id,client_id,payer_name,payer_number,amount,paid_at,matched\n"
            f"P1,,,Neko Treći,062 555 111,50.00,{day(2)},no\n"
            f"P2,L1,C2,Ion Popescu,,320.00,{day(101)},yes\n"
        ),
    }


def readme_commands() -> list[tuple[list[str], str]]:
    """The section's `centrala` commands, each with its comment (what it prints)."""
    section = README.read_text().split("### Procedural calls and sales targets", 1)[1]
    section = section.split("\n### ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the section's commands are gone from the README"
    commands = []
    for line in block.group(1).splitlines():
        command, _, comment = line.partition("#")
        commands.append((shlex.split(command), comment.strip()))
    return commands


async def test_the_readme_commands_import_payments_and_generate_the_tasks(
    database: Database, tmp_path: Path
) -> None:
    for name, text in files().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    commands = readme_commands()
    assert [argv[:3] for argv, _ in commands] == [
        ["centrala", "import", "clients"],
        ["centrala", "import", "loans"],
        ["centrala", "import", "payments"],
        ["centrala", "procedures", "generate"],
    ]
    outputs = []
    for argv, shown in commands:
        args = [str(tmp_path / a) if a.endswith(".csv") else a for a in argv[1:]]
        code, out, err = await centrala(database, *args)
        assert code == 0, err
        outputs.append(out.strip())
        if shown:  # the README shows what it prints: the test's files give the same
            assert out.startswith(shown.removesuffix("...").rstrip(" ,")), (shown, out)
    assert outputs[2] == "payments: 2 created, 0 updated, 0 unchanged"
    assert outputs[3] == ("procedures: 3 created, 0 already there, 0 closed, 0 without a number")
    async with database.sessions() as session:
        kinds = sorted((t.kind, t.number) for t in await session.scalars(select(ProcedureTask)))
    assert kinds == [
        ("document_expiry", "+38761100201"),
        ("overpayment", "+40721123456"),
        ("unknown_payment", "+38762555111"),
    ]

    # Again: nothing twice, for the import and for the tasks.
    code, out, _ = await centrala(database, "import", "payments", str(tmp_path / "payments.csv"))
    assert (code, out.strip()) == (0, "payments: 0 created, 0 updated, 2 unchanged")
    code, out, _ = await centrala(database, "procedures", "generate")
    assert (code, out.strip()) == (
        0,
        "procedures: 0 created, 3 already there, 0 closed, 0 without a number",
    )


async def test_a_bad_payments_file_writes_nothing_and_exits_2(
    database: Database, tmp_path: Path
) -> None:
    payments = tmp_path / "payments.csv"
    payments.write_text(
        "payment_id,loan_id,payer_name,amount,paid_at\n"
        f"P1,,Neko,50.00,{day(2)}\n"
        f"P2,L404,Neko,1.00,{day(2)}\n",
        encoding="utf-8",
    )
    code, out, err = await centrala(database, "import", "payments", str(payments))
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == [
        f"{payments}: import rejected, nothing was written (1 error)",
        "  line 3: loan_id 'L404': no loan with this external id",
    ]
    async with database.sessions() as session:
        assert (await session.scalars(select(Payment))).all() == []


async def test_generate_reads_its_rules_from_a_file(database: Database, tmp_path: Path) -> None:
    for name, text in files().items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        code, _, err = await centrala(database, "import", name.removesuffix(".csv"), str(path))
        assert code == 0, err
    bad = tmp_path / "bad.yaml"
    bad.write_text("document_dayz: 5\n", encoding="utf-8")
    code, _, err = await centrala(database, "procedures", "generate", "--rules", str(bad))
    assert code == 1 and "document_dayz: Extra inputs are not permitted" in err
    rules = tmp_path / "rules.yaml"
    rules.write_text("document_days: 5  # the document expires in 10\n", encoding="utf-8")
    code, out, err = await centrala(database, "procedures", "generate", "--rules", str(rules))
    assert (code, out.strip()) == (
        0,
        "procedures: 2 created, 0 already there, 0 closed, 0 without a number",
    ), err
    async with database.sessions() as session:
        kinds = set(await session.scalars(select(ProcedureTask.kind)))
    assert kinds == {"overpayment", "unknown_payment"}
