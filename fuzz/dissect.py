"""Coverage-guided fuzzing of the dissector (``hbtool decode``) with atheris.

Two shapes of input, picked by the first byte: arbitrary capture-file bytes (pcap and pcapng
readers, link layers, IP reassembly, then the decoders), or one datagram payload that is put
in a valid pcap here (Ethernet/IPv4/UDP to a Heartbeat, Totem or knet port), so the fuzzer
spends its time in the decoders. The contract (issues 12 and 4): reading raises only
`CaptureError`; every row is written by the JSON and CSV writers as valid UTF-8 (no lone
surrogate) with no raw control character from the wire; the statistics take every row.

    python fuzz/dissect.py [libFuzzer flags, e.g. -runs=500000 -seed=1]

Seeds: the first frames of each committed capture (captures/*), as capture bytes and as
single datagrams.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import atheris
from seeds import CAPTURES, run, udp_payloads

with atheris.instrument_imports():
    from hbtools.dissectors import pipeline
    from hbtools.dissectors.capture import CaptureError
    from hbtools.dissectors.output import CsvWriter, JsonWriter
    from hbtools.dissectors.pipeline import Options, decode_stream
    from hbtools.dissectors.stats import Stats

    from hbtools.auth import AuthKeys

KEYS = AuthKeys.parse("auth 1\n1 crc\n")
OPTIONS = (Options(), Options(keys=KEYS), Options(fast=False))
PORTS = (694, 5405, 5404, 5406)
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # Ethernet
CONTROL = {chr(c) for c in range(0x20) if c != 0x0A} | {"\x7f"}

# The decoders are built once per options, not per input (compiling the struct layouts costs
# 0.2 s): like one long capture, their caches carry from input to input.
_BUILT: dict[int, object] = {}
_make = pipeline._make_decoders


def _decoders_once(options: Options) -> object:
    if id(options) not in _BUILT:
        _BUILT[id(options)] = _make(options)
    return _BUILT[id(options)]


pipeline._make_decoders = _decoders_once


def as_pcap(payload: bytes, dport: int) -> bytes:
    """One Ethernet/IPv4/UDP frame carrying ``payload``, in a pcap file (lengths right)."""
    udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 7, 0, 64, 17, 0,
                     bytes([198, 18, 0, 1]), bytes([198, 18, 0, 255])) + udp
    frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip
    return PCAP_HEADER + struct.pack("<IIII", 1_700_000_000, 0, len(frame), len(frame)) + frame


def check(data: bytes) -> None:
    if not data:
        return
    choice, rest = data[0], data[1:]
    if choice & 1:
        rest = as_pcap(rest[:65000], PORTS[(choice >> 1) % len(PORTS)])
    options = OPTIONS[(choice >> 3) % len(OPTIONS)]
    records = []
    try:
        for record in decode_stream(io.BytesIO(rest), "fuzz", options):
            records.append(record)
            if len(records) > 10_000:
                break
    except CaptureError:
        pass
    if not records:
        return
    stats = Stats()
    for record in records:
        stats.add(record)
    stats.to_dict()
    for writer_class in (JsonWriter, CsvWriter):
        out = io.StringIO()
        writer_class(out).write(records)
        text = out.getvalue()
        text.encode("utf-8")  # raises on a lone surrogate
        if writer_class is CsvWriter:
            assert not CONTROL & set(text), "a control character from the wire in CSV"


def seed_corpus(folder: Path) -> None:
    count = 0
    for pcap in sorted(CAPTURES.glob("*/capture.pcap")):
        (folder / f"seed{count:05d}").write_bytes(b"\x00" + pcap.read_bytes()[:1500])
        count += 1
    for pcap, _, payload in udp_payloads(20):
        port = 0 if pcap.parent.name.startswith("hb-") else 1
        (folder / f"seed{count:05d}").write_bytes(bytes([1 | port << 1]) + payload)
        count += 1


if __name__ == "__main__":
    run("hbtools-fuzz-dissect-", seed_corpus, check)
