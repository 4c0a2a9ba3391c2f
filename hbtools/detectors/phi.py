"""φ accrual failure detectors (Hayashibara, Défago, Yared & Katayama, SRDS 2004).

φ(Δt) = −log10(P_later(Δt)), P_later being the probability, under a distribution fitted to recent
inter-arrival times, that the next heartbeat comes later than Δt after the last one. The detector
outputs the level; the application picks the threshold.

Two models, each following a published implementation (read through the search tool; no code
copied):

* ``normal`` — Akka's ``PhiAccrualFailureDetector`` (akka-remote): a normal distribution with the
  window's mean plus ``acceptable_pause`` and std-dev at least ``min_std``; the window is seeded
  with two samples (first_interval ± first_interval/4) so a peer heard once still times out; an
  interval is recorded only if the peer was not suspected when the heartbeat came (a long pause
  would skew the statistics). Akka approximates the normal tail with a logistic curve (error
  0.00014 at ±3.16); we compute the exact tail with ``erfc`` and keep Akka's approximation in
  :func:`akka_logistic_phi`. They agree in the body; deep in the tail the logistic curve reads
  higher (4.7 against 4.50 at 4σ, Akka's own test table), so at a given threshold Akka convicts
  slightly sooner than this class.
  Defaults are Akka's: threshold 8, window 1000, min std 100 ms, acceptable pause 3 s, interval 1 s.
* ``exponential`` — Cassandra's ``gms.FailureDetector``: φ = Δt/mean scaled by 1/ln 10 (that is
  −log10 of the exponential tail e^(−Δt/mean)), the first interval seeded with 2 × the gossip
  interval, intervals longer than ``max_interval`` (default: that seed, 2 s) ignored, convict when
  the scaled φ exceeds the threshold (default 8, ≈ 18.4 × mean). Cassandra also refuses to convict
  after a pause of its OWN longer than 5 s; that concerns the monitor's clock, which a pure detector
  fed with ``now`` models by the caller simply not asking during its own pause.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

LN10 = math.log(10.0)


def normal_tail(y: float) -> float:
    """P(Z > y) for a standard normal Z, exactly (0.5·erfc(y/√2))."""
    return 0.5 * math.erfc(y / math.sqrt(2.0))


def phi_normal(delta: float, mean: float, std: float) -> float:
    """−log10 of the normal tail beyond ``delta``; +inf once the tail underflows."""
    tail = normal_tail((delta - mean) / std)
    return math.inf if tail <= 0.0 else -math.log10(tail)


def akka_logistic_phi(delta: float, mean: float, std: float) -> float:
    """Akka's logistic approximation of the same quantity (for comparison in tests)."""
    y = (delta - mean) / std
    e = math.exp(-y * (1.5976 + 0.070566 * y * y))
    if delta > mean:
        return -math.log10(e / (1.0 + e))
    return -math.log10(1.0 - 1.0 / (1.0 + e))


def _y_for_phi(threshold: float) -> float:
    """The standard-normal y at which −log10(tail) reaches ``threshold`` (bisection, monotone)."""
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if -math.log10(max(normal_tail(mid), 1e-320)) >= threshold:
            hi = mid
        else:
            lo = mid
    return hi


@dataclass
class PhiAccrual:
    """One monitored peer. ``model`` is ``normal`` (Akka) or ``exponential`` (Cassandra)."""

    threshold: float = 8.0
    model: str = "normal"
    window: int = 1000
    min_std: float = 0.1
    acceptable_pause: float = 3.0
    first_interval: float = 1.0
    max_interval: float | None = None
    name: str = "phi"
    _intervals: deque[float] = field(default_factory=deque, init=False)
    _sum: float = field(default=0.0, init=False)
    _sq: float = field(default=0.0, init=False)
    _last: float | None = field(default=None, init=False)
    _y_star: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.model not in ("normal", "exponential"):
            raise ValueError(f"unknown φ model {self.model!r}")
        if self.threshold <= 0 or self.window < 1 or self.min_std <= 0 or self.first_interval <= 0:
            raise ValueError("threshold, window, min_std and first_interval must be positive")
        self._y_star = _y_for_phi(self.threshold)

    # -- statistics -------------------------------------------------------------------------
    def _add(self, interval: float) -> None:
        if len(self._intervals) >= self.window:
            old = self._intervals.popleft()
            self._sum -= old
            self._sq -= old * old
        self._intervals.append(interval)
        self._sum += interval
        self._sq += interval * interval

    @property
    def mean(self) -> float:
        return self._sum / len(self._intervals)

    @property
    def std(self) -> float:
        n = len(self._intervals)
        var = max(0.0, self._sq / n - self.mean**2)
        return max(math.sqrt(var), self.min_std)

    # -- the interface ----------------------------------------------------------------------
    def arrival(self, now: float) -> None:
        if self._last is None:
            if self.model == "normal":
                s = self.first_interval / 4
                self._add(self.first_interval - s)
                self._add(self.first_interval + s)
            else:
                self._add(self.first_interval)
        else:
            interval = now - self._last
            if self.model == "normal":
                if not self.suspect(now):
                    self._add(interval)
            elif interval <= (self.max_interval if self.max_interval is not None
                              else self.first_interval):
                self._add(interval)
        self._last = now

    def level(self, now: float) -> float:
        if self._last is None:
            return 0.0
        delta = now - self._last
        if self.model == "normal":
            return phi_normal(delta, self.mean + self.acceptable_pause, self.std)
        return max(0.0, delta) / self.mean / LN10

    def suspect(self, now: float) -> bool:
        return self.level(now) >= self.threshold

    def next_deadline(self, now: float) -> float | None:
        if self._last is None:
            return None
        if self.model == "normal":
            return self._last + self.mean + self.acceptable_pause + self._y_star * self.std
        return self._last + self.threshold * LN10 * self.mean


def akka(threshold: float = 8.0, **kw: float) -> PhiAccrual:
    """Akka's defaults (PROTOCOL-NOTES §8)."""
    return PhiAccrual(threshold=threshold, model="normal", name="phi-akka", **kw)  # type: ignore[arg-type]


def cassandra(threshold: float = 8.0, gossip_interval: float = 1.0, **kw: float) -> PhiAccrual:
    """Cassandra's rule: seed and cap at 2 × the gossip interval."""
    return PhiAccrual(threshold=threshold, model="exponential", first_interval=2 * gossip_interval,
                      max_interval=2 * gossip_interval, name="phi-cassandra", **kw)  # type: ignore[arg-type]
