"""Net Promoter Score and survey figures from stored answers: pure functions for reports.

NPS = percent promoters (9-10) minus percent detractors (0-6), from -100 to 100.

Confidence interval: the normal approximation ("Wald") with the standard variance of a
difference of two proportions of one multinomial sample,

    var(NPS/100) = (p_prom + p_det - (p_prom - p_det)^2) / n,
    NPS ± 1.96 · 100 · sqrt(var), clipped to [-100, 100].

Chosen because it is the formula survey readers know and it is exact arithmetic to check. Its
known weaknesses: it is too narrow for small samples and collapses to zero width when every
answer is in one group (all promoters: 100 ± 0). Reports should show ``responses`` next to it
and treat intervals from fewer than ``MIN_RELIABLE`` responses as indicative only.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo

from core.surveys.interpreter import Answer, SurveyStatus
from core.surveys.model import NPS_MAX

PROMOTER_MIN = 9
DETRACTOR_MAX = 6
Z_95 = 1.959963984540054
MIN_RELIABLE = 30  # below this many responses the normal approximation is rough

K = TypeVar("K", bound=Hashable)
Period = Literal["day", "week", "month"]


@dataclass(frozen=True)
class NPSResult:
    responses: int
    promoters: int
    passives: int
    detractors: int
    score: float | None  # percent; None without responses
    ci_low: float | None
    ci_high: float | None

    @property
    def reliable(self) -> bool:
        return self.responses >= MIN_RELIABLE


def is_detractor(score: int) -> bool:
    return 0 <= score <= DETRACTOR_MAX


def nps_from_counts(promoters: int, passives: int, detractors: int) -> NPSResult:
    if min(promoters, passives, detractors) < 0:
        raise ValueError("counts cannot be negative")
    n = promoters + passives + detractors
    if n == 0:
        return NPSResult(0, 0, 0, 0, None, None, None)
    p, d = promoters / n, detractors / n
    score = 100 * (p - d)
    # max(0, ...): rounding can take a zero variance a hair below zero.
    margin = 100 * Z_95 * math.sqrt(max(0.0, (p + d - (p - d) ** 2) / n))
    return NPSResult(
        n,
        promoters,
        passives,
        detractors,
        score,
        max(-100.0, score - margin),
        min(100.0, score + margin),
    )


def nps(scores: Iterable[int]) -> NPSResult:
    """NPS of answers to an NPS question (0-10 each)."""
    counts = [0, 0, 0]  # promoters, passives, detractors
    for s in scores:
        if not 0 <= s <= NPS_MAX:
            raise ValueError(f"an NPS answer is 0..{NPS_MAX}, not {s}")
        counts[0 if s >= PROMOTER_MIN else 2 if s <= DETRACTOR_MAX else 1] += 1
    return nps_from_counts(*counts)


@dataclass(frozen=True)
class ScoredResponse:
    """One NPS answer with what reports group it by (the adapter reads these rows)."""

    survey: str
    score: int
    answered_at: datetime
    segment: str | None = None


def nps_by(
    responses: Iterable[ScoredResponse], key: Callable[[ScoredResponse], K]
) -> dict[K, NPSResult]:
    """NPS per group: ``key`` picks the group (survey, segment, period, or a tuple of them)."""
    groups: dict[K, list[int]] = {}
    for r in responses:
        groups.setdefault(key(r), []).append(r.score)
    return {k: nps(scores) for k, scores in groups.items()}


def period_of(at: datetime, period: Period, timezone: str = "Europe/Sarajevo") -> str:
    """The reporting period of an instant, in local time: "2026-11-23", "2026-W48" (ISO
    week), "2026-11"."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime")
    local = at.astimezone(ZoneInfo(timezone))
    if period == "day":
        return local.date().isoformat()
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{local.year}-{local.month:02d}"


@dataclass(frozen=True)
class SurveyRates:
    """How a survey campaign went. ``contacts``: people we tried to reach (the denominator of
    the response rate); the rest count survey calls by their final state."""

    contacts: int
    reached: int  # someone answered and heard the intro
    completed: int
    partial: int
    refused: int
    no_consent: int

    @property
    def started(self) -> int:
        return self.completed + self.partial

    @property
    def response_rate(self) -> float | None:
        """Took part (completed or partly) per contact attempted."""
        return self.started / self.contacts if self.contacts else None

    @property
    def completion_rate(self) -> float | None:
        """Reached the end per those who took part."""
        return self.completed / self.started if self.started else None

    @property
    def contact_rate(self) -> float | None:
        return self.reached / self.contacts if self.contacts else None


def rates(contacts: int, outcomes: Iterable[SurveyStatus]) -> SurveyRates:
    """Rates from the number of contacts attempted and the final states of survey calls (one
    per respondent: a respondent's last survey call)."""
    counts = Counter(outcomes)
    if counts[SurveyStatus.IN_PROGRESS]:
        raise ValueError("a survey still in progress has no final state yet")
    reached = sum(counts.values())
    if reached > contacts:
        raise ValueError(f"{reached} surveyed but only {contacts} contacts")
    return SurveyRates(
        contacts,
        reached,
        counts[SurveyStatus.COMPLETED],
        counts[SurveyStatus.PARTIAL],
        counts[SurveyStatus.REFUSED],
        counts[SurveyStatus.NO_CONSENT],
    )


def distribution(answers: Iterable[Answer]) -> dict[str, dict[int | str, int]]:
    """Answers per question: value -> count, values in order (numbers ascending). A recording
    counts as "recorded" (the files are listened to, not counted)."""
    counts: dict[str, Counter[int | str]] = {}
    for a in answers:
        value: int | str | None = "recorded" if a.recording is not None else a.value
        if value is None:
            continue
        counts.setdefault(a.question_key, Counter())[value] += 1
    return {
        q: dict(sorted(c.items(), key=lambda kv: (isinstance(kv[0], str), str(kv[0]).zfill(9))))
        for q, c in counts.items()
    }


def nps_histogram(scores: Iterable[int]) -> list[int]:
    """Count of each score 0..10 (for the report's bar chart), zeros included."""
    bars = [0] * (NPS_MAX + 1)
    for s in scores:
        bars[s] += 1
    return bars
