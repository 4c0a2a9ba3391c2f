"""Heartbeat codec against vectors taken from the protocol notes and cluster-glue's rules.

Expected values are written by hand from the protocol text (shared/PROTOCOL-NOTES.md),
never produced by the code under test.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtools import heartbeat
from hbtools.fields import FIELDS, MESSAGE_TYPES, WireType
from hbtools.heartbeat import DecodeError, EncodeError, Message

UUID = base64.b64decode("OzmVpjgWQM2NYChOZOti4A==")
# The first packet of a 2-node crc cluster as the notes print it.
REAL_FIRST = (
    b"###\n11:(0)t=status,10:(0)st=init,10:(0)dt=1b58,13:(0)protocol=1,12:(0)src=node1,"
    b"27:(1)srcuuid=" + UUID + b",8:(0)seq=1,14:(0)hg=6b05eff9,14:(0)ts=6b05eff8,"
    b"31:(0)ld=0.02 0.11 0.08 1/92 19549,8:(0)ttl=3,18:(0)auth=1 a180247e,%%%\n10:1 a77e48e9,"
)


def test_real_first_packet_fields_and_radix():
    msg = heartbeat.decode(REAL_FIRST)
    assert msg.wire_format == "netstring"
    assert msg.names() == ["t", "st", "dt", "protocol", "src", "srcuuid", "seq", "hg", "ts", "ld",
                           "ttl", "auth"]
    assert msg.type == "status" and msg.status == "init" and msg.src == "node1"
    assert msg["srcuuid"] == UUID and msg.field_type("srcuuid") is WireType.BINARY
    assert msg.deadtime_ms == 0x1B58 == 7000  # hex milliseconds
    assert msg.seq == 1
    assert msg.generation == 0x6B05EFF9
    assert msg.timestamp == 0x6B05EFF8
    assert msg.ttl == 3  # decimal
    assert msg["ld"] == "0.02 0.11 0.08 1/92 19549"
    assert msg["auth"] == "1 a180247e"
    assert msg.trailer == "1 a77e48e9"
    assert heartbeat.encode(msg) == REAL_FIRST


def test_inline_signed_text_is_classic_lines_of_other_fields():
    msg = heartbeat.decode(REAL_FIRST)
    expected = (
        b"t=status\nst=init\ndt=1b58\nprotocol=1\nsrc=node1\n(1)srcuuid=OzmVpjgWQM2NYChOZOti4A==\n"
        b"seq=1\nhg=6b05eff9\nts=6b05eff8\nld=0.02 0.11 0.08 1/92 19549\nttl=3\n"
    )
    assert heartbeat.inline_signed_text(msg) == expected


def test_trailer_region_ends_with_the_end_marker():
    msg = heartbeat.decode(REAL_FIRST)
    region = heartbeat.trailer_signed_region(REAL_FIRST, msg)
    assert region == REAL_FIRST[: REAL_FIRST.index(b"%%%\n") + 4]


def test_classic_format_by_hand():
    wire = (
        b">>>\nt=status\nst=active\n(1)srcuuid=OzmVpjgWQM2NYChOZOti4A==\nseq=2c\n"
        b"info=two\x13lines\nauth=1 deadbeef\n<<<\n"
    )
    msg = heartbeat.decode(wire)
    assert msg.wire_format == "classic"
    assert msg["srcuuid"] == UUID
    assert msg.seq == 44
    assert msg["info"] == "two\nlines"  # 0x13 stands for a newline
    assert heartbeat.encode(msg) == wire


def test_classic_nested_struct_uses_depth_substitute():
    # A child message's own newlines become byte 20 (0x14) at depth 0, and the
    # grandchild's become 21 before the child is folded, per cluster-glue.
    grandchild = b">>>\x15x=1\x15<<<\x15"
    child = b">>>\x14a=b\x14(2)g=" + grandchild + b"\x14<<<\x14"
    wire = b">>>\nt=x\n(2)c=" + child + b"\n<<<\n"
    msg = heartbeat.decode(wire)
    inner = msg["c"]
    assert isinstance(inner, Message) and inner["a"] == "b"
    assert inner["g"]["x"] == "1"
    assert heartbeat.encode(msg) == wire


def test_netstring_struct_and_list_fields():
    child = b"###\n7:(0)a=bc,%%%\n"
    lst = b"3:abc,4:defg,"
    wire = (b"###\n7:(0)t=xy," + b"%d:(2)c=" % (5 + len(child)) + child + b","
            + b"%d:(3)l=" % (5 + len(lst)) + lst + b",%%%\n")
    msg = heartbeat.decode(wire)
    assert msg["c"]["a"] == "bc"
    assert msg["l"] == ["abc", "defg"]
    assert msg.trailer is None
    assert heartbeat.encode(msg) == wire
    classic = heartbeat.encode(msg, wire_format="classic")
    assert classic == b">>>\nt=xy\n(2)c=>>>\x14a=bc\x14<<<\x14\n(3)l=3:abc,4:defg,\n<<<\n"


def test_compression_envelope_round_trip_zlib_and_bz2():
    inner = Message.build([("t", "status"), ("src", "node1"), ("ld", "x" * 3000)])
    for algorithm in ("zlib", "bz2"):
        envelope = heartbeat.compress(inner, algorithm)
        wire = heartbeat.encode(envelope)
        decoded = heartbeat.decode(wire)
        assert decoded["_compression_algorithm"] == algorithm
        out = heartbeat.decompress(decoded)
        assert out is not None and out.wire_format == "classic" and out.nul_terminated
        assert out.fields == inner.fields


def test_compression_bomb_is_refused():
    import zlib

    bomb = Message.build([("_compressed_payload", zlib.compress(b"a" * (3 * 1024 * 1024))),
                          ("_compression_algorithm", "zlib")])
    with pytest.raises(DecodeError, match="2 MiB"):
        heartbeat.decompress(heartbeat.decode(heartbeat.encode(bomb)))


@pytest.mark.parametrize(
    ("wire", "offset", "problem"),
    [
        (b"hello", 0, "expected '###"),
        (b"###\n11(0)t=status,%%%\n", 4, "netstring length"),
        (b"###\n99:(0)t=status,%%%\n", 7, "runs past the end"),
        (b"###\n10:(0)t=statusX%%%\n", 17, "expected ','"),
        (b"###\n8:t=status,%%%\n", 6, "'(T)'"),
        (b"###\n11:(9)t=status,%%%\n", 8, "unknown field type"),
        (b"###\n11:(0)t=status,", 19, "'%%%"),
        (b"###\n11:(0)t=status,%%%\nzz", 23, "netstring length"),
        (b">>>\nt=status\n", 13, "'<<<"),
        (b">>>\nt=status\n(1)u=!!\n<<<\n", 18, "base64"),
        (b">>>\n(0)t=status\n<<<\n", 5, "(0)"),
        (b">>>\nnoequals\n<<<\n", 4, "'='"),
    ],
)
def test_malformed_input_names_offset_and_problem(wire, offset, problem):
    with pytest.raises(DecodeError) as caught:
        heartbeat.decode(wire)
    assert caught.value.offset == offset
    assert problem in str(caught.value)


def test_number_of_non_number_is_a_decode_error():
    msg = Message.build([("t", "status"), ("seq", "zz")])
    with pytest.raises(DecodeError):
        _ = msg.seq
    assert msg.to_json_fields()["seq"] == "zz"  # nothing lost in JSON


def test_radix_depends_on_message_type():
    rexmit = Message.build([("t", "NS_rexmit"), ("firstseq", "44"), ("lastseq", "44")])
    nak = Message.build([("t", "NS_nak_rexmit"), ("firstseq", "2c")])
    assert rexmit.firstseq == 44 and rexmit.lastseq == 44
    assert nak.firstseq == 44


def test_unknown_fields_and_types_round_trip():
    msg = Message.build([("t", "brand-new"), ("zz_custom", "1"), ("(not)", "x")][:2])
    wire = heartbeat.encode(msg)
    assert heartbeat.decode(wire) == msg
    assert heartbeat.decode(wire).to_json_fields() == {"t": "brand-new", "zz_custom": "1"}


def test_encode_refuses_what_the_wire_cannot_carry():
    with pytest.raises(EncodeError):
        heartbeat.encode(Message.build([("a=b", "x")]))
    with pytest.raises(EncodeError):
        heartbeat.encode(Message.build([("info", "a\x13b")]), wire_format="classic")
    with pytest.raises(EncodeError):
        heartbeat.encode(Message.build([("l", [])]))


def test_field_table_covers_the_protocol_notes():
    for name in ("t", "st", "dt", "protocol", "src", "dest", "srcuuid", "destuuid", "seq", "hg",
                 "ts", "ld", "ttl", "auth", "ackseq", "firstseq", "lastseq", "rsc_hold", "rtype",
                 "isstable", "info", "nodelist", "delnodelist", "ipaddr", "weown", "ok", "node",
                 "result", "_compressed_payload", "_compression_algorithm"):
        assert name in FIELDS, name
        assert FIELDS[name].meaning
    for name in ("status", "NS_ackmsg", "NS_rexmit", "NS_nak_rexmit", "ip-request", "hbshutdown",
                 "reqnodes", "repnodes", "starting", "resource", "ask_resources", "ip-request-resp",
                 "stonith", "shutdone"):
        assert name in MESSAGE_TYPES, name
    assert not MESSAGE_TYPES["NS_ackmsg"].sequenced and MESSAGE_TYPES["status"].sequenced


# -- properties ---------------------------------------------------------------

names = st.text(st.characters(blacklist_characters="=\n(", blacklist_categories=("Cs",)),
                min_size=1, max_size=12)
text_values = st.text(st.characters(blacklist_characters="\x13", blacklist_categories=("Cs",)),
                      max_size=40)
list_values = st.lists(st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)),
                               min_size=1, max_size=8), min_size=1, max_size=4)


def _field_lists(children: st.SearchStrategy) -> st.SearchStrategy:
    value = st.one_of(
        text_values.map(lambda v: (WireType.STRING, v)),
        st.binary(max_size=40).map(lambda v: (WireType.BINARY, v)),
        list_values.map(lambda v: (WireType.LIST, v)),
        children.map(lambda m: (WireType.STRUCT, m)),
    )
    return st.lists(st.tuples(names, value), max_size=6).map(
        lambda items: [heartbeat.Field(n, t, v) for n, (t, v) in items])


messages = st.recursive(
    st.lists(st.tuples(names, text_values), max_size=6).map(
        lambda items: Message([heartbeat.Field(n, WireType.STRING, v) for n, v in items])),
    lambda children: _field_lists(children).map(Message),
    max_leaves=10,
)


def _as_format(msg: Message, fmt: str) -> Message:
    fields = [heartbeat.Field(f.name, f.type, _as_format(f.value, fmt) if f.type is WireType.STRUCT
                              else f.value) for f in msg.fields]
    return Message(fields, fmt)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(messages, st.sampled_from(["netstring", "classic"]))
def test_decode_inverts_encode(msg, fmt):
    msg = _as_format(msg, fmt)
    try:
        wire = heartbeat.encode(msg)
    except EncodeError:
        return  # e.g. a struct whose text happens to contain its newline substitute
    assert heartbeat.decode(wire) == msg


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_decode_error(data):
    try:
        heartbeat.decode(data)
    except DecodeError:
        pass


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from([REAL_FIRST, heartbeat.encode(heartbeat.decode(REAL_FIRST), wire_format="classic")]),
       st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=4))
def test_mutated_packets_raise_only_decode_error(base, edits):
    data = bytearray(base)
    for position, byte in edits:
        data[position % len(data)] = byte
    try:
        msg = heartbeat.decode(bytes(data))
    except DecodeError:
        return
    # Whatever decodes must also re-encode to exactly the same bytes.
    assert heartbeat.encode(msg) == bytes(data)
    try:
        msg.to_json_fields()
        _ = (msg.seq, msg.generation, msg.ttl, msg.deadtime_ms)
    except DecodeError:
        pass
