"""`centrala token create|list|revoke` on SQLite and PostgreSQL, as operators run them: the
README's commands of *API tokens*, as written there (the token printed once works, then is
refused once revoked), and the CLI's clear refusals of bad input."""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

from models.api_tokens import ApiTokenStore
from models.tables import Agent, AgentRole
from tests.conftest import Database
from tests.integration.test_loans_db import centrala

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[list[str]]:
    section = README.read_text().split("### API tokens", 1)[1].split("\n### ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the section's commands are gone from the README"
    return [shlex.split(line.split("  #")[0]) for line in block.group(1).splitlines()]


async def test_the_readme_commands_make_list_and_revoke_a_token(database: Database) -> None:
    async with database.sessions() as session, session.begin():
        session.add(Agent(id="anna", name="Anna", role=AgentRole.AGENT, active=True))
    create, listing, revoke = readme_commands()
    assert create[:3] == ["centrala", "token", "create"] and "--expires-days" in create
    code, out, err = await centrala(database, *create[1:])
    assert code == 0, err
    token = out.strip()
    assert re.fullmatch(r"ctk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", token), out
    assert "shown only now" in err
    store = ApiTokenStore(database.sessions)
    found = await store.resolve(token, datetime.now(UTC), "127.0.0.1")
    assert found is not None and (found.agent_id, found.role) == ("anna", "agent")

    assert listing == ["centrala", "token", "list", "anna"]
    code, out, err = await centrala(database, *listing[1:])
    assert code == 0, err
    assert f"{token[:12]}" in out and "CRM sync" in out and "127.0.0.1" in out
    assert token not in out  # the secret is never shown again

    assert revoke == ["centrala", "token", "revoke", "1"]
    code, out, err = await centrala(database, *revoke[1:])
    assert (code, out.strip()) == (0, f"token 1 ({token[:12]}) of anna revoked"), err
    assert await store.resolve(token, datetime.now(UTC), None) is None


async def test_the_cli_refuses_bad_input_clearly(database: Database) -> None:
    async with database.sessions() as session, session.begin():
        session.add(Agent(id="anna", name="Anna", role=AgentRole.AGENT, active=True))
    cases = [
        (["token", "create", "nobody", "--name", "x"], "no agent 'nobody'"),
        (["token", "create", "anna", "--name", " "], "name: a name"),
        (["token", "create", "anna", "--name", "x" * 101], "name: at most 100 characters"),
        (["token", "create", "anna", "--name", "x", "--expires-days", "-5"], "--expires-days"),
        (["token", "create", "anna", "--name", "x", "--expires-days", "soon"], "soon"),
        (["token", "create", "anna"], "--name"),
        (["token", "revoke", "42"], "no token 42"),
    ]
    for args, said in cases:
        code, out, err = await centrala(database, *args)
        assert code != 0 and out == "" and said in err, (args, err)
        assert "Traceback" not in err
    code, out, _ = await centrala(database, "token", "list")
    assert (code, out.strip()) == (0, "no tokens")
