"""Over 500 lines: one pacer whose estimator, controller and bookkeeping share one state, and
whose interface a simulator (bench/dialler_sim.py) must drive exactly as production does.

The agent dialler's pacing: how many new calls a campaign places right now. Pure: no I/O, no
asyncio, no clock of its own; imports only the standard library's pure modules.

Interface (the same for the ARI adapter and the simulator):

- ``Pacer(settings, history=...)``: one per campaign. ``history`` is the last 24 h of
  ``Tally(at, live_answers, abandoned)`` rows (e.g. per minute, from the database), so a
  restarted pacer keeps the abandonment rate the law counts.
- ``pacer.observe(obs)`` for every observation, in time order, times in seconds on the
  caller's clock (monotonic or epoch, the same for all): ``Placed``; ``Answered(live=...)``
  (``live`` False: a machine, AMD said so); ``Unanswered`` (no answer, busy, failed);
  ``Connected`` (a live answer bridged to an agent); ``Abandoned`` (no agent took a live
  answer within ``patience``: the caller got the message and the hang-up); ``Ended`` (the
  talk ended); ``AgentState`` (ready, talking, wrap_up, away, logged_out); ``Tally``.
- ``pacer.pace(now) -> Pace(calls, mode, reason)``: how many NEW calls to place now. Call it
  about every second and whenever an agent becomes ready; it is cheap (no loop over calls or
  agents beyond the ones in wrap-up).

Modes: PREVIEW never dials (agents dial themselves). PROGRESSIVE places one call per ready
agent not already covered by a call in flight, so no answered caller ever waits. PREDICTIVE:

1. Estimator. Every resolved call adds its outcome (live answer or not) at its ring age (whole
   seconds) to two histograms that forget with a half-life of ``memory_calls`` calls, learnt
   in the order the calls were placed (see ``_mature``). From them: for a call that has rung
   ``a`` s unresolved, the chance of a live answer within the next ``t`` s, with the answer
   rate taken ``caution`` standard errors high (overrating it costs idle time, underrating it
   costs callers). Calls in flight are grouped by the second they were placed, so the
   forecast costs one table row per second of ring time, not one per call.
2. Time-resolved availability. An answer arriving in ``t`` s can be taken by an agent free
   within ``t + patience``: ready agents now; agents in wrap-up whose remaining wrap-up (the
   measured mean less its elapsed part, spread by its measured deviation) ends by then; agents
   talking whose talk (exponential, so memoryless) and wrap-up both end by then.
3. Risk. At checkpoints every 2 s over the ring window the live answers A(t) are Poisson
   (many small independent chances) and the free agents S(t + patience) known in mean. The
   chance that a new call's live answer finds no agent is its answer-time distribution
   weighted over P(A >= S) at and after its checkpoint (taking an agent may leave a later
   caller without one). New calls are added while that chance is at most ``theta``.
4. Controller. ``theta = risk * target * feedback * budget``. ``feedback`` is how far the
   measured rate (the rolling 24 h's, shrunk toward ``target`` by ``prior_live`` answers) is
   below ``fallback_rate``, relative to ``target``: above 1 while well below target, falling
   to ``min_boost`` at ``fallback_rate`` and staying there (dialling ahead with little risk,
   so that a big team is not left at progressive's occupancy), at most ``max_boost``.
   ``budget`` is the 24 h's room: the abandoned calls the cap still allows beyond those kept
   in hand, over ``budget_soft`` times those kept in hand, at most 1, at least ``min_boost``
   (early in the day, or near the cap, one unlucky minute would leave it progressive for long).
   Predictive never places fewer calls than progressive would.

The cap the law sets is over the rolling 24 h (and 30 days, made of such days), and that is
what the pacer guards. The rolling short window (an hour) is reported (``rates``), not guarded:
a small team's hour holds too few live answers to keep abandoned calls in hand in it (guarding
it kept 10 agents progressive half their shift), so an hour may pass the cap.

It falls back to progressive by itself: below ``min_live_answers`` live answers since the
estimate was (re)started (a new campaign, a restart); when the abandoned calls kept in hand
would put the rolling 24 h over the cap (``reserve``, or more when the calls in flight may
bring more: their live answers lost at the measured rate, three standard deviations up);
and when the answer rate changes suddenly (a block of at least ``change_calls`` calls, and 30
expected live answers, against the estimate before it: a drop beyond ``change_z`` standard
errors, a rise beyond ``change_z + 1.5``), after which the estimate restarts from that block.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Mode(StrEnum):
    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    PREDICTIVE = "predictive"


class AgentActivity(StrEnum):
    READY = "ready"
    TALKING = "talking"
    WRAP_UP = "wrap_up"
    AWAY = "away"
    LOGGED_OUT = "logged_out"


class NoAnswer(StrEnum):
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"


# ---- observations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Placed:
    at: float
    call_id: str


@dataclass(frozen=True)
class Answered:
    at: float
    call_id: str
    live: bool  # a person; False: answering-machine detection said machine


@dataclass(frozen=True)
class Unanswered:
    at: float
    call_id: str
    outcome: NoAnswer


@dataclass(frozen=True)
class Connected:
    at: float
    call_id: str
    agent_id: str


@dataclass(frozen=True)
class Abandoned:
    at: float
    call_id: str


@dataclass(frozen=True)
class Ended:
    at: float
    call_id: str


@dataclass(frozen=True)
class AgentState:
    at: float
    agent_id: str
    state: AgentActivity


@dataclass(frozen=True)
class Tally:
    """Live answers and abandoned calls counted at ``at`` (a restart's history, per minute)."""

    at: float
    live_answers: int
    abandoned: int


Observation = Placed | Answered | Unanswered | Connected | Abandoned | Ended | AgentState | Tally


# ---- settings and the answer -------------------------------------------------------------


@dataclass(frozen=True)
class PacingSettings:
    """A campaign's pacing. The defaults hold for every team size and answer rate."""

    mode: Mode = Mode.PREDICTIVE
    abandon_cap: float = 0.03  # the law: abandoned / live answers over a rolling 24 h
    target: float = 0.021  # what the controller steers the measured 24 h rate to
    fallback_rate: float = 0.0255  # measured rate from which predictive takes least risk
    ring_timeout: float = 25.0  # the dial's timeout; a call in flight longer is stale
    patience: float = 2.0  # how long a live answer waits for an agent before abandoned
    min_live_answers: int = 30  # live answers in the estimate before predictive is trusted
    risk: float = 2.0  # marginal abandonment allowed per live answer, in targets
    reserve: int = 1  # abandoned calls kept in hand in the 24 h, at least, else progressive
    max_boost: float = 1.5  # the feedback's bounds on ``risk``
    min_boost: float = 0.1  # and at least this (near the cap: careful, not progressive)
    budget_soft: float = 2.0  # the 24 h's room that leaves ``risk`` whole, in reserves
    prior_live: float = 60.0  # live answers of pseudo-history at ``target`` (rate smoothing)
    short_window: float = 3600.0  # a rolling window reported besides the law's 24 h
    memory_calls: float = 2000.0  # half-life of the answer estimate, in resolved calls
    change_calls: int = 200  # calls in a block held against the long estimate, at least
    change_z: float = 3.0  # standard errors that make a sudden change
    caution: float = 1.0  # standard errors added to the measured answer rate
    talk_prior: float = 150.0  # mean talk (s) until calls have been measured
    wrap_prior: float = 30.0  # mean wrap-up (s) until measured
    max_lines: int | None = None  # calls in flight at most (trunk channels)

    def __post_init__(self) -> None:
        if not 0 < self.target < self.fallback_rate <= self.abandon_cap < 1:
            raise ValueError("need 0 < target < fallback_rate <= abandon_cap < 1")
        if self.ring_timeout < 15:
            raise ValueError("ring_timeout below 15 s hangs up on people still reaching the phone")
        if self.patience < 0 or self.min_live_answers < 1 or self.change_calls < 20:
            raise ValueError("patience >= 0, min_live_answers >= 1, change_calls >= 20")


@dataclass(frozen=True)
class Pace:
    calls: int  # new calls to place now
    mode: Mode  # the mode actually used (a predictive campaign may fall back)
    reason: str


@dataclass(frozen=True)
class AbandonRates:
    live_24h: int
    abandoned_24h: int
    live_short: int  # the short window's: reported, not guarded (the law counts 24 h)
    abandoned_short: int

    @property
    def rate_24h(self) -> float:
        return self.abandoned_24h / self.live_24h if self.live_24h else 0.0


# ---- rolling counts ----------------------------------------------------------------------


class _Window:
    """Live answers and abandoned calls in per-minute buckets over the last ``span`` seconds."""

    def __init__(self, span: float) -> None:
        self.span = span
        self.buckets: deque[list[float]] = deque()  # [minute start, live, abandoned]
        self.live = 0
        self.abandoned = 0

    def add(self, at: float, live: int, abandoned: int) -> None:
        minute = math.floor(at / 60.0) * 60.0
        if self.buckets and self.buckets[-1][0] >= minute:
            bucket = self.buckets[-1]  # late or same-minute: counted with the newest
        else:
            bucket = [minute, 0.0, 0.0]
            self.buckets.append(bucket)
        bucket[1] += live
        bucket[2] += abandoned
        self.live += live
        self.abandoned += abandoned

    def expire(self, now: float) -> None:
        while self.buckets and self.buckets[0][0] + 60.0 <= now - self.span:
            _, live, abandoned = self.buckets.popleft()
            self.live -= int(live)
            self.abandoned -= int(abandoned)


# ---- the pacer ---------------------------------------------------------------------------

_BLOCK_LIVE = 30.0  # live answers a block of calls is expected to hold, at least
_STEP = 2.0  # seconds between the risk checkpoints
_TABLE_EVERY = 5.0  # seconds between rebuilds of the answer tables (they move slowly)
_MAX_TALKS = 10_000  # calls on talk remembered for their talk time, at most
_STALE_AFTER = 60.0  # a call in flight this long past the ring timeout lost its events
_SQRT2 = math.sqrt(2.0)


def _no_agent(demand: float, free: float) -> float:
    """P(A >= free) for A Poisson with mean ``demand``: the chance that the answers before a
    caller's have used up the agents free for it. A fractional ``free`` interpolates between
    its neighbours; from one agent on, Wilson-Hilferty's approximation (within a few per cent
    in the tail, erring high)."""
    if free <= 0.0:
        return 1.0
    if free < 1.0:
        return 1.0 - free * math.exp(-demand)
    if demand <= 0.0:
        return 0.0
    z = ((demand / free) ** (1.0 / 3.0) - 1.0 + 1.0 / (9.0 * free)) * 3.0 * math.sqrt(free)
    return 0.5 * math.erfc(-z / _SQRT2)


class Pacer:
    def __init__(self, settings: PacingSettings, history: Iterable[Tally] = ()) -> None:
        self.settings = settings
        s = settings
        self._day = _Window(86400.0)
        self._short = _Window(s.short_window)
        for tally in history:
            self._tally(tally.at, tally.live_answers, tally.abandoned)
        # Calls in flight: id -> placed at, and ids by the whole second placed.
        self._ringing: dict[str, float] = {}
        self._by_second: dict[int, set[str]] = {}
        self._waiting: dict[str, float] = {}  # answered live, no agent yet: id -> when
        self._talk_since: dict[str, float] = {}
        # Agents.
        self._state: dict[str, tuple[AgentActivity, float]] = {}
        self._ready = 0
        self._talking = 0
        self._wrap: dict[str, float] = {}  # agent -> wrap-up started
        # Durations (exponentially weighted).
        self._talk_mean = s.talk_prior
        self._wrap_mean = s.wrap_prior
        self._wrap_spread = max(1.0, s.wrap_prior / 10.0)
        # The answer estimate: weighted outcomes by whole second of ring age.
        self._ages = int(s.ring_timeout) + 8
        self._live_h = [0.0] * self._ages
        self._other_h = [0.0] * self._ages
        self._weight = 1.0
        self._grow = 2.0 ** (1.0 / s.memory_calls)
        self._maturing: list[tuple[float, int, bool]] = []  # (placed, age, live) resolved
        self._w_sum = 0.0  # of the weights, and of their squares: the effective count
        self._w2_sum = 0.0
        self._block: list[tuple[int, bool]] = []  # (age, live) of the calls since the last test
        self._block_p = 0.0
        self._block_n = 0.0
        self._live_in_estimate = 0  # live answers since the estimate (re)started
        self._changes = 0
        self._table_at = -math.inf
        self._table_dirty = True
        n_checks = math.ceil(s.ring_timeout / _STEP)
        self._checks = [_STEP * (k + 1) for k in range(n_checks)]
        self._cum: list[list[float]] = []  # [age][check] chance of a live answer by then
        self._share: list[float] = []  # of a new call's live answers, by checkpoint
        self._p_live = 0.0  # a new call's chance of a live answer

    # ---- observations --------------------------------------------------------------------

    def observe(self, obs: Observation) -> None:
        if isinstance(obs, Placed):
            self._ringing[obs.call_id] = obs.at
            self._by_second.setdefault(math.floor(obs.at), set()).add(obs.call_id)
        elif isinstance(obs, Answered):
            self._resolve(obs.call_id, obs.at, obs.live)
            if obs.live:
                self._waiting[obs.call_id] = obs.at
                self._tally(obs.at, 1, 0)
        elif isinstance(obs, Unanswered):
            self._resolve(obs.call_id, obs.at, False)
        elif isinstance(obs, Connected):
            self._waiting.pop(obs.call_id, None)
            self._talk_since[obs.call_id] = obs.at
            if len(self._talk_since) > _MAX_TALKS:  # Ended events lost: forget the oldest
                del self._talk_since[next(iter(self._talk_since))]
            self._agent(obs.agent_id, AgentActivity.TALKING, obs.at)
        elif isinstance(obs, Abandoned):
            self._waiting.pop(obs.call_id, None)
            self._tally(obs.at, 0, 1)
        elif isinstance(obs, Ended):
            self._waiting.pop(obs.call_id, None)
            since = self._talk_since.pop(obs.call_id, None)
            if since is not None:
                self._talk_mean += 0.02 * (max(0.0, obs.at - since) - self._talk_mean)
        elif isinstance(obs, AgentState):
            self._agent(obs.agent_id, obs.state, obs.at)
        else:
            self._tally(obs.at, obs.live_answers, obs.abandoned)

    def _tally(self, at: float, live: int, abandoned: int) -> None:
        self._day.add(at, live, abandoned)
        self._short.add(at, live, abandoned)

    def _agent(self, agent_id: str, state: AgentActivity, at: float) -> None:
        old = self._state.get(agent_id)
        if old is not None:
            if old[0] == state:
                return  # a repeated event changes nothing
            if old[0] == AgentActivity.READY:
                self._ready -= 1
            elif old[0] == AgentActivity.TALKING:
                self._talking -= 1
            elif old[0] == AgentActivity.WRAP_UP:
                self._wrap.pop(agent_id, None)
                took = at - old[1]
                self._wrap_mean += 0.05 * (took - self._wrap_mean)
                self._wrap_spread += 0.05 * (abs(took - self._wrap_mean) - self._wrap_spread)
        if state == AgentActivity.READY:
            self._ready += 1
        elif state == AgentActivity.TALKING:
            self._talking += 1
        elif state == AgentActivity.WRAP_UP:
            self._wrap[agent_id] = at
        if state == AgentActivity.LOGGED_OUT:
            self._state.pop(agent_id, None)
        else:
            self._state[agent_id] = (state, at)

    def _resolve(self, call_id: str, at: float, live: bool) -> None:
        placed = self._ringing.pop(call_id, None)
        if placed is None:
            return  # not ours, or resolved twice
        second = math.floor(placed)
        group = self._by_second.get(second)
        if group is not None:
            group.discard(call_id)
            if not group:
                del self._by_second[second]
        age = min(self._ages - 1, max(0, int(at - placed)))
        heapq.heappush(self._maturing, (placed, age, live))
        self._mature(at)

    def _mature(self, now: float) -> None:
        """Outcomes are learnt in the order the calls were placed, once every call placed as
        early has had its answer: busy lines resolve in seconds and answers in up to 25, so
        in the order they resolve, a burst of dialling would look first like a drop in the
        answer rate, then like a rise. Calls placed at the same moment (a pace's batch) sort
        among themselves by their age at the outcome, so a block is only closed between
        batches: one split would hold the early outcomes (busy, failed) or the late ones."""
        ripe = now - self._ages
        while self._maturing and self._maturing[0][0] < ripe:
            placed, age, live = heapq.heappop(self._maturing)
            self._learn(age, live)
            self._block.append((age, live))
            if not self._maturing or self._maturing[0][0] != placed:
                self._check_change()

    def _learn(self, age: int, live: bool) -> None:
        # Older outcomes fade by growing the weight of new ones (renormalised now and then).
        w = self._weight = self._weight * self._grow
        if w > 1e6:
            self._live_h = [x / w for x in self._live_h]
            self._other_h = [x / w for x in self._other_h]
            self._w_sum /= w
            self._w2_sum /= w * w
            w = self._weight = 1.0
        if live:
            self._live_h[age] += w
            self._live_in_estimate += 1
        else:
            self._other_h[age] += w
        self._w_sum += w
        self._w2_sum += w * w
        self._table_dirty = True

    def _check_change(self) -> None:
        """The last block of ``change_calls`` calls against the estimate before it (blocks,
        not a sliding window: a window tested at every call would cry wolf)."""
        s = self.settings
        block = self._block
        n = len(block)
        if n < s.change_calls or n * max(self._block_p, self._estimate()) < _BLOCK_LIVE:
            return
        self._block = []
        k = sum(live for _, live in block)
        p, before = self._block_p, self._block_n  # the estimate when the block started
        self._block_p, self._block_n = self._estimate(), self._effective()
        if self._live_in_estimate - k < s.min_live_answers or not 0 < p < 1:
            return
        # Both the block and the estimate are samples: the difference's standard error.
        z = (k / n - p) / math.sqrt(p * (1 - p) * (1 / n + 1 / before))
        ratio = k / (n * p)
        # A rise needs more evidence: counts of rare events have a long right tail, and the
        # measured abandonment catches a real one too.
        if (z <= -s.change_z and ratio <= 0.7) or (z >= s.change_z + 1.5 and ratio >= 1.5):
            # The old estimate describes another list or another hour: start again from the
            # block, and stay progressive until enough live answers come after it.
            self._changes += 1
            self._live_h = [0.0] * self._ages
            self._other_h = [0.0] * self._ages
            self._weight = 1.0
            self._w_sum = self._w2_sum = 0.0
            for age, live in block:
                self._learn(age, live)
            self._live_in_estimate = 0
            self._block_p, self._block_n = self._estimate(), self._effective()

    def _effective(self) -> float:
        """How many equally weighted calls the faded estimate is worth."""
        return self._w_sum**2 / self._w2_sum if self._w2_sum > 0 else 0.0

    def _estimate(self) -> float:
        live = sum(self._live_h)
        total = live + sum(self._other_h)
        return live / total if total > 0 else 0.0

    # ---- the decision --------------------------------------------------------------------

    def rates(self, now: float) -> AbandonRates:
        self._day.expire(now)
        self._short.expire(now)
        return self._counts()

    def _counts(self) -> AbandonRates:
        return AbandonRates(
            self._day.live,
            self._day.abandoned,
            self._short.live,
            self._short.abandoned,
        )

    @property
    def changes(self) -> int:
        """Sudden answer-rate changes seen (each restarted the estimate)."""
        return self._changes

    def pace(self, now: float) -> Pace:
        s = self.settings
        self._drop_stale(now)
        self._mature(now)
        in_flight = len(self._ringing)
        room = max(0, s.max_lines - in_flight) if s.max_lines is not None else 1 << 30
        if s.mode == Mode.PREVIEW:
            return Pace(0, Mode.PREVIEW, "preview: agents dial themselves")
        uncovered = self._ready - in_flight - len(self._waiting)
        progressive = min(room, max(0, uncovered))
        if s.mode == Mode.PROGRESSIVE:
            return Pace(progressive, Mode.PROGRESSIVE, f"{self._ready} ready, {in_flight} ringing")
        why = self._why_not_predictive(now)
        if why:
            return Pace(progressive, Mode.PROGRESSIVE, why)
        theta = self._theta()
        n = min(room, self._predict(now, theta))
        return Pace(max(n, progressive), Mode.PREDICTIVE, f"theta {theta:.3f}")

    def _why_not_predictive(self, now: float) -> str:
        s = self.settings
        if self._live_in_estimate < s.min_live_answers:
            return f"{self._live_in_estimate}/{s.min_live_answers} live answers measured"
        r = self.rates(now)
        # The law counts 24 h (and 30 days, made of them): the abandoned calls the calls in
        # flight may still bring must not put it over the cap. Not the short window: an hour
        # of a small team holds too few live answers to keep a reserve in, and guarding it
        # kept 10 agents progressive half the shift (it is reported, and may pass 3%).
        reserve = self._reserve(r)
        if r.abandoned_24h + reserve > s.abandon_cap * r.live_24h:
            return f"24 h: {r.abandoned_24h} abandoned of {r.live_24h} live, {reserve} in hand"
        return ""

    def _reserve(self, r: AbandonRates) -> int:
        """Abandoned calls to keep in hand: ``reserve``, or more when the calls in flight may
        bring more: their live answers lost at the measured rate (a Poisson mean, three
        standard deviations up)."""
        s = self.settings
        mean = len(self._ringing) * self._estimate() * self._measured(r)
        return max(s.reserve, math.ceil(mean + 3.0 * math.sqrt(mean)))

    def _measured(self, r: AbandonRates) -> float:
        """The 24 h rate, shrunk toward the target (a young window's rate is noise)."""
        s = self.settings
        return (r.abandoned_24h + s.target * s.prior_live) / (r.live_24h + s.prior_live)

    def _theta(self) -> float:
        """The marginal abandonment allowed: ``risk`` times the target, more while the
        measured rate is well below it, less as it nears ``fallback_rate``, bounded."""
        s = self.settings
        # rates() was just brought up to date by _why_not_predictive.
        r = self._counts()
        gap = (s.fallback_rate - self._measured(r)) / (s.fallback_rate - s.target)
        boost = min(s.max_boost, max(s.min_boost, gap))
        reserve = self._reserve(r)
        slack = s.abandon_cap * r.live_24h - r.abandoned_24h - reserve
        if s.budget_soft > 0:
            boost *= min(1.0, max(s.min_boost, slack / (s.budget_soft * reserve)))
        return s.risk * s.target * boost

    def _drop_stale(self, now: float) -> None:
        limit = now - self.settings.ring_timeout - _STALE_AFTER
        while self._by_second:
            second = next(iter(self._by_second))  # placed in time order
            if second >= limit:
                break
            for call_id in self._by_second.pop(second):
                self._ringing.pop(call_id, None)
        # A caller waits ``patience`` at most: one still waiting much later lost its events.
        late = now - self.settings.patience - _STALE_AFTER
        while self._waiting:
            call_id, answered = next(iter(self._waiting.items()))  # answered in time order
            if answered >= late:
                break
            del self._waiting[call_id]

    def _tables(self, now: float) -> None:
        if not self._table_dirty or now - self._table_at < _TABLE_EVERY:
            return
        self._table_at = now
        self._table_dirty = False
        ages = self._ages
        # The answer rate is taken one standard error high: overrating it only costs idle
        # time, underrating it costs abandoned callers (and a young estimate is noisy).
        p = self._estimate()
        if not 0 < p < 1:
            self._p_live = 0.0
            return
        high = p + self.settings.caution * math.sqrt(p * (1 - p) / self._effective())
        high = min(0.999, high)
        up, down = high / p, (1 - high) / (1 - p)
        live_c = [0.0] * (ages + 1)
        all_c = [0.0] * (ages + 1)
        for b in range(ages):
            live_c[b + 1] = live_c[b] + self._live_h[b] * up
            all_c[b + 1] = all_c[b] + self._live_h[b] * up + self._other_h[b] * down
        total = all_c[ages]
        self._cum = []
        for a in range(ages):
            left = total - all_c[a]
            row = []
            for t in self._checks:
                end = min(ages, a + int(t))
                row.append((live_c[end] - live_c[a]) / left if left > 0 else 0.0)
            self._cum.append(row)
        self._p_live = (live_c[ages] / total) if total > 0 else 0.0
        first = self._cum[0]
        last = first[-1] if first and first[-1] > 0 else 1.0
        self._share = [(c - (first[k - 1] if k else 0.0)) / last for k, c in enumerate(first)]

    def _predict(self, now: float, theta: float) -> int:
        self._tables(now)
        if self._p_live <= 0:
            return 0
        checks = self._checks
        k_n = len(checks)
        # Live answers expected by each checkpoint from the calls in flight (a Poisson mean:
        # many small independent chances).
        demand = [0.0] * k_n
        top = self._ages - 1
        for second, ids in self._by_second.items():
            cum = self._cum[min(top, max(0, int(now - second - 0.5)))]
            count = len(ids)
            demand = [d + count * c for d, c in zip(demand, cum, strict=True)]
        supply = self._supply(now)
        new = self._cum[0]
        share = self._share  # when a new call's live answer comes, by checkpoint
        n = 0
        limit = 4 * len(self._state) + 4
        backwards = list(zip(share, supply, strict=True))[::-1]
        while n < limit:
            # The chance that a live answer at checkpoint k finds no agent; a caller answered
            # earlier who takes an agent may leave a later one without: the worst from then on.
            lost = 0.0
            worst = 0.0
            for (weight, free), d in zip(backwards, reversed(demand), strict=True):
                p = _no_agent(d, free)
                if p > worst:
                    worst = p
                lost += weight * worst
            if lost > theta:
                break
            demand = [d + c for d, c in zip(demand, new, strict=True)]
            n += 1
        return n

    def _supply(self, now: float) -> list[float]:
        """Agents free by each checkpoint plus the caller's patience, less the callers
        already waiting for one."""
        checks = self._checks
        k_n = len(checks)
        patience = self.settings.patience
        wrap = self._wrap_mean
        spread = max(1.0, self._wrap_spread)
        talk = max(1.0, self._talk_mean)
        supply = [float(self._ready - len(self._waiting))] * k_n
        if self._talking:
            for k, t in enumerate(checks):
                if t + patience > wrap:
                    supply[k] += self._talking * (1.0 - math.exp(-(t + patience - wrap) / talk))
        # An agent in wrap-up frees uniformly within its spread around the mean's end: 0
        # before, 1 from the checkpoint after (a running count), a share in between.
        gained = [0.0] * (k_n + 1)
        overdue = max(5.0, wrap / 2.0)
        for since in self._wrap.values():
            left = wrap - (now - since)
            if left < -spread:  # overdue: may have left the desk, frees at some rate
                for k, t in enumerate(checks):
                    supply[k] += 1.0 - math.exp(-(t + patience) / overdue)
                continue
            lo = left - spread - patience  # in checkpoint time
            k = max(0, math.ceil(lo / _STEP) - 1)
            while k < k_n and checks[k] < lo + 2.0 * spread:
                supply[k] += max(0.0, checks[k] - lo) / (2.0 * spread)
                k += 1
            gained[k] += 1.0
        running = 0.0
        for k in range(k_n):
            running += gained[k]
            supply[k] += running
        return supply
