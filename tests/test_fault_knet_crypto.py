"""The fault engine inside encrypted knet: match on what Pacemaker says, rewrite, re-encrypt.

Packets are real ones from ``captures/pcmk-2node-crypto`` (aes256/sha256). What the rules
should hit is found here by an independent reading of the decrypted bytes (CPG group name
at exec offset 24 after the group header "a", PROTOCOL-NOTES §6), not by the engine.
"""

from __future__ import annotations

import struct

import pytest
from policy import CAPTURES

from faults.engine import Engine, Verdict
from faults.rules import RuleError, parse_rule
from hbtools import knet, knetcrypto, totem

FOLDER = CAPTURES / "pcmk-2node-crypto"
KEY = knetcrypto.Key.load(FOLDER / "authkey")


def _datagrams() -> list[bytes]:
    from scapy.all import IP, UDP, PcapReader

    out = []
    with PcapReader(str(FOLDER / "capture.pcap")) as reader:
        for pkt in reader:
            if UDP in pkt and pkt[UDP].dport == 5405:
                out.append(bytes(pkt[IP]))
    return out


def _group(raw_ip: bytes) -> str | None:
    """The CPG group of an unfragmented single-message cpg mcast, read by offsets."""
    opened = knetcrypto.open_packet(raw_ip[28:], KEY, knetcrypto.Suite("aes256", "sha256"))
    assert opened is not None
    if opened[1] != 0 or opened[11] != 1 or opened[14 + 3] != 1:
        return None
    pg = opened[14 + 45:]
    if pg[4] or pg[5] or struct.unpack_from("<H", pg, 6)[0] != 1:
        return None
    msg = pg[10:]
    if msg[:5] != b"\x01\x00\x01\x00a" or struct.unpack_from("<i", msg, 5)[0] != 0x20003:
        return None
    exec_ = msg[5:]
    length = struct.unpack_from("<I", exec_, 16)[0]
    return exec_[24:24 + length].rstrip(b"\0").decode()


DATAGRAMS = _datagrams()
GROUPS = [_group(d) for d in DATAGRAMS]


def _run(rule: str, keys: bool) -> list[list]:
    ring = knetcrypto.KeyRing([KEY]) if keys else None
    engine = Engine([parse_rule(rule)], seed=1, corosync_keys=ring)
    return [engine.receive(i, d, "out", 0.0) for i, d in enumerate(DATAGRAMS)]


def test_drop_by_cpg_group_inside_encrypted_knet() -> None:
    assert GROUPS.count("crmd") > 5
    with_keys = _run("drop corosync.cpg_group=crmd", keys=True)
    for group, out in zip(GROUPS, with_keys, strict=True):
        verdict = out[0]
        assert isinstance(verdict, Verdict)
        if group == "crmd":
            assert verdict.accept is False
        elif group is not None:
            assert verdict.accept is True
    # Without the key the group cannot be seen: nothing matches.
    assert all(out[0].accept for out in _run("drop corosync.cpg_group=crmd", keys=False))


def test_rewrite_is_reencrypted_with_the_same_key() -> None:
    outs = _run("rewrite totem.seq:=+1000 corosync.cpg_group=cib", keys=True)
    ring = knetcrypto.KeyRing([KEY])
    rewritten = 0
    for group, data, out in zip(GROUPS, DATAGRAMS, outs, strict=True):
        verdict = out[0]
        if group != "cib":
            assert verdict.payload is None
            continue
        assert verdict.payload is not None and verdict.payload != data
        before = totem.decode(knet.decode(ring.open(data[28:]).plain, crypto=False).userdata)
        opened = ring.open(verdict.payload[28:])
        assert opened is not None and opened.key == KEY
        after = totem.decode(knet.decode(opened.plain, crypto=False).userdata)
        assert after.seq == before.seq + 1000
        assert after.replace(seq=before.seq) == before
        rewritten += 1
    assert rewritten > 5


def test_rewrite_values_are_checked() -> None:
    with pytest.raises(RuleError):
        parse_rule("rewrite totem.seq:=many")
    with pytest.raises(RuleError):
        parse_rule("drop corosync.no_such_key=1")
