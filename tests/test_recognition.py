"""Recognition is declared once, next to each codec: the readers agree with the codecs.

Every datagram here comes from the committed recordings of real daemons (Heartbeat
3.0.6, Corosync 3.1.7 over udp, udpu and knet, clear and encrypted), read by scapy, and
from mutations of them. For each recogniser the property is stated against its codec
(what decodes is recognised; what is refused does not decode), and the two readers that
must judge a datagram alike, `hbtool decode`'s detector and the fault engine's packet
view, are compared on every port, 5500 included (the case issue 11 found: a knet packet
there was knet to decode and never matched ``proto=knet`` in a fault rule).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest
from hbtools.faults.engine import Engine, PacketView
from hbtools.faults.packet import parse as parse_ipv4
from hbtools.faults.rules import parse_rule
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy import CAPTURES
from scapy.layers.inet import IP, UDP
from scapy.utils import PcapReader, wrpcap

from hbtools import heartbeat, knet, totem
from hbtools.recognition import Detector

ROOT = CAPTURES.parent


def _datagrams() -> list[tuple[str, int, bytes]]:
    """(capture, destination port, UDP payload) of every distinct datagram, via scapy."""
    seen: dict[bytes, tuple[str, int, bytes]] = {}
    for folder in sorted(CAPTURES.iterdir()):
        path = folder / "capture.pcap"
        if not path.is_file():
            continue
        with PcapReader(str(path)) as reader:
            for pkt in reader:
                if UDP in pkt:
                    payload = bytes(pkt[UDP].payload)
                    seen.setdefault(payload, (folder.name, int(pkt[UDP].dport), payload))
    return list(seen.values())


DATAGRAMS = _datagrams()
PAYLOADS = [p for _, _, p in DATAGRAMS]
#: Knet packets from the cleartext knet recordings (corosync.conf: transport knet, no crypto).
KNET_CLEAR = [p for name, port, p in DATAGRAMS
              if name in ("totem-knet", "pcmk-2node", "pcmk-3node") and port in knet.LINK_PORTS]

HEALTH = settings(max_examples=200, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real datagram, possibly cut, extended, or with bytes replaced (the marker bytes
    most often, since recognition reads those)."""
    data = bytearray(draw(st.sampled_from(PAYLOADS)))
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        where = draw(st.one_of(st.integers(0, min(len(data), 30) - 1),
                               st.integers(0, len(data) - 1)))
        data[where] = draw(st.integers(0, 255))
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
    if cut is not None:
        data = data[:cut]
    return bytes(data) + draw(st.binary(max_size=4))


def test_the_recordings_hold_every_protocol():
    names = {n for n, _, _ in DATAGRAMS}
    assert any(heartbeat.looks(p) for p in PAYLOADS)
    assert len(KNET_CLEAR) > 10 and "totem-udpu-3node" in names and "pcmk-2node-crypto" in names


@HEALTH
@given(mutated())
def test_heartbeat_recogniser_against_its_codec(data):
    try:
        heartbeat.decode(data)
    except heartbeat.DecodeError:
        return
    assert heartbeat.looks(data)


@HEALTH
@given(mutated())
def test_totem_recogniser_against_its_codec(data):
    try:
        msg = totem.decode(data)
    except totem.DecodeError:
        decoded = False
    else:
        decoded = True
    found = None
    try:
        found = totem.frame(data)
    except totem.DecodeError:
        assert not decoded  # magic with a wrong version: decode refuses it too
        assert not totem.claims(data)
        return
    if found is None:
        assert not decoded and not totem.claims(data) and not totem.looks(data)
        return
    if totem.looks(data):
        assert totem.claims(data)
    if decoded:
        legacy = msg.version is None
        assert legacy == found[0] and msg.endian == found[1]
        if not legacy or msg.encapsulated in totem.ENCAPSULATED:
            assert totem.claims(data) and totem.looks(data)


@HEALTH
@given(mutated())
def test_knet_recognisers_against_their_codec(data):
    clear = knet.looks_clear(data)
    try:
        auto = knet.decode(data)
    except knet.DecodeError:
        auto = None
    if clear:
        packet = knet.decode(data, crypto=False)  # a plausible clear packet always decodes
        assert auto is not None and not auto.encrypted and auto == packet
        if knet.is_fragment(data):
            assert packet.frag_num > 1
        if knet.carries_totem(data):
            assert packet.totem is not None or packet.totem_error is not None
            assert (packet.totem is not None) == _decodes(packet.userdata)
    else:
        assert auto is None or auto.encrypted
    if knet.looks(data):
        assert clear and auto is not None and auto.type_name != "host_info"


def _decodes(data: bytes) -> bool:
    try:
        totem.decode(data)
    except totem.DecodeError:
        return False
    return True


def _ip(payload: bytes, sport: int, dport: int) -> bytes:
    return bytes(IP(src="198.18.0.1", dst="198.18.0.2") / UDP(sport=sport, dport=dport)
                 / payload)


@HEALTH
@given(mutated(), st.one_of(st.sampled_from([694, 5404, 5405, 5406, 5500]),
                            st.integers(1, 65535)))
def test_decode_and_fault_judge_alike_on_every_port(data, port):
    decode_says = Detector()(port, port, data)
    view = PacketView(parse_ipv4(_ip(data, port, port)), "out", Engine([]).detector)
    assert view.proto == (decode_says or "udp")
    if decode_says == "heartbeat" and port != heartbeat.PORT:
        assert heartbeat.looks(data)
    if decode_says == "knet" and port not in totem.PORTS:
        assert knet.looks(data)


def test_a_knet_packet_on_port_5500_is_knet_to_decode_and_to_fault(tmp_path):
    """The issue's case, end to end: ``hbtool decode`` and ``drop proto=knet`` agree."""
    packet = next(p for p in KNET_CLEAR if knet.carries_totem(p) and knet.looks(p))
    pcap = tmp_path / "moved.pcap"
    wrpcap(str(pcap), [IP(src="198.18.0.1", dst="198.18.0.2") / UDP(sport=5500, dport=5500)
                       / packet])
    out = subprocess.run([sys.executable, "-c", "from hbtools.cli import main; main()",
                          "decode", "-f", "json", "--codec-only", str(pcap)],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["proto"] for r in rows] == ["knet"]
    assert rows[0]["fields"]["totem"]["type_name"] in totem.TYPES.values()
    raw = _ip(packet, 5500, 5500)
    for ports in ((), (5500,)):  # whether or not --port names it
        engine = Engine([parse_rule("drop proto=knet")], ports=ports)
        (verdict,) = engine.receive(1, raw, "out", 0.0)
        assert not verdict.accept, ports
    keep = Engine([parse_rule("drop proto=heartbeat")], ports=(5500,))
    assert keep.receive(1, raw, "out", 0.0)[0].accept


def test_an_encrypted_knet_packet_is_knet_only_on_a_port_said_to_be_corosync():
    encrypted = next(p for n, port, p in DATAGRAMS
                     if n == "pcmk-2node-crypto" and port in knet.LINK_PORTS)
    assert not knet.looks_clear(encrypted)
    raw = _ip(encrypted, 5500, 5500)
    assert Engine([parse_rule("drop proto=knet")]).receive(1, raw, "out", 0.0)[0].accept
    told = Engine([parse_rule("drop proto=knet")], ports=((5500, "corosync"),))
    assert not told.receive(1, raw, "out", 0.0)[0].accept
    assert Detector([(5500, "corosync")])(5500, 5500, encrypted) == "knet"


def test_offsets_the_recognisers_read_are_the_layouts_offsets():
    """Hand-counted from libknet's onwire.h: 6-byte header, seq_num (2), compress at 8,
    pad, bcast, frag_num at 11, frag_seq at 12, channel, user data at 14; a ping is 26."""
    assert (knet.COMPRESS_AT, knet.FRAG_NUM_AT, knet.FRAG_SEQ_AT, knet.USERDATA_AT,
            knet.PING_SIZE) == (8, 11, 12, 14, 26)
    # Corosync 3 header: magic 2, version 1, type 1, encapsulated 1, nodeid 4, target 4.
    assert totem.HEADER_SIZE == 13
    assert struct.pack("<H", 0xC070) in totem.MAGIC_BYTES


@pytest.mark.parametrize("name", ["totem-knet", "totem-udpu-3node", "hb-bcast-crc"])
def test_every_recorded_datagram_on_its_own_port_is_its_protocol(name):
    expected = {"totem-knet": "knet", "totem-udpu-3node": "totem", "hb-bcast-crc": "heartbeat"}
    ports = [(port, p) for n, port, p in DATAGRAMS if n == name]
    assert ports
    for port, payload in ports:
        assert Detector()(port, port, payload) == expected[name]
