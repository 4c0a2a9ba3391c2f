"""Use case behind ``hbtool detectors evaluate``: race every detector over the same traces.

For each trace — generated scenarios (see :data:`SCENARIOS`) and traces from captures — and for
each point of each detector's parameter sweep, measure Chen/Toueg/Aguilera's QoS: the mistakes
(λ_M, T_MR, T_M, P_A) on a crash-free run, and the detection time T_D as the mean over
``trials`` runs of the same scenario that end in a crash at a random phase. A capture gives one
run: its mistakes before the SIGKILL recorded in its meta.json and one T_D sample.
"""

from __future__ import annotations

import math
import os
import random
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path

from hbtools.detectors import catalog, qos, simulate, traces
from hbtools.detectors.fixed import FixedDeadtime

#: The generated traces. "late" sends one message a minute 2.6 s late: just past half of a 5 s
#: deadtime (Heartbeat's warntime) and past the halved timeouts of the accelerated root.
SCENARIOS: dict[str, traces.Scenario] = {
    s.name: s
    for s in (
        traces.Scenario("clean"),
        traces.Scenario("loss10-j50", loss=0.10, jitter=0.05),
        traces.Scenario("loss30-j200", loss=0.30, jitter=0.20),
        traces.Scenario("burst", burst=(0.02, 0.35), jitter=0.02),
        traces.Scenario("gc-pause", pauses=tuple((t, t + 6.0) for t in range(300, 3600, 600)),
                        jitter=0.02),
        traces.Scenario("late", late_every=60.0, late_delay=2.6, jitter=0.02),
        # The counterexample's pattern for the accelerated root at tmax = 1 s: every 20 s one
        # message 1.05 s late, just past the timeout that halves t, so a reply lands a round late.
        traces.Scenario("late-reply", late_every=20.0, late_delay=1.05, jitter=0.02),
    )
}


@dataclass
class Request:
    trace_paths: list[str] = field(default_factory=list)
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    bundled: bool = True
    duration: float = 1800.0
    trials: int = 20
    seed: int = 1
    png: str | None = "detectors-qos.png"


@dataclass(frozen=True)
class Row:
    trace: str
    detector: str
    parameter: str
    value: float
    default: bool
    t_d: float | None  # None: no crash in this trace; inf: not detected by the end
    acc: qos.Accuracy | None  # None: not measurable here (accelerated on a one-way capture)
    msgs_per_s: float
    horizon: float | None = None  # a capture: how long after the crash it goes on


@dataclass
class Evaluation:
    rows: list[Row]
    png: str | None
    traces: list[str]
    skipped: list[str] = field(default_factory=list)


class EvaluateError(ValueError):
    pass


def _mean(xs: list[float]) -> float:
    return math.inf if any(math.isinf(x) for x in xs) else statistics.fmean(xs)


def race(sc: traces.Scenario, duration: float, trials: int, seed: int) -> list[Row]:
    """Every point of every curve on one generated scenario: mistakes on a crash-free run of
    ``duration`` seconds, T_D as the mean of ``trials`` crash runs (crash 90 s in, random phase)."""
    base = replace(sc, duration=duration, seed=seed)
    quiet = traces.one_way(base)
    rng = random.Random(seed)
    crash_runs = [base.with_crash(90.0 + rng.uniform(0.0, base.interval), seed * 1000 + k)
                  for k in range(trials)]
    crash_traces = [traces.one_way(c) for c in crash_runs]
    rows: list[Row] = []
    for cv in catalog.CURVES:
        for v in cv.values:
            if cv.kind == "root":
                iv, mps = simulate.simulate_root(lambda v=v, cv=cv: cv.make(v), base)
                acc = qos.accuracy(iv, 0.0, base.duration)
                tds = []
                for c in crash_runs:
                    civ, _ = simulate.simulate_root(lambda v=v, cv=cv: cv.make(v), c)
                    assert c.crash is not None
                    tds.append(qos.detection_time(civ, c.duration, c.crash))
            else:
                acc = qos.accuracy(simulate.replay(cv.make(v), quiet), quiet.start, quiet.end)
                mps = quiet.messages_per_second
                tds = []
                for ct in crash_traces:
                    assert ct.crash is not None
                    tds.append(qos.detection_time(simulate.replay(cv.make(v), ct), ct.end, ct.crash))
            rows.append(Row(sc.name, cv.label, cv.parameter, v, v == cv.default, _mean(tds), acc,
                            mps))
    return rows


def _captured(tr: traces.Trace) -> list[Row]:
    crash = tr.crash if tr.crash is not None and tr.crash < tr.end else None
    rows: list[Row] = []
    points = [(cv.label, cv.parameter, v, v == cv.default, cv.make, cv.kind)
              for cv in catalog.CURVES for v in cv.values]
    points.append(("heartbeat-dt", "deadtime", 30.0, True,
                   lambda d: FixedDeadtime(deadtime=d), "one-way"))
    for label, param, v, default, make, kind in points:
        if kind == "root":
            rows.append(Row(tr.name, label, param, v, default, None, None, 0.0))
            continue
        iv = simulate.replay(make(v), tr)
        acc = qos.accuracy(iv, tr.start, tr.end, crash)
        td = None if crash is None else qos.detection_time(iv, tr.end, crash)
        rows.append(Row(tr.name, label, param, v, default, td, acc, tr.messages_per_second,
                        None if crash is None else tr.end - crash))
    return rows


def load_trace(path: str) -> traces.Trace:
    """A capture (pcap/pcapng) or a JSON trace written by :func:`traces.dump`."""
    if path.endswith(".json"):
        return traces.load(path)
    return traces.from_capture(path)


def evaluate(req: Request) -> Evaluation:
    unknown = [s for s in req.scenarios if s not in SCENARIOS]
    if unknown:
        raise EvaluateError(f"unknown scenario {unknown[0]!r} (known: {', '.join(SCENARIOS)})")
    loaded = [traces.bundled()] if req.bundled else []
    skipped: list[str] = []
    try:
        for p in req.trace_paths:
            if os.path.isdir(p):
                # A directory of recordings (captures/): every Heartbeat one; Corosync ones and
                # captures without two status messages are skipped, and said so.
                for cap in sorted(Path(p).glob("*/capture.pcap")):
                    try:
                        got = traces.from_capture(str(cap))
                        if got.name not in {t.name for t in loaded}:
                            loaded.append(got)
                    except traces.TraceError as exc:
                        skipped.append(str(exc))
            else:
                loaded.append(load_trace(p))
    except traces.TraceError as exc:
        raise EvaluateError(str(exc)) from None
    rows: list[Row] = []
    for tr in loaded:
        rows += _captured(tr)
    for name in req.scenarios:
        rows += race(SCENARIOS[name], req.duration, req.trials, req.seed)
    png = None
    if req.png and req.scenarios:
        png = plot(rows, req.scenarios, req.png)
    return Evaluation(rows, png, [t.name for t in loaded] + list(req.scenarios), skipped)


def _fmt(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "n/a"
    if math.isinf(x):
        return "inf"
    return f"{x:.{digits}f}"


def table(ev: Evaluation, everything: bool = False) -> list[list[str]]:
    out = []
    for r in ev.rows:
        if not everything and not r.default:
            continue
        a = r.acc
        out.append([r.trace, r.detector, f"{r.parameter}={r.value:g}",
                    (f">{r.horizon:.1f}" if r.t_d is not None and math.isinf(r.t_d)
                     and r.horizon is not None else _fmt(r.t_d)),
                    "n/a" if a is None else str(a.mistakes),
                    "n/a" if a is None else _fmt(a.rate_per_hour),
                    "n/a" if a is None else _fmt(a.t_mr, 0),
                    "n/a" if a is None else _fmt(a.t_m),
                    "n/a" if a is None else f"{a.p_a:.5f}",
                    _fmt(r.msgs_per_s) if a is not None else "n/a"])
    return out


HEADERS = ["trace", "detector", "param", "T_D s", "mistakes", "λ_M /h", "T_MR s", "T_M s",
           "P_A", "msg/s"]


def plot(rows: list[Row], scenarios: list[str], path: str) -> str:
    """Detection time vs mistake rate, one panel per generated scenario, one curve per detector."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(scenarios)
    cols = min(3, n)
    rws = (n + cols - 1) // cols
    fig, axes = plt.subplots(rws, cols, figsize=(5.2 * cols, 4.2 * rws), squeeze=False)
    for ax, name in zip(axes.flat, scenarios, strict=False):
        for cv in catalog.CURVES:
            pts = [(r.t_d, r.acc.rate_per_hour, r.value) for r in rows
                   if r.trace == name and r.detector == cv.label and r.acc is not None
                   and r.t_d is not None and not math.isinf(r.t_d)]
            if not pts:
                continue
            xs, ys, vs = zip(*sorted(pts), strict=True)
            ax.plot(xs, [max(y, 0.1) for y in ys], marker="o", ms=3, label=cv.label)
        ax.set_title(name)
        ax.set_xlabel("T_D, detection time after a crash (s)")
        ax.set_ylabel("mistakes per hour (0 drawn at 0.1)")
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise EvaluateError(f"{path}: no such directory")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
