"""Every detector the evaluation races, each as a curve: one parameter swept, the rest fixed.

``default`` marks the point that stands for the detector in the short table: Heartbeat's default
deadtime (30 s, keepalive 1 s), Akka's and Cassandra's default threshold 8, and for the
accelerated root tmax = 1 s (one beat a second, as Heartbeat's keepalive) with tmin = tmax/16.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hbtools.detectors.accelerated import Binary
from hbtools.detectors.fixed import FixedDeadtime
from hbtools.detectors.phi import PhiAccrual, cassandra


@dataclass(frozen=True)
class Curve:
    label: str
    parameter: str
    values: tuple[float, ...]
    default: float
    make: Callable[[float], Any]
    kind: str = "one-way"  # or "root": simulated with beats and replies, not replayable on captures


def _akka(pause: float) -> Callable[[float], Any]:
    return lambda th: PhiAccrual(threshold=th, acceptable_pause=pause, name="phi-akka")


CURVES: tuple[Curve, ...] = (
    Curve("heartbeat-fixed", "deadtime", (2, 3, 5, 8, 10, 12, 15, 20, 30), 30,
          lambda d: FixedDeadtime(deadtime=d, honour_dt=False)),
    Curve("phi-akka", "threshold", (1, 2, 3, 5, 8, 12, 16), 8, _akka(3.0)),
    Curve("phi-akka-nopause", "threshold", (1, 2, 3, 5, 8, 12, 16, 24), 8, _akka(0.0)),
    Curve("phi-cassandra", "threshold", (1, 2, 3, 5, 8, 12), 8, lambda th: cassandra(th)),
    Curve("binary-original", "tmax", (0.5, 1, 2, 4), 1,
          lambda tm: Binary(tm / 16, tm, "original", sticky=False), kind="root"),
    Curve("binary-fixed", "tmax", (0.5, 1, 2, 4), 1,
          lambda tm: Binary(tm / 16, tm, "fixed", sticky=False), kind="root"),
)


def curve(label: str) -> Curve:
    for c in CURVES:
        if c.label == label:
            return c
    raise KeyError(label)
