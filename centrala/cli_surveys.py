"""Over 500 lines: every `survey`, `campaign` and `dnc` command in one place, as operators
find them in `--help`; each is a thin wrapper with no logic to split.

`centrala survey ...` and `centrala campaign ...`: survey definitions and outbound survey
campaigns, straight on the database. The running `centrala serve` picks a campaign's start,
pause or stop up at its next tick (the API does the same through the server)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from centrala.settings import get_settings

T = TypeVar("T")
if TYPE_CHECKING:  # sqlalchemy costs every `centrala` command half a second to import
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    Sessions = async_sessionmaker[AsyncSession]


def _db(work: Callable[[Sessions], Awaitable[T]]) -> T:
    from sqlalchemy.exc import SQLAlchemyError

    from models.campaigns import CampaignError
    from models.db import create_engine, session_factory

    async def run() -> T:
        engine = create_engine(get_settings().effective_database_url)
        try:
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except CampaignError as exc:
        raise click.ClickException(str(exc)) from exc
    except (SQLAlchemyError, OSError) as exc:
        raise click.ClickException(f"database: {exc}") from exc


# ---- survey -------------------------------------------------------------------------------


@click.group()
def survey() -> None:
    """Survey definitions (NPS, research): check, apply, report."""


def _read_survey(path: Path) -> Any:
    from core.surveys.validate import SurveyError, check_survey

    try:
        return check_survey(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{path}: {exc}") from exc
    except SurveyError as exc:
        for problem in exc.problems:
            click.echo(f"{path}: {problem}", err=True)
        sys.exit(2)


@survey.command("check")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def survey_check(path: Path) -> None:
    """Check the survey in PATH (YAML or JSON): exit 0 when valid, 2 with one problem per
    line."""
    s = _read_survey(path)
    click.echo(f"OK: survey {s.name}, {len(s.questions)} questions, languages {s.languages}")


@survey.command("apply")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def survey_apply(path: Path) -> None:
    """Validate the survey in PATH and make it the active version of its name; synthesise
    its prompts (and install them into the local PBX when it is there). Campaigns already
    created keep the version they were created with."""
    from centrala.pbx import LocalPBX
    from centrala.prompts import PromptError, build_prompts
    from models.surveys import apply_survey

    s = _read_survey(path)
    stored = _db(lambda sessions: apply_survey(sessions, s, by="cli"))
    settings = get_settings()
    try:
        build_prompts(s, settings.data_dir / "sounds")
        pbx = LocalPBX(settings)
        if pbx.rootfs.is_dir():
            pbx.install_sounds()
    except (PromptError, OSError) as exc:
        click.echo(f"warning: prompts not synthesised: {exc}", err=True)
    click.echo(f"survey {s.name} version {stored.version} active (id {stored.id})")


@survey.command("report")
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(min=1), help="one version only")
@click.option("--campaign", help="one campaign only (default: all, with post-call surveys)")
@click.option(
    "--period", type=click.Choice(["day", "week", "month"]), default="month", show_default=True
)
@click.option("--since", metavar="YYYY-MM-DD", help="first local day (survey calls started)")
@click.option("--until", metavar="YYYY-MM-DD", help="last local day, included")
@click.option(
    "--csv", "csv_file", type=click.Path(dir_okay=False, path_type=Path), help="every answer row"
)
@click.option(
    "--svg", "svg_file", type=click.Path(dir_okay=False, path_type=Path), help="the chart"
)
@click.option("--json", "as_json", is_flag=True, help="the figures as JSON instead of a table")
def survey_report(
    name: str,
    version: int | None,
    campaign: str | None,
    period: str,
    since: str | None,
    until: str | None,
    csv_file: Path | None,
    svg_file: Path | None,
    as_json: bool,
) -> None:
    """NPS (± its 95% interval) overall, per segment and per period; response and completion
    rates; answers per question. Optionally every answer as CSV and a chart as SVG."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.surveys.report import (
        ReportError,
        ResultsQuery,
        SurveyResults,
        answers_csv,
        build_report,
        chart_svg,
        format_table,
        parse_request,
    )
    from models.db import create_engine, session_factory
    from models.survey_results import load_results

    params = {
        "version": str(version) if version else "",
        "campaign": campaign or "",
        "period": period,
        "since": since or "",
        "until": until or "",
    }

    async def run(query: ResultsQuery) -> SurveyResults:
        engine = create_engine(get_settings().effective_database_url)
        try:
            return await load_results(session_factory(engine), query)
        finally:
            await engine.dispose()

    try:
        query, chosen = parse_request(name, params)
        results = asyncio.run(run(query))
    except ReportError as exc:
        raise click.ClickException(str(exc)) from exc
    except (SQLAlchemyError, OSError) as exc:
        raise click.ClickException(f"database: {exc}") from exc
    report = build_report(results, chosen)
    try:
        if csv_file:
            csv_file.write_text(answers_csv(results.answers), encoding="utf-8", newline="")
        if svg_file:
            svg_file.write_text(chart_svg(report), encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(format_table(report), nl=False)
    for path, what in ((csv_file, f"{len(results.answers)} answer rows"), (svg_file, "chart")):
        if path:
            click.echo(f"{what} written to {path}", err=True)


# ---- campaign -----------------------------------------------------------------------------


@click.group()
def campaign() -> None:
    """Outbound survey campaigns: create, start, pause, stop, status."""


@campaign.command("create")
@click.argument("name")
@click.option("--survey", "survey_name", default="nps", show_default=True)
@click.option(
    "--segment",
    "segments",
    multiple=True,
    type=click.Choice(["new", "active", "inactive"]),
    help="target clients of these segments (repeatable); see --contacts",
)
@click.option(
    "--contacts",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="a CSV list: number, client_id, name, language, timezone, segment",
)
@click.option(
    "--settings",
    "settings_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML/JSON campaign settings (window, legal hours, retries, AMD, ...)",
)
@click.option("--concurrency", type=click.IntRange(1, 500))
@click.option("--machine-action", type=click.Choice(["hangup", "message"]))
@click.option("--machine-prompt")
@click.option(
    "--mode",
    type=click.Choice(["preview", "progressive", "predictive"]),
    help="an agent campaign (agents talk to the clients) dialled in this mode; unset: a survey",
)
@click.option("--queue", help="an agent campaign's queue: its agents take the calls")
@click.option("--procedure", help="an agent campaign of the procedural tasks of this kind")
@click.option(
    "--abandon-cap",
    type=click.FloatRange(0.1, 10),
    help="an agent campaign's abandonment cap, percent (default 3)",
)
@click.option("--amd", type=click.Choice(["on", "off"]), help="answering-machine detection")
def campaign_create(
    name: str,
    survey_name: str,
    segments: tuple[str, ...],
    contacts: Path | None,
    settings_file: Path | None,
    concurrency: int | None,
    machine_action: str | None,
    machine_prompt: str | None,
    mode: str | None,
    queue: str | None,
    procedure: str | None,
    abandon_cap: float | None,
    amd: str | None,
) -> None:
    """Create campaign NAME (a draft: `campaign start NAME` dials): a survey asking SURVEY's
    active version of the clients of --segment or the numbers of --contacts; or, with
    --mode and --queue, an agent campaign of one --segment, --contacts or --procedure."""
    from core.csvrows import ImportRejected
    from core.surveys.contacts import parse_contacts
    from models.campaigns import CampaignError
    from models.importing import read_csv_file
    from web.campaign_api import check_settings

    data = _settings_file(settings_file)
    if mode is not None:
        _create_agent_campaign(
            name, data, mode, queue, segments, contacts, procedure, abandon_cap, amd
        )
        return
    if queue or procedure or abandon_cap is not None:
        raise click.UsageError("--queue, --procedure and --abandon-cap need --mode")
    if bool(segments) == bool(contacts):
        raise click.UsageError("give either --segment (one or more) or --contacts")
    if amd is not None:
        data["amd"] = amd == "on"
    if concurrency is not None:
        data["concurrency"] = concurrency
    if machine_action is not None:
        data["machine_action"] = machine_action
    if machine_prompt is not None:
        data["machine_prompt"] = machine_prompt
    if segments:
        rules = data.setdefault("rules", {})
        rules["segments"] = list(segments)
    try:
        settings = check_settings(data)
    except CampaignError as exc:
        raise click.ClickException(str(exc)) from exc
    rows = None
    if contacts is not None:
        try:
            rows = parse_contacts(read_csv_file(contacts), get_settings().default_region)
        except ImportRejected as exc:
            click.echo(exc.with_source(str(contacts)).report(), err=True)
            sys.exit(2)

    async def create(sessions: Sessions) -> tuple[int, int]:
        from models.campaigns import create_campaign

        return await create_campaign(sessions, name, survey_name, settings, rows, datetime.now(UTC))

    campaign_id, count = _db(create)
    click.echo(f"campaign {name} (id {campaign_id}) created with {count} contacts: draft")


def _settings_file(settings_file: Path | None) -> dict[str, Any]:
    from dialplan.validate import FlowError, read_document

    if settings_file is None:
        return {}
    try:
        loaded = read_document(settings_file.read_text(encoding="utf-8"), str(settings_file))
    except (OSError, FlowError) as exc:
        raise click.ClickException(f"{settings_file}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise click.ClickException(f"{settings_file}: settings must be a mapping")
    return loaded


def _create_agent_campaign(
    name: str,
    data: dict[str, Any],
    mode: str,
    queue: str | None,
    segments: tuple[str, ...],
    contacts: Path | None,
    procedure: str | None,
    abandon_cap: float | None,
    amd: str | None,
) -> None:
    from core.csvrows import ImportRejected
    from core.surveys.contacts import parse_contacts
    from models.campaigns import CampaignError
    from models.importing import read_csv_file
    from usecases.agent_campaigns import agent_request, create_agent_campaign

    if not queue:
        raise click.UsageError("an agent campaign needs --queue")
    if len(segments) > 1:
        raise click.UsageError("an agent campaign takes one --segment")
    data = {**data, "mode": mode, "queue": queue}
    if abandon_cap is not None:
        data["abandon_cap_percent"] = abandon_cap
    if amd is not None:
        data["amd"] = amd == "on"
    rows = None
    if contacts is not None:
        try:
            rows = parse_contacts(read_csv_file(contacts), get_settings().default_region)
        except ImportRejected as exc:
            click.echo(exc.with_source(str(contacts)).report(), err=True)
            sys.exit(2)
    try:
        req = agent_request(
            name,
            data,
            segment=segments[0] if segments else None,
            rows=rows,
            procedure=procedure,
        )
    except CampaignError as exc:
        raise click.UsageError(str(exc)) from exc
    campaign_id, count = _db(
        lambda sessions: create_agent_campaign(sessions, req, datetime.now(UTC))
    )
    click.echo(
        f"campaign {req.name} (id {campaign_id}, {req.kind.value}, {mode}) created with "
        f"{count} contacts: draft"
    )


def _set_status(name: str, status: str) -> None:
    from models.campaigns import CampaignStore
    from models.tables import CampaignStatus

    row = _db(lambda sessions: CampaignStore(sessions).set_status(name, CampaignStatus(status)))
    click.echo(f"campaign {row.name}: {row.status.value}")


@campaign.command("start")
@click.argument("name")
def campaign_start(name: str) -> None:
    """Start (or resume) dialling NAME; `centrala serve` places the calls."""
    _set_status(name, "running")


@campaign.command("pause")
@click.argument("name")
def campaign_pause(name: str) -> None:
    """No new calls for NAME until started again; calls under way finish."""
    _set_status(name, "paused")


@campaign.command("stop")
@click.argument("name")
def campaign_stop(name: str) -> None:
    """Stop NAME for good; calls under way finish."""
    _set_status(name, "stopped")


@campaign.command("status")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True)
def campaign_status(name: str | None, as_json: bool) -> None:
    """Progress of NAME (or every campaign): contacts by state and by last outcome."""
    import json

    from models.campaigns import CampaignStore
    from web.campaign_api import campaign_json

    async def gather(sessions: Sessions) -> list[dict[str, Any]]:
        from usecases.agent_campaigns import agent_figures

        store = CampaignStore(sessions)
        rows = [await store.find(name)] if name else await store.all()
        at = datetime.now(UTC)
        return [
            campaign_json(c, await store.progress(c.id), await agent_figures(sessions, c, at))
            for c in rows
        ]

    found = _db(gather)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for c in found:
        p = c["progress"]
        click.echo(
            f"{c['name']} (id {c['id']}): {c['status']}, {p['finished']}/{p['contacts']} "
            f"contacts finished ({p['percent_done']}%), {p['attempts']} calls"
        )
        if p["next_call_at"]:
            click.echo(f"  next call:  {p['next_call_at']} (a retry, or the calling window opens)")
        click.echo("  by state:   " + ", ".join(f"{k} {v}" for k, v in p["by_status"].items()))
        click.echo("  by outcome: " + ", ".join(f"{k} {v}" for k, v in p["by_outcome"].items()))
        if c.get("dialler"):
            f = c["dialler"]
            a = f["abandonment"]
            click.echo(
                f"  dialler:    {f['dials']} dials, {f['live_answers']} live answers, "
                f"{f['connected']} connected, {f['abandoned']} abandoned"
            )
            click.echo(
                "  abandoned:  "
                + ", ".join(
                    f"{label.replace('_', ' ')} {a[label]['rate_percent']}%"
                    for label in ("whole_run", "last_30_days", "last_24_hours", "last_hour")
                )
                + f", worst rolling 24 h {a['worst_rolling_24_hours_percent']}%"
            )
            if f["dispositions"]:
                click.echo(
                    "  dispositions: " + ", ".join(f"{k} {v}" for k, v in f["dispositions"].items())
                )


# ---- do not call --------------------------------------------------------------------------


@click.group("dnc")
def do_not_call() -> None:
    """The do-not-call list: numbers no campaign ever dials (checked before every attempt)."""


def _dnc_number(raw: str) -> str:
    from core.phones import normalise

    number = normalise(raw, get_settings().default_region)
    if number is None:
        raise click.BadParameter(f"{raw!r} is not a phone number", param_hint="NUMBER")
    return number


@do_not_call.command("add")
@click.argument("number")
@click.option("--reason", default="", help="why (e.g. asked on the phone, legal notice)")
@click.option("--until", "until", metavar="YYYY-MM-DD", help="the entry lapses that day (UTC)")
def dnc_add(number: str, reason: str, until: str | None) -> None:
    """Put NUMBER on the list (again: its reason and expiry are replaced)."""
    from models.tables import DoNotCall

    e164 = _dnc_number(number)
    expires = None
    if until:
        try:
            expires = datetime.fromisoformat(until).replace(tzinfo=UTC)
        except ValueError as exc:
            raise click.BadParameter(f"{until!r} is not YYYY-MM-DD", param_hint="--until") from exc

    async def add(sessions: Sessions) -> None:
        async with sessions() as session, session.begin():
            row = await session.get(DoNotCall, e164)
            if row is None:
                session.add(DoNotCall(number=e164, reason=reason[:200] or None, expires_at=expires))
            else:
                row.reason, row.expires_at = reason[:200] or None, expires

    _db(add)
    click.echo(f"{e164} on the do-not-call list" + (f" until {until}" if until else ""))


@do_not_call.command("remove")
@click.argument("number")
def dnc_remove(number: str) -> None:
    """Take NUMBER off the list."""
    from sqlalchemy import delete

    from models.tables import DoNotCall

    e164 = _dnc_number(number)

    async def remove(sessions: Sessions) -> int:
        async with sessions() as session, session.begin():
            result = await session.execute(delete(DoNotCall).where(DoNotCall.number == e164))
            return int(getattr(result, "rowcount", 0))

    if not _db(remove):
        raise click.ClickException(f"{e164} is not on the do-not-call list")
    click.echo(f"{e164} removed from the do-not-call list")


@do_not_call.command("list")
def dnc_list() -> None:
    """Every number on the list, with its reason and expiry."""
    from sqlalchemy import select

    from models.tables import DoNotCall

    async def rows(sessions: Sessions) -> list[DoNotCall]:
        async with sessions() as session:
            return list(await session.scalars(select(DoNotCall).order_by(DoNotCall.number)))

    for row in _db(rows):
        until = row.expires_at.date().isoformat() if row.expires_at else "-"
        click.echo(f"{row.number}\t{until}\t{row.reason or ''}")
