"""The verdict engine with a fake clock: every action's effect, proved on hand-made packets.

Packets are built with scapy and Heartbeat payloads are written out by hand as netstrings,
so neither the framing nor the expected bytes come from the code under test.
"""

from __future__ import annotations

import struct

import pytest
from hbtools.faults.engine import Copy, Engine, Verdict
from hbtools.faults.rules import parse_rule
from scapy.layers.inet import IP, UDP

from hbtools.auth import AuthKeys

NODES = {"n1": "198.18.0.1", "n2": "198.18.0.2", "n3": "198.18.0.3"}


def hb(t: str = "status", src: str = "n1", seq: int = 1, extra: str = "") -> bytes:
    items = [f"(0)t={t}", f"(0)src={src}", f"(0)seq={seq:x}"] + ([extra] if extra else [])
    return b"###\n" + b"".join(b"%d:%s," % (len(i), i.encode()) for i in items) + b"%%%\n"


def ip(payload: bytes, src: str = "198.18.0.1", dst: str = "198.18.0.255",
       dport: int = 694) -> bytes:
    return bytes(IP(src=src, dst=dst, id=7) / UDP(sport=40000, dport=dport) / payload)


def engine(*rules: str, seed: int | None = 1, **kw) -> Engine:
    return Engine([parse_rule(r, nodes=list(NODES)) for r in rules], seed=seed,
                  nodes=NODES, **kw)


def udp_payload(datagram: bytes) -> bytes:
    return bytes(IP(datagram)[UDP].payload)


def checksums_valid(datagram: bytes) -> bool:
    pkt = IP(datagram)
    ip_sum, udp_sum = pkt.chksum, pkt[UDP].chksum
    del pkt.chksum, pkt[UDP].chksum, pkt.len, pkt[UDP].len
    again = IP(bytes(pkt))
    return (again.chksum, again[UDP].chksum) == (ip_sum, udp_sum)


def test_unmatched_packets_pass_untouched():
    e = engine("drop t=NS_ackmsg")
    assert e.receive(1, ip(hb()), "out", 0.0) == [Verdict(1, True, None)]
    assert e.stats[0].seen == 1 and e.stats[0].matched == 0


def test_drop_by_message_type_and_field():
    e = engine("drop t=NS_ackmsg", "drop src=n2 seq=5")
    assert e.receive(1, ip(hb("NS_ackmsg")), "in", 0) == [Verdict(1, False)]
    assert e.receive(2, ip(hb(src="n2", seq=5)), "in", 0) == [Verdict(2, False)]
    assert e.receive(3, ip(hb(src="n2", seq=6)), "in", 0) == [Verdict(3, True)]
    assert (e.stats[0].dropped, e.stats[1].dropped) == (1, 1)


def test_direction_address_and_port_terms():
    e = engine("drop out from=n1 to=198.18.0.0/24 dport=694")
    assert e.receive(1, ip(hb()), "in", 0)[0].accept
    assert not e.receive(2, ip(hb()), "out", 0)[0].accept
    assert e.receive(3, ip(hb(), src="198.18.0.2"), "out", 0)[0].accept
    assert e.receive(4, ip(hb(), dport=695), "out", 0)[0].accept


def test_probability_is_reproducible_with_a_seed():
    def run(seed):
        e = engine("drop all p=0.5", seed=seed)
        return [e.receive(i, ip(hb(seq=i)), "out", 0)[0].accept for i in range(200)]
    first = run(42)
    assert first == run(42)
    assert first != run(43)
    assert 60 < first.count(False) < 140  # binomial(200, 0.5): far outside 6 sigma otherwise


def test_delay_holds_until_exactly_the_delay():
    e = engine("delay 200ms")
    assert e.receive(1, ip(hb()), "out", 10.0) == []
    assert e.next_timer() == pytest.approx(10.2)
    assert e.tick(10.199) == []
    assert e.tick(10.2) == [Verdict(1, True, None)]
    assert e.next_timer() is None and e.stats[0].delayed == 1


def test_uniform_jitter_stays_in_its_bounds():
    e = engine("delay 200ms jitter=50ms")
    for i in range(300):
        e.receive(i, ip(hb(seq=i)), "out", 0.0)
    times = sorted(h.release_at for h in e._held)
    assert 0.150 <= times[0] < 0.160 and 0.240 < times[-1] <= 0.250


def test_delays_add_up_and_packets_overtake():
    e = engine("delay 100ms seq=1", "delay 50ms")
    e.receive(1, ip(hb(seq=1)), "out", 0.0)
    e.receive(2, ip(hb(seq=2)), "out", 0.01)
    assert e.tick(0.0601) == [Verdict(2, True)]
    assert e.tick(0.149) == []  # 100 ms + 50 ms: both rules matched seq=1
    assert e.tick(0.1501) == [Verdict(1, True)]


def test_duplicate_sends_identical_copies_on_out_only():
    data = ip(hb())
    e = engine("duplicate 2")
    assert e.receive(1, data, "out", 0) == [Verdict(1, True), Copy(data, "out"), Copy(data, "out")]
    assert e.receive(2, data, "in", 0) == [Verdict(2, True)]
    assert e.stats[0].duplicated == 2


def test_reorder_window_releases_all_in_a_new_order():
    e = engine("reorder window=3 timeout=1s")
    assert e.receive(1, ip(hb(seq=1)), "out", 0) == []
    assert e.receive(2, ip(hb(seq=2)), "out", 0.1) == []
    out = e.receive(3, ip(hb(seq=3)), "out", 0.2)
    ids = [v.packet_id for v in out]
    assert sorted(ids) == [1, 2, 3] and ids != [1, 2, 3]


def test_reorder_window_times_out():
    e = engine("reorder window=5 timeout=300ms")
    e.receive(1, ip(hb(seq=1)), "out", 0)
    e.receive(2, ip(hb(seq=2)), "out", 0.1)
    assert e.next_timer() == pytest.approx(0.3)
    assert e.tick(0.29) == []
    assert sorted(v.packet_id for v in e.tick(0.3)) == [1, 2]


def test_corrupt_flips_exactly_the_asked_bits_and_fixes_checksums():
    original = hb()
    e = engine("corrupt bits=3")
    (verdict,) = e.receive(1, ip(original), "out", 0)
    changed = udp_payload(verdict.payload)
    diff = sum(bin(a ^ b).count("1") for a, b in zip(original, changed, strict=True))
    assert 1 <= diff <= 3 and diff % 2 == 1  # 3 flips, two may hit the same bit and cancel
    assert checksums_valid(verdict.payload)


def test_corrupt_bytes_changes_them():
    e = engine("corrupt bytes=1")
    (verdict,) = e.receive(1, ip(hb()), "out", 0)
    changed = udp_payload(verdict.payload)
    assert sum(a != b for a, b in zip(hb(), changed, strict=True)) == 1


def _crc_heartbeat(data: bytes) -> int:
    """CRC-32 as the protocol notes describe it: MSB first, init 0, final NOT."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = (crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc ^ 0xFFFFFFFF


def test_crc_helper_matches_the_check_value():
    assert f"{_crc_heartbeat(b'123456789'):x}" == "765e7680"


def signed(body: bytes) -> bytes:
    digest = f"1 {_crc_heartbeat(body):x}".encode()
    return body + b"%d:%s," % (len(digest), digest)


def test_rewrite_resigned_carries_a_correct_trailer():
    keys = AuthKeys.parse("auth 1\n1 crc\n")
    e = engine("rewrite st:=dead seq:=+16 ttl:=9", keys=keys)
    (verdict,) = e.receive(1, ip(signed(hb(seq=2, extra="(0)st=up"))), "out", 0)
    body = (b"###\n11:(0)t=status,9:(0)src=n1,9:(0)seq=12,10:(0)st=dead,8:(0)ttl=9,%%%\n")
    assert udp_payload(verdict.payload) == signed(body)
    assert checksums_valid(verdict.payload)
    assert e.stats[0].rewritten == 1


def test_rewrite_stale_keeps_the_old_signature():
    original = signed(hb(seq=2, extra="(0)st=up"))
    trailer = original[original.index(b"%%%\n") + 4:]
    e = engine("rewrite st:=dead sign=stale")
    (verdict,) = e.receive(1, ip(original), "out", 0)
    new = udp_payload(verdict.payload)
    assert b"10:(0)st=dead," in new and new.endswith(trailer)
    assert new != original


def test_resign_without_keys_is_refused():
    with pytest.raises(ValueError, match="needs --authkeys"):
        engine("rewrite st:=dead")


def test_rewrite_ignores_what_is_not_heartbeat():
    e = engine("rewrite st:=dead sign=stale")
    assert e.receive(1, ip(b"hello"), "out", 0) == [Verdict(1, True)]
    assert e.stats[0].matched == 0


def test_ratelimit_token_bucket():
    e = engine("ratelimit 2/s burst=1")
    accepted = [e.receive(i, ip(hb(seq=i)), "out", t)[0].accept
                for i, t in enumerate([0.0, 0.1, 0.2, 0.5, 0.6, 1.0])]
    assert accepted == [True, False, False, True, False, True]


def test_one_way_partition_on_the_receiver():
    # The proxy runs on n2 (its address is local); broadcasts from n1 are cut, n3's are not.
    e = engine("partition n1>n2", local_addresses=["198.18.0.2"])
    assert not e.receive(1, ip(hb(src="n1")), "in", 0)[0].accept
    assert e.receive(2, ip(hb(src="n3"), src="198.18.0.3"), "in", 0)[0].accept
    e2 = engine("partition n2>n1", local_addresses=["198.18.0.2"])
    assert e2.receive(3, ip(hb(src="n1")), "in", 0)[0].accept


def test_isolate_on_the_sender_cuts_broadcasts_to_everyone():
    e = engine("isolate n1", local_addresses=["198.18.0.1"])
    assert not e.receive(1, ip(hb(src="n1")), "out", 0)[0].accept
    h = engine("halves", local_addresses=["198.18.0.1"])  # n1 | n2 n3: n1's bcast reaches no one
    assert not h.receive(2, ip(hb(src="n1")), "out", 0)[0].accept
    b = engine("bridge n2", local_addresses=["198.18.0.1"])  # n1 still reaches n2
    assert b.receive(3, ip(hb(src="n1")), "out", 0)[0].accept
    assert not b.receive(4, ip(hb(src="n1"), dst="198.18.0.3"), "out", 0)[0].accept


def test_rule_windows_follow_the_engine_start():
    rule = parse_rule("drop all")
    from dataclasses import replace
    e = Engine([replace(rule, windows=((1.0, 2.0),))], start=100.0)
    assert [e.receive(i, ip(hb()), "out", t)[0].accept
            for i, t in enumerate([100.5, 101.0, 101.9, 102.0])] == [True, False, False, True]


def test_flush_releases_everything_held():
    e = engine("delay 10s", "reorder window=9")
    e.receive(1, ip(hb()), "out", 0)
    e.receive(2, ip(hb()), "out", 0)
    assert e.held == 2
    assert sorted(v.packet_id for v in e.flush() if isinstance(v, Verdict)) == [1, 2]
    assert e.held == 0


def test_fragments_and_non_ip_pass():
    e = engine("drop all")
    frag = bytes(IP(src="198.18.0.1", dst="198.18.0.2", flags="MF", proto=17) / (b"x" * 40))
    assert e.receive(1, frag, "out", 0) == [Verdict(1, False)]  # `drop all` takes all
    e = engine("drop t=status")
    assert e.receive(2, frag, "out", 0) == [Verdict(2, True)]
    assert e.receive(3, b"\x60" + bytes(39), "out", 0) == [Verdict(3, True)]


def _merge_detect(nodeid: int) -> bytes:
    # Corosync 3 memb_merge_detect, little endian: magic 0xc070, version 3, type 2,
    # encapsulated 0, nodeid, target_nodeid, system_from, ring_id {rep, seq u64}.
    return struct.pack("<HBBBIIIIQ", 0xC070, 3, 2, 0, nodeid, 0, nodeid, 1, 13)


def test_totem_type_and_node_id():
    pytest.importorskip("hbtools.totem")
    e = engine("drop totem.type=memb_merge_detect totem.nodeid=2")
    assert not e.receive(1, ip(_merge_detect(2), dport=5405), "out", 0)[0].accept
    assert e.receive(2, ip(_merge_detect(1), dport=5405), "out", 0)[0].accept
    t = engine("drop proto=totem type=memb_merge_detect")
    assert not t.receive(3, ip(_merge_detect(1), dport=5405), "out", 0)[0].accept


def _knet(kind: int, node: int, body: bytes) -> bytes:
    # kronosnet header (protocol notes): version 1, type, node u16 big endian, 2 pad bytes.
    return struct.pack(">BBHBB", 1, kind, node, 0, 0) + body


def _knet_data(node: int, totem_message: bytes) -> bytes:
    # seq_num u16 BE, compress, pad, bcast, frag_num 1 (unfragmented), frag_seq, channel.
    return _knet(0x00, node, struct.pack(">HBBBBBb", 9, 0, 0, 1, 1, 0, 0) + totem_message)


def test_knet_type_node_and_the_totem_inside():
    pytest.importorskip("hbtools.knet")
    data = ip(_knet_data(3, _merge_detect(3)), dport=5405)
    ping = ip(_knet(0x81, 3, struct.pack(">B16sHB", 0, bytes(16), 9, 1)), dport=5405)
    e = engine("drop knet.type=data knet.node=3 totem.type=memb_merge_detect")
    assert not e.receive(1, data, "out", 0)[0].accept
    assert e.receive(2, ping, "out", 0)[0].accept
    p = engine("drop proto=knet type=ping")
    assert p.receive(3, data, "out", 0)[0].accept
    assert not p.receive(4, ping, "out", 0)[0].accept
