"""scapy layers (hbtools.scapy) next to the codecs: parse and build time per 10,000 datagrams.

    python3 benchmarks/scapy_speed.py          # ~1-2 min; writes benchmarks/RESULTS-scapy.md

The datagrams are the real ones of the committed captures (UDP payloads, per protocol: every
Heartbeat capture, the clear Totem udp/udpu captures, the clear knet captures), cycled to
``--count`` per protocol. Per protocol and direction the best of ``--repeat`` runs is kept:
- codec parse: ``heartbeat.decode`` / ``totem.decode`` / ``knet.decode`` (knet includes the inner
  Totem decode the codec does for data packets);
- scapy parse: ``HB(raw)`` / ``Totem(raw)`` / ``Knet(raw)`` (knet dissects the inner Totem layer);
- codec build: ``encode`` of the decoded message;
- scapy build: ``bytes()`` of a dissected layer after ``clear_cache()`` (a real rebuild from
  the fields, as the round-trip test does).
Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hbtools.dissectors.detect import HEARTBEAT, KNET, TOTEM  # noqa: E402
from hbtools.dissectors.pipeline import Options, decode_stream  # noqa: E402

from hbtools import heartbeat, knet, totem  # noqa: E402


def payloads() -> dict[str, list[bytes]]:
    """Every cleartext cluster datagram of the committed captures, by protocol."""
    from scapy.layers.inet import UDP
    from scapy.utils import rdpcap

    out: dict[str, list[bytes]] = {HEARTBEAT: [], TOTEM: [], KNET: []}
    for pcap in sorted((ROOT / "captures").glob("*/capture.pcap")):
        with open(pcap, "rb") as stream:
            protos = {r.frame: r.proto for r in decode_stream(stream, str(pcap), Options())
                      if r.error is None and r.type != "encrypted"}
        for number, frame in enumerate(rdpcap(str(pcap)), start=1):
            proto = protos.get(number)
            if proto is not None:
                out[proto].append(bytes(frame[UDP].payload))
    return out


def best(fn: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=10_000, help="datagrams per protocol and run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS-scapy.md"))
    args = ap.parse_args()
    from scapy.packet import Packet

    from hbtools.scapy import HB, Knet, Totem

    codecs = {HEARTBEAT: (heartbeat.decode, heartbeat.encode),
              TOTEM: (totem.decode, totem.encode),
              KNET: (knet.decode, knet.encode)}
    layers: dict[str, type[Packet]] = {HEARTBEAT: HB, TOTEM: Totem, KNET: Knet}
    rows = []
    for proto, pool in payloads().items():
        data = [pool[i % len(pool)] for i in range(args.count)]
        decode, encode = codecs[proto]
        layer = layers[proto]
        decoded = [decode(d) for d in data]
        dissected = [layer(d) for d in data]
        assert all(bytes(p) == d for p, d in zip(dissected, data, strict=True))

        def scapy_build(pkts: list[Packet] = dissected) -> None:
            for p in pkts:
                p.clear_cache()
                bytes(p)

        figures = {
            "codec parse": best(lambda data=data, decode=decode: [decode(d) for d in data],
                                args.repeat),
            "scapy parse": best(lambda data=data, layer=layer: [layer(d) for d in data],
                                args.repeat),
            "codec build": best(lambda decoded=decoded, encode=encode: [encode(m) for m in decoded],
                                args.repeat),
            "scapy build": best(scapy_build, args.repeat),
        }
        scale = 10_000 / args.count
        rows.append((proto, len(pool), {k: v * scale for k, v in figures.items()}))
        print(proto, {k: round(v * scale, 3) for k, v in figures.items()}, flush=True)

    lines = [
        "# scapy layers next to the codecs",
        "",
        f"`python3 benchmarks/scapy_speed.py --count {args.count} --repeat {args.repeat}` on "
        f"{platform.machine()} Python {platform.python_version()}, best of {args.repeat}; seconds "
        "per 10,000 datagrams (the captures' own datagrams, cycled). The machine is shared with "
        "other work: treat the figures as indicative.",
        "",
        "| protocol | distinct datagrams | codec parse s | scapy parse s | scapy/codec | "
        "codec build s | scapy build s | scapy/codec |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for proto, distinct, f in rows:
        lines.append(
            f"| {proto} | {distinct} | {f['codec parse']:.3f} | {f['scapy parse']:.3f} | "
            f"{f['scapy parse'] / f['codec parse']:.1f}x | {f['codec build']:.3f} | "
            f"{f['scapy build']:.3f} | {f['scapy build'] / f['codec build']:.1f}x |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
