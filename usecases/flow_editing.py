"""Over 500 lines: one use case, a flow's life from draft to history, whose steps share the
checks of a body, the errors the API gives and the publishing path.

Editing call flows safely (the admin console and ``/api/flows/{name}/...``): a draft per
admin, tried from the phones on its test list while every other caller gets the live version;
published with a note unless someone else published since the draft was taken; every version
kept, compared and rolled back to in one step; each change on the audit trail.

The rules of what may be saved, tried and published are here; storage is models.flow_drafts
and models.flows, the checks of a flow dialplan.validate, the comparison dialplan.diff.
May import ``core``, ``dialplan`` and ``models`` (see ``usecases``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import DomainError
from core.flowtraffic import traffic
from core.phones import normalise
from dialplan import diff
from dialplan.model import Flow
from dialplan.validate import FlowError, check_limits, pydantic_problems, validate
from models.flow_drafts import Draft, TestNumberTaken, discard_draft, drop_draft, get_draft
from models.flow_drafts import store_draft as store
from models.flows import (
    After,
    PublishConflict,
    active_flow,
    cancel_scheduled,
    known_queue_ids,
    publish_flow,
    published_version,
    schedule_flow,
    versions,
)
from models.traffic import paths_since

Sessions = async_sessionmaker[AsyncSession]
# Makes a flow's prompts heard: synthesised and put where Asterisk plays them, before the
# flow goes live or to its test numbers (the adapter raises a DomainError when it cannot).
Install = Callable[[Flow], Awaitable[object]]
MAX_TEST_NUMBERS = 20
MAX_NOTE = 500
MAX_AHEAD = timedelta(days=366)
DRAFT_FIELDS = frozenset({"definition", "test_numbers", "base_version"})


class FlowEditError(DomainError):
    """An edit that cannot be done as asked; ``details`` says where (``problems``, ``field``)."""

    def __init__(self, error_id: str, message: str, *, status: int = 400, **details: Any) -> None:
        super().__init__(message, error_id=error_id, status=status, details=details)


def problem_items(problems: list[str], container: str = "nodes") -> list[dict[str, Any]]:
    """The validator's "path: message" lines as ``{at, node, message}``, so the console
    shows each at its node (``node``: the flow node, or with ``container="questions"`` the
    survey question, the path is in; else None)."""
    items = []
    for line in problems:
        at, sep, message = line.partition(": ")
        if not sep:
            at, message = "", line
        parts = at.replace("[", ".").split(".")
        node = parts[1] if len(parts) > 1 and parts[0] == container else None
        items.append({"at": at, "node": node, "message": message})
    return items


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_definition(name: str, definition: object) -> Flow:
    """The body's flow, in the shape of the flow model (FlowEditError ``invalid_flow``, 422,
    with every problem of the shape at its place; nothing is stored)."""
    if not isinstance(definition, Mapping):
        raise FlowEditError("bad_request", "definition: a flow object", field="definition")
    try:
        flow = Flow.model_validate(dict(definition))
    except ValidationError as exc:
        problems = pydantic_problems(exc)
        raise FlowEditError(
            "invalid_flow",
            f"the flow has {len(problems)} problem(s)",
            status=422,
            problems=problem_items(problems),
        ) from None
    if flow.name != name:
        raise FlowEditError(
            "invalid_flow",
            f"name: this is flow {name!r}, the definition says {flow.name!r}",
            status=422,
            problems=problem_items([f"name: must be {name!r}"]),
        )
    if problems := check_limits(flow):
        raise FlowEditError(
            "invalid_flow", "the flow is too large", status=422, problems=problem_items(problems)
        )
    return flow


def test_numbers_of(value: object, region: str) -> list[str]:
    """The draft's test numbers, in E.164 as the call path compares them, without repeats."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise FlowEditError("bad_request", "test_numbers: a list of numbers", field="test_numbers")
    if len(value) > MAX_TEST_NUMBERS:
        raise FlowEditError(
            "bad_request",
            f"test_numbers: at most {MAX_TEST_NUMBERS} numbers",
            field="test_numbers",
        )
    out: list[str] = []
    for raw in value:
        number = normalise(raw, region)
        if number is None:
            raise FlowEditError(
                "bad_request",
                f"test_numbers: {raw[:40]!r} is not a phone number",
                field="test_numbers",
            )
        if number not in out:
            out.append(number)
    return out


def note_of(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_NOTE or "\0" in value:
        raise FlowEditError(
            "bad_request", f"note: text of at most {MAX_NOTE} characters", field="note"
        )
    return value.strip() or None


def _draft_json(
    draft: Draft | None, definition: dict[str, Any], base: int | None
) -> dict[str, Any]:
    return {
        "saved": draft is not None,
        "owner": draft.owner if draft else None,
        "base_version": base,
        "definition": definition,
        "test_numbers": draft.test_numbers if draft else [],
        "trial_version": draft.trial_version if draft else None,
        "updated_at": draft.updated_at.isoformat() if draft else None,
    }


async def _problems(sessions: Sessions, flow: Flow) -> tuple[list[str], list[str]]:
    """The flow's problems, and why it cannot be tried from a phone yet (a queue it would
    create takes calls only once published: a trial must not change the live queues)."""
    known = await known_queue_ids(sessions)
    problems = validate(flow, known)
    new_queues = sorted(set(flow.queues) - known)
    blockers = [f"queues.{q}: a new queue takes calls once published" for q in new_queues]
    return problems, blockers


async def load_draft(sessions: Sessions, name: str, owner: str) -> dict[str, Any]:
    """``owner``'s draft of ``name``; without one, the active version to start from (not
    saved until the first PUT). FlowEditError ``unknown_flow`` (404) for neither."""
    draft = await get_draft(sessions, name, owner)
    if draft is not None:
        out = _draft_json(draft, draft.definition, draft.base_version)
        flow = Flow.model_validate(draft.definition)
    else:
        found = await active_flow(sessions, name)
        if found is None:
            raise FlowEditError("unknown_flow", f"no flow {name!r}", status=404)
        version, flow = found
        out = _draft_json(None, flow.model_dump(mode="json"), version)
    problems, blockers = await _problems(sessions, flow)
    return {"name": name, **out, "problems": problem_items(problems + blockers)}


async def check_definition(
    sessions: Sessions, name: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Every problem of the body's flow, saved nowhere (``POST .../draft/check``)."""
    try:
        flow = parse_definition(name, body.get("definition"))
    except FlowEditError as exc:
        if exc.error_id != "invalid_flow":
            raise
        return {"ok": False, "problems": exc.details["problems"]}
    problems, blockers = await _problems(sessions, flow)
    return {"ok": not problems, "problems": problem_items(problems + blockers)}


async def save_draft(
    sessions: Sessions,
    name: str,
    owner: str,
    body: Mapping[str, Any],
    region: str,
    install: Install | None = None,
) -> dict[str, Any]:
    """Store ``owner``'s draft (``PUT .../draft``). A draft with problems is kept (work in
    progress) but not tried: its test numbers get the live version until it passes."""
    unknown = set(body) - DRAFT_FIELDS
    if unknown:
        raise FlowEditError(
            "bad_request", f"unknown fields {sorted(unknown)}: use {sorted(DRAFT_FIELDS)}"
        )
    flow = parse_definition(name, body.get("definition"))
    numbers = test_numbers_of(body.get("test_numbers"), region)
    existing = await get_draft(sessions, name, owner)
    base = body.get("base_version", "keep")
    if base == "keep":
        if existing is not None:
            base = existing.base_version
        else:
            found = await active_flow(sessions, name)
            base = found[0] if found else None
    elif base is not None and (
        not _integer(base) or await published_version(sessions, name, base) is None
    ):
        raise FlowEditError(
            "bad_request",
            f"base_version: {str(base)[:20]} is not a published version of {name!r}",
            field="base_version",
        )
    problems, blockers = await _problems(sessions, flow)
    trial = flow if not problems and not blockers else None
    if trial is not None and numbers and install is not None:
        await install(trial)  # the test numbers hear the draft's own texts
    try:
        draft = await store(
            sessions,
            name,
            owner,
            flow.model_dump(mode="json"),
            base_version=base if _integer(base) else None,
            test_numbers=numbers,
            trial=trial,
        )
    except TestNumberTaken as exc:
        raise FlowEditError(
            "test_number_taken", str(exc), status=409, field="test_numbers"
        ) from None
    return {
        "name": name,
        **_draft_json(draft, draft.definition, draft.base_version),
        "problems": problem_items(problems + blockers),
    }


async def attach_recording(
    sessions: Sessions,
    name: str,
    owner: str,
    prompt: str,
    lang: str,
    convert: Callable[[], Awaitable[str]],
    region: str,
    install: Install | None = None,
) -> dict[str, Any]:
    """An uploaded recording as what ``prompt`` plays in ``lang``, in ``owner``'s draft
    (made from the live version when there is none): ``convert`` checks and installs the
    audio and gives its media URI (raising a DomainError for a bad file: nothing changes)."""
    draft = await load_draft(sessions, name, owner)
    definition = draft["definition"]
    if prompt not in definition.get("prompts", {}):
        raise FlowEditError("unknown_prompt", f"no prompt {prompt[:64]!r} in {name!r}", status=404)
    if lang not in definition.get("languages", []):
        raise FlowEditError(
            "bad_request", f"{lang[:8]!r} is not one of the flow's languages", field="lang"
        )
    media = await convert()
    definition["prompts"][prompt].setdefault("media", {})[lang] = media
    body = {
        "definition": definition,
        "test_numbers": draft["test_numbers"],
        "base_version": draft["base_version"],
    }
    return await save_draft(sessions, name, owner, body, region, install)


async def discard(sessions: Sessions, name: str, owner: str) -> dict[str, Any]:
    if not await discard_draft(sessions, name, owner):
        raise FlowEditError("no_draft", f"no draft of {name!r} to discard", status=404)
    return {"discarded": True}


def check_at(value: object, now: datetime) -> datetime | None:
    """When to publish (``at``): None for now, else an ISO time with its zone, in the future
    and within a year."""
    if value is None:
        return None
    try:
        if not isinstance(value, str) or len(value) > 64:
            raise ValueError(value)
        at = datetime.fromisoformat(value)
    except ValueError:
        raise FlowEditError(
            "bad_request", "at: an ISO date and time with its zone", field="at"
        ) from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise FlowEditError(
            "bad_request", "at: give the zone (2026-12-07T08:00:00+01:00)", field="at"
        )
    if not now < at <= now + MAX_AHEAD:
        raise FlowEditError("bad_request", "at: in the future, within a year", field="at")
    return at.astimezone(UTC)


async def _go_live(
    sessions: Sessions,
    flow: Flow,
    actor: str,
    *,
    note: str | None,
    expect_active: int | Literal["any"] | None,
    at: datetime | None,
    action: str,
    after: After | None = None,
    install: Install | None = None,
) -> dict[str, Any]:
    """Publish ``flow`` now, or schedule it for ``at``; the errors as the API gives them.
    Its prompts are installed first (their files are named after their texts: harmless to
    calls on other versions), so the first caller of the new version hears them."""
    if install is not None and not validate(flow, await known_queue_ids(sessions)):
        await install(flow)
    try:
        if at is not None:
            version = await schedule_flow(
                sessions, flow, actor, at=at, note=note, expect_active=expect_active, after=after
            )
            return {"version": version, "changed": True, "scheduled_for": at.isoformat()}
        published = await publish_flow(
            sessions,
            flow,
            actor,
            note=note,
            expect_active=expect_active,
            action=action,
            after=after,
        )
    except FlowError as exc:
        raise FlowEditError(
            "invalid_flow",
            f"the flow has {len(exc.problems)} problem(s): fix them before publishing",
            status=422,
            problems=problem_items(exc.problems),
        ) from None
    except PublishConflict as exc:
        active = exc.active
        raise FlowEditError(
            "published_since",
            str(exc),
            status=409,
            draft_base=exc.expected,
            active_version=active.version if active else None,
            published_by=active.created_by if active else None,
            published_at=active.created_at.isoformat() if active else None,
        ) from None
    return {"version": published.version, "changed": published.changed}


async def publish(
    sessions: Sessions,
    name: str,
    owner: str,
    body: Mapping[str, Any],
    now: datetime,
    install: Install | None = None,
) -> dict[str, Any]:
    """Make ``owner``'s draft the live version (``POST .../publish``), now or at ``at``:
    refused while it has problems (422) or when another version was published since it was
    taken (409 ``published_since``, nothing changed). The draft is gone once published (or
    scheduled)."""
    if unknown := set(body) - {"note", "at"}:
        raise FlowEditError("bad_request", f"unknown fields {sorted(unknown)}: use at, note")
    note = note_of(body.get("note"))
    at = check_at(body.get("at"), now)
    draft = await get_draft(sessions, name, owner)
    if draft is None:
        raise FlowEditError(
            "no_draft", f"no draft of {name!r} to publish: save one first", status=404
        )
    flow = Flow.model_validate(draft.definition)

    async def drop(session: AsyncSession) -> None:
        await drop_draft(session, name, owner)

    return await _go_live(
        sessions,
        flow,
        owner,
        note=note,
        expect_active=draft.base_version,
        at=at,
        action="flow.publish",
        after=drop,
        install=install,
    )


async def cancel_schedule(
    sessions: Sessions, name: str, version: int, actor: str
) -> dict[str, Any]:
    if not await cancel_scheduled(sessions, name, version, actor):
        raise FlowEditError(
            "unknown_version", f"no scheduled version {version} of {name!r}", status=404
        )
    return {"version": version, "cancelled": True}


async def calendars(sessions: Sessions, name: str) -> dict[str, Any]:
    """The opening hours and holidays of the live version (``GET .../calendars``)."""
    found = await active_flow(sessions, name)
    if found is None:
        raise FlowEditError("unknown_flow", f"no flow {name!r}", status=404)
    version, flow = found
    return {
        "name": name,
        "version": version,
        "calendars": {k: c.model_dump(mode="json") for k, c in flow.calendars.items()},
        "used_by": {qid: q.calendar for qid, q in flow.queues.items() if q.calendar is not None},
    }


async def set_hours(
    sessions: Sessions,
    name: str,
    calendar: str,
    actor: str,
    body: Mapping[str, Any],
    now: datetime,
    install: Install | None = None,
) -> dict[str, Any]:
    """New opening hours and holidays for one calendar (``PUT .../calendars/{calendar}``):
    published as a new version of the flow, now or at ``at`` ("from Monday 08:00"), refused
    when ``active_version`` is given and another is live (as a draft would be)."""
    if unknown := set(body) - {"calendar", "active_version", "at", "note"}:
        raise FlowEditError(
            "bad_request",
            f"unknown fields {sorted(unknown)}: use calendar, active_version, at, note",
        )
    expect = body.get("active_version", "any")
    if expect != "any" and not _integer(expect):
        raise FlowEditError(
            "bad_request", "active_version: a version number", field="active_version"
        )
    at = check_at(body.get("at"), now)
    note = note_of(body.get("note")) or f"hours of {calendar}"
    found = await active_flow(sessions, name)
    if found is None:
        raise FlowEditError("unknown_flow", f"no flow {name!r}", status=404)
    definition = found[1].model_dump(mode="json")
    definition.setdefault("calendars", {})[calendar] = body.get("calendar")
    flow = parse_definition(name, definition)
    return await _go_live(
        sessions,
        flow,
        actor,
        note=note,
        expect_active=expect,
        at=at,
        action="hours.edit",
        install=install,
    )


async def history(sessions: Sessions, name: str) -> dict[str, Any]:
    found = await versions(sessions, name)
    if not found:
        raise FlowEditError("unknown_flow", f"no flow {name!r}", status=404)
    return {"name": name, "versions": [v.to_json() for v in found]}


async def show_version(sessions: Sessions, name: str, version: int) -> dict[str, Any]:
    flow = await published_version(sessions, name, version)
    if flow is None:
        raise FlowEditError("unknown_version", f"no version {version} of {name!r}", status=404)
    return {"name": name, "version": version, "definition": flow.model_dump(mode="json")}


async def side(sessions: Sessions, name: str, owner: str, which: str) -> tuple[str, dict[str, Any]]:
    """A version to look at, one side of a diff or a diagram: a version number, ``active`` or
    ``draft`` (the asker's), as (what to call it, its definition)."""
    if which == "draft":
        draft = await get_draft(sessions, name, owner)
        if draft is None:
            raise FlowEditError("no_draft", f"no draft of {name!r}", status=404)
        return "draft", draft.definition
    if which == "active":
        found = await active_flow(sessions, name)
        if found is None:
            raise FlowEditError("unknown_flow", f"no flow {name!r}", status=404)
        return f"version {found[0]}", found[1].model_dump(mode="json")
    if not which.isdigit() or len(which) > 9:
        raise FlowEditError("bad_request", f"{which[:20]!r}: a version number, 'active' or 'draft'")
    flow = await published_version(sessions, name, int(which))
    if flow is None:
        raise FlowEditError("unknown_version", f"no version {which} of {name!r}", status=404)
    return f"version {which}", flow.model_dump(mode="json")


async def compare(sessions: Sessions, name: str, owner: str, from_: str, to: str) -> dict[str, Any]:
    """What changed from ``from_`` to ``to`` (``GET .../diff?from=&to=``)."""
    from_name, before = await side(sessions, name, owner, from_)
    to_name, after = await side(sessions, name, owner, to)
    return {
        "from": from_,
        "to": to,
        "changes": [c.to_json() for c in diff.changes(before, after)],
        "text": diff.unified(before, after, from_name, to_name),
    }


async def diagram_source(
    sessions: Sessions, name: str, owner: str, which: str
) -> tuple[str, Flow, dict[str, list[str]]]:
    """What ``GET .../diagram.svg?version=`` draws: the version (``side``), its flow, and its
    problems by node (the validator's, as the editor shows them at their nodes)."""
    label, definition = await side(sessions, name, owner, which)
    flow = parse_definition(name, definition)
    problems, _blockers = await _problems(sessions, flow)
    by_node: dict[str, list[str]] = {}
    for item in problem_items(problems):
        if (node := item["node"]) is not None:
            field = item["at"].removeprefix(f"nodes.{node}").removeprefix(".")
            text = f"{field}: {item['message']}" if field else item["message"]
            by_node.setdefault(node, []).append(text)
    return label, flow, by_node


async def rollback(
    sessions: Sessions,
    name: str,
    actor: str,
    body: Mapping[str, Any],
    install: Install | None = None,
) -> dict[str, Any]:
    """Publish an old version again as the newest (``POST .../rollback``, body ``{"to": N}``;
    ``active_version``: the version the admin saw live, refused if another is live now)."""
    to = body.get("to")
    if not isinstance(to, int) or isinstance(to, bool):
        raise FlowEditError("bad_request", "to: the version number to roll back to", field="to")
    expect = body.get("active_version", "any")
    if expect != "any" and not _integer(expect):
        raise FlowEditError(
            "bad_request", "active_version: a version number", field="active_version"
        )
    note = note_of(body.get("note")) or f"rolled back to version {to}"
    flow = await published_version(sessions, name, to)
    if flow is None:
        raise FlowEditError("unknown_version", f"no version {to} of {name!r}", status=404)
    return await _go_live(
        sessions,
        flow,
        actor,
        note=note,
        expect_active=expect,
        at=None,
        action="flow.rollback",
        install=install,
    )


async def live_view(
    sessions: Sessions,
    name: str,
    live_nodes: list[tuple[int, str | None]],
    now: datetime,
) -> dict[str, Any]:
    """Per node of the live version: callers there now (``live_nodes``: each live call's
    version and node), and how many of today's calls reached it and hung up there, today
    being the day in the time zone of the flow's calendars."""
    found = await active_flow(sessions, name)
    if found is None:
        raise FlowEditError("unknown_flow", f"no flow {name!r}", status=404)
    version, flow = found
    zone = next(iter(flow.calendars.values())).timezone if flow.calendars else "Europe/Sarajevo"
    local = now.astimezone(ZoneInfo(zone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    counted = traffic(
        set(flow.nodes),
        (node for _version, node in live_nodes),
        await paths_since(sessions, midnight.astimezone(UTC)),
    )
    return {
        "name": name,
        "version": version,
        "day_from": midnight.isoformat(),
        "nodes": counted.to_json(flow.nodes),
    }


async def draft_flow(sessions: Sessions, name: str, owner: str) -> tuple[int | None, Flow]:
    """The asker's draft as a flow to simulate (``"draft": true``): FlowEditError when there
    is none or it does not pass the checks (a walk needs a whole flow)."""
    draft = await get_draft(sessions, name, owner)
    if draft is None:
        raise FlowEditError("no_draft", f"no draft of {name!r} to simulate", status=404)
    flow = Flow.model_validate(draft.definition)
    problems, _blockers = await _problems(sessions, flow)
    if problems:
        raise FlowEditError(
            "invalid_flow",
            "the draft has problems: fix them to simulate it",
            status=422,
            problems=problem_items(problems),
        )
    return draft.trial_version, flow


__all__ = [
    "FlowEditError",
    "attach_recording",
    "calendars",
    "cancel_schedule",
    "check_definition",
    "compare",
    "diagram_source",
    "discard",
    "draft_flow",
    "history",
    "live_view",
    "load_draft",
    "publish",
    "rollback",
    "save_draft",
    "set_hours",
    "show_version",
    "side",
]
