"""The fast paths print exactly what the codecs say, or step aside for them.

`dissectors.fast` renders Heartbeat, Totem and knet payloads to JSON without the codecs'
object models. For any input, its text must equal ``json.dumps`` of the codec's own
rendering, or it must refuse (``_Fallback``) so that the codec decides. Inputs are
generated: Heartbeat messages written by hand (commas, '=', binary bytes, duplicates,
type-dependent fields, both formats), Totem messages from the Totem tests' strategies,
and arbitrary or mutated bytes.
"""

from __future__ import annotations

import base64
import json

import pytest
from hbtools.dissectors.fast import HeartbeatFast, _Fallback
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.all import IP, UDP, Ether, IPv6, PcapWriter, Raw, fragment

from hbtools import heartbeat, knet, totem
from tests.dissect_vectors import hb_status, json_rows, netstring, run_cli, totem_token
from tests.totem_strategies import messages_legacy, messages_v3

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

names = st.one_of(
    st.sampled_from(["t", "st", "src", "seq", "hg", "ts", "dt", "ttl", "protocol", "ld",
                     "ackseq", "firstseq", "lastseq", "srcuuid", "destuuid", "dest", "info",
                     "auth", "_compressed_payload", "weight", "pid"]),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF,
                                   blacklist_characters="=,\n("), min_size=1, max_size=8),
)
text_values = st.one_of(
    st.sampled_from(["status", "1a", "-1f", "0x1a", "12", "1_0", " 5", "node1", "a,b", "x=y",
                     "", "\u00e9t\u00e9", "1 a77e48e9", "NS_nak_rexmit", "NS_rexmit"]),
    st.text(max_size=12),
)


@st.composite
def hb_fields(draw):
    n = draw(st.integers(0, 8))
    fields = []
    if draw(st.booleans()):
        fields.append(("t", 0, draw(text_values)))
    for _ in range(n):
        if draw(st.integers(0, 4)) == 0:
            fields.append((draw(names), 1, draw(st.binary(max_size=20))))
        else:
            fields.append((draw(names), 0, draw(text_values)))
    return fields


def _netstring_message(fields, trailer: bytes | None) -> bytes:
    body = b"###\n"
    for name, kind, value in fields:
        raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
        body += netstring(b"(%d)%s=%s" % (kind, name.encode("utf-8", "surrogatepass"), raw))
    body += b"%%%\n"
    if trailer is not None:
        body += netstring(trailer)
    return body


def _classic_message(fields) -> bytes:
    body = b">>>\n"
    for name, kind, value in fields:
        if kind == 1:
            body += b"(1)%s=%s\n" % (name.encode("utf-8", "surrogatepass"), base64.b64encode(value))
        else:
            body += b"%s=%s\n" % (name.encode("utf-8", "surrogatepass"),
                                  value.encode("utf-8", "surrogatepass").replace(b"\n", b"\x13"))
    return body + b"<<<\n"


def _agree(fast: HeartbeatFast, payload: bytes) -> bool:
    """True when the fast path answered; asserts it answered like the codec."""
    try:
        kind, node, text = fast(payload)
    except (_Fallback, ValueError):
        return False
    msg = heartbeat.decode(payload)  # the fast path answering means the codec must accept
    assert text == json.dumps(msg.to_json_fields())
    assert kind == msg.type
    assert node == msg.src
    return True


FAST = HeartbeatFast()


@SETTINGS
@given(hb_fields(), st.one_of(st.none(), st.just(b"1 a77e48e9"), st.binary(max_size=12)),
       st.booleans())
def test_heartbeat_fast_equals_codec(fields, trailer, nul):
    payload = _netstring_message(fields, trailer) + (b"\x00" if nul else b"")
    _agree(FAST, payload)
    _agree(FAST, _classic_message(fields) + (b"\x00" if nul else b""))


@SETTINGS
@given(st.binary(max_size=200), st.sampled_from([b"###\n", b">>>\n", b""]))
def test_heartbeat_fast_on_arbitrary_bytes(data, opening):
    _agree(FAST, opening + data)


@SETTINGS
@given(st.integers(0, 400), st.integers(0, 255), st.booleans())
def test_heartbeat_fast_on_mutated_messages(position, byte, classic):
    payload = bytearray(hb_status("node1", 0x2C, classic=classic))
    position %= len(payload)
    payload[position] = byte
    _agree(FAST, bytes(payload))
    _agree(FAST, bytes(payload[:position]))


def test_heartbeat_fast_answers_for_the_usual_messages():
    # not only refusing: the common messages take the fast path
    assert _agree(HeartbeatFast(), hb_status("node1", 1))
    assert _agree(HeartbeatFast(), hb_status("node1", 1, classic=True))


def test_heartbeat_fast_refuses_what_needs_the_codec():
    fast = HeartbeatFast()
    nak = _netstring_message([("t", 0, "NS_nak_rexmit"), ("firstseq", 0, "2c")], b"1 0")
    dup = _netstring_message([("t", 0, "status"), ("t", 0, "again")], b"1 0")
    comma = _netstring_message([("t", 0, "status"), ("info", 0, "a,b")], b"1 0")
    for payload in (nak, dup):
        with pytest.raises(_Fallback):
            fast(payload)
    for payload in (nak, dup, comma):
        # whichever path, the CLI's rows equal the codec's
        assert not _agree(fast, payload) or payload is comma


def _totem_agree(payload: bytes, mcast: bool = False) -> bool:
    """`totem.decode_json` (the compiled JSON view the hot path prints) against `decode`."""
    found = totem.decode_json(payload, mcast=mcast)
    if found is None:
        return False
    kind, node, text = found
    msg = totem.decode(payload)
    assert text == json.dumps(msg.to_dict())
    assert (kind, node) == (msg.type_name, msg.nodeid)
    return True


@SETTINGS
@given(messages_v3())
def test_totem_fast_equals_codec(message):
    # With mcast=False (the dissector's call) an mcast takes the codec path: totempg above
    # it needs the capture's state. With mcast=True every well-formed message renders.
    assert _totem_agree(totem.encode(message)) or message.type_name == "mcast"
    assert _totem_agree(totem.encode(message), mcast=True)


@SETTINGS
@given(st.binary(max_size=120))
def test_totem_fast_on_arbitrary_bytes(data):
    _totem_agree(b"\x70\xc0\x03" + data, mcast=True)
    _totem_agree(data, mcast=True)


@SETTINGS
@given(messages_v3(), st.integers(0, 10_000), st.integers(0, 255))
def test_totem_fast_on_mutated_messages(message, position, byte):
    data = bytearray(totem.encode(message))
    position %= len(data)
    data[position] = byte
    _totem_agree(bytes(data), mcast=True)
    _totem_agree(bytes(data[:position]), mcast=True)


@SETTINGS
@given(messages_legacy())
def test_totem_fast_legacy_header(message):
    assert _totem_agree(totem.encode(message)) or message.type_name == "mcast"
    assert _totem_agree(totem.encode(message), mcast=True)


def _knet_agree(payload: bytes, mcast: bool = False) -> bool:
    found = knet.decode_json(payload, mcast=mcast)
    if found is None:
        return False
    kind, node, text = found
    packet = knet.decode(payload)
    assert text == json.dumps(packet.to_dict())
    assert (kind, node) == (packet.type_name, packet.node)
    return True


@SETTINGS
@given(messages_v3(), st.integers(0, 0xFFFF))
def test_knet_fast_equals_codec(message, seq):
    packet = knet.Packet("data", node=3, seq_num=seq, totem=message)
    # An mcast always takes the codec path: totempg above it needs the capture's state.
    assert _knet_agree(knet.encode(packet)) or message.type_name == "mcast"
    assert _knet_agree(knet.encode(packet), mcast=True)


@SETTINGS
@given(st.binary(max_size=60), st.sampled_from([0x00, 0x81, 0x82, 0x83, 0x84, 0x01, 0x99]))
def test_knet_fast_on_arbitrary_bytes(data, kind):
    _knet_agree(bytes([1, kind, 0, 1, 0, 0]) + data)
    _knet_agree(data)


def test_knet_ping_and_pmtud():
    for packet in (knet.Packet("ping", node=1, link=0, time=bytes(range(16)), seq_num=9, timed=1),
                   knet.Packet("pmtud", node=2, link=0, size=1200, pmtud_data=bytes(40))):
        assert _knet_agree(knet.encode(packet))


# -- the whole command: hot path, workers and general path agree --------------------------


def _mixed_capture(path) -> None:
    """Every kind of frame the hot path treats differently, in one capture."""
    big = b"###\n" + netstring(b"(0)t=repnodes") + netstring(b"(0)src=node1") + netstring(
        b"(0)seq=2c") + netstring(b"(0)nodelist=" + b"n " * 3000) + b"%%%\n" + netstring(b"1 0")
    frames = []
    for i in range(300):
        frames.append(Ether() / IP(src="198.18.0.1", dst="198.18.0.255")
                      / UDP(sport=40000, dport=694) / Raw(hb_status("node1", i + 1)))
        frames.append(Ether() / IP(src="198.18.0.2", dst="198.18.0.1")
                      / UDP(sport=5405, dport=5405) / Raw(totem_token(2, 1, 13, i)))
        if i % 25 == 0:
            frames += [Ether() / f for f in fragment(
                IP(src="198.18.0.3", dst="198.18.0.1", id=i) / UDP(sport=40001, dport=694)
                / Raw(big), fragsize=1000)]
            frames.append(Ether() / IPv6(src="fd00::1", dst="fd00::2")
                          / UDP(sport=40002, dport=694) / Raw(hb_status("node6", i, classic=True)))
            frames.append(Ether() / IP() / UDP(sport=40000, dport=694) / Raw(b"###\nbroken"))
            frames.append(Ether() / IP() / UDP(sport=53, dport=53) / Raw(b"dns"))
            kpkt = knet.Packet("data", node=2, seq_num=i, totem=totem.decode(totem_token(2, 1, 13, i)))
            raw = knet.encode(kpkt)
            # the same Totem split into two knet fragments by hand
            inner = raw[14:]
            for seq, part in ((1, inner[:20]), (2, inner[20:])):
                head = raw[:11] + bytes([2, seq]) + raw[13:14]
                frames.append(Ether() / IP(src="198.18.0.9", dst="198.18.0.1")
                              / UDP(sport=5405, dport=5405) / Raw(head + part))
            frames.append(Ether() / IP(src="198.18.0.9", dst="198.18.0.1")
                          / UDP(sport=5405, dport=5405) / Raw(raw))
    # a fragment that never completes, at the end
    frames.append(Ether() / fragment(IP(src="198.18.0.3", dst="198.18.0.1", id=9999)
                                     / UDP(sport=40001, dport=694) / Raw(big), fragsize=1000)[0])
    writer = PcapWriter(str(path), sync=True)
    for i, f in enumerate(frames):
        f.time = 1_700_000_000 + i * 0.001
        writer.write(f)
    writer.close()


def test_hot_path_workers_and_general_path_agree(tmp_path):
    path = tmp_path / "mixed.pcap"
    _mixed_capture(path)
    code, reference, err = run_cli("decode", "-f", "json", "--codec-only", str(path))
    assert code == 0, err
    rows = json_rows(reference)
    assert {r["proto"] for r in rows} == {"heartbeat", "totem", "knet"}
    assert any(r["error"] and "incomplete" in r["error"] for r in rows)
    assert any(r["fields"].get("nodelist") for r in rows)
    assert sum(1 for r in rows if r["proto"] == "knet" and "totem" in r["fields"]) == 24
    for jobs in ("1", "2"):
        code, out, err = run_cli("decode", "-f", "json", "-j", jobs, str(path))
        assert code == 0, err
        assert out == reference, f"jobs={jobs}"
    # stdin goes through the same chunking
    code, out, err = run_cli("decode", "-f", "json", "-j", "2", "-", input=path.read_bytes())
    assert out == reference


# -- the codec's one item splitter: its quick reading equals the careful reader -----------

def _careful(payload: bytes):
    """The item-by-item reader (what decode did before `split_items`), or its error."""
    try:
        if payload.startswith(b"###\n"):
            return heartbeat._decode_netstring(payload, 0, top=True)
        return heartbeat._decode_classic(payload, 0, top=True)
    except heartbeat.DecodeError as exc:
        return ("error", str(exc))


def _split_agrees(payload: bytes) -> None:
    if payload[:4] not in (b"###\n", b">>>\n"):
        return
    try:
        quick = heartbeat.decode(payload)
    except heartbeat.DecodeError as exc:
        quick = ("error", str(exc))
    assert quick == _careful(payload)


@SETTINGS
@given(hb_fields(), st.one_of(st.none(), st.just(b"1 a77e48e9"), st.binary(max_size=12)),
       st.booleans(), st.integers(0, 400), st.integers(0, 256))
def test_heartbeat_split_equals_careful_reader(fields, trailer, nul, position, byte):
    # hand-written messages of both formats (commas, '=', '%%%', binary values, trailers),
    # then one byte changed or the message cut: decode must say what the careful reader says
    for payload in (_netstring_message(fields, trailer) + (b"\x00" if nul else b""),
                    _classic_message(fields) + (b"\x00" if nul else b""),
                    hb_status("node1", 0x2C), hb_status("node1", 0x2C, classic=True)):
        _split_agrees(payload)
        data = bytearray(payload)
        at = position % len(data)
        if byte < 256:
            data[at] = byte
        _split_agrees(bytes(data))
        _split_agrees(bytes(data[:at]))


def test_heartbeat_split_cuts_a_value_holding_the_separators():
    # '8:(0)i=a,b,' holds a comma: split at it, the piece '8:(0)i=a' carries 5 of the 8
    # bytes its prefix claims, so the careful reader takes the message, whole value kept
    payload = b"###\n8:(0)t=ack,8:(0)i=a,b,%%%\n"
    assert heartbeat.split_items(payload).items == [b"8:(0)t=ack", b"8:(0)i=a", b"b"]
    assert heartbeat.decode(payload).get("i") == "a,b"
    assert heartbeat.decode(b">>>\nt=ack\ni=%%%\n<<<\n").get("i") == "%%%"
