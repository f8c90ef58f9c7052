"""How callers move through a flow, for the console's live view per node: where the callers
in the IVR are now, and from today's calls' IVR paths (``calls.ivr_path``) how many reached
each node and how many hung up there. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

IVR_ABANDONED = "abandoned_in_ivr"


def nodes_of(path: Iterable[str], nodes: set[str]) -> list[str]:
    """The nodes a path went through, in order: its entries that name a node (a key pressed
    is "menu:3", a note of entries left out "…N skipped…")."""
    return [entry for entry in path if entry in nodes]


@dataclass
class Traffic:
    here_now: Counter[str] = field(default_factory=Counter)  # callers in the IVR at each node
    reached: Counter[str] = field(default_factory=Counter)  # today's calls that reached it
    left: Counter[str] = field(default_factory=Counter)  # today's calls that hung up there

    def to_json(self, nodes: Iterable[str]) -> dict[str, Any]:
        return {
            name: {
                "now": self.here_now[name],
                "reached_today": self.reached[name],
                "left_today": self.left[name],
            }
            for name in nodes
        }


def traffic(
    nodes: set[str],
    live_nodes: Iterable[str | None],
    calls_today: Iterable[tuple[list[str], str | None]],
) -> Traffic:
    """``live_nodes``: the node each live call of the flow is at (None: not in the IVR);
    ``calls_today``: each ended call's path and outcome. A call counts once per node it
    reached however often it came back (a menu repeated)."""
    out = Traffic()
    out.here_now.update(node for node in live_nodes if node in nodes)
    for path, outcome in calls_today:
        seen = nodes_of(path, nodes)
        out.reached.update(set(seen))
        if outcome == IVR_ABANDONED and seen:
            out.left[seen[-1]] += 1
    return out
