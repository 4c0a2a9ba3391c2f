"""Replays and simulations that turn a detector and a trace/scenario into a suspicion timeline.

One-way detectors (fixed deadtime, φ) are replayed on arrival times: after each arrival the
detector names its deadline; if the next arrival is later, it suspected from the deadline until
then. That is exact for detectors whose verdict changes only at arrivals and deadlines — which the
interface requires. The accelerated root is simulated event by event, its beats and the
participant's replies each through their own channel of the same scenario.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any

from hbtools.detectors.accelerated import Root
from hbtools.detectors.base import BEAT, REPLY, Send
from hbtools.detectors.qos import Interval
from hbtools.detectors.traces import Channel, Scenario, Trace, frozen_until


def replay(det: Any, trace: Trace) -> list[Interval]:
    """Suspicion intervals of a one-way detector over ``trace`` (from its first arrival)."""
    out: list[Interval] = []
    arrivals = trace.arrivals
    dts = trace.dt_ms if len(trace.dt_ms) == len(arrivals) else None
    for i, a in enumerate(arrivals):
        if dts is not None and hasattr(det, "deadtime_in_force"):
            det.arrival(a, dts[i])
        else:
            det.arrival(a)
        nxt = arrivals[i + 1] if i + 1 < len(arrivals) else trace.end
        d = det.next_deadline(a)
        if d is not None and d < nxt:
            out.append((d, nxt))
    return out


def simulate_root(make: Callable[[], Root], sc: Scenario) -> tuple[list[Interval], float]:
    """Run a root (non-sticky) against one answering participant; returns the suspicion intervals
    and messages per second (beats + replies). The participant answers every beat it hears while
    running, answers beats heard while frozen when it thaws, and nothing after its crash."""
    root = make()
    rng = random.Random(sc.seed)
    down, up = Channel(sc, rng), Channel(sc, rng)
    heap: list[tuple[float, int, str, Send | None]] = []
    seq = 0

    def push(t: float, what: str, msg: Send | None = None) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (t, seq, what, msg))

    root.start(0.0)
    d = root.next_deadline(0.0)
    if d is not None:
        push(d, "timer")
    intervals: list[Interval] = []
    since: float | None = None
    replies = 0
    while heap:
        t, _, what, msg = heapq.heappop(heap)
        if t > sc.duration:
            break
        if what == "timer":
            if root.next_deadline(t) != t:
                continue  # superseded
            for beat in root.tick(t):
                at = down.deliver(t)
                if at is not None:
                    push(at, "beat", beat)
            d = root.next_deadline(t)
            if d is not None:
                push(d, "timer")
        elif what == "beat":
            assert msg is not None
            if sc.crash is not None and t >= sc.crash:
                continue
            answer_at = frozen_until(sc, t)
            if sc.crash is not None and answer_at >= sc.crash:
                continue
            replies += 1
            at = up.deliver(answer_at)
            if at is not None:
                push(at, "reply", Send(REPLY, msg.dst, 0, msg.round))
        else:
            assert msg is not None
            if root.variant == "original":
                msg = Send(REPLY, msg.src, 0, None)
            root.receive(t, msg)
        s = root.suspect(t)
        if s and since is None:
            since = t
        elif not s and since is not None:
            intervals.append((since, t))
            since = None
    if since is not None:
        intervals.append((since, sc.duration))
    return intervals, (root.beats_sent + replies) / sc.duration


__all__ = ["BEAT", "replay", "simulate_root"]
