"""hbtools.scapy: every committed capture parses in scapy and rebuilds byte-exact; the layers
agree field by field with the codecs; a scapy-built 1.x/2.x Totem message is read back by
tshark's own corosync_totemsrp dissector; HB builds the bytes Heartbeat's format prescribes.

Ground truth: the captured wire bytes (recorded from the real daemons), tshark, and netstring
lengths counted by hand. The real-daemon check of a signed scapy status is in
tests/netns/test_scapy_heartbeat.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("scapy")

from hbtools.dissectors.detect import HEARTBEAT, KNET, TOTEM  # noqa: E402
from hbtools.dissectors.pipeline import Options, decode_stream  # noqa: E402
from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.packet import NoPayload, Packet, Raw  # noqa: E402
from scapy.utils import rdpcap, wrpcap  # noqa: E402

from hbtools import heartbeat, knet, totem  # noqa: E402
from hbtools.auth import AuthKeys  # noqa: E402
from hbtools.scapy import CODEC_NAMES, HB, Knet, Totem, totem_class  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = sorted((ROOT / "captures").glob("*/capture.pcap"))
LAYER = {HEARTBEAT: HB, TOTEM: Totem, KNET: Knet}


def scapy_dict(layer: Packet) -> dict:
    """A generated Totem/knet layer as the codec's to_dict() would show it."""
    out = {}
    for fld in layer.fields_desc:
        value = layer.getfieldval(fld.name)
        out[CODEC_NAMES.get(fld.name, fld.name)] = plain(value)
    return out


def plain(value):
    if isinstance(value, Packet):
        return scapy_dict(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def codec_dict(record) -> dict:
    """The codec's to_dict() without the keys that are not wire fields or are the payload."""
    d = record.to_dict()
    for key in ("endian", "type_name", "totem", "totem_error", "payload", "userdata"):
        d.pop(key, None)
    return d


@pytest.mark.parametrize("pcap", CAPTURES, ids=lambda p: p.parent.name)
def test_every_capture_parses_and_rebuilds(pcap: Path) -> None:
    with open(pcap, "rb") as stream:
        protos = {r.frame: r.proto for r in decode_stream(stream, str(pcap), Options(fast=False))
                  if r.proto != "arp"}  # the UDP layers; ARP is scapy's own
    frames = rdpcap(str(pcap))
    checked = 0
    for number, frame in enumerate(frames, start=1):
        proto = protos.get(number)
        if proto is None:
            continue
        wire = bytes(frame[UDP].payload)
        layer = frame[UDP].payload
        assert isinstance(layer, LAYER[proto]), (number, type(layer))
        layer.clear_cache()
        assert layer.raw_packet_cache is None
        assert bytes(layer) == wire, number
        if proto == KNET:
            record = knet.decode(wire)
            if record.encrypted:
                assert scapy_dict(layer) == {"ciphertext": wire.hex()}
            else:
                assert scapy_dict(layer) == codec_dict(record)
            inner = layer.payload
            if record.totem is not None:
                assert isinstance(inner, Totem)
                assert scapy_dict(inner) == codec_dict(record.totem)
            elif not record.encrypted:
                assert isinstance(inner, Raw | NoPayload)
        elif proto == TOTEM:
            assert scapy_dict(layer) == codec_dict(totem.decode(wire))
        else:
            msg = heartbeat.decode(wire)
            assert layer.getfieldval("t") == msg.type and layer.getfieldval("src") == msg.src
            if msg.seq is not None:
                assert layer.getfieldval("seq") == msg.seq
        checked += 1
    assert checked == len(protos) > 0


def test_changed_field_rebuilds_like_the_codec() -> None:
    frames = rdpcap(str(ROOT / "captures" / "totem-udpu-3node" / "capture.pcap"))
    token = next(f[UDP].payload for f in frames if type(f[UDP].payload).__name__ == "Totem3OrfToken")
    wire = bytes(token)
    token.token_seq += 1
    token.clear_cache()
    expected = totem.decode(wire)
    assert bytes(token) == totem.encode(expected.replace(token_seq=expected.token_seq + 1))


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("endian", ["little", "big"])
def test_legacy_totem_built_in_scapy_is_read_by_tshark(tmp_path: Path, endian: str) -> None:
    """tshark 4.0 knows only the Corosync 1.x/2.x header: its dissector is the judge here."""
    token_cls = totem_class("orf_token", version=None, endian=endian)
    addr_cls = type(token_cls().ring_id.rep)
    ring = type(token_cls().ring_id)(rep=addr_cls(nodeid=7, family=2,
                                                  addr=bytes([198, 18, 0, 7]) + bytes(12)), seq=12)
    token = token_cls(nodeid=7, seq=0x1234, token_seq=99, aru=0x1200, aru_addr=3, ring_id=ring,
                      backlog=5, fcc=2)
    pkt = IP(src="198.18.0.7", dst="198.18.0.8") / UDP(sport=5405, dport=5405) / token
    pcap = tmp_path / "legacy.pcap"
    wrpcap(str(pcap), [pkt])
    out = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-d", "udp.port==5405,corosync_totemnet", "-T", "fields",
         "-e", "corosync_totemsrp.message_header.type", "-e", "corosync_totemsrp.message_header.nodeid",
         "-e", "corosync_totemsrp.orf_token.seq", "-e", "corosync_totemsrp.orf_token.aru",
         "-e", "corosync_totemsrp.orf_token.backlog", "-e", "corosync_totemsrp.memb_ring_id.seq"],
        capture_output=True, text=True, timeout=60, check=True).stdout.split()
    # tshark shows token_seq under orf_token.seq as well: "seq,token_seq"
    assert out == ["0", "7", "4660,99", "4608", "5", "12"]
    back = IP(bytes(pkt))[UDP].payload
    assert type(back) is token_cls
    assert totem.decode(bytes(back)).version is None
    assert totem.decode(bytes(back)).endian == endian


def test_hb_builds_heartbeats_own_format() -> None:
    # "(0)t=status" is 11 bytes, "(0)st=active" 12, "(0)seq=5" 8: netstrings counted by hand.
    expected = b"###\n11:(0)t=status,12:(0)st=active,8:(0)seq=5,%%%\n"
    assert bytes(HB(t="status", st="active", seq=5)) == expected
    pkt = IP(dst="198.18.0.2") / UDP(dport=694) / HB(t="status", st="active", seq=5)
    assert bytes(pkt[UDP].payload) == expected
    assert bytes(HB(t="status", st="active", seq=5)) == heartbeat.encode(
        heartbeat.Message.build({"t": "status", "st": "active", "seq": "5"}))
    # seq is hex on the wire: 44 is "2c"
    assert b"9:(0)seq=2c," in bytes(HB(t="status", seq=44))


def test_hb_sign_matches_the_codec_and_verifies() -> None:
    keys = AuthKeys.load(str(ROOT / "captures" / "hb-failover" / "authkeys"))
    built = IP(bytes(IP(dst="198.18.0.2") / UDP(dport=694)
                     / HB(t="status", st="active", seq=5).sign(keys)))[UDP].payload
    wire = bytes(built)
    assert wire == heartbeat.encode(heartbeat.Message.build(
        {"t": "status", "st": "active", "seq": "5"}), keys, inline_auth=True)
    assert keys.verify(wire)
    assert built.getfieldval("auth") is not None


def test_junk_on_the_heartbeat_port_is_raw() -> None:
    pkt = IP(bytes(IP(dst="198.18.0.2") / UDP(sport=1000, dport=694) / Raw(b"###\n5:bad")))
    assert isinstance(pkt[UDP].payload, Raw)
