"""Every Heartbeat packet of every committed real capture: byte-exact and authentic.

The captures were recorded from real Heartbeat 3.0.6 nodes (captures/record.py); the
packets are read with scapy, independently of the project's own dissector.
"""

from __future__ import annotations

import random
from functools import cache
from pathlib import Path

import pytest

from hbtools import heartbeat
from hbtools.auth import AuthKeys

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
HEARTBEAT_CAPTURES = sorted(p.parent for p in CAPTURES.glob("hb-*/capture.pcap"))


@cache
def heartbeat_payloads(folder: Path) -> tuple[bytes, ...]:
    from scapy.all import defragment  # noqa: I001 (scapy's own re-export)
    from scapy.layers.inet import IP, UDP
    from scapy.utils import PcapReader

    with PcapReader(str(folder / "capture.pcap")) as reader:
        packets = defragment(list(reader))
    payloads = []
    for packet in packets:
        if IP in packet and UDP in packet and 694 in (packet[UDP].sport, packet[UDP].dport):
            payloads.append(bytes(packet[UDP].payload))
    return tuple(payloads)


def load_keys(folder: Path) -> AuthKeys:
    return AuthKeys.parse((folder / "authkeys").read_text(), source=str(folder / "authkeys"))


def test_there_are_real_captures():
    assert len(HEARTBEAT_CAPTURES) >= 5, "captures/ should hold the recorded Heartbeat clusters"


@pytest.mark.parametrize("folder", HEARTBEAT_CAPTURES, ids=lambda p: p.name)
def test_every_packet_round_trips_and_verifies(folder):
    keys = load_keys(folder)
    payloads = heartbeat_payloads(folder)
    assert payloads, "no Heartbeat packets in the capture"
    for index, wire in enumerate(payloads):
        msg = heartbeat.decode(wire)
        assert heartbeat.encode(msg) == wire, f"packet {index} does not round-trip"
        assert keys.verify(wire), f"packet {index} ({msg.type}) does not verify"
        # Re-signing with the same keys must reproduce the very same bytes.
        assert heartbeat.encode(msg, keys) == wire, f"packet {index} re-signs differently"


def test_crc_digests_are_unpadded_hex_as_on_the_wire():
    """Heartbeat prints a crc with %lx: a CRC below 0x10000000 goes out with 7 digits."""
    folder = CAPTURES / "hb-bcast-crc"
    keys = load_keys(folder)
    assert keys.active_key.method == "crc"
    messages = [(wire, heartbeat.decode(wire)) for wire in heartbeat_payloads(folder)]
    short = [(wire, msg) for wire, msg in messages
             if any(len(signature.split()[1]) < 8 for signature in (msg["auth"], msg.trailer))]
    assert short, "the crc capture should hold a digest under 0x10000000 (frames 5, 21, 75)"
    for wire, msg in short:
        assert heartbeat.encode(msg, keys) == wire


@pytest.mark.parametrize("folder", HEARTBEAT_CAPTURES, ids=lambda p: p.name)
def test_any_flipped_byte_of_the_signed_region_fails(folder):
    keys = load_keys(folder)
    payloads = heartbeat_payloads(folder)
    rng = random.Random(694)
    # Every byte of every packet's signed region, with one bit flipped (chosen at random).
    for index, wire in enumerate(payloads):
        msg = heartbeat.decode(wire)
        region = heartbeat.trailer_signed_region(wire, msg) or wire
        for position in range(len(region)):
            flipped = bytearray(wire)
            flipped[position] ^= 1 << rng.randrange(8)
            assert not keys.verify(bytes(flipped)), (index, position)
