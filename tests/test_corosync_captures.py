"""Every Totem frame of every committed corosync capture, checked against corosync's own view.

The captures come from real corosync 3.1.7 clusters (captures/record_corosync.py). What
the decoder says is compared with what corosync itself reported while it ran (meta.json:
its log's "A new membership (rep.seq)" lines and corosync-quorumtool snapshots), with the
configured node ids, and with byte slices at the offsets documented in PROTOCOL-NOTES.md.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from policy import CAPTURES

from hbtools import knet, totem

SCENARIOS = ["totem-udpu-3node", "totem-udp-mcast", "totem-knet", "totem-knet-crypto"]
TOTEM_PORTS = (5404, 5405)


@dataclass
class Frame:
    time: float
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


@dataclass
class Capture:
    name: str
    meta: dict[str, Any]
    frames: list[Frame]
    #: (time, raw Totem bytes, decoded) for every Totem message, knet ones reassembled.
    messages: list[tuple[float, bytes, totem.Message]] = field(default_factory=list)


_CACHE: dict[str, Capture] = {}


def load(name: str) -> Capture:
    if name in _CACHE:
        return _CACHE[name]
    from scapy.all import IP, UDP, PcapReader

    folder = CAPTURES / name
    assert (folder / "capture.pcap").is_file(), f"{folder} has no capture.pcap"
    meta = json.loads((folder / "meta.json").read_text())
    frames = []
    with PcapReader(str(folder / "capture.pcap")) as reader:
        for pkt in reader:
            if UDP in pkt and pkt[UDP].dport in TOTEM_PORTS:
                frames.append(Frame(float(pkt.time), pkt[IP].src, pkt[UDP].sport,
                                    pkt[IP].dst, pkt[UDP].dport, bytes(pkt[UDP].payload)))
    cap = Capture(name, meta, frames)
    if meta["transport"] != "knet":
        cap.messages = [(f.time, f.payload, totem.decode(f.payload)) for f in frames]
    elif meta["crypto"]["cipher"] == "none":
        reassembler = knet.Reassembler()
        for f in frames:
            packet = knet.decode(f.payload, crypto=False)
            if packet.type_name == "data":
                whole = reassembler.add(packet, f.src)
                if whole is not None:
                    cap.messages.append((f.time, whole, totem.decode(whole)))
    _CACHE[name] = cap
    return cap


def u32(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<I", data, offset)[0])


def u64(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<Q", data, offset)[0])


def documented_size(data: bytes) -> int | None:
    """A message's length from its own count fields (PROTOCOL-NOTES section 3)."""
    t = data[3]
    if t == 0:
        return 57 + 16 * u32(data, 53)
    if t == 1:
        return None  # payload runs to the end of the datagram
    if t == 2:
        return 29
    if t == 3:
        return 33 + 4 * (u32(data, 17) + u32(data, 21))
    if t == 4:
        return 41 + 28 * u32(data, 37)
    return 25


def reported_rings(meta: dict[str, Any]) -> dict[tuple[int, int], list[int]]:
    """Every ring corosync said it formed (log) or sat on (quorumtool), with its members."""
    rings: dict[tuple[int, int], list[int]] = {}
    view = meta["corosync_view"]
    for m in view["memberships"]:
        rings[(m["rep"], m["seq"])] = m["members"]
    for s in view["snapshots"]:
        q = s["quorumtool"]
        rings.setdefault((q["rep"], q["seq"]), q["members"])
        assert rings[(q["rep"], q["seq"])] == q["members"]
    return rings


CLEAR = [s for s in SCENARIOS if s != "totem-knet-crypto"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_capture_present_small_and_from_the_lab(name):
    cap = load(name)
    assert (CAPTURES / name / "capture.pcap").stat().st_size < 1_000_000
    assert (CAPTURES / name / "corosync.conf").is_file()
    assert cap.frames, "no Totem traffic in the capture"
    for f in cap.frames:
        assert f.src.startswith("198.18.")
        assert f.dst.startswith("198.18.") or f.dst.startswith("239.")
    assert cap.meta["software"]["corosync"].startswith("3.1.7")


@pytest.mark.parametrize("name", CLEAR)
def test_every_frame_decodes_and_round_trips_byte_exact(name):
    cap = load(name)
    for f in cap.frames:
        if cap.meta["transport"] == "knet":
            packet = knet.decode(f.payload, crypto=False)
            assert not packet.encrypted
            assert knet.encode(packet) == f.payload
            # knet's node id (big endian at 2) is corosync's node id.
            assert packet.node == struct.unpack_from(">H", f.payload, 2)[0]
            if packet.totem is not None:
                assert packet.node == packet.totem.nodeid == u32(f.payload, 14 + 5)
        else:
            assert totem.encode(totem.decode(f.payload)) == f.payload
    assert cap.messages
    for _, raw, m in cap.messages:
        assert totem.encode(m) == raw
        assert m.version == 3 and m.endian == "little"


@pytest.mark.parametrize("name", CLEAR)
def test_every_message_consumed_to_its_exact_length(name):
    for _, raw, m in load(name).messages:
        expected = documented_size(raw)
        if expected is None:
            assert m.type_name == "mcast" and m.payload == raw[45:]
        else:
            assert len(raw) == expected, m.type_name


@pytest.mark.parametrize("name", CLEAR)
def test_token_ring_ids_are_the_rings_corosync_reported(name):
    cap = load(name)
    rings = reported_rings(cap.meta)
    shared = {r for r, members in rings.items() if members and len(members) > 1}
    token_rings = set()
    commit_rings = set()
    for _, raw, m in cap.messages:
        if m.type_name == "orf_token":
            assert (m.ring_id.rep, m.ring_id.seq) == (u32(raw, 29), u64(raw, 33))
            token_rings.add((m.ring_id.rep, m.ring_id.seq))
        elif m.type_name == "memb_commit_token":
            assert (m.ring_id.rep, m.ring_id.seq) == (u32(raw, 17), u64(raw, 21))
            commit_rings.add((m.ring_id.rep, m.ring_id.seq))
            # The commit token lists exactly the members corosync reported for that ring.
            assert sorted(m.addr) == rings[(m.ring_id.rep, m.ring_id.seq)]
    # A ring of one node passes its token to itself, off the wire; every ring of two or more
    # nodes that corosync reported must have tokens on the wire, and no token may carry a
    # ring corosync never reported.
    assert token_rings == shared
    assert commit_rings == shared


@pytest.mark.parametrize("name", CLEAR)
def test_token_at_each_snapshot_carries_the_ring_quorumtool_printed(name):
    cap = load(name)
    tokens = [(t, m) for t, _, m in cap.messages if m.type_name == "orf_token"]
    for snap in cap.meta["corosync_view"]["snapshots"]:
        before = [m for t, m in tokens if t <= snap["t"]]
        assert before, f"no token before snapshot {snap['phase']}"
        last = before[-1]
        q = snap["quorumtool"]
        assert (last.ring_id.rep, last.ring_id.seq) == (q["rep"], q["seq"]), snap["phase"]
        assert f"{last.ring_id.rep:x}.{last.ring_id.seq:x}" == q["ring_id"]


@pytest.mark.parametrize("name", CLEAR)
def test_memb_join_lists_name_exactly_the_configured_nodes(name):
    cap = load(name)
    configured = set(cap.meta["configured_nodeids"])
    assert configured == {n["nodeid"] for n in cap.meta["nodes"]}
    named: set[int] = set()
    joins = 0
    for _, raw, m in cap.messages:
        assert m.nodeid in configured
        if m.type_name != "memb_join":
            continue
        joins += 1
        p, f = u32(raw, 17), u32(raw, 21)
        assert list(m.proc_list) == [u32(raw, 33 + 4 * i) for i in range(p)]
        assert list(m.failed_list) == [u32(raw, 33 + 4 * (p + i)) for i in range(f)]
        assert m.system_from == m.nodeid
        assert set(m.proc_list) <= configured and set(m.failed_list) <= configured
        named |= set(m.proc_list) | set(m.failed_list)
    assert joins and named == configured


def test_udpu_capture_shows_all_six_types_and_the_kill():
    cap = load("totem-udpu-3node")
    counts = Counter(m.type_name for _, _, m in cap.messages)
    assert set(counts) == set(totem.TYPE_CODES), counts
    # node3 was killed: some join names it failed, and node1/node2 formed a ring without it.
    assert any(3 in m.failed_list for _, _, m in cap.messages if m.type_name == "memb_join")
    rings = reported_rings(cap.meta)
    assert [1, 2] in rings.values() and [1, 2, 3] in rings.values()


def test_udp_multicast_goes_to_the_group():
    cap = load("totem-udp-mcast")
    group = {f.dst for f in cap.frames if f.dst.startswith("239.")}
    assert len(group) == 1
    for f in cap.frames:
        t = f.payload[3]
        assert f.sport == 5404 and f.dport == 5405
        assert (f.dst in group) == (t not in (0, 4)), t  # tokens go to the next node


def test_udpu_target_nodeid_is_uninitialised_and_still_round_trips():
    cap = load("totem-udpu-3node")
    values = {u32(raw, 9) for _, raw, _ in cap.messages}
    assert values - {0}, "expected corosync's uninitialised target_nodeid bytes"


def test_knet_has_every_packet_type_corosync_uses():
    cap = load("totem-knet")
    kinds = Counter(knet.decode(f.payload, crypto=False).type_name for f in cap.frames)
    assert {"data", "ping", "pong", "pmtud", "pmtud_reply"} <= set(kinds)


def test_knet_crypto_packets_are_reported_encrypted_with_their_size():
    cap = load("totem-knet-crypto")
    assert cap.meta["crypto"] == {"cipher": "aes256", "hash": "sha256"}
    for f in cap.frames:
        packet = knet.decode(f.payload)  # autodetect: none may pass for cleartext
        assert packet.encrypted and packet.size == len(f.payload)
        assert packet.totem is None and knet.encode(packet) == f.payload
        # 16-byte IV + AES-CBC blocks + 32-byte HMAC-SHA256.
        assert len(f.payload) % 16 == 0 and len(f.payload) >= 64
    # corosync itself did form the two-node ring over the encrypted links.
    assert [1, 2] in reported_rings(cap.meta).values()


def test_meta_ring_ids_are_corosyncs_hex_text():
    for name in SCENARIOS:
        for m in load(name).meta["corosync_view"]["memberships"]:
            rep, seq = m["ring_id"].split(".")
            assert (int(rep, 16), int(seq, 16)) == (m["rep"], m["seq"])
            assert f"({m['ring_id']})" in m["line"]


def _counts() -> dict[str, dict[str, int]]:  # pragma: no cover - used for the closing note
    return {name: dict(Counter(m.type_name for _, _, m in load(name).messages))
            for name in SCENARIOS}


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_counts(), indent=2))
