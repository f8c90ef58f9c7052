"""Over 500 lines: one state machine whose transitions share one state, property-tested as a whole.

Automatic call distribution: which agent gets which call, as a pure state machine.

No I/O, no asyncio, no clock: every method takes ``now`` (monotonic seconds) and returns the
decisions, i.e. the offers to place. The ARI adapter rings phones, keeps the timers and calls
``tick`` at ``next_deadline()``. Inbound queues, the outbound dialler and callbacks all share
this one model of agents and queues.

The decision itself is in the two functions right below: ``pick_agent`` (a call looks for an
agent) and ``pick_call`` (a free agent looks for a call). Everything else is bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from enum import StrEnum
from typing import NamedTuple, TypedDict

from core.errors import DomainError


class AgentStatus(StrEnum):
    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    OFFERED = "offered"  # the agent's phone is ringing for a call
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


class AgentMode(StrEnum):
    PER_CALL = "per_call"  # we ring the agent's phone for each call
    NAILED = "nailed"  # the agent's phone stays in their own bridge all shift: offers are instant


@dataclass(frozen=True)
class AgentProfile:
    id: str
    name: str
    role: str = "agent"  # "agent", "supervisor", "admin" or "manager"
    skills: frozenset[str] = frozenset()
    queues: Mapping[str, int] = field(default_factory=dict)  # queue id -> penalty, lower first


@dataclass
class Agent:
    profile: AgentProfile
    status: AgentStatus
    endpoint: str  # Asterisk dial string: "PJSIP/101", "Local/..."
    mode: AgentMode
    status_since: float
    idle_since: float  # when they last became available: longest idle goes first
    pause_reason: str | None = None  # while on a call: pause once the call and wrap-up end
    wrap_up_until: float | None = None
    current_call: str | None = None  # offered, on the call, or wrapping it up
    calls_taken: int = 0
    missed_offers: int = 0

    @property
    def id(self) -> str:
        return self.profile.id


@dataclass(frozen=True)
class AgentTarget:
    agent_id: str


@dataclass(frozen=True)
class QueueTarget:
    queue_id: str


Target = AgentTarget | QueueTarget


@dataclass(frozen=True)
class CallRequest:
    call_id: str
    queue: str  # where the caller waits: statistics and position
    _: KW_ONLY
    arrived_at: float
    targets: tuple[Target, ...] = ()  # in order of preference; empty: the queue's members
    priority: int = 0  # higher first
    skills: frozenset[str] = frozenset()  # all required

    @property
    def route(self) -> tuple[Target, ...]:
        return self.targets or (QueueTarget(self.queue),)


@dataclass(frozen=True)
class Offer:
    call_id: str
    agent_id: str
    endpoint: str
    mode: AgentMode
    tier: int  # index of the target that made the agent eligible


@dataclass(frozen=True)
class Cancelled:
    agent_id: str | None  # whose ringing phone to hang up, if the call was being offered
    offers: tuple[Offer, ...]  # that agent, free again, may take a waiting call at once


class ACDError(DomainError):
    def __init__(self, error_id: str, message: str) -> None:
        super().__init__(message, error_id=error_id, status=409)


class Eligibility(NamedTuple):
    tier: int  # index of the first target naming the agent
    penalty: int  # the agent's penalty in that queue; 0 when named personally
    personal: bool  # named by an AgentTarget rather than as a queue member


def eligibility(call: CallRequest, agent: Agent) -> Eligibility | None:
    """How the agent may take the call (whatever their status now), or None if they may not."""
    if not call.skills <= agent.profile.skills:
        return None
    for tier, target in enumerate(call.route):
        if isinstance(target, AgentTarget):
            if target.agent_id == agent.id:
                return Eligibility(tier, 0, personal=True)
        elif (penalty := agent.profile.queues.get(target.queue_id)) is not None:
            return Eligibility(tier, penalty, personal=False)
    return None


def pick_agent(call: CallRequest, agents: Iterable[Agent], now: float) -> tuple[Agent, int] | None:
    """The agent who gets ``call`` now, with the tier that made them eligible.

    Eligible: available, has every skill the call requires, and named by one of the call's
    targets (an AgentTarget names that agent, a QueueTarget the queue's members).
    Best: the lowest tier (the first target naming them), then the lowest penalty in that
    queue (0 for an AgentTarget), then the longest idle (earliest idle_since), then agent id.
    """
    best: tuple[tuple[int, int, float, str], Agent] | None = None
    for agent in agents:
        if agent.status is not AgentStatus.AVAILABLE:
            continue
        rank = eligibility(call, agent)
        if rank is None:
            continue
        key = (rank.tier, rank.penalty, agent.idle_since, agent.id)
        if best is None or key < best[0]:
            best = (key, agent)
    return None if best is None else (best[1], best[0][0])


def pick_call(
    agent: Agent, waiting: Iterable[CallRequest], now: float
) -> tuple[CallRequest, int] | None:
    """The waiting call a free ``agent`` gets now, with the agent's tier for it.

    Among the calls the agent is eligible for (see ``pick_agent``): the highest priority, then
    the lowest tier for this agent, then calls naming the agent personally before calls
    reaching them as a queue member (so a key client's own manager takes that client before an
    older general call of equal priority), then the longest waiting (earliest arrived_at), then
    call id.
    """
    if agent.status is not AgentStatus.AVAILABLE:
        return None
    best: tuple[tuple[int, int, bool, float, str], CallRequest, int] | None = None
    for call in waiting:
        rank = eligibility(call, agent)
        if rank is None:
            continue
        key = (-call.priority, rank.tier, not rank.personal, call.arrived_at, call.call_id)
        if best is None or key < best[0]:
            best = (key, call, rank.tier)
    return None if best is None else (best[1], best[2])


def _serve_order(call: CallRequest) -> tuple[int, float, str]:
    return -call.priority, call.arrived_at, call.call_id


class QueueSnapshot(TypedDict):
    waiting: int
    longest_wait: float
    available: int


class AgentSnapshot(TypedDict):
    name: str
    status: str
    seconds_in_status: float
    pause_reason: str | None
    current_call: str | None


class Snapshot(TypedDict):
    queues: dict[str, QueueSnapshot]
    agents: dict[str, AgentSnapshot]


_BUSY = (AgentStatus.OFFERED, AgentStatus.ON_CALL)
_ANSWERED_MEMORY = 10_000


class ACD:
    """Agents, waiting calls and outstanding offers.

    After every public method returns, no call waits while an agent eligible for it is
    available, with two exceptions: a call declined with ``pause_agent=False`` does not go
    back to the same agent in that step (``next_deadline()`` then asks for a tick at once);
    and between ``hold()`` and ``release()`` nothing is offered.
    Duplicated or reordered events from Asterisk are no-ops; calls that break the model
    (unknown agent, answering a call offered to someone else) raise ``ACDError``.
    """

    def __init__(self) -> None:
        self._agents: dict[str, Agent] = {}
        self._waiting: dict[str, CallRequest] = {}
        self._offered: dict[str, tuple[CallRequest, Offer]] = {}
        # Who answered recent calls, so a late duplicate "answered" is recognised as harmless.
        self._answered: dict[str, str] = {}
        # The last call declined without a pause, who declined it, and when (see next_deadline).
        self._declined: tuple[CallRequest, Agent, float] | None = None
        self._held = False

    def hold(self) -> None:
        """No offers until ``release``: agents and calls are taken in, and matched then. A
        start adopting several nodes' calls holds them, so every talk finds its agent on the
        call before another node's waiting caller is offered that agent."""
        self._held = True

    def release(self, now: float) -> list[Offer]:
        self._held = False
        return self._match(now)

    # -- agents -----------------------------------------------------------------------------

    def login(
        self, profile: AgentProfile, endpoint: str, mode: AgentMode, now: float
    ) -> list[Offer]:
        agent = self._agents.get(profile.id)
        if agent is None:
            agent = Agent(profile, AgentStatus.LOGGED_OUT, endpoint, mode, now, now)
            self._agents[profile.id] = agent
        agent.profile, agent.endpoint, agent.mode = profile, endpoint, mode
        agent.pause_reason = None
        if agent.status not in _BUSY and agent.status is not AgentStatus.AVAILABLE:
            self._free(agent, now)
        return self._match(now)

    def logout(self, agent_id: str, now: float) -> None:
        agent = self._get(agent_id)
        if agent.status in _BUSY:
            raise ACDError("agent_busy", "agent is on a call")
        agent.pause_reason = None
        agent.wrap_up_until = None
        agent.current_call = None
        self._set_status(agent, AgentStatus.LOGGED_OUT, now)

    def pause(self, agent_id: str, reason: str, now: float) -> None:
        agent = self._get(agent_id)
        if agent.status is AgentStatus.LOGGED_OUT:
            raise ACDError("logged_out", "agent is logged out")
        agent.pause_reason = reason
        if agent.status in _BUSY:
            return  # takes effect when the call and its wrap-up end
        agent.wrap_up_until = None
        agent.current_call = None
        if agent.status is not AgentStatus.PAUSED:
            self._set_status(agent, AgentStatus.PAUSED, now)

    def unpause(self, agent_id: str, now: float) -> list[Offer]:
        agent = self._get(agent_id)
        agent.pause_reason = None  # also drops a pause asked for during a call
        if agent.status is AgentStatus.PAUSED:
            self._free(agent, now)
        return self._match(now)

    def update_profile(self, profile: AgentProfile, now: float) -> list[Offer]:
        """New skills and queues apply from the next decision; status and counters stay."""
        self._get(profile.id).profile = profile
        return self._match(now)

    # -- calls ------------------------------------------------------------------------------

    def request(self, call: CallRequest, now: float) -> Offer | None:
        """Offer the call to the best free agent now, or keep it waiting (None)."""
        if call.call_id in self._waiting or call.call_id in self._offered:
            return None
        picked = None if self._held else pick_agent(call, self._agents.values(), now)
        if picked is None:
            self._waiting[call.call_id] = call
            return None
        return self._offer(call, picked[0], picked[1], now)

    def answered(self, call_id: str, agent_id: str, now: float) -> None:
        agent = self._get(agent_id)
        entry = self._offered.get(call_id)
        if entry is not None and entry[1].agent_id == agent_id:
            self._take(call_id, agent)
            self._set_status(agent, AgentStatus.ON_CALL, now)
            return
        if self._answered.get(call_id) == agent_id:
            return
        raise ACDError("not_offered", f"call {call_id} is not offered to agent {agent_id}")

    def adopt_call(self, call_id: str, agent_id: str, now: float) -> None:
        """A call already talking to ``agent_id`` when this process started (a restart
        adopted it): the agent is on that call again. A pause asked for stays pending."""
        agent = self._get(agent_id)
        if agent.current_call == call_id and agent.status is AgentStatus.ON_CALL:
            return
        if agent.status is AgentStatus.LOGGED_OUT:
            raise ACDError("logged_out", "agent is logged out")
        if agent.status in _BUSY:
            raise ACDError("agent_busy", "agent is on another call")
        self._waiting.pop(call_id, None)
        agent.current_call = call_id
        agent.wrap_up_until = None
        self._answered[call_id] = agent.id
        self._set_status(agent, AgentStatus.ON_CALL, now)

    def declined(
        self, call_id: str, agent_id: str, now: float, *, pause_agent: bool = True
    ) -> list[Offer]:
        """Ring-no-answer, busy or failed: the call waits again in its old place and goes to
        another free agent if there is one (never back to this agent in this same step)."""
        agent = self._get(agent_id)
        entry = self._offered.get(call_id)
        if entry is None or entry[1].agent_id != agent_id:
            return []
        del self._offered[call_id]
        self._waiting[call_id] = entry[0]
        agent.missed_offers += 1
        if pause_agent:
            agent.pause_reason = "no_answer"
        self._free(agent, now)
        offers = self._match(now, skip=(call_id, agent_id))
        self._declined = (entry[0], agent, now)
        return offers

    def cancel(self, call_id: str, now: float) -> Cancelled:
        """The caller hung up, left the queue or overflowed."""
        if self._waiting.pop(call_id, None) is not None:
            return Cancelled(None, ())
        entry = self._offered.pop(call_id, None)
        if entry is None:
            return Cancelled(None, ())
        agent = self._agents[entry[1].agent_id]
        # Not the agent's fault: they keep their place in the longest-idle order.
        self._free(agent, now, keep_place=True)
        return Cancelled(agent.id, tuple(self._match(now)))

    def ended(self, agent_id: str, now: float, wrap_up_seconds: float) -> list[Offer]:
        agent = self._get(agent_id)
        if agent.status is AgentStatus.OFFERED and agent.current_call is not None:
            # The hangup overtook the "answered" event: the call did happen.
            self._take(agent.current_call, agent)
        elif agent.status is not AgentStatus.ON_CALL:
            return []
        if wrap_up_seconds > 0:
            agent.wrap_up_until = now + wrap_up_seconds
            self._set_status(agent, AgentStatus.WRAP_UP, now)
            return []
        self._free(agent, now)
        return self._match(now)

    def finish_wrap_up(self, agent_id: str, now: float) -> list[Offer]:
        agent = self._get(agent_id)
        if agent.status is AgentStatus.WRAP_UP:
            self._free(agent, now)
        return self._match(now)

    def tick(self, now: float) -> list[Offer]:
        for agent in self._agents.values():
            until = agent.wrap_up_until
            if agent.status is AgentStatus.WRAP_UP and until is not None and until <= now:
                self._free(agent, until)
        return self._match(now)

    def next_deadline(self) -> float | None:
        """When to call ``tick``: the earliest end of a wrap-up, or at once (a time already
        past) when a call declined without pausing waits while its decliner is free."""
        deadlines = [
            a.wrap_up_until
            for a in self._agents.values()
            if a.status is AgentStatus.WRAP_UP and a.wrap_up_until is not None
        ]
        if self._declined is not None:
            call, agent, at = self._declined
            if call.call_id in self._waiting and pick_agent(call, [agent], at) is not None:
                deadlines.append(at)
        return min(deadlines, default=None)

    # -- queries ----------------------------------------------------------------------------

    def agent(self, agent_id: str) -> Agent:
        return self._get(agent_id)

    def agents(self) -> list[Agent]:
        return sorted(self._agents.values(), key=lambda a: a.id)

    def waiting(self, queue: str | None = None) -> list[CallRequest]:
        calls = (c for c in self._waiting.values() if queue is None or c.queue == queue)
        return sorted(calls, key=_serve_order)

    def offers(self) -> list[Offer]:
        return sorted((offer for _, offer in self._offered.values()), key=lambda o: o.call_id)

    def position(self, call_id: str) -> int | None:
        call = self._waiting.get(call_id)
        if call is None:
            return None
        return self.waiting(call.queue).index(call) + 1

    def expected_wait(
        self, call_id: str, now: float, average_handle_seconds: float
    ) -> float | None:
        position = self.position(call_id)
        if position is None:
            return None
        call = self._waiting[call_id]
        staffed = sum(
            1
            for a in self._agents.values()
            if a.status not in (AgentStatus.LOGGED_OUT, AgentStatus.PAUSED)
            and eligibility(call, a) is not None
        )
        return position * average_handle_seconds / max(1, staffed)

    def free_agents_for(self, call: CallRequest) -> int:
        return sum(
            1
            for a in self._agents.values()
            if a.status is AgentStatus.AVAILABLE and eligibility(call, a) is not None
        )

    def snapshot(self, now: float) -> Snapshot:
        queues: dict[str, QueueSnapshot] = {}

        def queue(queue_id: str) -> QueueSnapshot:
            return queues.setdefault(
                queue_id, QueueSnapshot(waiting=0, longest_wait=0.0, available=0)
            )

        for a in self._agents.values():
            if a.status is AgentStatus.LOGGED_OUT:
                continue
            for queue_id in a.profile.queues:
                queue(queue_id)["available"] += a.status is AgentStatus.AVAILABLE
        for call in self._waiting.values():
            stats = queue(call.queue)
            stats["waiting"] += 1
            stats["longest_wait"] = max(stats["longest_wait"], now - call.arrived_at)
        agents = {a.id: _agent_snapshot(a, now) for a in self.agents()}
        return Snapshot(queues=dict(sorted(queues.items())), agents=agents)

    def agent_snapshot(self, agent_id: str, now: float) -> AgentSnapshot | None:
        """One agent's part of `snapshot` (None: unknown), without building the others':
        each desk's state is sent every second, to hundreds of desks."""
        agent = self._agents.get(agent_id)
        return None if agent is None else _agent_snapshot(agent, now)

    # -- internals --------------------------------------------------------------------------

    def _get(self, agent_id: str) -> Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise ACDError("unknown_agent", f"unknown agent {agent_id}")
        return agent

    @staticmethod
    def _set_status(agent: Agent, status: AgentStatus, now: float) -> None:
        agent.status = status
        agent.status_since = now

    def _free(self, agent: Agent, at: float, *, keep_place: bool = False) -> None:
        """The agent is done with any call: paused if a pause is pending, else available."""
        agent.current_call = None
        agent.wrap_up_until = None
        if agent.pause_reason is not None:
            self._set_status(agent, AgentStatus.PAUSED, at)
            return
        self._set_status(agent, AgentStatus.AVAILABLE, at)
        if not keep_place:
            agent.idle_since = at

    def _offer(self, call: CallRequest, agent: Agent, tier: int, now: float) -> Offer:
        offer = Offer(call.call_id, agent.id, agent.endpoint, agent.mode, tier)
        self._waiting.pop(call.call_id, None)
        self._offered[call.call_id] = (call, offer)
        agent.current_call = call.call_id
        self._set_status(agent, AgentStatus.OFFERED, now)
        return offer

    def _take(self, call_id: str, agent: Agent) -> None:
        del self._offered[call_id]
        agent.calls_taken += 1
        self._answered[call_id] = agent.id
        if len(self._answered) > _ANSWERED_MEMORY:
            del self._answered[next(iter(self._answered))]

    def _match(self, now: float, skip: tuple[str, str] | None = None) -> list[Offer]:
        """Pair waiting calls with free agents until no free agent is eligible for any.

        Free agents propose in the order they became free (earliest first), each the call
        ``pick_call`` gives them; the call then goes to its own best free agent by
        ``pick_agent`` (so a key client's manager still wins when free in the same step).
        ``skip`` is a (call, agent) pair that must not meet in this step.
        """
        self._declined = None
        offers: list[Offer] = []
        while self._waiting and not self._held:
            free = sorted(
                (a for a in self._agents.values() if a.status is AgentStatus.AVAILABLE),
                key=lambda a: (a.idle_since, a.id),
            )
            for agent in free:
                calls = [c for c in self._waiting.values() if (c.call_id, agent.id) != skip]
                picked = pick_call(agent, calls, now)
                if picked is None:
                    continue
                call = picked[0]
                takers = [a for a in free if (call.call_id, a.id) != skip]
                chosen = pick_agent(call, takers, now) or (agent, picked[1])
                offers.append(self._offer(call, chosen[0], chosen[1], now))
                break
            else:
                break
        return offers


def _agent_snapshot(agent: Agent, now: float) -> AgentSnapshot:
    return AgentSnapshot(
        name=agent.profile.name,
        status=str(agent.status),
        seconds_in_status=now - agent.status_since,
        pause_reason=agent.pause_reason,
        current_call=agent.current_call,
    )
