"""The ha.cf ``detector`` directive live: crash, 30 % loss and freeze between two hbtools nodes.

For each detector (Heartbeat's fixed deadtime, φ accrual, the accelerated binary protocol) a
fresh namespace lab runs two ``hbtool daemon`` nodes (keepalive 200 ms, deadtime 2 s: the chaos
engine's timing) and plays, in order:

* loss30 — 30 % of the cluster datagrams dropped at both receivers for 20 s (an iptables
  ``statistic`` rule in each node namespace); every ``dead`` event then is a false death;
* freeze — node1's daemon SIGSTOPped for 5 s, then SIGCONT: node2's detection time;
* crash — node1's daemon SIGKILLed (``--runs`` times, restarted in between): node2's detection.

Detection = node2's ``dead`` event (its ``mono`` stamp: CLOCK_MONOTONIC, as this script's clock)
minus the instant this script sent the signal. Nothing is asserted; the table goes to
``benchmarks/RESULTS-daemon-detectors.md``.

    sudo python3 benchmarks/daemon_detectors.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hbtools.lab import Lab, heartbeat_ha_cf, wait_until  # noqa: E402
from hbtools.node.labsupport import HbtoolsDaemon  # noqa: E402

AUTH = "auth 1\n1 sha1 detector-benchmark\n"
TIMES = dict(keepalive="200ms", warntime="1", deadtime="2", initdead="4")
DETECTORS = {
    "fixed (deadtime 2 s)": "",
    "phi pause=0.4": "detector phi pause=0.4",
    "binary tmax=0.2 tmin=0.025": "detector binary tmax=0.2 tmin=0.025",
}
LOSS_S = 20.0
FREEZE_S = 5.0
DROP = ["INPUT", "-p", "udp", "--dport", "694", "-m", "statistic", "--mode", "random",
        "--probability", "0.3", "-j", "DROP"]


def _both_active(a: HbtoolsDaemon, b: HbtoolsDaemon) -> None:
    a.wait_peer_status(b.name, "active", timeout=30)
    b.wait_peer_status(a.name, "active", timeout=30)


def _deaths(d: HbtoolsDaemon, since: float) -> list[dict]:
    return [e for e in d.events("dead") if e["mono"] >= since]


def _detected(survivor: HbtoolsDaemon, peer: str, since: float, timeout: float) -> float | None:
    try:
        wait_until(lambda: [e for e in _deaths(survivor, since) if e["node"] == peer],
                   timeout=timeout, interval=0.02, what=f"{survivor.name} to see {peer} dead")
    except Exception:
        return None
    return min(e["mono"] for e in _deaths(survivor, since) if e["node"] == peer) - since


def _settle(one: HbtoolsDaemon, two: HbtoolsDaemon) -> None:
    """Both alive and past any partition-heal restart (2 s after the status that healed it)."""
    for _ in range(10):
        time.sleep(3.0)
        try:
            _both_active(one, two)
        except Exception:
            continue
        mark = time.monotonic()
        time.sleep(3.0)
        if not _deaths(one, mark) and not _deaths(two, mark) and one.running() and two.running():
            return
    raise RuntimeError("cluster did not settle")


def run_detector(line: str, runs: int) -> dict:
    cf = heartbeat_ha_cf(["node1", "node2"], ["bcast eth0"], **TIMES)
    if line:
        cf += line + "\n"
    out: dict = {"false": 0, "crash": [], "freeze": None, "by": set()}
    with Lab() as lab:
        one = HbtoolsDaemon(lab.add_node("node1"))
        two = HbtoolsDaemon(lab.add_node("node2"))
        for d in (one, two):
            d.write_config(cf, AUTH)
            d.start()
        _both_active(one, two)
        time.sleep(6.0)  # past the start-up dt, and a window of intervals for φ
        # loss30
        start = time.monotonic()
        for d in (one, two):
            d.node.run(["iptables", "-I", *DROP])
        time.sleep(LOSS_S)
        for d in (one, two):
            d.node.run(["iptables", "-D", *DROP])
        time.sleep(1.0)
        # a detector's false death; the clean stops of the partition-heal restarts it causes
        # (reason shutdone) are counted apart
        wrong = [e for d in (one, two) for e in _deaths(d, start) if e["reason"] == "deadtime_expired"]
        out["false"] = len(wrong)
        out["false_by"] = sorted({e.get("detector", "fixed") for e in wrong})
        out["restarts"] = sum(len([e for e in d.events("restarting") if e["mono"] >= start])
                              for d in (one, two))
        _settle(one, two)
        # freeze
        assert one.proc is not None
        stopped = time.monotonic()
        os.kill(one.proc.pid, signal.SIGSTOP)
        out["freeze"] = _detected(two, "node1", stopped, FREEZE_S)
        time.sleep(max(0.0, stopped + FREEZE_S - time.monotonic()))
        os.kill(one.proc.pid, signal.SIGCONT)
        _settle(one, two)
        # crashes
        for _ in range(runs):
            killed = time.monotonic()
            one.kill()
            t = _detected(two, "node1", killed, 5.0)
            out["crash"].append(t)
            out["by"].update(e.get("detector", "fixed") for e in _deaths(two, killed))
            one.start()
            _settle(one, two)
        one.stop()
        two.stop()
    return out


def _ms(t: float | None) -> str:
    return "-" if t is None else f"{t * 1000:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS-daemon-detectors.md")
    args = parser.parse_args()
    rows = []
    for label, line in DETECTORS.items():
        r = run_detector(line, args.runs)
        crashes = [t for t in r["crash"] if t is not None]
        med = statistics.median(crashes) if crashes else None
        worst = max(crashes) if crashes else None
        rows.append(f"| {label} | `{line or '(none)'}` | {_ms(med)} | {_ms(worst)} | "
                    f"{len(crashes)}/{len(r['crash'])} | {_ms(r['freeze'])} | {r['false']} | "
                    f"{r['restarts']} |")
        print(rows[-1], "decided by", sorted(r["by"]), "false by", r.get("false_by"), flush=True)
    lines = [
        "# `hbtool daemon` failure detectors live: crash, 30 % loss, freeze",
        "",
        "Two hbtools nodes in a namespace lab, keepalive 200 ms, deadtime 2 s, `bcast eth0`, sha1; "
        "one fresh lab per detector. Detection = the survivor's `dead` event (CLOCK_MONOTONIC) "
        "minus the instant the script sent SIGKILL / SIGSTOP to node1's daemon. False deaths: "
        f"`dead` events on either node during {LOSS_S:.0f} s of 30 % random loss at both "
        "receivers (iptables statistic) and 1 s after (reason `deadtime_expired`); each one is "
        "a partition that heals as in 3.0.6 (the node that declared it restarts, `restarting`). "
        f"`sudo python3 benchmarks/daemon_detectors.py --runs {args.runs}`.",
        "",
        "| detector | ha.cf line | crash: median ms | crash: max ms | crashes seen | freeze: ms "
        "| false deaths at 30 % loss | heal restarts they caused |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Recorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
        f"{os.getloadavg()[0]:.1f} (other work on the 2-core host).",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
