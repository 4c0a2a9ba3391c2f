"""The runner's pure helpers: persisted identity, ARP frames, ICMP checksum, the event log.

ARP frames and the ICMP checksum are checked with scapy's own parsers (an independent
implementation); generation rules come from the notes (epoch seconds at first start, +1 per start).
"""

from __future__ import annotations

import io
import json
import struct

import pytest

from hbtools.node.core import Event
from hbtools.node.runner import EventLog, RunnerError, _icmp_checksum, arp_frames, load_identity

scapy_all = pytest.importorskip("scapy.all")


def test_generation_starts_at_epoch_seconds_and_counts_starts(tmp_path):
    uuid1, gen1 = load_identity(tmp_path / "state", 1795554200.7)
    uuid2, gen2 = load_identity(tmp_path / "state", 1795559999.0)
    uuid3, gen3 = load_identity(tmp_path / "state", 1795559999.0)
    assert (gen1, gen2, gen3) == (1795554200, 1795554201, 1795554202)
    assert uuid1 == uuid2 == uuid3 and len(uuid1) == 16
    assert (tmp_path / "state" / "hb_generation").read_text() == "1795554202\n"
    assert (tmp_path / "state" / "hb_uuid").read_bytes() == uuid1


def test_heartbeat_state_files_are_reused(tmp_path):
    # what /var/lib/heartbeat holds after a real 3.0.6 start: 16 raw bytes and decimal text
    (tmp_path / "hb_uuid").write_bytes(bytes.fromhex("dc80066b17db45ecad45fd8bc69cce24"))
    (tmp_path / "hb_generation").write_text("1795554200")
    uuid, gen = load_identity(tmp_path, 0)
    assert uuid.hex() == "dc80066b17db45ecad45fd8bc69cce24" and gen == 1795554201


def test_corrupt_generation_is_a_clear_error(tmp_path):
    (tmp_path / "hb_generation").write_text("twelve")
    with pytest.raises(RunnerError, match="hb_generation: not a generation number"):
        load_identity(tmp_path, 0)


def test_gratuitous_arp_frames():
    mac = bytes.fromhex("026862000002")
    reply, request = arp_frames(mac, "198.18.0.100")
    r, q = scapy_all.Ether(reply), scapy_all.Ether(request)
    for frame in (r, q):
        assert frame.dst == "ff:ff:ff:ff:ff:ff" and frame.src == "02:68:62:00:00:02"
        arp = frame[scapy_all.ARP]
        assert arp.psrc == arp.pdst == "198.18.0.100" and arp.hwsrc == "02:68:62:00:00:02"
        assert (arp.hwtype, arp.ptype, arp.hwlen, arp.plen) == (1, 0x0800, 6, 4)
    assert r[scapy_all.ARP].op == 2 and r[scapy_all.ARP].hwdst == "ff:ff:ff:ff:ff:ff"  # unsolicited reply
    assert q[scapy_all.ARP].op == 1 and q[scapy_all.ARP].hwdst == "00:00:00:00:00:00"  # request for itself


def test_icmp_checksum_matches_scapy():
    payload = b"hbtools-ping"
    header = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 7)
    ours = _icmp_checksum(header + payload)
    theirs = scapy_all.ICMP(bytes(scapy_all.ICMP(type=8, id=0x1234, seq=7) / payload)).chksum
    assert ours == theirs


def test_event_log_json_lines_and_human_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    err = io.StringIO()
    log = EventLog("node2", path, err, wall_offset=1_000_000.0)
    log.write(Event(12.5, "dead", "node node1: is dead", {"node": "node1", "silent_ms": 5000}))
    log.close()
    record = json.loads(path.read_text())
    assert record == {"mono": 12.5, "wall": 1000012.5, "daemon": "node2", "kind": "dead",
                      "text": "node node1: is dead", "node": "node1", "silent_ms": 5000}
    assert err.getvalue().endswith("hbtool daemon[node2]: node node1: is dead\n")
