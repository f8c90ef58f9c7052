"""What the agent sees when a call reaches them, as a function of the call's and the client's
facts: pure, so "what goes in the screen-pop" is tested without a browser, a PBX or a
database. The facts are read-only Protocols (``CallFacts``, ``ClientFacts``, ...): the
desk's store hands in its database rows, which have these attributes, and tests may hand in
anything else that has them; nothing here knows SQLAlchemy.

The schema has no loans, balances or offers yet: the pop carries an explicit placeholder for
them (``not_in_schema``) instead of inventing data. NPS history comes from survey answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from core.enums import ClientType

EXPIRY_WARN_DAYS = 30
GREETINGS = {"bs": "Dobar dan, {name}", "hr": "Dobar dan, {name}", "sr": "Dobar dan, {name}"}
DEFAULT_GREETING = "Good day, {name}"


class CallFacts(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def caller_number(self) -> str | None: ...
    @property
    def caller_name(self) -> str | None: ...
    @property
    def called_number(self) -> str | None: ...
    @property
    def queue(self) -> str | None: ...
    @property
    def ivr_path(self) -> list[str]: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def outcome(self) -> str | None: ...
    @property
    def disposition(self) -> str | None: ...
    @property
    def agent_id(self) -> str | None: ...


class ClientFacts(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def external_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def client_type(self) -> ClientType: ...
    @property
    def language(self) -> str | None: ...
    @property
    def segment(self) -> str | None: ...
    @property
    def overdue_debt(self) -> bool: ...
    @property
    def document_expiry(self) -> date | None: ...
    @property
    def birthday(self) -> date | None: ...


class AgentFacts(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...


class CallbackFacts(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def due_at(self) -> datetime: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def number(self) -> str: ...


class InteractionFacts(Protocol):
    @property
    def created_at(self) -> datetime: ...
    @property
    def category(self) -> str | None: ...
    @property
    def note(self) -> str | None: ...
    @property
    def agent_id(self) -> str | None: ...
    @property
    def channel(self) -> str: ...


class AnswerFacts(Protocol):
    @property
    def answered_at(self) -> datetime: ...
    @property
    def question_key(self) -> str: ...
    @property
    def value_int(self) -> int | None: ...


class MessageFacts(Protocol):
    """A notice sent (or on its way) to the client (core.notices)."""

    @property
    def created_at(self) -> datetime: ...
    @property
    def channel(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def state(self) -> str: ...


class InquiryFacts(Protocol):
    """A written inquiry of the client's (core.inquiries)."""

    @property
    def id(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def channel(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def state(self) -> str: ...


@dataclass
class PopRows:
    call: CallFacts
    client: ClientFacts | None = None
    phones: list[str] = field(default_factory=list)
    manager: AgentFacts | None = None
    callbacks: Sequence[CallbackFacts] = field(default_factory=list)  # open ones
    interactions: Sequence[InteractionFacts] = field(default_factory=list)  # newest first
    calls: Sequence[CallFacts] = field(default_factory=list)  # earlier calls, newest first
    survey_answers: Sequence[AnswerFacts] = field(default_factory=list)  # newest first
    messages: Sequence[MessageFacts] = field(default_factory=list)  # notices, newest first
    opted_out: Sequence[str] = field(default_factory=list)  # channels: no messages by them
    inquiries: Sequence[InquiryFacts] = field(default_factory=list)  # written, newest first
    intent: str | None = None  # from the call's "routed" event
    # An agent campaign's call: its name, mode, purpose and script (core.dialler).
    campaign: Mapping[str, Any] | None = None


def address_as(name: str, language: str | None) -> str:
    """How to greet the caller: by their full name, in their language (the schema has no
    title or gender, so no Mr/Mrs guess)."""
    return GREETINGS.get(language or "", DEFAULT_GREETING).format(name=name.strip())


def document_state(expiry: date | None, today: date) -> str:
    if expiry is None:
        return "unknown"
    if expiry < today:
        return "expired"
    if (expiry - today).days <= EXPIRY_WARN_DAYS:
        return "expiring"
    return "valid"


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def build_screenpop(rows: PopRows, stage: str, today: date) -> dict[str, Any]:
    call, client = rows.call, rows.client
    pop: dict[str, Any] = {
        "call_id": call.id,
        "stage": stage,
        "caller_number": call.caller_number,
        "queue": call.queue,
        "intent": rows.intent,
        "ivr_path": list(call.ivr_path or []),
        "known": client is not None,
        **(
            {"campaign": dict(rows.campaign), "number": call.called_number} if rows.campaign else {}
        ),
        "placeholders": {
            "loans_and_balances": "not_in_schema",
            "offers": "not_in_schema",
        },
    }
    if client is None:
        # An unknown caller: the desk offers "create client" pre-filled with the number.
        pop["new_client"] = {"phone": call.caller_number or "", "name": call.caller_name or ""}
        return pop
    alerts = []
    if client.overdue_debt:
        alerts.append("overdue_debt")
    doc = document_state(client.document_expiry, today)
    if doc in ("expired", "expiring"):
        alerts.append(f"document_{doc}")
    if str(client.client_type) == "key":
        alerts.append("key_client")
    if client.birthday and (client.birthday.month, client.birthday.day) == (today.month, today.day):
        alerts.append("birthday_today")
    pop["client"] = {
        "id": client.id,
        "external_id": client.external_id,
        "name": client.name,
        "address_as": address_as(client.name, client.language),
        "client_type": str(client.client_type),
        "language": client.language,
        "segment": client.segment,
        "manager": (
            {"id": rows.manager.id, "name": rows.manager.name} if rows.manager is not None else None
        ),
        "overdue_debt": client.overdue_debt,
        "document_expiry": _iso(client.document_expiry),
        "document_state": doc,
        "phones": rows.phones,
        "opted_out": list(rows.opted_out),
        "alerts": alerts,
    }
    pop["callbacks"] = [
        {"id": c.id, "due_at": _iso(c.due_at), "reason": c.reason, "number": c.number}
        for c in rows.callbacks
    ]
    pop["interactions"] = [
        {
            "at": _iso(i.created_at),
            "category": i.category,
            "note": i.note,
            "agent_id": i.agent_id,
            "channel": i.channel,
        }
        for i in rows.interactions
    ]
    pop["history"] = [
        {
            "call_id": c.id,
            "started_at": _iso(c.started_at),
            "outcome": c.outcome,
            "disposition": c.disposition,
            "agent_id": c.agent_id,
            "queue": c.queue,
        }
        for c in rows.calls
    ]
    pop["messages"] = [
        {
            "at": _iso(m.created_at),
            "channel": m.channel,
            "kind": m.kind,
            "subject": m.subject,
            "state": m.state,
        }
        for m in rows.messages
    ]
    pop["inquiries"] = [
        {
            "id": i.id,
            "at": _iso(i.created_at),
            "channel": i.channel,
            "kind": i.kind,
            "subject": i.subject,
            "state": i.state,
        }
        for i in rows.inquiries
    ]
    pop["nps"] = [
        {"at": _iso(a.answered_at), "question": a.question_key, "score": a.value_int}
        for a in rows.survey_answers
        if a.value_int is not None
    ]
    return pop
