"""What the capture recorders share: the folder life cycle and the command line.

A recording is written into a scratch folder ``.<name>.recording`` and becomes
``captures/<name>/`` only once it is complete and within the size budget, so a failed or
interrupted run never leaves a half capture where the tests would read it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hbtools.lab import Capture, LabError  # noqa: E402

CAPTURES = Path(__file__).resolve().parent
#: Captures are committed: each must stay small.
MAX_CAPTURE_BYTES = 1_000_000


def package_version(package: str) -> str | None:
    """The installed Debian version of a package, for the capture's meta.json."""
    res = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True,
                         text=True, check=False)
    return res.stdout.strip() or None


@contextmanager
def scratch_folder(out_root: Path, name: str) -> Iterator[Path]:
    """Yield the scratch folder; on success it replaces ``out_root/name``, else it goes."""
    tmp = out_root / f".{name}.recording"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        size = (tmp / "capture.pcap").stat().st_size
        if size > MAX_CAPTURE_BYTES:
            raise LabError(f"capture is {size} bytes, over the {MAX_CAPTURE_BYTES} byte budget")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final = out_root / name
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def capture_meta(capture: Capture, packets: int | None, where: str) -> dict[str, Any]:
    """The ``capture`` block of a meta.json: file, how it was taken, its time span, size."""
    return {
        "file": "capture.pcap",
        "where": where,
        "start": round(capture.started, 6),
        "end": round(capture.stopped or time.time(), 6),
        "packets": packets,
        "bytes": capture.path.stat().st_size,
    }


def log_event(events: list[dict[str, Any]], started: float, what: str,
              **details: Any) -> float:
    """Append a timed entry (epoch and seconds since the capture started) and print it."""
    now = time.time()
    entry: dict[str, Any] = {"t": round(now, 6), "t_rel": round(now - started, 3), "what": what}
    entry.update(details)
    events.append(entry)
    print(f"  {entry['t_rel']:7.2f}s  {what}", flush=True)
    return now


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(
    prog: str,
    description: str,
    scenarios: Mapping[str, Any],
    record: Callable[[Any, Path], Path],
    describe: Callable[[dict[str, Any]], str],
    argv: list[str] | None = None,
) -> int:
    """Record the named scenarios (all by default); exit 2 without root or a binary."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help="scenarios to record (default: all)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--out", type=Path, default=CAPTURES,
                        help="folder that receives <scenario>/ (default: captures/)")
    args = parser.parse_args(argv)
    if args.list:
        width = max(len(name) for name in scenarios) + 2
        for scenario in scenarios.values():
            print(f"{scenario.name:{width}} {scenario.description}")
        return 0
    unknown = [s for s in args.scenarios if s not in scenarios]
    if unknown:
        print(f"{prog}: unknown scenario {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _sigterm)
    failed = []
    for name in args.scenarios or list(scenarios):
        print(f"== {name}", flush=True)
        try:
            folder = record(scenarios[name], args.out)
        except LabError as err:
            print(f"{prog}: {name}: {err}", file=sys.stderr)
            failed.append(name)
            if "needs root" in str(err) or "needs the program" in str(err):
                return 2
            continue
        meta = json.loads((folder / "meta.json").read_text())
        print(f"   -> {folder}: {describe(meta['summary'])}", flush=True)
    if failed:
        print(f"{prog}: failed: {' '.join(failed)}", file=sys.stderr)
        return 1
    return 0
