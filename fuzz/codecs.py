"""Coverage-guided fuzzing of the three codecs with atheris (libFuzzer).

The property tests (hypothesis) explore structured inputs; this explores whatever byte
strings make the decoders take new branches. The contract checked is the codecs'
documented one: decode raises only its own DecodeError, and anything that decodes
encodes back to exactly the same bytes.

    python fuzz/codecs.py [libFuzzer flags, e.g. -runs=200000 -seed=1]

Seeds are the payloads of the committed real captures (read with scapy).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from hbtools import heartbeat, knet, totem
    from hbtools.auth import AuthKeys

KEYS = AuthKeys.parse("auth 1\n1 crc\n")


def check_heartbeat(data: bytes) -> None:
    try:
        msg = heartbeat.decode(data)
    except heartbeat.DecodeError:
        return
    assert heartbeat.encode(msg) == data, "heartbeat round trip differs"
    try:
        msg.to_json_fields()
        KEYS.check_message(msg, data)
    except heartbeat.DecodeError:
        pass


def check_totem(data: bytes) -> None:
    try:
        msg = totem.decode(data)
    except totem.DecodeError:
        return
    assert totem.encode(msg) == data, "totem round trip differs"
    msg.to_dict()


def check_knet(data: bytes) -> None:
    try:
        packet = knet.decode(data)
    except knet.DecodeError:
        return
    assert knet.encode(packet) == data, "knet round trip differs"
    packet.to_dict()


TARGETS = (check_heartbeat, check_totem, check_knet)


def one_input(data: bytes) -> None:
    if not data:
        return
    # The first byte picks the codec so one corpus serves all three.
    TARGETS[data[0] % len(TARGETS)](data[1:])


def seed_corpus(folder: Path) -> None:
    from scapy.layers.inet import UDP
    from scapy.utils import PcapReader

    captures = Path(__file__).resolve().parent.parent / "captures"
    count = 0
    for pcap in sorted(captures.glob("*/capture.pcap")):
        selector = 0 if pcap.parent.name.startswith("hb-") else 1
        if "knet" in pcap.parent.name:
            selector = 2
        with PcapReader(str(pcap)) as reader:
            for index, packet in enumerate(reader):
                if index >= 40 or UDP not in packet:
                    continue
                payload = bytes(packet[UDP].payload)
                (folder / f"seed{count:05d}").write_bytes(bytes([selector]) + payload)
                count += 1


def main() -> None:
    corpus = Path(tempfile.mkdtemp(prefix="hbtools-fuzz-"))
    seed_corpus(corpus)
    atheris.Setup([sys.argv[0], *sys.argv[1:], str(corpus)], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
