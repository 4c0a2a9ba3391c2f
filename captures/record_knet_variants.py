#!/usr/bin/env python3
"""Record tiny real Corosync 3.1.7 captures of every knet crypto and compression variant.

One folder per variant under ``captures/knet-variants/``: every ``crypto_model`` (nss,
openssl) × ``crypto_cipher`` (aes128/192/256) × ``crypto_hash`` (md5, sha1, sha256, sha384,
sha512), hash-only (``crypto_cipher: none``), and every ``knet_compression_model`` libknet
here was built with (threshold 1: every packet compressed), clear and encrypted. Each holds
``capture.pcap`` (the first frames after the two nodes agree on the membership, then a
``corosync-cfgtool -R`` to make corosync multicast), the ``corosync.conf``, the lab-only
``authkey`` (each variant its own random key, so a test can check that no other key opens
it) and ``meta.json`` with corosync's own knet counters (``corosync-cmapctl -m stats
stats.knet``) as an independent view.

Usage (as root)::

    python captures/record_knet_variants.py --list
    python captures/record_knet_variants.py               # every variant (~4 minutes)
    python captures/record_knet_variants.py nss-aes256-sha256
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import recording  # noqa: E402  (captures/recording.py; puts the repo on sys.path)
from record_corosync import parse_cmap, parse_quorumtool  # noqa: E402
from recording import package_version, scratch_folder  # noqa: E402

from hbtools.lab import COROSYNC_LAB_SECTIONS, Lab, Node, wait_until  # noqa: E402

OUT = Path(__file__).resolve().parent / "knet-variants"
#: Frames kept per capture: enough for tokens, mcasts, pings and pongs, a few KB.
MAX_FRAMES = 48
CIPHERS = ("aes128", "aes192", "aes256")
HASHES = ("md5", "sha1", "sha256", "sha384", "sha512")
COMPRESSION = ("zlib", "lz4", "lz4hc", "lzo2", "lzma", "bzip2", "zstd")


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    model: str = "nss"
    cipher: str = "none"
    hash: str = "none"
    compression: str = "none"

    @property
    def crypto(self) -> bool:
        return self.cipher != "none" or self.hash != "none"


def _variants() -> dict[str, Variant]:
    out: list[Variant] = []
    for model in ("nss", "openssl"):
        for cipher in CIPHERS:
            for hash_name in HASHES:
                out.append(Variant(f"{model}-{cipher}-{hash_name}",
                                   f"crypto_model {model}, {cipher}/{hash_name}",
                                   model, cipher, hash_name))
    for hash_name in HASHES:
        out.append(Variant(f"openssl-none-{hash_name}",
                           f"crypto_model openssl, crypto_cipher none, hash {hash_name}",
                           "openssl", "none", hash_name))
    for comp in COMPRESSION:
        out.append(Variant(f"compress-{comp}", f"knet_compression_model {comp}, clear",
                           compression=comp))
    out.append(Variant("compress-zlib-aes256", "knet_compression_model zlib, aes256/sha256",
                       "nss", "aes256", "sha256", "zlib"))
    return {v.name: v for v in out}


VARIANTS = _variants()


def corosync_conf(v: Variant) -> str:
    compression = ""
    if v.compression != "none":
        compression = (f"    knet_compression_model: {v.compression}\n"
                       "    knet_compression_threshold: 1\n"
                       # bzip2 refuses corosync's default level 0 (BZ_PARAM_ERROR)
                       "    knet_compression_level: 1\n")
    nodes = "".join(
        "    node {\n"
        f"        name: node{i}\n"
        f"        nodeid: {i}\n"
        f"        ring0_addr: 198.18.0.{i}\n"
        "    }\n" for i in (1, 2))
    return (
        "# written by captures/record_knet_variants.py for a namespace lab\n"
        "totem {\n"
        "    version: 2\n"
        "    cluster_name: hbtools\n"
        "    transport: knet\n"
        "    token: 1000\n"
        f"    crypto_model: {v.model}\n"
        f"    crypto_cipher: {v.cipher}\n"
        f"    crypto_hash: {v.hash}\n"
        f"{compression}"
        "    interface {\n"
        "        linknumber: 0\n"
        "    }\n"
        "}\n"
        f"{COROSYNC_LAB_SECTIONS}"
        "nodelist {\n"
        f"{nodes}"
        "}\n"
    )


def _truncate(pcap: Path, frames: int) -> int:
    """Keep the first `frames` frames, whatever they hold (no decoding: no bias)."""
    from scapy.all import PcapReader, PcapWriter

    tmp = pcap.with_suffix(".tmp")
    kept = 0
    with PcapReader(str(pcap)) as reader, PcapWriter(str(tmp), sync=True) as writer:
        for pkt in reader:
            if kept == frames:
                break
            writer.write(pkt)
            kept += 1
    tmp.replace(pcap)
    return kept


def _members(node: Node) -> list[int]:
    res = node.run(["corosync-quorumtool", "-s"], check=False, timeout=10)
    members = parse_quorumtool(res.stdout).get("members")
    return members if isinstance(members, list) else []


def record(v: Variant, out_root: Path) -> Path:
    with scratch_folder(out_root, v.name) as tmp, Lab() as lab:
        events: list[dict[str, object]] = []
        nodes = [lab.add_corosync_node(f"node{i}", host=i) for i in (1, 2)]
        conf = corosync_conf(v)
        (tmp / "corosync.conf").write_text(conf)
        if v.crypto:
            (tmp / "authkey").write_bytes(os.urandom(256))  # lab-only, committed
        for node in nodes:
            etc = node.workdir / "etc-corosync"
            (etc / "corosync.conf").write_text(conf)
            if v.crypto:
                shutil.copyfile(tmp / "authkey", etc / "authkey")
                (etc / "authkey").chmod(0o400)
        for node in nodes:
            node.popen(["corosync", "-f"])
        wait_until(lambda: all(_members(n) == [1, 2] for n in nodes), timeout=30,
                   interval=0.25, what="both nodes to report members [1, 2]")
        capture = lab.capture(tmp / "capture.pcap", "udp")
        started = capture.started
        recording.log_event(events, started, "tcpdump listening; both nodes are members")
        time.sleep(0.5)
        nodes[0].run(["corosync-cfgtool", "-R"], check=False, timeout=10)
        recording.log_event(events, started, "corosync-cfgtool -R on node1")
        time.sleep(1.5)
        stats = {n.name: parse_cmap(n.run(["corosync-cmapctl", "-m", "stats", "stats.knet.handle"],
                                          check=False, timeout=10).stdout, "stats.knet.handle.")
                 for n in nodes}
        capture.stop()
        kept = _truncate(tmp / "capture.pcap", MAX_FRAMES)
        recording.log_event(events, started, f"tcpdump stopped; first {kept} frames kept")
        logs = {n.name: (n.workdir / "var-log-corosync" / "corosync.log").read_text(
            errors="replace") for n in nodes}
        meta = {
            "scenario": v.name,
            "description": v.description,
            "recorded_at": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(),
            "recorder": "captures/record_knet_variants.py (hbtools.lab namespace lab)",
            "software": {p: package_version(p) for p in ("corosync", "libknet1", "tcpdump")},
            "transport": "knet",
            "crypto": {"model": v.model, "cipher": v.cipher, "hash": v.hash},
            "compression": v.compression,
            "capture": {"file": "capture.pcap", "frames": kept,
                        "where": "tcpdump -i br0 -s 0 -U, filter 'udp', first frames kept",
                        "bytes": (tmp / "capture.pcap").stat().st_size},
            "config": {"corosync.conf": "corosync.conf",
                       **({"authkey": "authkey"} if v.crypto else {})},
            "nodes": [{"name": n.name, "nodeid": i, "address": n.address}
                      for i, n in enumerate(nodes, start=1)],
            "corosync_view": {"knet_stats": stats,
                              "log_errors": {name: [line for line in text.splitlines()
                                                    if "rror" in line][:20]
                                             for name, text in logs.items()}},
            "events": events,
            "summary": {"frames": kept},
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out_root / v.name


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--out" not in argv:
        argv += ["--out", str(OUT)]
    return recording.main("record_knet_variants.py", __doc__.split("\n\n")[0], VARIANTS,
                          record, lambda s: f"{s['frames']} frames", argv)


if __name__ == "__main__":
    sys.exit(main())
