"""Chen, Toueg & Aguilera's QoS metrics (IEEE TC 51(5), 2002), measured on a suspicion timeline.

Definitions (PROTOCOL-NOTES §8): detection time T_D — from the crash to the start of the suspicion
that lasts; mistake recurrence time T_MR — between the starts of two consecutive wrong suspicions;
mistake duration T_M — how long a wrong suspicion lasts; average mistake rate λ_M = 1/E(T_MR);
query accuracy P_A = 1 − E(T_M)/E(T_MR), the chance that a query at a random time is right. Over a
finite run we estimate λ_M as mistakes / observed time and P_A as the trusted share of the time
before the crash (the two agree as the run grows); E(T_MR) is reported as 1/λ_M so a run with one
mistake still has a figure, and as ∞ with none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Interval = tuple[float, float]


@dataclass(frozen=True)
class Accuracy:
    mistakes: int
    observed: float
    suspected: float

    @property
    def rate_per_hour(self) -> float:
        return 3600.0 * self.mistakes / self.observed if self.observed > 0 else 0.0

    @property
    def t_mr(self) -> float:
        return self.observed / self.mistakes if self.mistakes else math.inf

    @property
    def t_m(self) -> float:
        return self.suspected / self.mistakes if self.mistakes else 0.0

    @property
    def p_a(self) -> float:
        return 1.0 - self.suspected / self.observed if self.observed > 0 else 1.0


def accuracy(intervals: list[Interval], start: float, end: float,
             crash: float | None = None) -> Accuracy:
    """Wrong suspicions: every suspicion that starts before the crash (all of them without one),
    cut at the crash."""
    stop = end if crash is None or crash >= end else crash
    mistakes, suspected = 0, 0.0
    for a, b in intervals:
        if a >= stop:
            continue
        mistakes += 1
        suspected += min(b, stop) - max(a, start)
    return Accuracy(mistakes, max(0.0, stop - start), suspected)


def detection_time(intervals: list[Interval], end: float, crash: float) -> float:
    """Crash → start of the suspicion still open at ``end`` (0 if it began before; ∞ if none)."""
    if intervals and intervals[-1][1] >= end:
        return max(0.0, intervals[-1][0] - crash)
    return math.inf


def merge(intervals: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
