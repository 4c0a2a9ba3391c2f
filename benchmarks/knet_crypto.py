"""Benchmark: ``hbtool decode`` on an encrypted knet capture vs the same traffic in clear.

    python benchmarks/knet_crypto.py                 # 1M packets each
    python benchmarks/knet_crypto.py --packets 100000 --packets 1000000   # memory vs size

Both captures repeat the knet packets of the real recording ``captures/pcmk-2node-crypto``
(aes256/sha256, 2 nodes, Pacemaker start-up): the encrypted one as captured, the clear one
with each packet replaced by its decrypted knet packet, so the two differ only by crypto.
Timed runs (wall clock, to /dev/null, JSON output):

* encrypted, ``--corosync-authkey``: every packet authenticated, decrypted and decoded
  down to Pacemaker (the codec path: the parallel JSON hot path is off with keys);
* clear, default: the JSON hot path (fast decoders, worker processes for non-mcast rows);
* clear, ``--filter proto=knet``: the same single-process codec path as the encrypted run,
  so the difference is the cost of crypto alone.

The captures are built in a fresh temporary directory (``--workdir`` to choose one), removed
at the end unless ``--keep``; at 1M packets each is about 230 MB. Peak RSS is the decoding
process tree's (``run.run_measured``); with several ``--packets`` sizes the table shows
whether memory grows with the input (it must not). Writes ``benchmarks/RESULTS-knet-crypto.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import struct
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import _frame, hbtool_argv, run_measured  # noqa: E402
from tabulate import tabulate  # noqa: E402

from hbtools import knetcrypto  # noqa: E402

SOURCE = ROOT / "captures" / "pcmk-2node-crypto"
RESULTS = ROOT / "benchmarks" / "RESULTS-knet-crypto.md"


def _datagrams() -> list[tuple[str, str, int, int, bytes]]:
    from scapy.all import IP, UDP, PcapReader

    out = []
    with PcapReader(str(SOURCE / "capture.pcap")) as reader:
        for pkt in reader:
            if UDP in pkt and IP in pkt and pkt[UDP].dport == 5405:
                out.append((pkt[IP].src, pkt[IP].dst, pkt[UDP].sport, pkt[UDP].dport,
                            bytes(pkt[UDP].payload)))
    return out


def build(packets: int, out_dir: Path) -> tuple[Path, Path]:
    """The encrypted and the clear capture of `packets` frames each, in `out_dir`."""
    enc, clear = out_dir / f"knet-crypto-{packets}.pcap", out_dir / f"knet-clear-{packets}.pcap"
    if enc.exists() and clear.exists():
        return enc, clear
    ring = knetcrypto.load_keys([str(SOURCE / "authkey")])
    source = _datagrams()
    plains = []
    for *_addr, payload in source:
        opened = ring.open(payload)
        assert opened is not None
        plains.append(opened.plain)
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for path, pick in ((enc, lambda i: source[i][4]), (clear, lambda i: plains[i])):
        with open(path, "wb") as out:
            out.write(header)
            t = 1_796_000_000.0
            for n in range(packets):
                i = n % len(source)
                src, dst, sport, dport, _payload = source[i]
                frame = _frame(src, dst, sport, dport, pick(i), n)
                t += 0.0002
                sec = int(t)
                out.write(struct.pack("<IIII", sec, int((t - sec) * 1e6), len(frame), len(frame)))
                out.write(frame)
    return enc, clear


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, action="append",
                        help="frames per capture (repeat for several sizes; default 1000000)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where to build the captures (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the built captures")
    args = parser.parse_args()
    sizes = args.packets or [1_000_000]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hbtools-knet-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    key = str(SOURCE / "authkey")
    hbtool = hbtool_argv()
    rows = []
    try:
        for packets in sizes:
            enc, clear = build(packets, work)
            runs = [
                ("encrypted, --corosync-authkey", [*hbtool, "decode", "-f", "json",
                                                   "--corosync-authkey", key, str(enc)]),
                ("clear, default (hot path)", [*hbtool, "decode", "-f", "json", str(clear)]),
                ("clear, --filter proto=knet (codec path)",
                 [*hbtool, "decode", "-f", "json", "--filter", "proto=knet", str(clear)]),
            ]
            for label, argv in runs:
                seconds, rss, status = run_measured(argv)
                rows.append([label, packets, f"{seconds:.1f}", f"{packets / seconds:,.0f}",
                             f"{rss / 1024:.0f}", status])
                print(label, rows[-1][1:], flush=True)
            if not args.keep:
                enc.unlink()
                clear.unlink()
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    table = tabulate(rows, headers=["run", "packets", "seconds", "packets/s", "peak MiB",
                                    "exit"], tablefmt="github", disable_numparse=True)
    command = " ".join(f"--packets {n}" for n in sizes)
    RESULTS.write_text(
        "# knet crypto: decode speed, encrypted vs clear\n\n"
        f"`python benchmarks/knet_crypto.py {command}` on "
        f"{platform.node() or 'this machine'} ({os.cpu_count()} CPUs, shared with other "
        f"work), {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. Source traffic: "
        f"`captures/pcmk-2node-crypto` (aes256/sha256) repeated.\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
