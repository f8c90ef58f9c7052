"""Over 500 lines: every operator command in one place (the surveys' are in ``cli_surveys``,
the procedural calls' in ``cli_procedures``); the next group to move out is ``agent``.

The ``centrala`` command. Names of commands and options are a contract with operators'
scripts (DESIGN.md): keep them."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from centrala.settings import Settings, get_settings, settings_problems
from core.enums import DeskLanguage

if TYPE_CHECKING:
    from dialplan.model import Flow


def _settings() -> Settings:
    from pydantic import ValidationError

    try:
        return get_settings()
    except ValidationError as exc:
        raise click.ClickException(settings_problems(exc)) from exc


@click.group()
def main() -> None:
    """Centrala: call-centre platform on a self-hosted Asterisk."""


# ---- pbx ----------------------------------------------------------------------------------


@main.group()
def pbx() -> None:
    """The local Asterisk 22 (a Debian sid chroot), for machines without Docker."""


@pbx.command("up")
def pbx_up() -> None:
    """Build (once), configure and start the local Asterisk; wait until ARI answers."""
    from centrala.pbx import LocalPBX, PBXError

    try:
        status = LocalPBX(_settings()).up(lambda m: click.echo(m, err=True))
    except PBXError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(status.as_dict()))


@pbx.command("down")
def pbx_down() -> None:
    """Stop the local Asterisk, leaving no process behind."""
    from centrala.pbx import LocalPBX

    stopped = LocalPBX(_settings()).down()
    click.echo("stopped" if stopped else "not running")


@pbx.command("status")
def pbx_status() -> None:
    """Print whether the local Asterisk runs and ARI answers (exit 1 when not running)."""
    from centrala.pbx import LocalPBX

    status = LocalPBX(_settings()).status()
    click.echo(json.dumps(status.as_dict()))
    if not status.running:
        sys.exit(1)


@pbx.command("cli")
@click.argument("command")
def pbx_cli(command: str) -> None:
    """Run one Asterisk CLI command in the local Asterisk."""
    from centrala.pbx import CLIRefused, LocalPBX, PBXError

    try:
        click.echo(LocalPBX(_settings()).cli(command), nl=False)
    except CLIRefused as exc:  # Asterisk's words too: its usage text says what it wants
        click.echo(exc.output, nl=False, err=True)
        raise click.ClickException(str(exc)) from exc
    except PBXError as exc:
        raise click.ClickException(str(exc)) from exc


@pbx.command("render")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def pbx_render(directory: Path) -> None:
    """Write the configuration rendered from the settings (what `pbx up` installs under
    /etc/asterisk/centrala/) into DIRECTORY: the Docker deployment's Asterisk reads it."""
    from centrala.pbx import PBXError, render_generated_config

    try:
        files = render_generated_config(_settings())
    except PBXError as exc:
        raise click.ClickException(str(exc)) from exc
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = directory / name
        path.touch(mode=0o600)  # credentials: readable by the owner only until chowned
        path.write_text(text)
    click.echo(" ".join(sorted(files)))


@pbx.command("media")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
def pbx_media(root: Path) -> None:
    """Synthesise the prompts of the flow and surveys and write them, with the music on hold,
    under ROOT as Asterisk's `/` sees them (what `pbx up` installs in its chroot): the
    Asterisk image's Dockerfile runs it. Unlike `pbx up`, a prompt that cannot be made fails."""
    from centrala.prompts import MOH_FILE, SOUNDS_DIR, PromptError, build_media, install_media

    settings = _settings()
    try:
        build_media(settings)
    except PromptError as exc:
        raise click.ClickException(str(exc)) from exc
    install_media(settings, root)
    count = sum(1 for _ in (root / SOUNDS_DIR).rglob("*.wav"))
    click.echo(f"{count} prompts in {root / SOUNDS_DIR}, music on hold {root / MOH_FILE}")


# ---- prompts ------------------------------------------------------------------------------


@main.group()
def prompts() -> None:
    """The IVR's prompts as sound files (synthesised from the flow's texts)."""


@prompts.command("build")
@click.argument(
    "flow_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def prompts_build(flow_file: Path | None) -> None:
    """Synthesise the prompts of FLOW_FILE (default: the configured flow) into
    DATA_DIR/sounds/<lang>/<name>.wav; unchanged texts are kept from the last build.
    `centrala pbx up` installs them into the local Asterisk."""
    from centrala.prompts import PromptError, build_prompts, load_flow

    settings = _settings()
    out_dir = settings.data_dir / "sounds"
    built: list[Path] = []
    try:
        paths = build_prompts(load_flow(flow_file or settings.flow_file), out_dir, built=built)
    except PromptError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{len(built)} prompts built, {len(paths) - len(built)} cached, in {out_dir}")


# ---- db -----------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The CRM database."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply Alembic migrations (default: to the newest)."""
    from models.db import upgrade

    settings = _settings()
    upgrade(settings.effective_database_url, revision)
    click.echo(f"database at {revision}: {settings.effective_database_url.split('@')[-1]}")


@db.command("revision")
@click.option("-m", "--message", required=True, help="what the migration changes")
def db_revision(message: str) -> None:
    """Write a new migration from the difference between models/tables.py and the database
    (upgrade the database first). Review the generated file before committing it."""
    from alembic import command

    from models.db import alembic_config

    command.revision(
        alembic_config(_settings().effective_database_url), message=message, autogenerate=True
    )


# ---- import -------------------------------------------------------------------------------


@main.group("import")
def import_() -> None:
    """Import clients, agents, loans or payments from CSV. All rows or none: a bad row aborts
    the import."""


def _run_import(kind: str, path: Path) -> None:
    from centrala.logs import configure_logging
    from core.csvrows import ImportRejected
    from models.importing import import_csv

    configure_logging("console", "WARNING")
    settings = _settings()
    url, region = settings.effective_database_url, settings.default_region
    try:
        result = asyncio.run(import_csv(url, kind, path, region))
    except ImportRejected as exc:
        click.echo(exc.report(), err=True)
        sys.exit(2)
    click.echo(result.summary())


@import_.command("clients")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_clients(path: Path) -> None:
    """Import clients (external_id, name, phone, language, client_type, ...)."""
    _run_import("clients", path)


@import_.command("agents")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_agents(path: Path) -> None:
    """Import agents (agent_id, name, role, endpoint, queues, skills)."""
    _run_import("agents", path)


@import_.command("loans")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_loans(path: Path) -> None:
    """Import loans (loan_id, client_id, opened_at, closed_at, amount, product)."""
    _run_import("loans", path)


@import_.command("payments")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_payments(path: Path) -> None:
    """Import payments (payment_id, payer_name, amount, paid_at; loan_id, client_id,
    payer_number, matched): procedural calls are generated from them."""
    _run_import("payments", path)


# ---- dialplan -----------------------------------------------------------------------------


@main.group("dialplan")
def dialplan_() -> None:
    """Editable call flows: IVR menus, prompts, routing rules, hours and queues."""


def _read_flow(path: Path) -> Flow:
    from dialplan.validate import FlowError, load_flow

    try:
        return load_flow(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{path}: {exc}") from exc
    except FlowError as exc:
        _flow_problems(path, exc.problems)


def _flow_problems(path: Path, problems: list[str]) -> NoReturn:
    for problem in problems:
        click.echo(f"{path}: {problem}", err=True)
    sys.exit(2)


def _database_queues(settings: Settings) -> set[str] | None:
    """The queue ids in the settings' database; None when it is not there or not reachable
    (a missing SQLite file is not created)."""
    from sqlalchemy.engine import make_url

    from models.db import create_engine, session_factory
    from models.flows import known_queue_ids

    url = settings.effective_database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or not Path(parsed.database).is_file():
            return None
        connect: dict[str, Any] = {}
    else:
        connect = {"connect_args": {"timeout": 5}}

    async def run() -> set[str] | None:
        engine = create_engine(url, **connect)
        try:
            async with asyncio.timeout(10):
                return await known_queue_ids(session_factory(engine))
        except Exception:  # unreachable, not migrated, ...: check against the file alone
            return None
        finally:
            await engine.dispose()

    return asyncio.run(run())


@dialplan_.command("check")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def dialplan_check(path: Path) -> None:
    """Check the flow in PATH (YAML or JSON) without applying it: exit 0 when valid, 2 with
    one problem per line. Queues are also looked up in the database when it is reachable."""
    from dialplan.validate import validate

    flow = _read_flow(path)
    known = _database_queues(_settings())
    if known is None:
        click.echo("note: database not reachable, queues checked against the file only", err=True)
    problems = validate(flow, known or ())
    if problems:
        _flow_problems(path, problems)
    click.echo(f"OK: flow {flow.name}, {len(flow.nodes)} nodes, {len(flow.routes)} routes")


@dialplan_.command("apply")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def dialplan_apply(path: Path) -> None:
    """Validate the flow in PATH and make it the active version of its name, with its queues,
    in one transaction. Calls in progress keep their version; new calls take this one.
    Applying the active flow again changes nothing."""
    import getpass

    from sqlalchemy.exc import SQLAlchemyError

    from dialplan.validate import FlowError
    from models.db import create_engine, session_factory
    from models.flows import apply_flow

    flow = _read_flow(path)
    try:
        user: str | None = getpass.getuser()[:64]
    except (KeyError, OSError):
        user = None

    async def run() -> int:
        engine = create_engine(_settings().effective_database_url)
        try:
            return await apply_flow(session_factory(engine), flow, created_by=user)
        finally:
            await engine.dispose()

    try:
        version = asyncio.run(run())
    except FlowError as exc:
        _flow_problems(path, exc.problems)
    except (SQLAlchemyError, OSError) as exc:
        raise click.ClickException(f"database: {exc}") from exc
    click.echo(f"flow {flow.name} version {version} active")


# ---- agent -------------------------------------------------------------------------------


@main.group()
def agent() -> None:
    """Agents' state in the running `centrala serve` (through its API)."""


def _api(method: str, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
    import urllib.error
    import urllib.request

    settings = _settings()
    url = f"http://{settings.web_host}:{settings.web_port}{path}"
    data = json.dumps(body or {}).encode()
    req = urllib.request.Request(
        url,
        data=data if method == "POST" else None,
        method=method,
        headers={
            "Authorization": f"Bearer {settings.effective_api_token()}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            result: dict[str, object] = json.loads(resp.read())
            return result
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("message", exc.reason)
        except ValueError:
            detail = exc.reason
        raise click.ClickException(f"{detail} (HTTP {exc.code})") from exc
    except OSError as exc:
        raise click.ClickException(f"centrala serve is not reachable at {url}: {exc}") from exc


@agent.command("login")
@click.argument("agent_id")
@click.option("--endpoint", help="dial string of the phone, e.g. PJSIP/101 (default: on file)")
@click.option(
    "--mode",
    type=click.Choice(["per_call", "nailed"]),
    default="per_call",
    help="ring the phone per call, or keep it connected all shift",
)
def agent_login(agent_id: str, endpoint: str | None, mode: str) -> None:
    """Log an agent in with their phone."""
    body: dict[str, object] = {"mode": mode}
    if endpoint:
        body["endpoint"] = endpoint
    click.echo(json.dumps(_api("POST", f"/api/agents/{agent_id}/login", body)))


@agent.command("logout")
@click.argument("agent_id")
def agent_logout(agent_id: str) -> None:
    """Log an agent out."""
    click.echo(json.dumps(_api("POST", f"/api/agents/{agent_id}/logout")))


@agent.command("pause")
@click.argument("agent_id")
@click.option("--reason", default="break", help="why (shown on the wallboard)")
def agent_pause(agent_id: str, reason: str) -> None:
    """Pause an agent: no calls are offered to them."""
    click.echo(json.dumps(_api("POST", f"/api/agents/{agent_id}/pause", {"reason": reason})))


@agent.command("ready")
@click.argument("agent_id")
def agent_ready(agent_id: str) -> None:
    """End a pause or the wrap-up: the agent takes calls again."""
    click.echo(json.dumps(_api("POST", f"/api/agents/{agent_id}/ready")))


@agent.command("status")
def agent_status() -> None:
    """Agents and queues as the ACD sees them now."""
    click.echo(json.dumps(_api("GET", "/api/acd"), indent=2))


@agent.command("passwd")
@click.argument("agent_id")
@click.option("--stdin", "from_stdin", is_flag=True, help="read the password from standard input")
def agent_passwd(agent_id: str, from_stdin: bool) -> None:
    """Set an agent's desktop password (argon2id hash in the database). Prompts twice, or
    reads one line from stdin with --stdin or when stdin is not a terminal."""
    from models.db import create_engine, session_factory
    from web.auth import check_new_password, hash_password
    from web.store import DeskStore

    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    problem = check_new_password(password)
    if problem:
        raise click.ClickException(f"password: {problem}")
    settings = _settings()

    async def run() -> bool:
        engine = create_engine(settings.effective_database_url)
        try:
            return await DeskStore(session_factory(engine)).set_password(
                agent_id, hash_password(password)
            )
        finally:
            await engine.dispose()

    if not asyncio.run(run()):
        raise click.ClickException(f"no agent {agent_id!r}")
    click.echo(f"password set for {agent_id}")


@agent.command("language")
@click.argument("agent_id")
@click.argument("language", type=click.Choice([lang.value for lang in DeskLanguage]))
def agent_language(agent_id: str, language: str) -> None:
    """Set the language of the agent's desk and pages (bs or en); the agent can change it on
    the desk too. Their next page speaks it."""
    from models.db import create_engine, session_factory
    from web.store import DeskStore

    settings = _settings()

    async def run() -> bool:
        engine = create_engine(settings.effective_database_url)
        try:
            return await DeskStore(session_factory(engine)).set_language(
                agent_id, DeskLanguage(language)
            )
        finally:
            await engine.dispose()

    if not asyncio.run(run()):
        raise click.ClickException(f"no agent {agent_id!r}")
    click.echo(f"language of {agent_id}: {language}")


@agent.command("phone")
@click.argument("agent_id")
@click.option("--remove", is_flag=True, help="take the agent's phone away instead")
def agent_phone(agent_id: str, remove: bool) -> None:
    """Make (or reset) the agent's SIP phone and print its credentials, once: a desk phone or
    softphone registers with them, and the agent's phone on file becomes PJSIP/AGENT_ID. The
    password is shown only now; the database keeps its SIP digest, never the password."""
    import secrets

    from ari_app.ari import ARIClient, ARIError
    from ari_app.phones import PhonePusher
    from core.sip import check_phone_name, phone_dial, phone_digest
    from models.db import create_engine, session_factory
    from models.phones import Phone, PhoneStore

    settings = _settings()
    problem = check_phone_name(agent_id, settings.trunks)
    if problem:
        raise click.ClickException(f"agent {agent_id}: {problem}")
    password = secrets.token_urlsafe(18)
    phone = Phone(
        agent_id, agent_id, settings.sip_realm, phone_digest(agent_id, settings.sip_realm, password)
    )

    async def run() -> dict[str, object]:
        engine = create_engine(settings.effective_database_url)
        try:
            store = PhoneStore(session_factory(engine))
            if remove:
                if await store.remove(agent_id) is None:
                    raise click.ClickException(f"agent {agent_id} has no phone")
            elif not await store.put(phone):
                raise click.ClickException(f"no agent {agent_id!r}")
        finally:
            await engine.dispose()
        ari = ARIClient(settings.ari_url, settings.ari_user, settings.ari_password, [])
        await ari.open()
        pusher = PhonePusher(
            ari,
            store.all,
            realm=settings.sip_realm,
            codecs=settings.phone_codecs,
            media_encryption=settings.phone_media_encryption,
        )
        try:
            await (pusher.remove(agent_id) if remove else pusher.push(phone))
            in_asterisk = "updated"
        except ARIError as exc:
            # Written in the database: `serve` pushes every phone when it (re)connects.
            in_asterisk = f"not reached ({exc}); pushed when centrala serve connects"
        finally:
            await ari.stop()
        if remove:
            return {"agent": agent_id, "removed": True, "asterisk": in_asterisk}
        return {
            "agent": agent_id,
            "username": phone.endpoint,
            "password": password,
            "realm": settings.sip_realm,
            "registrar": settings.sip_external_address or settings.sip_bind,
            "dial": phone_dial(phone.endpoint),
            "asterisk": in_asterisk,
        }

    click.echo(json.dumps(asyncio.run(run())))


# ---- serve --------------------------------------------------------------------------------


@main.command()
def serve() -> None:
    """Run Centrala: ARI apps, FastAGI server, AMI client and the web/status API."""
    from centrala.logs import configure_logging
    from centrala.service import run

    settings = _settings()
    if problems := settings.exposed_default_secrets():
        raise click.ClickException("refusing to serve: " + "; ".join(problems))
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(run(settings))


def _register_survey_commands() -> None:
    from centrala.cli_surveys import campaign, do_not_call, survey

    main.add_command(survey)
    main.add_command(campaign)
    main.add_command(do_not_call)


_register_survey_commands()


def _register_procedure_commands() -> None:
    from centrala.cli_procedures import procedures

    main.add_command(procedures)


_register_procedure_commands()


def _register_token_commands() -> None:
    from centrala.cli_tokens import token

    main.add_command(token)


_register_token_commands()


def _register_report_commands() -> None:
    from centrala.cli_inquiries import inquiries
    from centrala.cli_letters import letters
    from centrala.cli_notices import notices
    from centrala.cli_reports import reports

    main.add_command(reports)
    main.add_command(notices)
    main.add_command(letters)
    main.add_command(inquiries)


_register_report_commands()


if __name__ == "__main__":
    main()
