"""The calls not yet closed, as the call log's own writes say, kept beside the database.

Why: a `serve` restarted while the database is down cannot read ``calls.live_state``. Every
write of the call log passes here after it is written or journaled (``apply``), so this map
always holds each open call's row facts and latest live state. When the journal starts (an
outage begins) the whole map goes in as its first entry (``op: live``), and again at the head
of what a partial drain leaves; a restarted process rebuilds the map by applying the journal's
entries in order from that head (``rebuild``), and adopts its calls from it.

Each op sets facts (the latest wins) or removes the call, so applying a suffix of the ops a
second time on top of the map they produced changes nothing: the head written after a partial
drain plus the entries left after it rebuild the same map.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# The row facts an adoption needs (models.calllog.LiveRow), from the open and from updates.
ROW_FACTS = ("channel_id", "handler", "flow_version", "client_id", "caller_number", "node")
UPDATED_FACTS = ("queued_at", "connected_at", "flow_version", "client_id")


def apply(live: dict[str, dict[str, Any]], op: dict[str, Any]) -> None:
    """What ``op`` (a call-log write) changes in the map of open calls."""
    kind = op.get("op")
    if kind == "live":
        live.clear()
        live.update({k: dict(v) for k, v in op["rows"].items()})
    elif kind == "open":
        row = op["row"]
        live.setdefault(row["id"], {"state": None, "queued_at": None, "connected_at": None})
        live[row["id"]].update({k: row.get(k) for k in ROW_FACTS})
    elif kind == "flush":
        for call_id, state in op["states"].items():
            if call_id in live:
                live[call_id]["state"] = state
    elif kind == "update":
        facts = live.get(op["call_id"])
        if facts is not None:
            facts.update({k: v for k, v in op["values"].items() if k in UPDATED_FACTS})
    elif kind == "close":
        live.pop(op["call_id"], None)
    elif kind == "survey":
        facts = live.get(op["call_id"])
        if facts is not None and op.get("status") is not None:
            facts["survey_status"] = op["status"]


def rebuild(entries: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    live: dict[str, dict[str, Any]] = {}
    for entry in entries:
        apply(live, entry)
    return live
