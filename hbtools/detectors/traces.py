"""Arrival traces: generated from a seeded network model, or read from captures.

A generated :class:`Scenario` is a channel model (loss, Gilbert–Elliott bursts, jitter, an
occasional message delayed just past a halved timeout), a monitored process that may freeze
(a GC-like pause) or crash, and a seed. One-way detectors see the arrival times of the monitored
node's periodic status messages through that channel; the accelerated ones run their beats and
replies through two channels (one per direction) with the same parameters. A capture gives only
one-way arrivals, so accelerated detectors are not replayed on captures (the table says n/a).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field, replace
from importlib import resources


@dataclass(frozen=True)
class Scenario:
    name: str
    duration: float = 3600.0
    interval: float = 1.0
    loss: float = 0.0
    burst: tuple[float, float] | None = None  # (P good→bad, P bad→good); bad state loses all
    jitter: float = 0.0  # extra delay, uniform in [0, jitter]
    base_delay: float = 0.0005
    late_every: float | None = None  # one message every so often gets ``late_delay`` extra
    late_delay: float = 0.0
    pauses: tuple[tuple[float, float], ...] = ()  # the monitored process frozen in [a, b)
    crash: float | None = None
    seed: int = 0

    def with_crash(self, at: float, seed: int) -> Scenario:
        return replace(self, crash=at, seed=seed, duration=at + 120.0)


class Channel:
    """One direction of the network: ``deliver(sent)`` → arrival time, or None when lost."""

    def __init__(self, sc: Scenario, rng: random.Random) -> None:
        self.sc = sc
        self.rng = rng
        self.bad = False
        self._next_late = sc.late_every

    def deliver(self, sent: float) -> float | None:
        sc, rng = self.sc, self.rng
        if sc.burst is not None:
            g2b, b2g = sc.burst
            self.bad = (rng.random() >= b2g) if self.bad else (rng.random() < g2b)
            if self.bad:
                return None
        if sc.loss and rng.random() < sc.loss:
            return None
        delay = sc.base_delay + (rng.uniform(0.0, sc.jitter) if sc.jitter else 0.0)
        if self._next_late is not None and sent >= self._next_late:
            delay += sc.late_delay
            self._next_late += sc.late_every or 0.0
        return sent + delay


def frozen_until(sc: Scenario, t: float) -> float:
    """When the monitored process, frozen by a pause covering ``t``, runs again (else ``t``)."""
    for a, b in sc.pauses:
        if a <= t < b:
            return b
    return t


def send_times(sc: Scenario) -> list[float]:
    """The monitored node's status messages: every ``interval``, none while frozen (one when it
    thaws), none after the crash."""
    out: list[float] = []
    k = 0
    while True:
        t = k * sc.interval
        k += 1
        if t >= sc.duration or (sc.crash is not None and t >= sc.crash):
            return out
        thaw = frozen_until(sc, t)
        if thaw != t:
            if not out or out[-1] < thaw:
                if sc.crash is None or thaw < sc.crash:
                    out.append(thaw)
            continue
        out.append(t)


@dataclass
class Trace:
    """Arrival times of one node's heartbeats, with what is known about the run."""

    name: str
    arrivals: list[float]
    start: float
    end: float
    crash: float | None = None
    sent: int = 0
    dt_ms: list[int | None] = field(default_factory=list)
    rate: float | None = None  # a capture: status messages per second while the node ran

    @property
    def messages_per_second(self) -> float:
        if self.rate is not None:
            return self.rate
        span = self.end - self.start
        return self.sent / span if span > 0 else 0.0


def one_way(sc: Scenario) -> Trace:
    rng = random.Random(sc.seed)
    ch = Channel(sc, rng)
    sends = send_times(sc)
    arrivals = sorted(a for a in (ch.deliver(s) for s in sends) if a is not None)
    return Trace(sc.name, arrivals, 0.0, sc.duration, sc.crash, len(sends))


class TraceError(ValueError):
    """A trace file or capture that cannot be used; the message names the file."""


def from_capture(path: str, node: str | None = None) -> Trace:
    """Arrival times of ``node``'s status messages in a capture, decoded by the project's
    dissector. Repeats of one seq (several media, start-up bursts) count once. The crash time
    comes from the recording's meta.json (its SIGKILL event) when there is one beside it."""
    from hbtools.dissectors.capture import CaptureError
    from hbtools.dissectors.pipeline import Options, decode_stream, open_input

    try:
        stream, name, _ = open_input(path)
        with stream:
            rows = [r for r in decode_stream(stream, name, Options(fast=False))
                    if r.type == "status" and r.error is None]
    except CaptureError as exc:
        raise TraceError(str(exc)) from None
    if not rows:
        raise TraceError(f"{path}: no Heartbeat status messages")
    crash, victim = _crash_from_meta(os.path.join(os.path.dirname(path), "meta.json"))
    if node is None:
        node = victim or str(rows[0].node)
    seen: set[object] = set()
    arrivals: list[float] = []
    dts: list[int | None] = []
    for r in rows:
        if str(r.node) != node:
            continue
        fields = r.fields or {}
        key = (fields.get("hg"), fields.get("seq"))
        if key in seen:
            continue
        seen.add(key)
        arrivals.append(r.time)
        dt = fields.get("dt")
        dts.append(dt if isinstance(dt, int) else None)
    if len(arrivals) < 2:
        raise TraceError(f"{path}: fewer than two status messages from {node}")
    end = max(r.time for r in rows)
    if crash is not None:
        # A killed node sends nothing more; a later status is its restart, where the run ends.
        after = [a for a in arrivals if a > crash]
        if after:
            end = min(end, after[0])
        keep = [i for i, a in enumerate(arrivals) if a <= crash]
        arrivals = [arrivals[i] for i in keep]
        dts = [dts[i] for i in keep]
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if arrivals[-1] > arrivals[0] else 0.0
    return Trace(f"{os.path.basename(os.path.dirname(path)) or path}:{node}", arrivals,
                 arrivals[0], end, crash, len(arrivals), dts, rate)


def _crash_from_meta(path: str) -> tuple[float | None, str | None]:
    try:
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return None, None
    names = [str(n.get("name")) for n in meta.get("nodes", []) if isinstance(n, dict)]
    for ev in meta.get("events", []):
        what = str(ev.get("what", ""))
        if "SIGKILL" in what and isinstance(ev.get("t", ev.get("time")), (int, float)):
            victim = next((n for n in names if n in what.split()), None)
            return float(ev.get("t", ev.get("time"))), victim
    return None, None


def dump(trace: Trace) -> str:
    return json.dumps({"name": trace.name, "start": trace.start, "end": trace.end,
                       "crash": trace.crash, "arrivals": trace.arrivals, "dt_ms": trace.dt_ms,
                       "rate": trace.rate}, indent=0)


def load(path: str) -> Trace:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        arrivals = [float(a) for a in data["arrivals"]]
        trace = Trace(str(data["name"]), sorted(arrivals), float(data["start"]),
                      float(data["end"]), None if data.get("crash") is None else float(data["crash"]),
                      len(arrivals), list(data.get("dt_ms") or []),
                      None if data.get("rate") is None else float(data["rate"]))
    except OSError as exc:
        raise TraceError(f"{path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise TraceError(f"{path}: not a trace file ({exc.__class__.__name__}: {exc})") from None
    if len(trace.arrivals) < 2 or trace.end < trace.arrivals[-1]:
        raise TraceError(f"{path}: a trace needs two arrivals and an end after the last")
    return trace


BUNDLED = "hb-failover-node1.json"


def bundled() -> Trace:
    """The trace shipped with the package: node1's status messages in captures/hb-failover
    (Heartbeat 3.0.6, keepalive 1 s, deadtime 5 s), SIGKILLed 16.98 s into the capture."""
    ref = resources.files("hbtools.detectors") / "traces" / BUNDLED
    with resources.as_file(ref) as p:
        return load(str(p))
