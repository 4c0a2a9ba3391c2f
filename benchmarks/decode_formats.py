"""Benchmark: ``hbtool decode`` in every output format on the same 1M-packet capture.

    python benchmarks/decode_formats.py                 # 1M packets, writes RESULTS-decode-formats.md
    python benchmarks/decode_formats.py --packets 100000 --no-write

The capture is benchmarks/run.py's (built once with the project's encoders and cached in
benchmarks/out/: Heartbeat netstring and classic with sha1 signatures, Totem udpu, knet
carrying Totem). Each run is ``hbtool decode -f FORMAT capture.pcap > /dev/null`` as a
child process; wall time and peak RSS per run (wait4), best of ``--repeat``. The machine's
load average is printed beside the figures: other work on the machine slows every row.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from run import build_capture, capture_for, hbtool_argv, run_measured  # noqa: E402
from tabulate import tabulate  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS-decode-formats.md"

CASES = [
    ("table (default)", ["-f", "table"]),
    ("csv", ["-f", "csv"]),
    ("json (hot path, workers)", ["-f", "json"]),
    ("json -j 1 (hot path, one process)", ["-f", "json", "-j", "1"]),
    ("json --filter proto!=udp (general path)", ["-f", "json", "--filter", "proto!=udp"]),
    ("--stats", ["--stats"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--capture-dir", type=Path, default=None,
                        help="build the capture here (e.g. a temporary directory) instead of "
                             "benchmarks/out")
    parser.add_argument("--code", type=Path, default=None,
                        help="run the hbtool of another checkout (e.g. `git archive` of the "
                             "commit before a change), for before/after tables")
    parser.add_argument("--only", action="append", default=None, metavar="LABEL",
                        help="run only the cases whose label starts with LABEL (repeatable)")
    args = parser.parse_args()
    if args.capture_dir is not None:
        pcap = args.capture_dir / f"bench-{args.packets}.pcap"
        if not pcap.exists():
            build_capture(pcap, args.packets, ())
    else:
        pcap = capture_for(args.packets, ())[args.packets]
    hbtool = hbtool_argv()
    if args.code is not None:
        hbtool = [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
                  "sys.argv[0] = 'hbtool'; from hbtools.cli import main; main()",
                  str(args.code.resolve())]
    rows = []
    cases = [c for c in CASES if not args.only or any(c[0].startswith(o) for o in args.only)]
    for label, extra in cases:
        best = None
        for _ in range(args.repeat):
            load = os.getloadavg()[0]
            seconds, rss, code = run_measured([*hbtool, "decode", "--no-progress", *extra, str(pcap)])
            if code != 0:
                raise SystemExit(f"{label}: exit {code}")
            if best is None or seconds < best[0]:
                best = (seconds, rss, load)
        seconds, rss, load = best
        rows.append([label, f"{seconds:.1f}", f"{args.packets / seconds:,.0f}", f"{rss // 1024}",
                     f"{load:.1f}"])
        print(f"  {label}: {seconds:.1f} s", file=sys.stderr)
    table = tabulate(rows, headers=["format", "wall s", "packets/s", "peak RSS MiB",
                                    "load avg at start"], tablefmt="github")
    print(table)
    if not args.no_write:
        RESULTS.write_text(
            f"# hbtool decode by output format ({args.packets:,} packets)\n\n"
            f"Made by `python benchmarks/decode_formats.py` on {dt.date.today()} "
            f"({platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}); "
            "output to /dev/null, best of "
            f"{args.repeat}. Other jobs ran on the machine at the same time (load column).\n\n"
            f"{table}\n")


if __name__ == "__main__":
    main()
