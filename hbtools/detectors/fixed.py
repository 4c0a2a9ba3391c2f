"""Heartbeat's own rule: a fixed deadtime after the last status message, with a warntime.

Heartbeat 3.0.6 (PROTOCOL-NOTES §1, "Timing and behaviour"): a node is dead when nothing has been
heard from it for the deadtime; a status message later than warntime (default deadtime/2) is
logged as ``Late heartbeat``. The receiver uses the deadtime the SENDER advertises in its ``dt``
field (hex milliseconds; deadtime + 2 s during start-up), not its own, so ``arrival`` takes the
peer's ``dt`` when the caller has it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FixedDeadtime:
    """``suspect`` after ``deadtime`` seconds of silence; ``late`` after ``warntime``.

    ``honour_dt=False`` ignores the peer's ``dt`` (a parameter sweep needs the deadtime it sets).
    level(now) is the silence as a fraction of the deadtime in force (1.0 = dead), so it sits on a
    scale comparable across peers that advertise different ``dt``.
    """

    deadtime: float = 30.0
    keepalive: float = 1.0
    warntime: float | None = None
    honour_dt: bool = True
    name: str = "fixed"
    _last: float | None = field(default=None, init=False)
    _peer_deadtime: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.deadtime <= 0 or self.keepalive <= 0:
            raise ValueError("deadtime and keepalive must be positive")

    @property
    def deadtime_in_force(self) -> float:
        return self._peer_deadtime if self._peer_deadtime is not None else self.deadtime

    @property
    def warntime_in_force(self) -> float:
        return self.warntime if self.warntime is not None else self.deadtime_in_force / 2

    def arrival(self, now: float, dt_ms: int | None = None) -> None:
        """A status message at ``now``; ``dt_ms`` is the peer's advertised deadtime if known."""
        if self.honour_dt and dt_ms is not None and dt_ms > 0:
            self._peer_deadtime = dt_ms / 1000.0
        self._last = now

    def late(self, now: float) -> bool:
        """Heartbeat's 'Late heartbeat' condition: silence longer than warntime."""
        return self._last is not None and now - self._last > self.warntime_in_force

    def suspect(self, now: float) -> bool:
        return self._last is not None and now - self._last > self.deadtime_in_force

    def level(self, now: float) -> float:
        if self._last is None:
            return 0.0
        return max(0.0, now - self._last) / self.deadtime_in_force

    def next_deadline(self, now: float) -> float | None:
        if self._last is None:
            return None
        return self._last + self.deadtime_in_force
