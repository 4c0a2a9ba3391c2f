"""The seam between the daemon core and a failure detector: one object per node, pure.

``hbtool daemon`` today applies Heartbeat's rule inline (hbtools/node/core.py: ``_on_status``
sets ``peer.last_heard``; ``next_timer`` wakes at ``last_heard + _peer_deadtime``;
``_check_peer_timers`` fires ``DEADTIME_EXPIRED`` when the silence reaches it). A ``detector``
directive in ha.cf swaps that rule for :class:`PeerWatch`, and the core calls exactly three
things, at the three places that already exist:

* ``watch.heard(peer.name, now, msg.deadtime_ms)`` in ``_on_status`` (a status that passed the
  authentication and sequence checks: a retransmitted copy must not count as a fresh arrival);
* ``watch.deadline(peer.name, now)`` in ``next_timer`` instead of ``last_heard + deadtime``;
* ``watch.dead(peer.name, now)`` in ``_check_peer_timers`` instead of ``silent >= deadtime``;
  and ``watch.forget(peer.name)`` when the peer is declared dead or restarts (new generation),
  so a dead peer's old intervals do not shape its next life.

Why it is safe against real 3.0.6 peers: φ only watches arrival times of the ``status`` messages
every 3.0.6 node sends anyway, so nothing changes on the wire. Two guards keep the daemon within
Heartbeat's contract whatever the statistics say: never dead before ``floor`` (2 × keepalive,
Heartbeat's own lower limit on deadtime), and never later than the peer's advertised ``dt`` — so
a φ node is never slower than Heartbeat, only sooner when the link is steady. Memory is bounded:
at most ``max_peers`` nodes, each with a bounded window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hbtools.detectors.fixed import FixedDeadtime
from hbtools.detectors.phi import PhiAccrual

KINDS = ("fixed", "phi", "phi-cassandra")


@dataclass(frozen=True)
class DetectorSpec:
    """What an ha.cf ``detector`` line asks for, e.g. ``detector phi threshold=8 pause=3``."""

    kind: str = "fixed"
    threshold: float = 8.0
    acceptable_pause: float = 3.0
    min_std: float = 0.1
    window: int = 1000


def parse_detector(args: list[str]) -> DetectorSpec:
    """``detector KIND [threshold=X] [pause=SECONDS] [min_std=SECONDS] [window=N]``.

    Raises ValueError with a message fit for ``file:line: ...``.
    """
    if not args:
        raise ValueError(f"'detector' needs a kind ({', '.join(KINDS)})")
    kind, opts = args[0].lower(), args[1:]
    if kind not in KINDS:
        raise ValueError(f"unknown detector {args[0]!r} (known: {', '.join(KINDS)})")
    values: dict[str, Any] = {}
    names = {"threshold": "threshold", "pause": "acceptable_pause", "min_std": "min_std",
             "window": "window"}
    for opt in opts:
        key, eq, raw = opt.partition("=")
        if not eq or key not in names:
            raise ValueError(f"bad detector option {opt!r} (known: {', '.join(names)})")
        try:
            value: float = int(raw) if key == "window" else float(raw)
        except ValueError:
            raise ValueError(f"detector option {key} needs a number, not {raw!r}") from None
        if value <= 0 and key != "pause" or value < 0 or value != value or value > 1e6:
            raise ValueError(f"detector option {key}={raw} is out of range")
        values[names[key]] = value
    return DetectorSpec(kind, **values)


@dataclass
class PeerWatch:
    spec: DetectorSpec
    keepalive: float
    deadtime: float
    max_peers: int = 256
    _peers: dict[str, Any] = field(default_factory=dict, init=False)
    _fixed: dict[str, FixedDeadtime] = field(default_factory=dict, init=False)

    def _make(self) -> Any:
        s = self.spec
        if s.kind == "phi":
            return PhiAccrual(threshold=s.threshold, acceptable_pause=s.acceptable_pause,
                              min_std=s.min_std, window=s.window, first_interval=self.keepalive)
        if s.kind == "phi-cassandra":
            return PhiAccrual(threshold=s.threshold, model="exponential", window=s.window,
                              first_interval=2 * self.keepalive, max_interval=2 * self.keepalive)
        return None

    def heard(self, node: str, now: float, dt_ms: int | None = None) -> None:
        if node not in self._fixed:
            if len(self._fixed) >= self.max_peers:
                return
            self._fixed[node] = FixedDeadtime(deadtime=self.deadtime, keepalive=self.keepalive)
            made = self._make()
            if made is not None:
                self._peers[node] = made
        self._fixed[node].arrival(now, dt_ms)
        det = self._peers.get(node)
        if det is not None:
            det.arrival(now)

    def deadline(self, node: str, now: float) -> float | None:
        fixed = self._fixed.get(node)
        if fixed is None or fixed._last is None:
            return None
        limit = fixed.next_deadline(now)
        det = self._peers.get(node)
        if det is None or limit is None:
            return limit
        floor = fixed._last + 2 * self.keepalive
        d = det.next_deadline(now)
        return limit if d is None else max(floor, min(d, limit))

    def dead(self, node: str, now: float) -> bool:
        d = self.deadline(node, now)
        return d is not None and now >= d

    def level(self, node: str, now: float) -> float:
        det = self._peers.get(node) or self._fixed.get(node)
        return 0.0 if det is None else float(det.level(now))

    def forget(self, node: str) -> None:
        self._peers.pop(node, None)
        self._fixed.pop(node, None)


def factory(spec: DetectorSpec) -> Callable[[float, float], PeerWatch]:
    """For the core: ``factory(spec)(keepalive_s, deadtime_s)``."""
    return lambda keepalive, deadtime: PeerWatch(spec, keepalive, deadtime)
