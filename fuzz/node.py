"""Coverage-guided fuzzing of `Node.receive` (and the timers it sets) with atheris.

The contract is the daemon's rule from issue 12: nothing that arrives from the network raises
out of the core, and what the core keeps per sender stays bounded. The first byte of an input
picks how it is fed: as it is (an attacker without the key), or decoded and re-signed with the
cluster key first (a peer with the key, or a replayed real message), so the fuzzer reaches the
handling behind the signature check too. One node lives across inputs so state builds up; its
clock moves on and its timers run.

    python fuzz/node.py [libFuzzer flags, e.g. -runs=200000 -seed=1]

Seeds are the Heartbeat datagrams of the committed real captures (captures/hb-*).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from hbtools import heartbeat
    from hbtools.auth import AuthKeys
    from hbtools.node.config import ClusterConfig, parse_ha_cf, parse_haresources
    from hbtools.node.core import DROP_SOURCES, MAX_COUNTERS, Node

KEYS = AuthKeys.parse("auth 1\n1 crc\n")
HA = parse_ha_cf("keepalive 1\ndeadtime 5\nwarntime 3\ninitdead 10\nauto_failback on\n"
                 "bcast eth0\nnode node1 node2\nping 198.18.0.250\n")
CONFIG = ClusterConfig(HA, KEYS, parse_haresources("node1 IPaddr::198.18.0.100/24/eth0\n", HA.nodes))
ADDR = ("198.18.0.1", 694)


class Harness:
    def __init__(self) -> None:
        self.now = 1000.0
        self.node = self._fresh()

    def _fresh(self) -> Node:
        node = Node(CONFIG, "node2", uuid=b"\x02" * 16, generation=0x6B05FB98)
        node.start(self.now)
        return node

    def feed(self, data: bytes) -> None:
        if not data:
            return
        mode, payload = data[0] % 3, data[1:]
        if mode == 1:
            payload = resign(payload)
            if payload is None:
                return
        self.now += 0.013 * (data[0] >> 2)
        self.node.receive(payload, ADDR, self.now)
        if mode == 2:  # let the timers run: deaths, rexmit requests, summaries, restarts
            due = self.node.next_timer()
            if due is not None:
                self.now = max(self.now, due)
                self.node.tick(self.now)
        assert len(self.node.counters) <= MAX_COUNTERS + 1, "counters grow with the input"
        assert len(self.node.drops.counts) <= DROP_SOURCES, "drop log grows with the input"
        if self.node.next_timer() is None:  # stopped (a healed-partition restart): start again
            self.node = self._fresh()


def resign(payload: bytes) -> bytes | None:
    """The datagram decoded and encoded again with the cluster key (None: not a message)."""
    try:
        msg = heartbeat.decode(payload)
        return heartbeat.encode(msg, KEYS, inline_auth=msg.wire_format == "classic")
    except (heartbeat.DecodeError, heartbeat.EncodeError):
        return None


HARNESS = Harness()


def one_input(data: bytes) -> None:
    HARNESS.feed(data)


def seed_corpus(folder: Path) -> None:
    from scapy.layers.inet import UDP
    from scapy.utils import PcapReader

    captures = Path(__file__).resolve().parent.parent / "captures"
    count = 0
    for pcap in sorted(captures.glob("hb-*/capture.pcap")):
        with PcapReader(str(pcap)) as reader:
            for index, packet in enumerate(reader):
                if index >= 60 or UDP not in packet:
                    continue
                payload = bytes(packet[UDP].payload)
                for mode in (0, 1, 2):
                    (folder / f"seed{count:05d}").write_bytes(bytes([mode]) + payload)
                    count += 1


def main() -> None:
    corpus = Path(tempfile.mkdtemp(prefix="hbtools-fuzz-node-"))
    seed_corpus(corpus)
    atheris.Setup([sys.argv[0], *sys.argv[1:], str(corpus)], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
