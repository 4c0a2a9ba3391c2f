"""kronosnet codec: real libknet 1.25 packets, fragments, crypto, and hypothesis properties.

Expected values come from byte slices at the offsets of onwire.h (as summarised in
PROTOCOL-NOTES.md), never from the codec itself.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from totem_strategies import messages_v3, u8, u16

from hbtools import knet, totem

# Real packets from a 2-node knet capture of corosync 3.1.7 / libknet 1.25, crypto off.
REAL = {
    "ping": "018100010000005304000000000000dc8f9b2500000000000001",
    "pong": "018200020000005304000000000000dc8f9b2500000000000001",
    "pmtud_reply": "01840002000000dc05",
    "merge_detect": "010000010000000100000101000070c0030200010000000000000001000000010000000500"
                    "000000000000",
    "commit_token": "010000010000000300000001000070c003040001000000020000000100000001000000090000"
                    "00000000000000000001000000020000000100000002000000010000000500000000000000"
                    "060000000600000001000000000000000000000000000000000000000000000000000000",
}
REAL_BYTES = {k: bytes.fromhex(v) for k, v in REAL.items()}


def be16(data: bytes, offset: int) -> int:
    return int(struct.unpack_from(">H", data, offset)[0])


def test_real_data_packet_header_and_totem():
    data = REAL_BYTES["commit_token"]
    p = knet.decode(data)
    assert p.type_name == "data" and not p.encrypted
    assert (p.version, p.type, p.node) == (data[0], data[1], be16(data, 2)) == (1, 0, 1)
    assert (p.seq_num, p.compress, p.bcast) == (be16(data, 6), data[8], data[10])
    assert (p.frag_num, p.frag_seq, p.channel) == (data[11], data[12], data[13]) == (1, 0, 0)
    assert p.userdata == data[14:]
    assert p.totem is not None and p.totem == totem.decode(data[14:])
    assert p.totem.type_name == "memb_commit_token"
    # On knet corosync does fill in target_nodeid: the commit token goes to node 2.
    assert p.totem.target_nodeid == struct.unpack_from("<I", data, 14 + 9)[0] == 2
    assert p.bcast == 0
    assert knet.encode(p) == data


def test_real_broadcast_data_packet():
    data = REAL_BYTES["merge_detect"]
    p = knet.decode(data)
    assert p.bcast == data[10] == 1
    assert p.totem is not None and p.totem.type_name == "memb_merge_detect"
    assert knet.encode(p) == data


@pytest.mark.parametrize("name", ["ping", "pong"])
def test_real_ping_pong(name):
    data = REAL_BYTES[name]
    p = knet.decode(data)
    assert p.type_name == name and len(data) == 26
    assert p.link == data[6] and p.time == data[7:23]
    assert p.seq_num == be16(data, 23) and p.timed == data[25] == 1
    assert p.totem is None
    assert knet.encode(p) == data


def test_real_pmtud_reply_size_is_little_endian():
    data = REAL_BYTES["pmtud_reply"]
    p = knet.decode(data)
    assert p.type_name == "pmtud_reply"
    assert p.size == struct.unpack_from("<H", data, 7)[0] == 1500
    assert knet.encode(p) == data


def test_to_dict_nests_totem():
    d = knet.decode(REAL_BYTES["commit_token"]).to_dict()
    assert d["type_name"] == "data" and d["node"] == 1
    assert d["totem"]["type_name"] == "memb_commit_token"


def test_encrypted_packet_reported_with_size_only():
    blob = bytes(range(256))[:160]  # 16-byte IV + ciphertext + 32-byte HMAC, like aes256/sha256
    p = knet.decode(blob)
    assert p.encrypted and p.type_name == "encrypted" and p.size == 160
    assert p.totem is None
    assert p.to_dict() == {"type_name": "encrypted", "encrypted": True, "size": 160}
    assert knet.encode(p) == blob
    # Told the capture uses crypto, even a cleartext-looking packet stays opaque.
    assert knet.decode(REAL_BYTES["ping"], crypto=True).encrypted


def test_crypto_false_makes_garbage_an_error():
    with pytest.raises(knet.DecodeError, match="version"):
        knet.decode(b"\x07" * 40, crypto=False)
    with pytest.raises(knet.DecodeError, match="after the end"):
        knet.decode(REAL_BYTES["ping"] + b"\0", crypto=False)
    with pytest.raises(knet.DecodeError):
        knet.decode(b"", crypto=False)
    with pytest.raises(knet.DecodeError):
        knet.decode(b"")


def test_bad_totem_inside_data_is_reported_not_raised():
    p = knet.Packet("data", node=3, userdata=b"\x70\xc0\x03\x09")
    back = knet.decode(knet.encode(p))
    assert back.totem is None and "unknown Totem message type 9" in (back.totem_error or "")


def test_packet_built_for_injector():
    m = totem.Message("token_hold_cancel", nodeid=2, target_nodeid=1,
                      ring_id=totem.RingId(rep=1, seq=0x14))
    p = knet.Packet("data", node=2, seq_num=300, bcast=1, totem=m)
    data = knet.encode(p)
    assert data[:6] == b"\x01\x00\x00\x02\x00\x00"
    assert be16(data, 6) == 300 and data[11:14] == b"\x01\x00\x00"
    assert data[14:] == totem.encode(m)
    assert knet.decode(data).totem == m


# --------------------------------------------------------------------------- fragments

def _fragments(userdata: bytes, *, node: int, seq_num: int, size: int) -> list[knet.Packet]:
    pieces = [userdata[i:i + size] for i in range(0, len(userdata), size)]
    return [knet.Packet("data", node=node, seq_num=seq_num, bcast=1, frag_num=len(pieces),
                        frag_seq=i + 1, userdata=piece) for i, piece in enumerate(pieces)]


def test_reassembler_joins_fragments_in_any_order():
    m = totem.Message("mcast", nodeid=1, system_from=1, payload=bytes(range(256)) * 6)
    whole = totem.encode(m)
    frags = _fragments(whole, node=1, seq_num=15, size=600)
    assert len(frags) == 3 and all(f.totem is None for f in frags)
    r = knet.Reassembler()
    assert r.add(frags[2], "a") is None
    assert r.add(frags[0], "a") is None
    assert r.add(frags[0], "b") is None  # another flow keeps its own state
    assert r.add(frags[1], "a") == whole
    assert totem.decode(whole) == m
    assert len(r) == 1  # flow b still pending


def test_reassembler_passes_unfragmented_and_bounds_memory():
    r = knet.Reassembler(max_pending=2)
    p = knet.decode(REAL_BYTES["merge_detect"])
    assert r.add(p) == p.userdata
    assert r.add(knet.decode(REAL_BYTES["ping"])) is None
    for seq in range(10):
        r.add(_fragments(b"x" * 20, node=1, seq_num=seq, size=10)[0])
    assert len(r) == 2


# --------------------------------------------------------------------------- properties

@st.composite
def data_packets(draw: st.DrawFn) -> knet.Packet:
    if draw(st.booleans()):
        return knet.Packet("data", node=draw(u16), seq_num=draw(u16), bcast=draw(st.integers(0, 1)),
                           channel=draw(st.integers(-128, 127)), totem=draw(messages_v3()))
    return knet.Packet(draw(st.sampled_from(["data", "host_info"])), node=draw(u16),
                       pad1=draw(u8), pad2=draw(u8), seq_num=draw(u16), compress=draw(u8),
                       data_pad1=draw(u8), bcast=draw(u8), frag_num=draw(u8),
                       frag_seq=draw(u8), channel=draw(st.integers(-128, 127)),
                       userdata=draw(st.binary(max_size=80)))


pings = st.builds(lambda name, node, link, time, seq, timed: knet.Packet(
    name, node=node, link=link, time=time, seq_num=seq, timed=timed),
    st.sampled_from(["ping", "pong"]), u16, u8, st.binary(min_size=16, max_size=16), u16, u8)
pmtuds = st.builds(lambda name, node, link, size, fill: knet.Packet(
    name, node=node, link=link, size=size, pmtud_data=fill),
    st.sampled_from(["pmtud", "pmtud_reply"]), u16, u8, u16, st.binary(max_size=64))


@given(st.one_of(data_packets(), pings, pmtuds))
def test_round_trip(p):
    data = knet.encode(p)
    back = knet.decode(data, crypto=False)
    assert back == p and knet.encode(back) == data
    assert back.totem == p.totem


@given(st.binary(max_size=200), st.sampled_from([None, False, True]))
def test_arbitrary_bytes(data, crypto):
    try:
        p = knet.decode(data, crypto=crypto)
    except knet.DecodeError:
        return
    assert knet.encode(p) == data
    p.to_dict()


@given(st.sampled_from(sorted(REAL_BYTES)), st.lists(st.tuples(st.integers(0, 200), u8),
                                                     min_size=1, max_size=5),
       st.integers(0, 200), st.binary(max_size=20))
def test_mutated_real_packets(name, flips, cut, tail):
    data = bytearray(REAL_BYTES[name])
    for pos, value in flips:
        if data:
            data[pos % len(data)] = value
    mutated = bytes(data[:cut]) + tail
    for crypto in (None, False):
        try:
            p = knet.decode(mutated, crypto=crypto)
        except knet.DecodeError:
            continue
        assert knet.encode(p) == mutated


def test_runt_packet_is_neither_clear_nor_encrypted():
    # An IV (16) plus one AES block (16) is the least knet crypto can send.
    for size in (1, 2, 17, 31):
        with pytest.raises(knet.DecodeError, match="too short"):
            knet.decode(b"\xaa" * size)
    assert knet.decode(b"\xaa" * 32).type_name == "encrypted"
