"""Asterisk's call detail records (CDR) as Centrala reads them, and which of them are calls
the CRM must hold although Centrala never saw them (it was stopped, crashed or restarting:
Stasis failed, the FastAGI fallback too, and the caller heard Asterisk's apology).

The format is the one the shipped ``cdr_custom.conf`` writes: ``RECORD_FIELDS`` in order,
comma separated, every field quoted with a quote inside doubled (a caller's number may hold
a comma, a quote or a line feed: it cannot forge a field or a record), times as epoch
seconds. Pure: parsing and deciding, no file or database.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

# The columns of one record line; cdr_custom.conf must write exactly these, in this order.
RECORD_FIELDS = (
    "linkedid",
    "uniqueid",
    "channel",
    "src",
    "dst",
    "dcontext",
    "lastapp",
    "disposition",
    "start",
    "answer",
    "end",
)

# The contexts where callers from outside enter the info line (extensions.conf: a number
# enters from-trunk and goes on to centrala-infoline, where the CDR finds it).
ENTRY_CONTEXTS = frozenset({"from-trunk", "centrala-infoline", "infoline-agi"})

# What the CRM says of a call Centrala was not there to serve.
UNSERVED = "unserved"
UNSERVED_TEXT = "not served: Centrala was away (from Asterisk's CDR)"


class CdrFormatError(ValueError):
    """A line that is not one of our records (a different template, a torn write)."""


@dataclass(frozen=True)
class CdrRecord:
    linkedid: str
    uniqueid: str  # the channel's id: a call row's ``channel_id``
    channel: str  # its name (PJSIP/trunk-00000001)
    src: str  # the caller's number
    dst: str  # the number dialled
    context: str
    last_app: str
    disposition: str  # ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION
    start: datetime
    answer: datetime | None
    end: datetime


def _time(text: str, field: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError as exc:
        raise CdrFormatError(f"{field}: not epoch seconds: {text[:40]!r}") from exc
    if seconds <= 0:  # Asterisk's "never" (an unanswered call's answer time)
        return None
    if seconds > 4_102_444_800:  # 2100-01-01: no PBX clock says that
        raise CdrFormatError(f"{field}: out of range: {text[:40]!r}")
    return datetime.fromtimestamp(seconds, UTC)


def split_records(data: bytes) -> list[tuple[str, int]]:
    """The whole records in ``data`` with the offset just past each: a record ends at a
    line feed outside quotes (an even number of quotes since it began). A record still
    being written (no line feed yet) is left for the next read."""
    found: list[tuple[str, int]] = []
    start = 0
    quotes = 0
    at = 0
    while True:
        nl = data.find(b"\n", at)
        if nl < 0:
            return found
        quotes += data.count(b'"', at, nl)
        at = nl + 1
        if quotes % 2 == 0:
            found.append((data[start:nl].decode("utf-8", "replace"), at))
            start, quotes = at, 0


def parse_record(text: str) -> CdrRecord:
    """One record of the CDR file (without its final line feed)."""
    rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    if len(rows) != 1:
        raise CdrFormatError(f"{len(rows)} rows in one record")
    parts = rows[0]
    if len(parts) != len(RECORD_FIELDS):
        raise CdrFormatError(f"{len(parts)} fields, not {len(RECORD_FIELDS)}")
    values = dict(zip(RECORD_FIELDS, (p.strip() for p in parts), strict=True))
    if not values["uniqueid"]:
        raise CdrFormatError("no uniqueid")
    start = _time(values["start"], "start")
    end = _time(values["end"], "end")
    if start is None or end is None:
        raise CdrFormatError("no start or end time")
    return CdrRecord(
        linkedid=values["linkedid"][:64],
        uniqueid=values["uniqueid"][:64],
        channel=values["channel"][:200],
        src=values["src"][:64],
        dst=values["dst"][:64],
        context=values["dcontext"][:80],
        last_app=values["lastapp"][:80],
        disposition=values["disposition"][:20],
        start=start,
        answer=_time(values["answer"], "answer"),
        end=end,
    )


@dataclass(frozen=True)
class PbxCall:
    """One channel's life as Asterisk recorded it (several records when it was bridged
    more than once: from the first one's start to the last one's end)."""

    channel_id: str
    linkedid: str
    caller_number: str | None
    called_number: str
    context: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    disposition: str
    last_app: str

    channel: str = ""

    @property
    def entered_info_line(self) -> bool:
        # A Local channel's first half is the far end (a simulated phone): only its second
        # half runs the dialplan, although Asterisk records both with its context.
        far_end = self.channel.startswith("Local/") and self.channel.endswith(";1")
        return self.context in ENTRY_CONTEXTS and not far_end


def channels(records: Iterable[CdrRecord]) -> dict[str, PbxCall]:
    """The records grouped by channel, in the order Asterisk wrote them."""
    seen: dict[str, PbxCall] = {}
    for r in records:
        was = seen.get(r.uniqueid)
        if was is None:
            seen[r.uniqueid] = PbxCall(
                channel_id=r.uniqueid,
                linkedid=r.linkedid,
                caller_number=r.src or None,
                called_number=r.dst,
                context=r.context,
                started_at=r.start,
                answered_at=r.answer,
                ended_at=r.end,
                disposition=r.disposition,
                last_app=r.last_app,
                channel=r.channel,
            )
            continue
        answers = [a for a in (was.answered_at, r.answer) if a is not None]
        seen[r.uniqueid] = replace(
            was,
            started_at=min(was.started_at, r.start),
            answered_at=min(answers) if answers else None,
            ended_at=max(was.ended_at, r.end),
            disposition="ANSWERED" if answers else r.disposition,
            last_app=r.last_app,
        )
    return seen


def callers_to_record(calls: Iterable[PbxCall], numbers: Iterable[str]) -> list[PbxCall]:
    """The calls that entered the info line on one of its ``numbers``: each one must have a
    row (whether Centrala saw it is the database's to say). Unallocated numbers and our own
    legs (agents, campaign calls) are not callers of the line."""
    wanted = set(numbers)
    return [c for c in calls if c.entered_info_line and c.called_number in wanted]
