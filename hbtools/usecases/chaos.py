"""Use case behind ``hbtool chaos run`` and ``hbtool chaos matrix``.

A matrix run plays each scenario against each implementation it applies to, one run after the
other (the machine has two cores; parallel runs would measure each other), reusing one cluster
per (implementation, shape) between scenarios, and writes ``results.json`` and a Markdown table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from hbtools.chaos.runner import Pool, RunResult, run_one, write_file
from hbtools.chaos.scenarios import BUILTIN, CORE, Scenario, with_options
from hbtools.lab.cluster import KINDS, Timing
from hbtools.lab.clusters import CHAOS_TIMING

MATRIX_SETS: dict[str, tuple[str, ...]] = {
    "hbtools": tuple(BUILTIN),
    "heartbeat": tuple(BUILTIN),
    "pacemaker": (*CORE, "halves", "bridge", "kill-restart"),
}
"""What ``chaos matrix`` runs per implementation: everything for the Heartbeat-protocol kinds, the
core set for Pacemaker (each Pacemaker run costs a Corosync + Pacemaker start-up)."""


def plan_runs(scenarios: Sequence[Scenario], impls: Sequence[str], *,
              matrix: bool = False) -> list[tuple[Scenario, str]]:
    """(scenario, impl) pairs in run order: by implementation, then by cluster shape (so a
    reused cluster serves consecutive runs)."""
    pairs = []
    for impl in impls:
        chosen = [s for s in scenarios if impl in s.impls
                  and (not matrix or s.name.split("+", 1)[0] in MATRIX_SETS[impl])]
        chosen.sort(key=lambda s: s.cluster_key)
        pairs += [(s, impl) for s in chosen]
    return pairs


def apply_options(scenarios: Sequence[Scenario], ha_cf: Sequence[str] = (),
                  daemon_args: Sequence[str] = (), suffix: str | None = None) -> list[Scenario]:
    """The scenarios with extra ``ha.cf`` lines / daemon arguments (e.g. ``detector phi``)."""
    if not ha_cf and not daemon_args:
        return list(scenarios)
    tag = suffix or "-".join(w for line in ha_cf for w in line.split()[1:2]) or "opts"
    extra: dict[str, Any] = {}
    if ha_cf:
        extra["ha_cf_extra"] = list(ha_cf)
    if daemon_args:
        extra["daemon_args"] = list(daemon_args)
    return [with_options(s, tag, **extra) for s in scenarios]


def run(pairs: Sequence[tuple[Scenario, str]], out_dir: Path, *, timing: Timing = CHAOS_TIMING,
        reuse: bool = True, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[RunResult] = []
    began = time.monotonic()
    with Pool(timing, reuse=reuse, log=say) as pool:
        for i, (scenario, impl) in enumerate(pairs, 1):
            r = run_one(scenario, impl, out_dir, pool)
            results.append(r)
            mark = "" if r.as_expected else f"  (expected {r.expected})"
            say(f"[{i}/{len(pairs)}] {scenario.name:22} {impl:9} {r.verdict}{mark}  "
                f"detect {_ms(r.detection_ms)} takeover {_ms(r.takeover_ms)} "
                f"split {r.split_brain_s:.1f}s ff {r.false_failovers}  {r.seconds:.0f}s "
                f"(setup {r.setup_s:.0f}s)"
                + (f"  — {'; '.join(r.reasons)[:160]}" if r.reasons else ""))
        leftovers = pool.close()
    doc = {"timing": timing.__dict__, "seconds": round(time.monotonic() - began, 1),
           "leftovers": leftovers, "runs": [r.as_dict() for r in results]}
    write_file(out_dir / "results.json", json.dumps(doc, indent=1) + "\n")
    write_file(out_dir / "table.md", table(results) + "\n")
    return doc


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}ms"


def table(results: Sequence[RunResult]) -> str:
    """Markdown: scenario × implementation → verdict and figures."""
    lines = ["| scenario | impl | verdict | expected | detection ms | takeover ms | split-brain s "
             "| unreachable after heal s | false failovers | notes |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        det = "-" if r.detection_ms is None else f"{r.detection_ms:.0f}"
        tko = "-" if r.takeover_ms is None else f"{r.takeover_ms:.0f}"
        notes = "; ".join(r.reasons).replace("|", "/")[:140]
        heal = "-" if r.disrupted_after_heal_s is None else f"{r.disrupted_after_heal_s:.1f}"
        lines.append(f"| {r.scenario} | {r.impl} | {r.verdict} | {r.expected} | {det} | {tko} | "
                     f"{r.split_brain_s:.1f} | {heal} | {r.false_failovers} | {notes} |")
    return "\n".join(lines)


DETECTOR_SCENARIOS = ("crash", "freeze", "loss30")
"""Issue 16: the scenarios ``chaos matrix`` also runs with each of :data:`DETECTOR_LINES`."""
DETECTOR_LINES = ("detector phi pause=0.4", "detector binary tmax=0.2 tmin=0.025")
"""ha.cf ``detector`` lines for hbtools nodes, tuned to the chaos timing (keepalive 200 ms,
deadtime 2 s): Akka's 3 s acceptable pause is longer than that deadtime (φ could never be
sooner), so 2 keepalives; tmax one keepalive, tmin tmax/8 (bound 575 ms, beats at 25 ms at the
end of the halving chain)."""


def detector_variants(scenarios: Sequence[Scenario],
                      lines: Sequence[str] = DETECTOR_LINES) -> list[Scenario]:
    """Each scenario once more per ``detector`` line (``crash+phi``, ``crash+binary``), for the
    hbtools kind only: a real 3.0.6 node would not start with the directive."""
    return [replace(v, impls=("hbtools",)) for line in lines
            for v in apply_options(scenarios, ha_cf=[line])]


def detector_table(results: Sequence[RunResult]) -> str:
    """Markdown: the hbtools runs grouped by scenario, each detector next to the fixed deadtime
    (a run without a ``+suffix`` is the fixed one)."""
    rows = [r for r in results if r.impl == "hbtools"]
    bases = list(dict.fromkeys(r.scenario.split("+", 1)[0] for r in rows))
    varied = {r.scenario.split("+", 1)[0] for r in rows if "+" in r.scenario}
    lines = ["| scenario | detector | verdict | detection ms | takeover ms | split-brain s "
             "| false failovers |", "|---|---|---|---|---|---|---|"]
    for base in (b for b in bases if b in varied):
        group = [r for r in rows if r.scenario.split("+", 1)[0] == base]
        group.sort(key=lambda r: ("+" in r.scenario, r.scenario))
        for r in group:
            det = "fixed" if "+" not in r.scenario else r.scenario.split("+", 1)[1]
            det_ms = "-" if r.detection_ms is None else f"{r.detection_ms:.0f}"
            tko_ms = "-" if r.takeover_ms is None else f"{r.takeover_ms:.0f}"
            lines.append(f"| {base} | {det} | {r.verdict} | {det_ms} | {tko_ms} | "
                         f"{r.split_brain_s:.1f} | {r.false_failovers} |")
    return "\n".join(lines)


def known_impls(text: str) -> list[str]:
    impls = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in impls if x not in KINDS]
    if bad or not impls:
        raise ValueError(f"--impl: unknown {', '.join(bad) or 'empty'} (known: {', '.join(KINDS)})")
    return impls


__all__ = ["DETECTOR_LINES", "DETECTOR_SCENARIOS", "MATRIX_SETS", "apply_options", "detector_table",
           "detector_variants", "known_impls", "plan_runs", "replace", "run", "table"]
