"""Benchmark: ``hbtool decode`` against tshark, scapy and pyshark on the same capture.

    python benchmarks/run.py            # 1M packets (built once, cached in benchmarks/out/)
    python benchmarks/run.py --packets 200000 --quick

The capture is built with the project's own encoders (`hbtools.heartbeat.encode` with
sha1 signatures in both wire formats, `hbtools.totem.encode`, `hbtools.knet.encode`):
three Heartbeat nodes (two netstring, one classic) with status, ack and resource
messages, a udpu Totem ring of three nodes (tokens, multicasts, merge probes) and a knet
ring (data carrying Totem, pings, pongs). Every tool reads the same file:

* hbtool: ``hbtool decode --format json`` to /dev/null (every field of every message).
* tshark, no plugin: the floor for tshark, since Wireshark has no dissector for these
  protocols and only decodes up to UDP. Two output modes, fields and the default summary
  line; the faster is the one hbtool is compared with.
* tshark with ``wireshark/hbtools.lua`` (when the file exists): the same output modes.
* scapy ``PcapReader`` and pyshark ``FileCapture``, on a slice, scaled to packets/s.

It prints a table and writes ``benchmarks/RESULTS.md``. Peak RSS is measured per child
process with wait4, so each row's figure is that tool's own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tabulate import tabulate  # noqa: E402

from hbtools import heartbeat, knet, totem  # noqa: E402
from hbtools.auth import AuthKeys  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
LUA = ROOT / "wireshark" / "hbtools.lua"
START = 1_732_000_000.0
KEYS = AuthKeys.parse("auth 2\n2 sha1 benchmark-secret\n")
UUIDS = {f"node{i}": bytes([i] * 16) for i in (1, 2, 3)}
HB_ADDR = {"node1": "198.18.0.1", "node2": "198.18.0.2", "node3": "198.18.0.3"}
TOTEM_ADDR = {1: "198.18.1.1", 2: "198.18.1.2", 3: "198.18.1.3"}
KNET_ADDR = {1: "198.18.2.1", 2: "198.18.2.2", 3: "198.18.2.3"}


# -- building the capture ------------------------------------------------------------------


def _ip(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _frame(src: str, dst: str, sport: int, dport: int, payload: bytes, ident: int) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0x4000, 64, 17,
                       0, _ip(src), _ip(dst))
    head = head[:10] + struct.pack("!H", _checksum(head)) + head[12:]
    return b"\xff\xff\xff\xff\xff\xff\x02\x00\x00\x00\x00\x01\x08\x00" + head + udp


class Cluster:
    """Generates the traffic, message by message, with the project's encoders."""

    def __init__(self) -> None:
        self.seq = {n: 0 for n in UUIDS}
        self.hb_port = {"node1": 40001, "node2": 40002, "node3": 40003}
        self.token_seq = 0
        self.ring = totem.RingId(rep=1, seq=0x2C)
        self.mcast_seq = 0
        self.knet_seq = {1: 0, 2: 0, 3: 0}

    def heartbeat(self, i: int, now: float) -> tuple[str, str, int, int, bytes]:
        node = ("node1", "node2", "node3")[i % 3]
        self.seq[node] += 1
        seq = self.seq[node]
        kind = "status" if seq % 10 else ("resource" if seq % 20 else "NS_ackmsg")
        fields: list[tuple[str, object]] = [("t", kind)]
        if kind == "NS_ackmsg":
            fields += [("dest", "node1" if node != "node1" else "node2"), ("ackseq", f"{seq:x}"),
                       ("src", node)]
        else:
            fields += [("st", "active"), ("dt", "1388"), ("protocol", "1"), ("src", node),
                       ("srcuuid", UUIDS[node]), ("seq", f"{seq:x}"), ("hg", "6b05eff9"),
                       ("ts", f"{int(now):x}")]
            if kind == "resource":
                fields += [("rsc_hold", "local"), ("rtype", "full"), ("isstable", "1")]
            fields += [("ld", f"0.{(int(now) // 5) % 100:02d} 0.11 0.08 1/92 19549"), ("ttl", "4")]
        fields.append(("auth", "2 0"))
        fmt = "classic" if node == "node3" else "netstring"
        msg = heartbeat.Message.build(fields, wire_format=fmt)
        payload = heartbeat.encode(msg, KEYS)
        dst = "198.18.0.255"
        return HB_ADDR[node], dst, self.hb_port[node], 694, payload

    def _totem_message(self, i: int) -> totem.Message:
        sender = 1 + (i // 2) % 3
        if i % 2 == 0:
            self.token_seq += 1
            rtr = []
            if i % 97 == 0:
                rtr = [totem.RtrItem(ring_id=self.ring, seq=self.mcast_seq - 1)]
            return totem.Message("orf_token", nodeid=sender, target_nodeid=0, seq=self.token_seq,
                                 token_seq=self.mcast_seq, aru=self.mcast_seq, aru_addr=sender,
                                 ring_id=self.ring, backlog=0, fcc=1, rtr_list=rtr)
        if i % 50 == 1:
            return totem.Message("memb_merge_detect", nodeid=1, system_from=1, ring_id=self.ring)
        self.mcast_seq += 1
        return totem.Message("mcast", nodeid=sender, system_from=sender, seq=self.mcast_seq,
                             this_seqno=self.mcast_seq // 3, ring_id=self.ring, node_id=sender,
                             guarantee=0, payload=bytes(48 + (i % 5) * 16))

    def totem(self, i: int) -> tuple[str, str, int, int, bytes]:
        msg = self._totem_message(i)
        sender = int(msg.nodeid)
        dst = TOTEM_ADDR[sender % 3 + 1]
        sport = 5405 if msg.type_name == "orf_token" else 41000 + sender
        return TOTEM_ADDR[sender], dst, sport, 5405, totem.encode(msg)

    def knet(self, i: int) -> tuple[str, str, int, int, bytes]:
        node = 1 + i % 3
        self.knet_seq[node] = (self.knet_seq[node] + 1) & 0xFFFF
        if i % 10 == 3:
            packet = knet.Packet("ping", node=node, link=0, time=bytes(16),
                                 seq_num=self.knet_seq[node], timed=1)
        elif i % 10 == 4:
            packet = knet.Packet("pong", node=node, link=0, time=bytes(16),
                                 seq_num=self.knet_seq[node], timed=1)
        else:
            packet = knet.Packet("data", node=node, seq_num=self.knet_seq[node],
                                 totem=self._totem_message(i))
        return KNET_ADDR[node], KNET_ADDR[node % 3 + 1], 5405, 5405, knet.encode(packet)


def build_capture(path: Path, packets: int, slices: tuple[int, ...]) -> dict[int, Path]:
    """Write the capture (and its first-N-packet slices) as little-endian microsecond pcap."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cluster = Cluster()
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    slice_paths = {n: path.with_name(f"{path.stem}-{n}.pcap") for n in slices if n < packets}
    outs = {n: open(p, "wb") for n, p in slice_paths.items()}  # noqa: SIM115
    main = open(path.with_suffix(".tmp"), "wb")  # noqa: SIM115
    for f in (main, *outs.values()):
        f.write(header)
    buf: list[bytes] = []
    written = 0
    t0 = time.perf_counter()
    for i in range(packets):
        now = START + i * 0.0005
        pick = i % 20
        if pick < 9:
            src, dst, sport, dport, payload = cluster.heartbeat(i, now)
        elif pick < 17:
            src, dst, sport, dport, payload = cluster.totem(i)
        else:
            src, dst, sport, dport, payload = cluster.knet(i)
        frame = _frame(src, dst, sport, dport, payload, i)
        sec = int(now)
        usec = int(round((now - sec) * 1e6))
        buf.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
        if len(buf) >= 10_000 or i == packets - 1:
            blob = b"".join(buf)
            main.write(blob)
            for n, f in outs.items():
                if written < n:
                    f.write(b"".join(buf[: n - written]))
            written += len(buf)
            buf = []
            if i % 100_000 < 10_000:
                rate = written / (time.perf_counter() - t0)
                print(f"  built {written:,} packets ({rate:,.0f}/s)", file=sys.stderr)
    for f in (main, *outs.values()):
        f.close()
    path.with_suffix(".tmp").rename(path)
    return {**slice_paths, packets: path}


def capture_for(packets: int, slices: tuple[int, ...]) -> dict[int, Path]:
    path = OUT / f"bench-{packets}.pcap"
    wanted = {n: path.with_name(f"{path.stem}-{n}.pcap") for n in slices if n < packets}
    wanted[packets] = path
    if all(p.exists() for p in wanted.values()):
        return wanted
    print(f"building {path} ({packets:,} packets) with the hbtools encoders...", file=sys.stderr)
    return build_capture(path, packets, slices)


# -- measuring -----------------------------------------------------------------------------


#: A small launcher: the measured command is forked from it, not from this process, so
#: its peak RSS does not start from this (large, scapy-loaded) interpreter's size.
_LAUNCHER = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[1], sys.argv[1:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "sys.stderr.write(f'\\nMAXRSS {usage.ru_maxrss}\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_measured(argv: list[str]) -> tuple[float, int, int]:
    """Run one command to /dev/null; wall seconds, peak RSS (KiB) and exit status."""
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *argv], stdout=devnull,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, check=False)
    elapsed = time.perf_counter() - t0
    err = proc.stderr.decode(errors="replace")
    rss = 0
    for line in err.splitlines():
        if line.startswith("MAXRSS "):
            rss = int(line.split()[1])
    if proc.returncode != 0:
        print(f"  {' '.join(argv[:4])}... exited {proc.returncode}: {err[-300:]}",
              file=sys.stderr)
    return elapsed, rss, proc.returncode


def hbtool_argv() -> list[str]:
    local = Path(sys.executable).with_name("hbtool")
    if local.exists():
        return [str(local)]
    found = shutil.which("hbtool")
    if found:
        return [found]
    return [sys.executable, "-c",
            "import sys; sys.argv[0] = 'hbtool'; from hbtools.cli import main; main()"]


TSHARK_FIELDS = ["-T", "fields", "-e", "frame.number", "-e", "frame.time_epoch", "-e", "ip.src",
                 "-e", "ip.dst", "-e", "udp.srcport", "-e", "udp.dstport"]


def scapy_rate(path: Path, limit: int) -> tuple[float, int]:
    from scapy.all import UDP, PcapReader

    t0 = time.perf_counter()
    n = 0
    with PcapReader(str(path)) as reader:
        for pkt in reader:
            if UDP in pkt:
                _ = pkt[UDP].dport
            n += 1
            if n >= limit:
                break
    return n / (time.perf_counter() - t0), n


def pyshark_rate(path: Path, limit: int) -> tuple[float, int]:
    import pyshark

    t0 = time.perf_counter()
    n = 0
    capture = pyshark.FileCapture(str(path), keep_packets=False)
    try:
        for pkt in capture:
            _ = pkt.udp.dstport
            n += 1
            if n >= limit:
                break
    finally:
        capture.close()
    return n / (time.perf_counter() - t0), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--scapy-packets", type=int, default=100_000,
                        help="scapy reads this many packets (rate scaled)")
    parser.add_argument("--pyshark-packets", type=int, default=3_000,
                        help="pyshark reads this many packets (rate scaled)")
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs per tool")
    parser.add_argument("--quick", action="store_true", help="skip scapy and pyshark")
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()

    slices = (10_000, 100_000)
    files = capture_for(args.packets, slices)
    big = files[args.packets]
    size_mb = big.stat().st_size / 1e6
    packets = args.packets
    hbtool = hbtool_argv()
    rows: list[list[str]] = []
    figures: dict[str, float] = {}

    def timed(label: str, argv: list[str], note: str = "") -> None:
        best = None
        for _ in range(args.repeat):
            elapsed, rss, code = run_measured(argv)
            if code == 0 and (best is None or elapsed < best[0]):
                best = (elapsed, rss)
        if best is None:
            rows.append([label, "failed", "", "", "", note])
            return
        rate = packets / best[0]
        figures[label] = rate
        rows.append([label, f"{best[0]:.2f}", f"{rate:,.0f}", "", f"{best[1] / 1024:,.0f}", note])
        print(f"  {label}: {best[0]:.2f} s, {rate:,.0f} packets/s", file=sys.stderr)

    load_before = _load()
    print(f"timing on {big} ({packets:,} packets, {size_mb:.0f} MB), load {load_before}",
          file=sys.stderr)
    timed("hbtool decode --format json", [*hbtool, "decode", "--format", "json", str(big)],
          f"every field of every message; {_workers()} worker processes")
    timed("hbtool decode --format json -j 1", [*hbtool, "decode", "--format", "json", "-j", "1",
                                               str(big)], "one process")
    timed("hbtool decode --format json --codec-only",
          [*hbtool, "decode", "--format", "json", "--codec-only", str(big)],
          "codec objects only, no fast paths")
    tshark = shutil.which("tshark")
    if tshark:
        timed("tshark -T fields (no plugin)", [tshark, "-n", "-r", str(big), *TSHARK_FIELDS],
              "UDP fields only")
        timed("tshark summary (no plugin)", [tshark, "-n", "-r", str(big)],
              "one summary line per packet")
        if LUA.exists():
            lua = ["-X", f"lua_script:{LUA}"]
            timed("tshark -T fields + hbtools.lua", [tshark, "-n", *lua, "-r", str(big),
                                                     *TSHARK_FIELDS], "plugin dissects")
            timed("tshark summary + hbtools.lua", [tshark, "-n", *lua, "-r", str(big)],
                  "plugin dissects")
        else:
            rows.append(["tshark + hbtools.lua", "skipped", "", "", "", "wireshark/hbtools.lua "
                                                                        "absent"])
    else:
        rows.append(["tshark", "skipped", "", "", "", "tshark not installed"])
    if not args.quick:
        limit = min(args.scapy_packets, packets)
        rate, n = scapy_rate(big, limit)
        figures["scapy PcapReader"] = rate
        rows.append(["scapy PcapReader", "", f"{rate:,.0f}", "", "",
                     f"first {n:,} packets, rate scaled"])
        print(f"  scapy: {rate:,.0f} packets/s", file=sys.stderr)
        try:
            rate, n = pyshark_rate(big, min(args.pyshark_packets, packets))
        except Exception as exc:  # pyshark needs tshark; report, do not crash the run
            rows.append(["pyshark FileCapture", "failed", "", "", "", str(exc)[:60]])
        else:
            figures["pyshark FileCapture"] = rate
            rows.append(["pyshark FileCapture", "", f"{rate:,.0f}", "", "",
                         f"first {n:,} packets, rate scaled"])
            print(f"  pyshark: {rate:,.0f} packets/s", file=sys.stderr)

    hb_rate = figures.get("hbtool decode --format json")
    floor_labels = [k for k in ("tshark -T fields (no plugin)", "tshark summary (no plugin)")
                    if k in figures]
    floor = max((figures[k] for k in floor_labels), default=None)
    for row in rows:
        rate = figures.get(row[0])
        if rate and hb_rate:
            row[3] = f"{hb_rate / rate:.2f}x"

    rss_rows = []
    for n, path in sorted(files.items()):
        # one process: its peak RSS is unambiguous (with workers, wait4 reports the
        # largest process of the tree, which fork makes share most of its pages)
        elapsed, rss, _code = run_measured([*hbtool, "decode", "--format", "json", "-j", "1",
                                            str(path)])
        _e2, rss_pool, _c2 = run_measured([*hbtool, "decode", "--format", "json", str(path)])
        rss_rows.append([f"{n:,}", f"{elapsed:.2f}", f"{n / elapsed:,.0f}", f"{rss / 1024:,.1f}",
                         f"{rss_pool / 1024:,.1f}"])

    table = tabulate(rows, headers=["tool", "seconds", "packets/s", "hbtool is", "peak RSS MiB",
                                    "note"], tablefmt="github", disable_numparse=True)
    rss_table = tabulate(rss_rows, headers=["packets", "seconds (-j 1)", "packets/s (-j 1)",
                                            "peak RSS MiB (-j 1)",
                                            "largest process MiB (workers)"],
                         tablefmt="github", disable_numparse=True)
    verdict = ""
    if hb_rate and floor:
        parts = [f"{hb_rate / figures[k]:.2f}x `{k}`" for k in floor_labels]
        verdict = (f"hbtool vs tshark without plugin: {', '.join(parts)} "
                   f"(target: 2x the faster, here {hb_rate / floor:.2f}x). Load average "
                   f"{load_before} before the runs, {_load()} after (shared machine).")
    print()
    print(table)
    print()
    print(rss_table)
    print()
    print(verdict)
    if not args.no_write:
        RESULTS.write_text(
            "# Benchmark results\n\n"
            f"`python benchmarks/run.py --packets {packets}` on {dt.date.today()}, "
            f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
            f", {_tshark_version()}.\n\n"
            f"Capture: {packets:,} packets ({size_mb:.0f} MB) built with the hbtools encoders: "
            "45% Heartbeat (netstring with both signatures, and classic), 40% Totem over "
            "udpu, 15% kronosnet (data carrying Totem, pings, pongs). Every tool reads the "
            "same file and writes to /dev/null; wall-clock time, peak RSS of the process.\n\n"
            f"{table}\n\n{verdict}\n\n"
            "`hbtool is` = hbtool's packets/s divided by that row's. tshark has no dissector "
            "for these protocols, so without the plugin it stops at UDP: that is its floor. "
            "`--codec-only` decodes every packet through the codecs' object models "
            "(`heartbeat.decode(...).to_json_fields()`, `totem.decode(...).to_dict()`), "
            "which the fast paths are tested to match byte for byte.\n\n"
            "## hbtool memory by capture size\n\n"
            f"{rss_table}\n"
        )
        print(f"\nwrote {RESULTS.relative_to(ROOT)}")


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _workers() -> int:
    from hbtools.dissectors.hotpath import default_jobs

    return default_jobs()


def _tshark_version() -> str:
    try:
        out = subprocess.run(["tshark", "--version"], capture_output=True, text=True,
                             check=False).stdout
    except OSError:
        return "no tshark"
    return out.splitlines()[0] if out else "tshark ?"


if __name__ == "__main__":
    main()
