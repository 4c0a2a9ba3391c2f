"""The race of issue 16: at 30 % random loss with 200 ms jitter, does the best detector find a
real crash at least 3× sooner than Heartbeat's fixed deadtime, with no more false suspicions?

    python3 benchmarks/detectors.py            # ~1-2 min; writes benchmarks/RESULTS-detectors.md

Same traces for everyone: the scenario ``loss30-j200`` of ``hbtool detectors evaluate`` (one
status per second, each lost with p = 0.3, delayed 0.5 ms + U(0, 200 ms)), a crash-free run of
``--hours`` per seed for the false suspicions, and ``--trials`` crash runs (crash at a random
phase) for the detection time. The accelerated root costs two messages per round and up to twice
that while it is accelerating; its message rate is in the table. Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hbtools.detectors.qos import Accuracy  # noqa: E402
from hbtools.usecases import detectors as uc  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=6.0, help="crash-free hours per seed")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--trials", type=int, default=100, help="crash runs per seed")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS-detectors.md"))
    args = ap.parse_args()
    sc = uc.SCENARIOS["loss30-j200"]
    t0 = time.monotonic()
    per_point: dict[tuple[str, float], list[uc.Row]] = {}
    for seed in range(1, args.seeds + 1):
        for row in uc.race(sc, args.hours * 3600.0, args.trials, seed):
            per_point.setdefault((row.detector, row.value), []).append(row)
    elapsed = time.monotonic() - t0

    points = []
    for (det, value), rows in per_point.items():
        accs = [r.acc for r in rows if r.acc is not None]
        acc = Accuracy(sum(a.mistakes for a in accs), sum(a.observed for a in accs),
                       sum(a.suspected for a in accs))
        tds = [r.t_d for r in rows if r.t_d is not None]
        td = math.inf if any(math.isinf(x) for x in tds) else sum(tds) / len(tds)
        mps = sum(r.msgs_per_s for r in rows) / len(rows)
        points.append((det, rows[0].parameter, value, td, acc, mps))

    def get(det: str, value: float):  # noqa: ANN202
        return next(p for p in points if p[0] == det and p[2] == value)

    lines = [f"# Failure detectors at 30 % loss, 200 ms jitter (`python3 benchmarks/detectors.py"
             f" --hours {args.hours:g} --seeds {args.seeds} --trials {args.trials}`)", "",
             f"{args.seeds} × {args.hours:g} h crash-free per point for false suspicions; "
             f"{args.seeds} × {args.trials} crash runs for T_D; {elapsed:.0f} s on the dev box.",
             "", "| detector | param | T_D s | false suspicions | per hour | P_A | msg/s |",
             "|---|---|---|---|---|---|---|"]
    for det, param, value, td, acc, mps in sorted(points, key=lambda p: (p[0], p[2])):
        lines.append(f"| {det} | {param}={value:g} | {td:.2f} | {acc.mistakes} | "
                     f"{acc.rate_per_hour:.3f} | {acc.p_a:.6f} | {mps:.2f} |")
    lines.append("")
    for ref_value in (30.0, 10.0, 5.0):
        ref = get("heartbeat-fixed", ref_value)
        rivals = [p for p in points if p[0] != "heartbeat-fixed" and p[4].mistakes <= ref[4].mistakes]
        best = min(rivals, key=lambda p: p[3]) if rivals else None
        if best is None:
            lines.append(f"- vs Heartbeat deadtime {ref_value:g} s ({ref[4].mistakes} false "
                         f"suspicions, T_D {ref[3]:.2f} s): no other detector made as few mistakes.")
            continue
        ratio = ref[3] / best[3]
        verdict = "MET" if ratio >= 3.0 else "NOT met"
        lines.append(f"- vs Heartbeat deadtime {ref_value:g} s (T_D {ref[3]:.2f} s, "
                     f"{ref[4].mistakes} false suspicions): best with no more mistakes is "
                     f"{best[0]} {best[1]}={best[2]:g}, T_D {best[3]:.2f} s, {best[4].mistakes} "
                     f"false suspicions: {ratio:.2f}× sooner — goal (≥ 3×) {verdict}.")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
