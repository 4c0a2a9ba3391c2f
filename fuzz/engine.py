"""Coverage-guided fuzzing of the fault proxy's `Engine.receive` (and `tick`) with atheris.

The contract is issue 12's for the proxy: nothing a peer sends may raise out of the engine,
every verdict is for the packet asked about, every rebuilt datagram is a well-formed IPv4/UDP
datagram, and what the engine holds stays bounded. The first byte of an input picks the
engine (rule set), the direction and whether the rest is a UDP payload (wrapped in IPv4/UDP
to a cluster port here) or a whole IP datagram. The engines live across inputs, with a clock
that moves on, so held packets are released and rate limits refill.

    python fuzz/engine.py [libFuzzer flags, e.g. -runs=500000 -seed=1]

Seeds are the UDP payloads of the committed real captures (captures/*).
"""

from __future__ import annotations

import struct
from pathlib import Path

import atheris
from seeds import run, udp_payloads

with atheris.instrument_imports():
    from hbtools.faults import packet as ipv4
    from hbtools.faults.engine import Copy, Engine, Verdict
    from hbtools.faults.rules import parse_rule

    from hbtools.auth import AuthKeys

KEYS = AuthKeys.parse("auth 1\n1 sha1 fuzz\n")
NODES = {"node1": "198.18.0.1", "node2": "198.18.0.2", "node3": "198.18.0.3"}
RULE_SETS = (
    # the README's own rewrite example, relative rewrites of every numeric kind, resigned
    ["rewrite st:=dead seq:=+5 sign=resign src=node2", "rewrite hg:=-1 ttl:=+1 ts:=+3"],
    ["rewrite seq:=+1 sign=stale", "corrupt bits=3 bytes=2", "rewrite field.x:=y"],
    ["drop t=NS_ackmsg", "delay 10ms jitter=5ms dist=normal", "duplicate 2 out",
     "reorder window=3 timeout=20ms"],
    ["ratelimit 50/s burst=3 t=status", "partition node1<>node2", "isolate node3"],
    ["drop proto=totem totem.type=orf_token", "corrupt bytes=1 proto=knet knet.node=1,2",
     "delay 5ms type=mcast", "drop totem.nodeid=2"],
)
ENGINES = [Engine([parse_rule(r, nodes=list(NODES)) for r in rules], seed=i, keys=KEYS,
                  nodes=NODES, local_addresses=["198.18.0.2"])
           for i, rules in enumerate(RULE_SETS)]
MAX_HELD = 64  # far above what these rules hold at the fuzzer's clock rate
PORTS = (694, 5405, 5404, 40000)


class Harness:
    def __init__(self) -> None:
        self.now = 0.0
        self.packet_id = 0

    def feed(self, data: bytes) -> None:
        if not data:
            return
        choice, rest = data[0], data[1:]
        engine = ENGINES[choice % len(ENGINES)]
        direction = "in" if choice & 0x08 else "out"
        if choice & 0x10:
            datagram = rest  # whole IP datagram: framing bugs too
        else:
            src = 1 + (choice >> 5) % 3
            datagram = udp_datagram(rest, f"198.18.0.{src}", PORTS[(choice >> 6) % len(PORTS)])
        self.packet_id += 1
        self.now += 0.004
        outputs = engine.receive(self.packet_id, datagram, direction, self.now)
        outputs += engine.tick(self.now)
        for out in outputs:
            if isinstance(out, Verdict):
                assert out.packet_id <= self.packet_id
                if out.payload is not None:
                    rebuilt = ipv4.parse(out.payload)
                    assert rebuilt.is_udp and not rebuilt.fragment, "rebuilt datagram malformed"
                    assert ipv4.checksum(out.payload[:rebuilt.header_len]) == 0, "IP checksum"
            else:
                assert isinstance(out, Copy)
        assert engine.held <= MAX_HELD, "the engine holds more and more packets"


def udp_datagram(payload: bytes, src: str, dport: int) -> bytes:
    """IPv4 + UDP around ``payload`` (checksums as the kernel hands them: valid)."""
    header = bytearray(b"\x45\x00\x00\x00\x00\x07\x40\x00\x40\x11\x00\x00")
    header += bytes(map(int, src.split("."))) + bytes([198, 18, 0, 255])
    bare = ipv4.Datagram(bytes(header) + struct.pack("!HHHH", 694, dport, 8, 0), 20, src,
                         "198.18.0.255", 17, False, 694, dport, b"")
    return ipv4.with_payload(bare, payload[:65000])


HARNESS = Harness()


def one_input(data: bytes) -> None:
    HARNESS.feed(data)


def seed_corpus(folder: Path) -> None:
    count = 0
    for pcap, index, payload in udp_payloads(30):
        for choice in range(len(RULE_SETS)):
            selector = choice | (0x08 if index % 2 else 0) | (0x40 if "hb" not in
                                                              pcap.parent.name else 0)
            (folder / f"seed{count:05d}").write_bytes(bytes([selector]) + payload)
            count += 1


if __name__ == "__main__":
    run("hbtools-fuzz-engine-", seed_corpus, one_input)
