"""The agent dialler's pacing (core/pacing.py) in a seeded discrete-event simulation: occupancy
and abandonment of the production ``Pacer`` against a progressive and a fixed-ratio dialler.
No Asterisk, database or network: everything runs on the simulation's own clock.

    .venv/bin/python bench/dialler_sim.py [--agents 5 10 20 50 200] [--answer-rate 0.15 0.30]
        [--scenario steady halving logout] [--dialler predictive progressive fixed]
        [--seeds 1 2 3] [--hours 8] [--ratio 2.0] [--jobs N]

Method. A heap of timed events. Agents log in over the first minute, ready. The dialler is
asked every second and whenever an agent becomes ready. A placed call is, independently: a
live answer with probability p (the answer rate), a machine (8% of answers: AMD hangs up, not
live), busy (10%, after 3 s), failed (2%, after 1 s), else no answer (rings to the 25 s
timeout); answers come uniformly 5-25 s after the dial. A live answer takes the longest-idle
ready agent at once, else waits up to 2 s for one to become ready, else it is abandoned
(message, hang-up). Talk is exponential with mean 150 s, wrap-up 30 s, so occupancy (talk
time / logged-in time) cannot exceed 150 / 180 = 83.3% (a ``Cell`` takes others: its ``talk``
and ``wrap``, as bench/dialler_asterisk.py gives them). Scenarios: ``steady``; ``halving``
(the answer rate halves at mid-shift); ``logout`` (at mid-shift half the agents log out:
ready and wrapping ones at once, talking ones when their call ends). Diallers: ``predictive``
and ``progressive`` are ``core.pacing.Pacer`` with its production defaults in that mode,
driven with the observations production gives it (placed, answered, connected, abandoned,
agents' states ...); ``fixed`` keeps ``--ratio`` calls in flight per ready agent (a baseline).

Figures per run: occupancy; abandonment = abandoned / live answers over the whole run, the
worst rolling hour (60-minute windows moved by a minute; a run under an hour: the run), and
the worst rolling 24 h, which for a run of 24 h or less is the whole run; calls placed; live
answers; an agent's mean wait from ready to the next caller; for the pacer, the share of its
answers given in predictive mode. Then per cell the worst seed, beside a rough estimate of the
best occupancy a dialler can reach at 3% with this team at a low answer rate
(``occupancy_estimate``: an estimate, not a bound). Exit status 1 if a predictive run breaks
the 3% cap over the whole run (the law's rolling 24 h); the worst rolling hour is reported (how
many runs passed 3% in one), not held to the cap.
"""

from __future__ import annotations

import argparse
import heapq
import math
import os
import random
import sys
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from core.pacing import (
    Abandoned,
    AgentActivity,
    AgentState,
    Answered,
    Connected,
    Ended,
    Mode,
    NoAnswer,
    Pacer,
    PacingSettings,
    Placed,
    Unanswered,
)

CAP = 0.03
TALK_MEAN = 150.0
WRAP = 30.0
RING_TIMEOUT = 25.0
PATIENCE = 2.0
MACHINE_SHARE = 0.08  # of answers
BUSY, FAILED = 0.10, 0.02

# Event kinds.
TICK, ANSWER, MACHINE, NOANSWER, BUSYEV, FAILEDEV, GIVE_UP, TALK_END, WRAP_END, LOGIN, SHIFT = (
    range(11)
)
READY, TALKING, WRAPPING, OUT = range(4)


@dataclass(frozen=True)
class Cell:
    agents: int
    rate: float
    scenario: str
    dialler: str
    seed: int
    hours: float
    ratio: float
    talk: float = TALK_MEAN  # mean talk, seconds (exponential)
    wrap: float = WRAP  # wrap-up, seconds (fixed)


@dataclass(frozen=True)
class Result:
    cell: Cell
    occupancy: float
    abandon: float
    worst_hour: float
    placed: int
    live: int
    abandoned: int
    wait: float
    predictive_share: float  # of the pacer's answers; NaN for ``fixed``
    seconds: float  # wall clock of the run


def run(cell: Cell) -> Result:
    started = time.perf_counter()
    rng = random.Random(f"{cell.seed}/{cell.agents}/{cell.rate}/{cell.scenario}/{cell.dialler}")
    end = cell.hours * 3600.0
    n = cell.agents
    pacer: Pacer | None = None
    if cell.dialler != "fixed":
        mode = Mode.PREDICTIVE if cell.dialler == "predictive" else Mode.PROGRESSIVE
        pacer = Pacer(PacingSettings(mode=mode, ring_timeout=RING_TIMEOUT, patience=PATIENCE))
    observe = pacer.observe if pacer is not None else None

    events: list[tuple[float, int, int, int]] = []
    seq = 0

    def at(t: float, kind: int, x: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, x))

    state = [OUT] * n
    since = [0.0] * n  # when the agent entered its state
    login_at = [0.0] * n
    logged_in = 0.0  # seconds, summed over agents who logged out
    talk_total = 0.0
    leaving = [False] * n  # logs out when the current call (or wrap-up) ends
    ready_q: deque[tuple[int, float]] = deque()  # (agent, ready since); stale entries skipped
    n_ready = 0
    waiting: deque[tuple[int, float]] = deque()  # (call, answered at), oldest first
    waiting_set: set[int] = set()
    in_flight = 0
    call_agent: dict[int, int] = {}
    calls = 0
    live = 0
    abandoned = 0
    waits = 0.0
    connects = 0
    minutes = math.ceil(end / 60.0) + 1
    live_min = [0] * minutes
    ab_min = [0] * minutes
    paces = 0
    predictive_paces = 0
    p_live = cell.rate
    shift_done = False

    def set_state(a: int, st: int, t: float) -> None:
        nonlocal n_ready
        if state[a] == READY:
            n_ready -= 1
        state[a] = st
        since[a] = t
        if st == READY:
            n_ready += 1
            ready_q.append((a, t))
        if observe is not None:
            activity = (
                AgentActivity.READY,
                AgentActivity.TALKING,
                AgentActivity.WRAP_UP,
                AgentActivity.LOGGED_OUT,
            )[st]
            observe(AgentState(t, f"a{a}", activity))

    def log_out(a: int, t: float) -> None:
        nonlocal logged_in
        logged_in += t - login_at[a]
        set_state(a, OUT, t)

    def connect(call: int, a: int, t: float) -> None:
        nonlocal waits, connects
        waits += t - since[a]
        connects += 1
        call_agent[call] = a
        if observe is not None:
            observe(Connected(t, f"c{call}", f"a{a}"))
        set_state(a, TALKING, t)
        at(t + rng.expovariate(1.0 / cell.talk), TALK_END, call)

    def next_ready(t: float) -> int | None:
        while ready_q:
            a, s = ready_q.popleft()
            if state[a] == READY and since[a] == s:
                return a
        return None

    def becomes_ready(a: int, t: float) -> None:
        """A free agent: the oldest caller still waiting, else ready (and the dialler asked)."""
        while waiting:
            call, answered = waiting.popleft()
            waiting_set.discard(call)
            if t - answered <= PATIENCE:
                since[a] = t
                connect(call, a, t)
                return
        set_state(a, READY, t)
        dial(t)

    def dial(t: float) -> None:
        nonlocal calls, in_flight, paces, predictive_paces
        if pacer is not None:
            pace = pacer.pace(t)
            paces += 1
            predictive_paces += pace.mode == Mode.PREDICTIVE
            count = pace.calls
        else:
            count = max(0, math.ceil(cell.ratio * n_ready) - in_flight - len(waiting))
        p_machine = p_live * MACHINE_SHARE / (1.0 - MACHINE_SHARE)
        for _ in range(count):
            calls += 1
            in_flight += 1
            call = calls
            if observe is not None:
                observe(Placed(t, f"c{call}"))
            u = rng.random()
            if u < p_live:
                at(t + rng.uniform(5.0, 25.0), ANSWER, call)
            elif u < p_live + p_machine:
                at(t + rng.uniform(5.0, 25.0), MACHINE, call)
            elif u < p_live + p_machine + BUSY:
                at(t + 3.0, BUSYEV, call)
            elif u < p_live + p_machine + BUSY + FAILED:
                at(t + 1.0, FAILEDEV, call)
            else:
                at(t + RING_TIMEOUT, NOANSWER, call)

    for a in range(n):
        at(rng.uniform(0.0, 60.0), LOGIN, a)
    at(1.0, TICK, 0)
    if cell.scenario != "steady":
        at(end / 2.0, SHIFT, 0)

    while events:
        t, _, kind, x = heapq.heappop(events)
        if t >= end:
            break
        if kind == TICK:
            dial(t)
            at(t + 1.0, TICK, 0)
        elif kind == ANSWER:
            in_flight -= 1
            live += 1
            live_min[int(t // 60.0)] += 1
            if observe is not None:
                observe(Answered(t, f"c{x}", True))
            agent = next_ready(t)
            if agent is not None:
                connect(x, agent, t)
            else:
                waiting.append((x, t))
                waiting_set.add(x)
                at(t + PATIENCE, GIVE_UP, x)
        elif kind == GIVE_UP:
            if x in waiting_set:
                waiting_set.discard(x)
                waiting.remove(next(w for w in waiting if w[0] == x))
                abandoned += 1
                ab_min[int(t // 60.0)] += 1
                if observe is not None:
                    observe(Abandoned(t, f"c{x}"))
        elif kind in (MACHINE, NOANSWER, BUSYEV, FAILEDEV):
            in_flight -= 1
            if observe is not None:
                if kind == MACHINE:
                    observe(Answered(t, f"c{x}", False))
                else:
                    outcome = {
                        NOANSWER: NoAnswer.NO_ANSWER,
                        BUSYEV: NoAnswer.BUSY,
                        FAILEDEV: NoAnswer.FAILED,
                    }[kind]
                    observe(Unanswered(t, f"c{x}", outcome))
        elif kind == TALK_END:
            a = call_agent.pop(x)
            talk_total += t - since[a]
            if observe is not None:
                observe(Ended(t, f"c{x}"))
            if leaving[a]:
                log_out(a, t)
            else:
                set_state(a, WRAPPING, t)
                at(t + cell.wrap, WRAP_END, a)
        elif kind == WRAP_END:
            if state[x] == WRAPPING and t - since[x] >= cell.wrap - 1e-9:
                becomes_ready(x, t)
        elif kind == LOGIN:
            login_at[x] = t
            becomes_ready(x, t)
        elif kind == SHIFT and not shift_done:
            shift_done = True
            if cell.scenario == "halving":
                p_live /= 2.0
            else:
                for a in range(n // 2):
                    if state[a] in (READY, WRAPPING):
                        log_out(a, t)
                    elif state[a] == TALKING:
                        leaving[a] = True

    for a in range(n):
        if state[a] == TALKING:
            talk_total += end - since[a]
        if state[a] != OUT:
            logged_in += end - login_at[a]

    worst = 0.0
    if len(live_min) > 61:
        lw, aw = sum(live_min[:60]), sum(ab_min[:60])
        for m in range(60, int(end // 60.0) + 1):
            if lw:
                worst = max(worst, aw / lw)
            if m < len(live_min):
                lw += live_min[m] - live_min[m - 60]
                aw += ab_min[m] - ab_min[m - 60]
    else:
        worst = abandoned / live if live else 0.0
    return Result(
        cell=cell,
        occupancy=talk_total / logged_in if logged_in else 0.0,
        abandon=abandoned / live if live else 0.0,
        worst_hour=worst,
        placed=calls,
        live=live,
        abandoned=abandoned,
        wait=waits / connects if connects else float("nan"),
        predictive_share=predictive_paces / paces if paces else float("nan"),
        seconds=time.perf_counter() - started,
    )


def occupancy_estimate(agents: int, window: float = 20.0) -> float:
    """Roughly the best occupancy any dialler can reach at 3% here, whatever the answer rate.

    Answers to the calls placed come spread over ``window`` seconds (5-25 s after the dial,
    nobody can aim within that), each call live by independent chance: the live answers in a
    window are Poisson with mean f, the agents freeing in it. With Q agents already idle, the
    callers left without one are E[(A - f - Q)+]; the smallest Q that keeps them at 3% of f
    costs Q / agents of the agents' time. An estimate, not a bound: it holds where a live
    answer takes many calls (a low answer rate), so that answers are close to Poisson. With a
    few calls per answer they are not (one call per ready agent never overflows at all), and
    progressive beats it for the smallest teams; a dialler that watches its calls resolve may
    also do a little better."""

    def excess(mean: float, free: float) -> float:
        def at(c: int) -> float:
            term, total = math.exp(-mean), 0.0
            for k in range(int(mean * 4 + 40)):
                if k > c:
                    total += (k - c) * term
                term *= mean / (k + 1)
            return total

        low = math.floor(free)
        return (1 - (free - low)) * at(low) + (free - low) * at(low + 1)

    lo, hi = 0.0, float(agents)
    for _ in range(40):
        idle = (lo + hi) / 2
        freeing = (agents - idle) * window / (TALK_MEAN + WRAP)
        if excess(freeing, freeing + idle) <= CAP * freeing:
            hi = idle
        else:
            lo = idle
    return (1 - hi / agents) * TALK_MEAN / (TALK_MEAN + WRAP)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[5, 10, 20, 50, 200])
    parser.add_argument("--answer-rate", type=float, nargs="+", default=[0.15, 0.30])
    parser.add_argument(
        "--scenario", nargs="+", default=["steady", "halving", "logout"],
        choices=["steady", "halving", "logout"],
    )  # fmt: skip
    parser.add_argument(
        "--dialler", nargs="+", default=["predictive", "progressive", "fixed"],
        choices=["predictive", "progressive", "fixed"],
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--ratio", type=float, default=2.0, help="fixed: calls per ready agent")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    cells = [
        Cell(n, r, sc, d, seed, args.hours, args.ratio)
        for n in args.agents
        for r in args.answer_rate
        for sc in args.scenario
        for d in args.dialler
        for seed in args.seeds
    ]
    started = time.perf_counter()
    # The biggest teams first, so the pool's last runs are short ones.
    order = sorted(cells, key=lambda c: -c.agents * (1.0 / c.rate))
    if args.jobs > 1 and len(cells) > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            done = dict(zip(order, pool.map(run, order, chunksize=1), strict=True))
    else:
        done = {c: run(c) for c in order}
    results = [done[c] for c in cells]
    wall = time.perf_counter() - started

    hours = args.hours
    print(
        f"dialler simulation: {hours:g} h shift, talk exp({TALK_MEAN:g} s), wrap-up {WRAP:g} s"
        f" (ceiling occupancy {TALK_MEAN / (TALK_MEAN + WRAP):.1%}), answers 5-25 s, "
        f"patience {PATIENCE:g} s, fixed ratio {args.ratio:g}"
    )
    if hours <= 24:
        print("worst rolling 24 h = the whole run (the shift is no longer than 24 h)")
    if hours < 1:
        print("worst rolling hour = the whole run (the shift is shorter than an hour)")
    head = (
        f"{'agents':>6} {'rate':>5} {'scenario':<8} {'dialler':<11} {'seed':>4} "
        f"{'occup':>6} {'aband':>6} {'worst1h':>7} {'worst24h':>8} {'placed':>7} "
        f"{'live':>6} {'wait_s':>6} {'pred%':>5}"
    )
    print(head)
    for r in results:
        c = r.cell
        share = "-" if math.isnan(r.predictive_share) else f"{r.predictive_share:5.0%}"
        print(
            f"{c.agents:>6} {c.rate:>5.2f} {c.scenario:<8} {c.dialler:<11} {c.seed:>4} "
            f"{r.occupancy:>6.1%} {r.abandon:>6.2%} {r.worst_hour:>7.2%} {r.abandon:>8.2%} "
            f"{r.placed:>7} {r.live:>6} {r.wait:>6.1f} {share:>5}"
        )

    print()
    print(
        "per cell, worst seed: occupancy min / abandonment max (whole run, worst hour); est:"
        " a Poisson window estimate of the best occupancy at 3% (occupancy_estimate: low"
        " answer rates, not a bound)"
    )
    print(f"{'agents':>6} {'rate':>5} {'scenario':<8} {'est':>6} " + " ".join(
        f"{d:>26}" for d in args.dialler
    ))  # fmt: skip
    estimates = {n: occupancy_estimate(n) for n in args.agents}
    for n in args.agents:
        for rate in args.answer_rate:
            for sc in args.scenario:
                parts = []
                for d in args.dialler:
                    rs = [
                        r for r in results
                        if (r.cell.agents, r.cell.rate, r.cell.scenario, r.cell.dialler)
                        == (n, rate, sc, d)
                    ]  # fmt: skip
                    occ = min(r.occupancy for r in rs)
                    ab = max(r.abandon for r in rs)
                    worst = max(r.worst_hour for r in rs)
                    parts.append(f"{occ:>8.1%} {ab:>7.2%} {worst:>7.2%}  ")
                print(
                    f"{n:>6} {rate:>5.2f} {sc:<8} {estimates[n]:>6.1%} "
                    + " ".join(f"{p:>26}" for p in parts)
                )

    # The law's cap is over a rolling 24 h (and 30 days): in a run of 24 h or less, the run.
    # The worst hour is a figure, reported, not the cap.
    broken = [r for r in results if r.cell.dialler == "predictive" and r.abandon > CAP]
    hot = sum(1 for r in results if r.cell.dialler == "predictive" and r.worst_hour > CAP)
    runs = sum(1 for r in results if r.cell.dialler == "predictive")
    slowest = max(r.seconds for r in results)
    print()
    print(f"{len(results)} runs in {wall:.1f} s on {args.jobs} processes (slowest {slowest:.1f} s)")
    if broken:
        for r in broken:
            print(f"CAP BROKEN: {r.cell}: {r.abandon:.2%} (24 h), worst hour {r.worst_hour:.2%}")
        return 1
    print(
        f"predictive cap held: {runs}/{runs} runs within {CAP:.0%} over the run (the rolling"
        f" 24 h); worst rolling hour over {CAP:.0%} in {hot}/{runs}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
