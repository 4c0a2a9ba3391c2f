"""Pass-through overhead of ``hbtool fault``: added one-way latency and where it starts to lag.

A namespace lab with two nodes. node1 sends Heartbeat-like status datagrams (netstrings,
~160 bytes, seq and send time inside) to node2:694 at a fixed rate; node2 reads each with
its kernel receive timestamp (SO_TIMESTAMPNS), so the latency measured is send() call ->
arrival in node2's kernel, without the receiver's scheduling in it. Each rate runs twice:
without a proxy (baseline) and with ``hbtool fault --rule 'drop t=NS_ackmsg'`` in node1
(every datagram is queued, decoded as Heartbeat and matched against the rule, none is
dropped: the "no fault matched" path). Added latency = proxy percentile - baseline
percentile. Lost = datagrams that never arrived.

    sudo python3 benchmarks/fault_overhead.py                 # writes benchmarks/RESULTS-fault.md
    sudo python3 benchmarks/fault_overhead.py --rates 1000,10000 --seconds 2

Needs root (namespaces), iptables or nft, and the netfilterqueue binding.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import select
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tabulate import tabulate  # noqa: E402

from hbtools.lab import Lab  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS-fault.md"

SENDER = r"""
import ctypes, socket, sys, time
# Timer slack 1 ns: sleeps of ~100 us wake on time, so the sender paces packets one by one
# without spinning (a spinning sender would steal a core from the proxy on small machines).
ctypes.CDLL(None).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK
dst, rate, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
head = b"###\n11:(0)t=status,12:(0)st=active,10:(0)dt=1b58,13:(0)protocol=1,12:(0)src=node1,"
tail = b"31:(0)ld=0.02 0.11 0.08 1/92 19549,8:(0)ttl=3,%%%\n"
interval = 1.0 / rate
start = time.perf_counter()
for i in range(1, count + 1):
    wait = start + i * interval - time.perf_counter()
    if wait > 0:
        time.sleep(wait)
    seq = b"(0)seq=%x" % i
    ts = b"(0)ts=%x" % time.time_ns()
    s.sendto(head + b"%d:%s,%d:%s," % (len(seq), seq, len(ts), ts) + tail, (dst, 694))
elapsed = time.perf_counter() - start
print(f"{count / elapsed:.0f}")
"""

RECEIVER = r"""
import re, socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS
s.bind(("0.0.0.0", 694))
s.settimeout(float(sys.argv[2]))
print("listening", flush=True)
rx = re.compile(rb"\(0\)seq=([0-9a-f]+),\d+:\(0\)ts=([0-9a-f]+),")
out = []
first = True
# Bounded: wait at most 60 s for the first datagram, at most 10 min in all.
first_deadline = time.monotonic() + 60
deadline = time.monotonic() + 600
while time.monotonic() < deadline:
    try:
        data, anc, _, _ = s.recvmsg(2048, 64)
    except socket.timeout:
        if first and time.monotonic() < first_deadline:
            continue
        break
    if first:
        s.settimeout(1.0)
        first = False
    kernel_ns = None
    for level, kind, value in anc:
        if level == socket.SOL_SOCKET and kind == 35:  # SCM_TIMESTAMPNS
            sec, nsec = struct.unpack("qq", value[:16])
            kernel_ns = sec * 1_000_000_000 + nsec
    m = rx.search(data)
    if m and kernel_ns:
        out.append(f"{int(m.group(1), 16)} {int(m.group(2), 16)} {kernel_ns}")
with open(sys.argv[1], "w") as fh:
    fh.write("\n".join(out) + "\n")
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def run_once(lab: Lab, work: Path, rate: int, seconds: float, with_proxy: bool,
             realtime: bool = False) -> dict:
    n1, n2 = lab.node("node1"), lab.node("node2")
    count = int(rate * seconds)
    out = work / f"rx-{rate}-{int(with_proxy)}{int(realtime)}.txt"
    receiver = n2.popen(["python3", str(work / "recv.py"), str(out), "20"], stdout=subprocess.PIPE)
    assert receiver.stdout is not None and receiver.stdout.readline().strip() == "listening"
    proxy = None
    if with_proxy:
        proxy = subprocess.Popen(
            [sys.executable, "-c", "from hbtools.cli import main; main()", "fault",
             "--netns", n1.netns, "--rule", "drop t=NS_ackmsg", "--port", "694",
             "--status-interval", "0", "--stats-json", str(work / f"stats-{rate}.json"),
             *(["--realtime", "10"] if realtime else [])],
            cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proxy.stderr is not None
        # Bounded wait for the proxy's "ready:" line.
        ready, _, _ = select.select([proxy.stderr], [], [], 30)
        line = proxy.stderr.readline() if ready else "(no output within 30 s)\n"
        if "ready:" not in line:
            proxy.kill()
            raise SystemExit(f"proxy did not start: {line}{proxy.stderr.read()}")
    try:
        sent = n1.run(["python3", str(work / "send.py"), n2.address, str(rate), str(count)],
                      timeout=seconds * 20 + 30)
        achieved = float(sent.stdout.strip())
        receiver.wait(timeout=60)
    finally:
        if proxy is not None:
            proxy.send_signal(signal.SIGTERM)
            proxy.communicate(timeout=30)
    rows = [line.split() for line in out.read_text().splitlines() if line.strip()]
    latencies = [(int(rx) - int(tx)) / 1000.0 for _, tx, rx in rows]  # microseconds
    stats = {}
    if with_proxy:
        with open(work / f"stats-{rate}.json") as fh:
            stats = json.load(fh)
    return {
        "rate": rate,
        "achieved": achieved,
        "sent": count,
        "received": len(rows),
        "lost": count - len(rows),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "p999": percentile(latencies, 99.9),
        "max": max(latencies) if latencies else float("nan"),
        "proxy_packets": stats.get("packets"),
        "verdict": stats.get("verdict_time") or {},
    }


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="1000,5000,10000,15000,20000,30000")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces, netfilter rules)")
    rates = [int(r) for r in args.rates.split(",")]
    results = []
    load_before = _load()
    with Lab() as lab:
        lab.add_node("node1")
        lab.add_node("node2")
        work = lab.workdir
        (work / "send.py").write_text(SENDER)
        (work / "recv.py").write_text(RECEIVER)
        for rate in rates:
            base = run_once(lab, work, rate, args.seconds, False)
            prox = run_once(lab, work, rate, args.seconds, True)
            rt = run_once(lab, work, rate, args.seconds, True, realtime=True)
            results.append((base, prox, rt))
            print(f"{rate:>6}/s  base p50 {base['p50']:.0f} p99 {base['p99']:.0f} µs  "
                  f"proxy p50 {prox['p50']:.0f} p99 {prox['p99']:.0f} µs lost {prox['lost']}  "
                  f"realtime p50 {rt['p50']:.0f} p99 {rt['p99']:.0f} µs lost {rt['lost']}",
                  flush=True)
    load_after = _load()
    table = []
    for base, prox, rt in results:
        row = [base["rate"], f"{prox['achieved']:.0f}", f"{base['p50']:.0f} / {base['p99']:.0f}"]
        for r in (prox, rt):
            v = r["verdict"]
            row += [f"{r['p50']:.0f} / {r['p99']:.0f} / {r['p999']:.0f}",
                    f"+{r['p50'] - base['p50']:.0f} / +{r['p99'] - base['p99']:.0f}",
                    f"{v.get('p50_us', 0):.0f} / {v.get('p99_us', 0):.0f}",
                    f"{r['lost']} ({100 * r['lost'] / r['sent']:.2f}%)"]
        table.append(row)
    headers = ["rate pkt/s", "sent pkt/s", "baseline p50/p99 µs",
               "proxy p50/p99/p99.9 µs", "added p50/p99 µs", "in-proxy p50/p99 µs", "lost",
               "--realtime p50/p99/p99.9 µs", "added p50/p99 µs", "in-proxy p50/p99 µs",
               "lost"]
    text = tabulate(table, headers=headers, tablefmt="github")
    print(text)

    def lag_rate(k: int) -> int | None:
        return next((res[0]["rate"] for res in results
                     if res[k]["lost"] > 0.001 * res[k]["sent"]
                     or res[k]["p99"] - res[0]["p99"] > 1000), None)

    def lag_text(k: int, label: str) -> str:
        lag = lag_rate(k)
        if lag is None:
            return f"- {label}: no rate tried made it drop or lag.\n"
        return f"- {label}: starts to drop or lag at about {lag} packets/s.\n"

    if args.no_write:
        return
    cpu = platform.processor() or platform.machine()
    RESULTS.write_text(
        "# `hbtool fault` pass-through overhead\n\n"
        f"Measured {dt.date.today()} with `sudo python3 benchmarks/fault_overhead.py "
        f"--rates {args.rates} --seconds {args.seconds:g}` on {os.cpu_count()} CPU(s) "
        f"({cpu}), kernel {platform.release()}, Python {platform.python_version()}; "
        f"load average {load_before} before and {load_after} after (the host is shared: "
        "other processes ran at the same time).\n\n"
        "One-way latency node1 -> node2 (send() call to node2's kernel receive timestamp) "
        "of ~170-byte Heartbeat status datagrams through a namespace bridge, without and "
        "with `hbtool fault --rule 'drop t=NS_ackmsg'` in node1 (every datagram queued, "
        "decoded and matched, none dropped), the latter once as is and once with "
        "`--realtime 10` (SCHED_FIFO). Added = proxy minus baseline at the same "
        "percentile. In-proxy = the proxy's own time from a packet's arrival in its "
        "callback to the verdict (from `--stats-json`).\n\n" + text + "\n\n"
        "Drop or lag = loss over 0.1 % or added p99 over 1 ms:\n\n"
        + lag_text(1, "default scheduling") + lag_text(2, "`--realtime`")
    )
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
