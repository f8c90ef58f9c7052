"""The desktop's checks and decisions, pure: disposition and client forms, what an edit
changes (for the audit trail), whether an agent may become available, and the wallboard's
figures from the ACD snapshot and today's call rows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from core.errors import DomainError
from core.notices import Channel
from core.phones import normalise

CATEGORIES = ("information", "sales", "complaint", "satisfaction", "suggestion")
OUTCOMES = ("resolved", "follow_up", "escalated", "not_resolved")
CLIENT_TYPES = ("key", "regular", "new")
LANGUAGES = ("bs", "hr", "sr", "en", "de")
MAX_NOTE = 2000
MAX_NAME = 200
SERVICE_LEVEL_SECONDS = 20.0
ESCALATION_QUEUES = frozenset({"supervisor"})
DISPOSITION_PAUSE = "disposition"


class FormError(DomainError):
    """A form field that does not pass; ``field`` names it for the page."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(
            f"{field}: {message}", error_id="bad_field", status=422, details={"field": field}
        )
        self.field = field


def _text(data: dict[str, Any], key: str, limit: int, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise FormError(key, "required")
        return None
    if not isinstance(value, str):
        raise FormError(key, "must be text")
    value = value.strip()
    if len(value) > limit:
        raise FormError(key, f"at most {limit} characters")
    if any(c == "\0" for c in value):
        raise FormError(key, "no NUL characters")
    return value


def _choice(data: dict[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = data.get(key)
    if value not in choices:
        raise FormError(key, f"one of {', '.join(choices)}")
    return str(value)


def _due(data: dict[str, Any], key: str, now: datetime) -> datetime | None:
    raw = _text(data, key, 40)
    if raw is None:
        return None
    try:
        due = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise FormError(key, "a date and time, e.g. 2026-11-24T10:00") from exc
    if due.tzinfo is None:
        due = due.replace(tzinfo=now.tzinfo)  # the browser's local time is sent as UTC
    if due < now - timedelta(minutes=5):
        raise FormError(key, "in the past")
    return due


@dataclass(frozen=True)
class Disposition:
    category: str
    outcome: str
    note: str | None
    follow_up: str | None  # a task: becomes a callback assigned to the agent
    follow_up_due: datetime | None

    @property
    def code(self) -> str:
        """What goes in ``calls.disposition`` (80 characters)."""
        return f"{self.category}/{self.outcome}"


def check_disposition(data: dict[str, Any], now: datetime) -> Disposition:
    category = _choice(data, "category", CATEGORIES)
    outcome = _choice(data, "outcome", OUTCOMES)
    note = _text(data, "note", MAX_NOTE)
    follow_up = _text(data, "follow_up", 80)
    due = _due(data, "follow_up_due", now)
    if follow_up and due is None:
        due = now + timedelta(days=1)
    if outcome == "follow_up" and not follow_up:
        raise FormError("follow_up", "say what is to be done")
    return Disposition(category, outcome, note, follow_up, due if follow_up else None)


@dataclass(frozen=True)
class CallbackRequest:
    due_at: datetime
    note: str | None


def check_callback(data: dict[str, Any], now: datetime) -> CallbackRequest:
    due = _due(data, "due_at", now)
    if due is None:
        raise FormError("due_at", "required")
    return CallbackRequest(due, _text(data, "note", 80))


EDITABLE = ("name", "language", "client_type", "phones", "document_expiry", "opted_out")


def check_client(data: dict[str, Any], region: str, *, partial: bool) -> dict[str, Any]:
    """A client form's fields, checked and normalised (phones to E.164)."""
    out: dict[str, Any] = {}
    if not partial or "name" in data:
        out["name"] = _text(data, "name", MAX_NAME, required=True)
    if "language" in data:
        lang = _text(data, "language", 8)
        if lang is not None and lang not in LANGUAGES:
            raise FormError("language", f"one of {', '.join(LANGUAGES)}")
        out["language"] = lang
    if "client_type" in data or not partial:
        out["client_type"] = _choice(
            {"client_type": data.get("client_type", "new")}, "client_type", CLIENT_TYPES
        )
    if "phones" in data or not partial:
        raw = data.get("phones", "")
        items = raw if isinstance(raw, list) else re.split(r"[;,]", str(raw or ""))
        phones = []
        for item in items:
            item = str(item).strip()
            if not item:
                continue
            e164 = normalise(item, region)
            if e164 is None:
                raise FormError("phones", f"not a phone number: {item[:40]!r}")
            if e164 not in phones:
                phones.append(e164)
        if not phones:
            raise FormError("phones", "at least one number")
        out["phones"] = phones
    if "opted_out" in data:
        # The channels the client asked not to get messages by (an agent records it).
        raw_channels = data["opted_out"]
        items = raw_channels if isinstance(raw_channels, list) else [raw_channels]
        chosen = set()
        for item in items:
            if not isinstance(item, str) or item not in set(Channel):
                raise FormError("opted_out", f"channels: {', '.join(Channel)}")
            chosen.add(item)
        out["opted_out"] = sorted(chosen)
    if "document_expiry" in data:
        raw_date = _text(data, "document_expiry", 10)
        try:
            out["document_expiry"] = date.fromisoformat(raw_date) if raw_date else None
        except ValueError as exc:
            raise FormError("document_expiry", "a date, YYYY-MM-DD") from exc
    return out


def changes(
    before: dict[str, Any], after: dict[str, Any]
) -> list[tuple[str, str | None, str | None]]:
    """(field, old, new) for each editable field that really changes: the audit trail."""

    def show(value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, list):
            return ";".join(str(v) for v in value)
        return value.isoformat() if isinstance(value, date) else str(value)

    out = []
    for key in EDITABLE:
        if key in after and show(after[key]) != show(before.get(key)):
            out.append((key, show(before.get(key)), show(after[key])))
    return out


def may_become_available(pending_disposition: str | None, required: bool) -> bool:
    return not (required and pending_disposition)


@dataclass(frozen=True)
class CallFigure:
    """What the wallboard needs of one of today's calls."""

    connected: bool
    wait_seconds: float | None
    outcome: str | None
    queue: str | None


def day_figures(calls: list[CallFigure]) -> dict[str, Any]:
    """Today's answered / abandoned / service level (answered within 20 s, of the calls
    that reached a queue and were answered or abandoned there)."""
    answered = [c for c in calls if c.connected]
    abandoned = [c for c in calls if not c.connected and c.outcome == "abandoned_in_queue"]
    fast = sum(1 for c in answered if (c.wait_seconds or 0.0) <= SERVICE_LEVEL_SECONDS)
    offered = len(answered) + len(abandoned)
    return {
        "answered": len(answered),
        "abandoned": len(abandoned),
        "service_level": round(100.0 * fast / offered, 1) if offered else None,
        "service_level_seconds": SERVICE_LEVEL_SECONDS,
    }


def wallboard(snapshot: dict[str, Any], figures: dict[str, Any]) -> dict[str, Any]:
    queues = [
        {
            "id": qid,
            "waiting": q["waiting"],
            "longest_wait": round(q["longest_wait"], 1),
            "available": q["available"],
            "escalation": qid in ESCALATION_QUEUES,
        }
        for qid, q in snapshot["queues"].items()
    ]
    agents = [
        {
            "id": aid,
            "name": a["name"],
            "status": a["status"],
            "seconds": round(a["seconds_in_status"]),
            "reason": a["pause_reason"] if a["status"] == "paused" else None,
        }
        for aid, a in sorted(snapshot["agents"].items())
        if a["status"] != "logged_out"
    ]
    return {
        "queues": queues,
        "agents": agents,
        "today": figures,
        "waiting": sum(q["waiting"] for q in queues),
        "escalations_waiting": sum(q["waiting"] for q in queues if q["escalation"]),
    }
