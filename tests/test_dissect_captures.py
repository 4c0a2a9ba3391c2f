"""Every committed capture decodes cleanly, and its values match an independent reading.

The independent reading is deliberately crude: a regular expression over the raw UDP
payload for Heartbeat's ``seq``/``src``/``t``, and ``struct`` at the offsets documented in
shared/PROTOCOL-NOTES.md for Totem (magic at 0, type at 3, nodeid at 5, ring id in the
body). The UDP payloads themselves are pulled out of the pcap by scapy, not by the
dissector. Variants of the same traffic (pcapng, nanosecond pcap, tcpdump's modified
pcap, raw IP via ``editcap``; Linux cooked v1/v2 and VLAN re-wrapped by scapy) must give
the same JSON.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from policy import CAPTURES
from scapy.all import IP, UDP, CookedLinux, CookedLinuxV2, Dot1Q, Ether, PcapWriter, rdpcap

from tests.dissect_vectors import SEQ_RE, SRC_RE, TYPE_RE, json_rows, regex_field, run_cli

CAPTURE_DIRS = sorted(p.parent for p in CAPTURES.glob("*/capture.pcap"))
HB_DIRS = [d for d in CAPTURE_DIRS if d.name.startswith("hb-")]
TOTEM_DIRS = [d for d in CAPTURE_DIRS if d.name.startswith("totem-")]

pytestmark = pytest.mark.skipif(not CAPTURE_DIRS, reason="no committed captures yet")

_TOTEM_TYPES = ("orf_token", "mcast", "memb_merge_detect", "memb_join", "memb_commit_token",
                "token_hold_cancel")


def _decode(path: Path, *extra: str) -> list[dict]:
    code, out, err = run_cli("decode", "-f", "json", str(path), *extra)
    assert code == 0, err
    return json_rows(out)


def _udp_payloads(path: Path, ports: set[int]) -> list[tuple[int, bytes]]:
    """(frame number, UDP payload) for datagrams to/from the ports, read by scapy.

    Only whole (unfragmented) datagrams: what the regex check needs.
    """
    out = []
    for number, pkt in enumerate(rdpcap(str(path)), start=1):
        if IP in pkt and UDP in pkt and not (pkt[IP].flags.MF or pkt[IP].frag):
            udp = pkt[UDP]
            if udp.sport in ports or udp.dport in ports:
                out.append((number, bytes(udp.payload)))
    return out


@pytest.mark.parametrize("capture", CAPTURE_DIRS, ids=lambda p: p.name)
def test_capture_decodes_without_errors(capture):
    rows = _decode(capture / "capture.pcap")
    assert rows, "a committed capture holds cluster traffic"
    errors = [(r["frame"], r["error"]) for r in rows if r["error"]]
    assert errors == []
    frames = [r["frame"] for r in rows]
    assert frames == sorted(frames)


@pytest.mark.parametrize("capture", HB_DIRS, ids=lambda p: p.name)
def test_heartbeat_values_match_a_regex_over_the_payload(capture):
    rows = {r["frame"]: r for r in _decode(capture / "capture.pcap")}
    payloads = _udp_payloads(capture / "capture.pcap", {694})
    assert payloads
    for frame, payload in payloads:
        row = rows[frame]
        assert row["proto"] == "heartbeat"
        assert row["type"] == regex_field(TYPE_RE, payload)
        assert row["node"] == regex_field(SRC_RE, payload)
        seq = regex_field(SEQ_RE, payload)
        if seq is None:
            assert "seq" not in row["fields"]
        else:
            assert row["fields"]["seq"] == int(seq, 16)
    assert len(rows) >= len(payloads)


@pytest.mark.parametrize("capture", HB_DIRS, ids=lambda p: p.name)
def test_heartbeat_signatures_verify_with_the_capture_authkeys(capture):
    keys = capture / "authkeys"
    rows = _decode(capture / "capture.pcap", "--authkeys", str(keys))
    assert rows and {r["auth"] for r in rows if r["proto"] == "heartbeat"} == {"ok"}


def test_a_wrong_key_shows_bad_signatures(tmp_path):
    capture = next(d for d in HB_DIRS if "md5" in d.name or "sha1" in d.name)
    text = (capture / "authkeys").read_text()
    wrong = tmp_path / "authkeys"
    method = "md5" if "md5" in capture.name else "sha1"
    number = [line.split()[1] for line in text.splitlines() if line.startswith("auth")][0]
    wrong.write_text(f"auth {number}\n{number} {method} not-the-key\n")
    wrong.chmod(0o600)
    rows = _decode(capture / "capture.pcap", "--authkeys", str(wrong))
    assert rows and {r["auth"] for r in rows} == {"bad"}


def _totem_offsets(payload: bytes) -> dict:
    """Header and ring id read with struct at the documented offsets (little endian)."""
    magic, version, kind, _enc, nodeid = struct.unpack_from("<HBBBI", payload, 0)
    out = {"magic": magic, "version": version, "type": _TOTEM_TYPES[kind], "nodeid": nodeid}
    ring_offset = {"orf_token": 13 + 16, "mcast": 13 + 12, "memb_merge_detect": 13 + 4,
                   "memb_commit_token": 13 + 4, "token_hold_cancel": 13}.get(out["type"])
    if ring_offset is not None:
        out["ring"] = struct.unpack_from("<IQ", payload, ring_offset)
    if out["type"] == "orf_token":
        out["token_seq"] = struct.unpack_from("<I", payload, 13 + 4)[0]
    return out


@pytest.mark.parametrize("capture", TOTEM_DIRS, ids=lambda p: p.name)
def test_totem_values_match_struct_at_documented_offsets(capture):
    rows = {r["frame"]: r for r in _decode(capture / "capture.pcap")}
    checked = 0
    for frame, payload in _udp_payloads(capture / "capture.pcap", {5404, 5405}):
        row = rows[frame]
        if row["proto"] == "knet":
            if row["type"] != "data" or "totem" not in row["fields"] or payload[11] != 1:
                continue  # not data, or a fragment (checked in the knet reassembly test)
            assert row["node"] == str(struct.unpack_from(">H", payload, 2)[0])  # node: text
            fields = row["fields"]["totem"]
            payload = payload[14:]
        else:
            assert row["proto"] == "totem"
            fields = row["fields"]
        expected = _totem_offsets(payload)
        assert expected["magic"] == 0xC070 and expected["version"] == 3
        assert fields["type_name"] == expected["type"]
        assert fields["nodeid"] == expected["nodeid"]
        if row["proto"] == "totem":
            assert row["type"] == expected["type"] and row["node"] == str(expected["nodeid"])
        if "ring" in expected:
            assert (fields["ring_id"]["rep"], fields["ring_id"]["seq"]) == expected["ring"]
        if "token_seq" in expected:
            assert fields["token_seq"] == expected["token_seq"]
        checked += 1
    if "crypto" not in capture.name:
        assert checked > 10


def test_encrypted_knet_is_shown_as_such():
    capture = next((d for d in TOTEM_DIRS if "crypto" in d.name), None)
    if capture is None:
        pytest.skip("no knet crypto capture")
    rows = _decode(capture / "capture.pcap")
    assert rows and {(r["proto"], r["type"]) for r in rows} == {("knet", "encrypted")}


# -- the same traffic in other containers ---------------------------------------------------


def _editcap(*args: str) -> None:
    if shutil.which("editcap") is None:
        pytest.skip("editcap (wireshark-common) not installed")
    subprocess.run(["editcap", *args], check=True, capture_output=True)


VARIANTS = {
    "pcapng": ["-F", "pcapng"],
    "nsecpcap": ["-F", "nsecpcap"],
    "modpcap": ["-F", "modpcap"],
    "rawip": ["-C", "14", "-T", "rawip"],
    "rawip-pcapng": ["-F", "pcapng", "-C", "14", "-T", "rawip4"],
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("capture", CAPTURE_DIRS, ids=lambda p: p.name)
def test_editcap_variants_give_identical_json(tmp_path, capture, variant):
    original = capture / "capture.pcap"
    converted = tmp_path / f"variant.{variant}"
    _editcap(*VARIANTS[variant], str(original), str(converted))
    expected = _decode(original)
    if "rawip" in variant:  # raw IP has no link layer, so no ARP frames
        expected = [r for r in expected if r["proto"] != "arp"]
    assert _decode(converted) == expected


def _rewrap(original: Path, out: Path, wrap) -> None:
    writer = PcapWriter(str(out), sync=True)
    for pkt in rdpcap(str(original)):
        new = wrap(pkt)
        new.time = pkt.time
        writer.write(new)
    writer.close()


WRAPS = {
    "linux-sll": lambda p: CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x02" * 6 + b"\0\0",
                                       proto=p[Ether].type) / p[Ether].payload,
    "linux-sll2": lambda p: CookedLinuxV2(proto=p[Ether].type, ifindex=2, lladdrtype=1,
                                          lladdrlen=6) / p[Ether].payload,
    "vlan": lambda p: Ether(src=p[Ether].src, dst=p[Ether].dst) / Dot1Q(vlan=42,
                                                                         type=p[Ether].type)
    / p[Ether].payload,
}


@pytest.mark.parametrize("wrap", sorted(WRAPS))
@pytest.mark.parametrize("capture", [CAPTURE_DIRS[0], CAPTURE_DIRS[-1]] if CAPTURE_DIRS else [],
                         ids=lambda p: p.name)
def test_cooked_and_vlan_variants_give_identical_json(tmp_path, capture, wrap):
    original = capture / "capture.pcap"
    converted = tmp_path / f"{wrap}.pcap"
    _rewrap(original, converted, WRAPS[wrap])
    # the variant really has the link type under test
    linktype = struct.unpack_from("<I", converted.read_bytes(), 20)[0]
    assert linktype == {"linux-sll": 113, "linux-sll2": 276, "vlan": 1}[wrap]
    assert _decode(converted) == _decode(original)


@pytest.mark.parametrize("capture", CAPTURE_DIRS, ids=lambda p: p.name)
def test_fast_paths_agree_with_the_codecs(capture):
    """The hot path (in-process and with workers) prints what the codecs alone print."""
    path = capture / "capture.pcap"
    code, reference, err = run_cli("decode", "-f", "json", "--codec-only", str(path))
    assert code == 0, err
    for jobs in ("1", "2"):
        code, out, err = run_cli("decode", "-f", "json", "-j", jobs, str(path))
        assert code == 0, err
        assert out == reference
    # the general (filtering) path with a filter that keeps everything
    code, out, err = run_cli("decode", "-f", "json", "--filter", "frame!=0", str(path))
    assert out == reference


def _ha_cf_seconds(ha_cf: Path, directive: str) -> float:
    """A time directive of ha.cf in seconds: ``keepalive 1`` or ``keepalive 200ms``."""
    for line in ha_cf.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) == 2 and words[0] == directive:
            value = words[1]
            if value.endswith("ms"):
                return float(value[:-2]) / 1000
            return float(value.removesuffix("s"))
    raise AssertionError(f"{ha_cf} has no {directive}")


@pytest.mark.parametrize("capture", HB_DIRS, ids=lambda p: p.name)
def test_heartbeat_stats_on_real_captures(capture):
    code, out, err = run_cli("decode", "-f", "json", "--stats", str(capture / "capture.pcap"))
    assert code == 0, err
    stats = json_rows(out)[-1]["stats"]
    nodes = {n["node"]: n for n in stats["heartbeat"]["nodes"]}
    payloads = _udp_payloads(capture / "capture.pcap", {694})
    senders = {regex_field(SRC_RE, p) for _f, p in payloads}
    assert set(nodes) == senders
    keepalive = _ha_cf_seconds(capture / "ha.cf", "keepalive")
    for node in nodes.values():
        # the ha.cf the capture was recorded with sets the beat: the median interval says so
        assert node["heartbeat_interval_ms"]["median"] == pytest.approx(keepalive * 1000, abs=50)
        assert node["auth_failures"] == 0 and node["errors"] == 0
        assert node["status_changes"]["events"][0]["new"] == "init"


def test_failover_capture_shows_the_dead_node():
    capture = CAPTURES / "hb-failover"
    if not (capture / "capture.pcap").exists():
        pytest.skip("no failover capture")
    code, out, err = run_cli("decode", "-f", "json", "--stats", str(capture / "capture.pcap"))
    stats = json_rows(out)[-1]["stats"]
    nodes = {n["node"]: n for n in stats["heartbeat"]["nodes"]}
    killed = nodes["node1"]
    gaps = killed["gaps_over_deadtime"]["events"]
    assert gaps and gaps[-1].get("until_capture_end")
    assert "stonith" in nodes["node2"]["by_type"]


def test_totem_stats_on_real_captures():
    capture = CAPTURES / "totem-udpu-3node"
    if not (capture / "capture.pcap").exists():
        pytest.skip("no udpu capture")
    code, out, err = run_cli("decode", "-f", "json", "--stats", str(capture / "capture.pcap"))
    stats = json_rows(out)[-1]["stats"]["totem"]
    rings = {r["ring"]: r for r in stats["rings"]}
    # independent: ring ids of commit tokens read with struct
    expected_rings = set()
    for _frame, payload in _udp_payloads(capture / "capture.pcap", {5405}):
        head = _totem_offsets(payload)
        if "ring" in head:
            rep, seq = head["ring"]
            expected_rings.add(f"{rep}.{seq:x}")
    assert set(rings) == expected_rings
    full = [r for r in rings.values() if r["members"] == [1, 2, 3]]
    assert full and all(r["token_rotation_ms"]["count"] > 0 for r in full)
    assert {n["nodeid"] for n in stats["nodes"]} == {1, 2, 3}


def test_knet_fragments_are_reassembled():
    capture = CAPTURES / "totem-knet"
    if not (capture / "capture.pcap").exists():
        pytest.skip("no knet capture")
    rows = {r["frame"]: r for r in _decode(capture / "capture.pcap")}
    pending: dict[tuple, dict[int, bytes]] = {}
    checked = 0
    for frame, payload in _udp_payloads(capture / "capture.pcap", {5405}):
        if payload[0] != 1 or payload[1] != 0 or payload[11] <= 1:
            continue
        node, seq_num = struct.unpack_from(">H", payload, 2)[0], struct.unpack_from(
            ">H", payload, 6)[0]
        frag_num, frag_seq = payload[11], payload[12]
        parts = pending.setdefault((node, seq_num), {})
        parts[frag_seq] = payload[14:]
        if len(parts) == frag_num:
            joined = b"".join(parts[i] for i in range(1, frag_num + 1))
            expected = _totem_offsets(joined)
            inner = rows[frame]["fields"]["totem"]
            assert inner["type_name"] == expected["type"]
            assert inner["nodeid"] == expected["nodeid"]
            assert (inner["ring_id"]["rep"], inner["ring_id"]["seq"]) == expected["ring"]
            del pending[(node, seq_num)]
            checked += 1
    assert checked >= 1
