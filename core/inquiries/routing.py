"""Who takes which written inquiry: the same agents and queues as the calls (``core.acd``),
written work filling the gaps between calls.

Pure: the adapter gives the ACD's agents as they are now, how many inquiries each holds, and
the inquiries waiting; it applies the pairs this returns (each only if the inquiry is still
waiting) and tells the agents' desks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.acd import Agent, AgentStatus

# Inquiries an agent works on at once (new or open, theirs): more would only wait behind
# these on their desk, while another agent could have taken them.
MAX_HELD = 3


@dataclass(frozen=True)
class WaitingInquiry:
    id: int
    queue: str
    priority: int
    created_at: datetime


def assign(
    agents: Iterable[Agent],
    held: Mapping[str, int],
    waiting: Sequence[WaitingInquiry],
    *,
    max_held: int = MAX_HELD,
) -> list[tuple[int, str]]:
    """(inquiry, agent) pairs to make now. An inquiry goes only to an agent who is available
    (never one whose phone rings, who is on a call, wrapping one up or paused: a call is
    never interrupted, and the next call still finds them free), a member of its queue, who
    holds fewer than ``max_held``. The highest priority first, then the oldest; each to the
    member with the lowest penalty in its queue, then the fewest held, then the longest
    idle, then by id."""
    load = dict(held)
    free = [a for a in agents if a.status is AgentStatus.AVAILABLE]
    pairs = []
    for inquiry in sorted(waiting, key=lambda i: (-i.priority, i.created_at, i.id)):
        best: tuple[tuple[int, int, float, str], Agent] | None = None
        for agent in free:
            penalty = agent.profile.queues.get(inquiry.queue)
            if penalty is None or load.get(agent.id, 0) >= max_held:
                continue
            key = (penalty, load.get(agent.id, 0), agent.idle_since, agent.id)
            if best is None or key < best[0]:
                best = (key, agent)
        if best is not None:
            pairs.append((inquiry.id, best[1].id))
            load[best[1].id] = load.get(best[1].id, 0) + 1
    return pairs
