"""Written inquiries over HTTP, for machines under the bearer-token /api (``routes``) and for
the agents on the desk under /desk/api (``desk_routes``), the same operations through
``twin_routes``: the inquiries a page at a time (``GET .../inquiries``: state, kind, queue,
owner, client; a cursor), one with its messages, attachments, log and SLA (``GET
.../inquiries/{id}``), an attachment's file, and an agent's moves: ``reply`` (queued to leave
by the channel it came in), ``assign`` (to oneself; to another: ``manage_inquiries``),
``escalate``, ``close``, ``kind``, ``note`` and ``client`` (an unknown sender linked to a
client, or made one); and the classification rules (``GET``, and ``PUT`` for admins). The
rules are ``core.inquiries``', the work ``usecases.inquiries``'."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.inquiries import InquiryError, InquiryKind, InquiryState
from core.inquiries.answers import answers_for
from core.inquiries.rules import rules_document
from models import inquiries as store
from models.tables import Inquiry
from usecases import inquiries as work
from usecases.inquiries import InquirySetup
from web.api import json_body, query_choice, query_number
from web.auth import Action, User, may
from web.http import DeskWeb, twin_routes

Sessions = async_sessionmaker[AsyncSession]
# The running `serve`'s settings for inquiries (its queue, its supervisor, its SLA).
INQUIRY_SETUP = web.AppKey("inquiry_setup", InquirySetup)
MAX_PAGE = 500


@dataclass(frozen=True)
class Asker:
    sessions: Sessions
    setup: InquirySetup
    user: User

    @property
    def actor(self) -> str | None:
        """The agent acting, or None for the host's API token (the operator: no agent)."""
        return self.user.agent_id or None


def _at(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def inquiry_json(row: Inquiry) -> dict[str, Any]:
    return {
        "id": row.id,
        "channel": row.channel,
        "kind": row.kind,
        "kind_by": row.kind_by,
        "state": row.state,
        "subject": row.subject,
        "client_id": row.client_id,
        "sender": row.sender,
        "sender_name": row.sender_name,
        "sender_phone": row.sender_phone,
        "queue": row.queue,
        "priority": row.priority,
        "owner": row.owner_id,
        "created_at": _at(row.created_at),
        "updated_at": _at(row.updated_at),
        "first_response_at": _at(row.first_response_at),
        "closed_at": _at(row.closed_at),
    }


def _id(request: web.Request) -> int:
    raw = request.match_info["inquiry_id"]
    if not raw.isdigit() or not 0 < int(raw) < 2**62:
        raise InquiryError("not_found", f"no inquiry {raw}", status=404)
    return int(raw)


async def listing(request: web.Request, asker: Asker) -> dict[str, Any]:
    query = dict(request.query)
    limit = query_number(query, "limit", 100, MAX_PAGE) or 100
    owner = query.get("owner", "").strip() or None
    rows = await store.page(
        asker.sessions,
        state=query_choice(query, "state", InquiryState),
        kind=query_choice(query, "kind", InquiryKind),
        queue=query.get("queue", "").strip() or None,
        owner_id=owner,
        client_id=query_number(query, "client", None, 2**62),
        before=query_number(query, "before", None, 2**62),
        limit=limit,
    )
    return {
        "inquiries": [inquiry_json(r) for r in rows],
        "next_before": rows[-1].id if len(rows) == limit else None,
    }


async def show(request: web.Request, asker: Asker) -> dict[str, Any]:
    thread = await work.thread_or_404(asker.sessions, _id(request))
    sla = work.sla_of(thread, datetime.now(UTC), asker.setup)
    language = thread.language()
    name = thread.client_name or thread.inquiry.sender_name
    return {
        **inquiry_json(thread.inquiry),
        "client_name": thread.client_name,
        "language": language,
        "templates": [
            {"name": key, "text": text}
            for key, text in answers_for(thread.inquiry.kind, language, name)
        ],
        "messages": [
            {
                "id": m.id,
                "direction": m.direction,
                "at": _at(m.at),
                "author": m.author_id,
                "subject": m.subject,
                "text": m.text,
                "quoted": m.quoted,
                "send_state": m.send_state,
                "error": m.error,
                "attachments": [
                    {"id": a, "filename": n, "content_type": t, "size": s}
                    for a, n, t, s in thread.attachments.get(m.id, [])
                ],
            }
            for m in thread.messages
        ],
        "log": [
            {"at": _at(e.at), "kind": e.kind, "state": e.state, "actor": e.actor, **e.data}
            for e in thread.log
        ],
        "sla": {
            "first_response_due": _at(sla.first_response_due),
            "resolution_due": _at(sla.resolution_due),
            "breached": sla.breached,
            "near_breach": sla.near_breach,
            "first_response_minutes": round(sla.first_response_used.total_seconds() / 60),
            "resolution_minutes": round(sla.resolution_used.total_seconds() / 60),
        },
    }


async def attachment(request: web.Request, asker: Asker) -> web.StreamResponse:
    inquiry_id = _id(request)
    raw = request.match_info["attachment_id"]
    found = None
    if raw.isdigit() and int(raw) < 2**62:
        found = await store.attachment(asker.sessions, inquiry_id, int(raw))
    if found is None:
        raise InquiryError("not_found", f"no attachment {raw} of inquiry {inquiry_id}", 404)
    # Served as a download, never rendered: a client's file is not our page's content.
    # RFC 6266: an ASCII name for old clients, the real one (č, ć, ...) in filename*.
    plain = found.filename.encode("ascii", "replace").decode().replace('"', "").replace("?", "_")
    return web.Response(
        body=found.content,
        content_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{plain}"; '
            f"filename*=UTF-8''{quote(found.filename, safe='')}",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InquiryError(f"bad_{name}", f"{name}: a text", status=400)
    if len(value) > 20_000:
        raise InquiryError(f"bad_{name}", f"{name}: at most 20000 characters", status=400)
    return value


async def reply(request: web.Request, asker: Asker) -> dict[str, Any]:
    text = _text(await json_body(request), "text")
    done = await work.reply(asker.sessions, _id(request), asker.actor, text, _now())
    return inquiry_json(done)


async def assign(request: web.Request, asker: Asker) -> dict[str, Any]:
    data = await json_body(request)
    owner = data.get("agent_id", asker.actor)
    if not isinstance(owner, str) or not owner:
        raise InquiryError("bad_agent", "agent_id: an agent's id", status=400)
    if owner != asker.actor and not may(asker.user.role, Action.MANAGE_INQUIRIES):
        raise InquiryError("forbidden", "only a supervisor gives an inquiry to another", 403)
    try:
        done = await work.assign(asker.sessions, _id(request), asker.actor, owner, _now())
    except IntegrityError:  # no such agent
        raise InquiryError("bad_agent", f"no agent {owner}", status=400) from None
    return inquiry_json(done)


async def escalate(request: web.Request, asker: Asker) -> dict[str, Any]:
    inquiry_id = _id(request)
    try:
        steps = await store.escalate(
            asker.sessions, inquiry_id, _now(), asker.actor,
            supervisor=asker.setup.supervisor,
        )  # fmt: skip
    except LookupError:
        raise InquiryError("not_found", f"no inquiry {inquiry_id}", status=404) from None
    if not steps:
        raise InquiryError("already_escalated", "everyone it goes to has it already")
    return {"escalated": [{"level": str(s.level), "to": s.to} for s in steps]}


async def close(request: web.Request, asker: Asker) -> dict[str, Any]:
    done = await work.close(asker.sessions, _id(request), asker.actor, _now())
    return inquiry_json(done)


async def kind(request: web.Request, asker: Asker) -> dict[str, Any]:
    raw = (await json_body(request)).get("kind")
    if raw not in {str(k) for k in InquiryKind}:
        kinds = ", ".join(str(k) for k in InquiryKind)
        raise InquiryError("bad_kind", f"kind: one of {kinds}", status=400)
    done = await work.reclassify(
        asker.sessions, _id(request), asker.actor, InquiryKind(raw), _now()
    )
    return inquiry_json(done)


async def note(request: web.Request, asker: Asker) -> dict[str, Any]:
    text = _text(await json_body(request), "text")
    done = await work.note(asker.sessions, _id(request), asker.actor, text, _now())
    return inquiry_json(done)


async def client(request: web.Request, asker: Asker) -> dict[str, Any]:
    """Links the inquiry to a client: ``{"client_id": N}`` an existing one, or ``{"new":
    true, "name"?}`` a new one made from the sender."""
    data = await json_body(request)
    inquiry_id = _id(request)
    raw = data.get("client_id")
    new = data.get("new") is True
    if set(data) - {"client_id", "new", "name"} or (raw is None) == (not new):
        raise InquiryError("bad_client", "give client_id, or new (with a name)", status=400)
    if raw is not None and (not isinstance(raw, int) or isinstance(raw, bool) or raw < 1):
        raise InquiryError("bad_client", "client_id: a client's id", status=400)
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 200):
        raise InquiryError("bad_client", "name: a client's name", status=400)
    try:
        linked = await store.link_client(
            asker.sessions, inquiry_id, _now(), asker.actor, client_id=raw,
            name=name.strip() if name else None,
        )  # fmt: skip
    except LookupError as exc:
        what = exc.args[0] if exc.args else "inquiry"  # models.inquiries names which
        raise InquiryError("not_found", f"no such {what}", status=404) from None
    return {"inquiry_id": inquiry_id, "client_id": linked}


async def rules(request: web.Request, asker: Asker) -> dict[str, Any]:
    """The classification rules as the admin edits them, with their version."""
    version, current = await work.current_rules(asker.sessions)
    return {"version": version, "rules": rules_document(current)}


async def save_rules(request: web.Request, asker: Asker) -> dict[str, Any]:
    """``{version, rules}``: the admin's document saved over the version they loaded; in use
    by `serve` within seconds."""
    data = await json_body(request)
    if set(data) != {"version", "rules"}:
        raise InquiryError("bad_request", "give version and rules", status=400)
    version, saved = await work.edit_rules(
        asker.sessions, data["rules"], data["version"], asker.user.agent_id, _now()
    )
    asker.setup.rules = saved  # this instance at once; the others at their next look
    return {"version": version, "rules": rules_document(saved)}


def _now() -> datetime:
    return datetime.now(UTC)


ONE = "/{inquiry_id}"
# (method, path under .../inquiries, operation, what the user must be allowed)
OPERATIONS: list[tuple[str, str, Any, Action]] = [
    # Before ONE's: "rules" is no inquiry id.
    ("GET", "/rules", rules, Action.ANSWER_INQUIRIES),
    ("PUT", "/rules", save_rules, Action.EDIT_INQUIRY_RULES),
    ("GET", "", listing, Action.ANSWER_INQUIRIES),
    ("GET", ONE, show, Action.ANSWER_INQUIRIES),
    ("GET", ONE + "/attachments/{attachment_id}", attachment, Action.ANSWER_INQUIRIES),
    ("POST", ONE + "/reply", reply, Action.ANSWER_INQUIRIES),
    ("POST", ONE + "/assign", assign, Action.ANSWER_INQUIRIES),
    ("POST", ONE + "/escalate", escalate, Action.ANSWER_INQUIRIES),
    ("POST", ONE + "/close", close, Action.ANSWER_INQUIRIES),
    ("POST", ONE + "/kind", kind, Action.ANSWER_INQUIRIES),
    ("POST", ONE + "/note", note, Action.ANSWER_INQUIRIES),
    ("POST", ONE + "/client", client, Action.ANSWER_INQUIRIES),
]


def _setup(app: web.Application) -> InquirySetup:
    return app.get(INQUIRY_SETUP) or InquirySetup()


def routes(sessions_key: web.AppKey[Sessions]) -> list[web.RouteDef]:
    def asker(request: web.Request, user: User) -> Asker:
        return Asker(request.app[sessions_key], _setup(request.app), user)

    return twin_routes(OPERATIONS, "/api/inquiries", bearer_asker=asker)


def desk_routes() -> list[web.RouteDef]:
    def asker(request: web.Request, dw: DeskWeb, user: User) -> Asker:
        return Asker(dw.store.sessions, _setup(request.app), user)

    return twin_routes(OPERATIONS, "/api/inquiries", desk_asker=asker)


__all__ = ["INQUIRY_SETUP", "desk_routes", "routes"]
