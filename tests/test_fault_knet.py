"""The fault engine on encrypted knet: it matches and rewrites what is inside, and seals again.

Expected values come from outside the code under test: the committed real capture
``pcmk-2node-crypto`` (corosync 3.1.7, aes256/sha256) and `Independent`, the by-offset
reader of ``tests/test_corosync_layers.py`` (hand-typed offsets, its own AES-CBC and HMAC):
which frames carry a ``crmd`` CPG mcast, what a knet ping's timestamp bytes and a Totem
mcast's seq are, and whether an HMAC verifies with a key. The codecs' parity with decode is
checked too: every ``corosync.*`` name gives the engine what it gives decode's filter.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner
from hbtools.faults.engine import CorosyncState, Engine, PacketView, Verdict
from hbtools.faults.packet import parse as parse_ipv4
from hbtools.faults.rules import RuleError, parse_rule
from policy import CAPTURES
from test_corosync_layers import Independent

from hbtools import knetcrypto

FOLDER = CAPTURES / "pcmk-2node-crypto"
NODE1, NODE2 = "198.18.0.1", "198.18.0.2"  # its corosync.conf's ring0_addr
STAMP = bytes(range(16))


def _numbered(folder: Path = FOLDER) -> list[tuple[int, bytes]]:
    """(frame number, IPv4 datagram) of a classic Ethernet pcap, read with struct (no
    project reader)."""
    data = (folder / "capture.pcap").read_bytes()
    magic, = struct.unpack_from("<I", data, 0)
    assert magic == 0xA1B2C3D4 and struct.unpack_from("<I", data, 20)[0] == 1  # Ethernet
    out, pos, number = [], 24, 0
    while pos < len(data):
        incl, = struct.unpack_from("<I", data, pos + 8)
        frame = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        number += 1
        if frame[12:14] == b"\x08\x00":
            out.append((number, frame[14:]))
    return out


def _datagrams(folder: Path = FOLDER) -> list[bytes]:
    return [dgram for _number, dgram in _numbered(folder)]


def _udp(dgram: bytes) -> tuple[str, str, int, bytes]:
    """(source, destination, destination port, UDP payload) by the IPv4/UDP offsets."""
    ihl = (dgram[0] & 0x0F) * 4
    src, dst = ".".join(map(str, dgram[12:16])), ".".join(map(str, dgram[16:20]))
    dport, length = struct.unpack_from("!HH", dgram, ihl + 2)
    return src, dst, dport, dgram[ihl + 8:ihl + length]


def _ring(*paths: Path) -> knetcrypto.KeyRing:
    return knetcrypto.load_keys([str(p) for p in paths])


def _other_key(tmp_path: Path) -> Path:
    path = tmp_path / "other"
    path.write_bytes(hashlib.sha512(b"not the cluster's key").digest() * 4)
    return path


def _run(engine: Engine, dgrams: list[bytes]) -> list[Verdict]:
    out = []
    for n, dgram in enumerate(dgrams):
        (verdict,) = engine.receive(n, dgram, "out", float(n))
        assert isinstance(verdict, Verdict)
        out.append(verdict)
    return out


def _mac_ok(authkey: bytes, payload: bytes) -> bool:
    """sha256 HMAC over everything before the last 32 bytes (the capture's crypto_hash)."""
    return hmac.compare_digest(hmac.new(authkey, payload[:-32], hashlib.sha256).digest(),
                               payload[-32:])


def test_drop_crmd_to_one_node_drops_what_the_independent_reading_says() -> None:
    """``drop corosync.cpg_group=crmd to=node2``: exactly the frames to node2 in which the
    by-offset reader finds a crmd CPG mcast, and no other (none to node1)."""
    dgrams = _datagrams()
    reader = Independent((FOLDER / "authkey").read_bytes())
    expected = set()
    for n, dgram in enumerate(dgrams):
        src, dst, dport, payload = _udp(dgram)
        if dport != 5405:
            continue
        msg = reader.totem(src, payload)
        found = reader.mcast(msg) if msg is not None else None
        if found and dst == NODE2 and any(group == "crmd" for group, _op in found):
            expected.add(n)
    assert len(expected) >= 5
    engine = Engine([parse_rule("drop corosync.cpg_group=crmd to=node2", nodes=["node2"])],
                    nodes={"node2": NODE2}, corosync_keys=_ring(FOLDER / "authkey"))
    dropped = {n for n, v in enumerate(_run(engine, dgrams)) if not v.accept}
    assert dropped == expected
    assert engine.undecryptable == 0


def test_every_corosync_name_gives_the_engine_what_it_gives_decode() -> None:
    """One declaration (`hbtools.corosync.SUMMARY_KEYS`), the same values per frame."""
    from hbtools.dissectors.filters import RecordSubject
    from hbtools.dissectors.pipeline import Options, decode_stream

    from hbtools.corosync import SUMMARY_KEYS

    ring = _ring(FOLDER / "authkey")
    limit = 800  # Pacemaker's start-up: every kind of CPG message, in well under a second
    rows = {}
    with open(FOLDER / "capture.pcap", "rb") as stream:
        for row in decode_stream(stream, FOLDER.name,
                                 Options(corosync_keys=_ring(FOLDER / "authkey"))):
            if row.frame > limit:
                break
            rows[row.frame] = row
    state = CorosyncState(ring, above=True)
    engine = Engine([])
    compared = 0
    for frame, dgram in _numbered()[:limit]:
        view = PacketView(parse_ipv4(dgram), "out", engine.detector, state)
        if frame not in rows:  # not a cluster packet: decode shows no row
            assert view.corosync == {}
            continue
        subject = RecordSubject(rows[frame])
        for key in SUMMARY_KEYS:
            assert view.values(f"corosync.{key}") == subject.values(f"corosync.{key}"), frame
        compared += bool(view.values("corosync.service"))
        assert view.values("node") == subject.values("node")
    assert compared > 40


def test_rewritten_ping_is_sealed_again_with_the_packets_own_key_and_suite() -> None:
    dgrams = _datagrams()
    authkey = (FOLDER / "authkey").read_bytes()
    reader = Independent(authkey)
    engine = Engine([parse_rule(f"rewrite knet.time:=hex:{STAMP.hex()} type=ping")],
                    corosync_keys=_ring(FOLDER / "authkey"))
    checked = 0
    for n, dgram in enumerate(dgrams[:300]):
        _src, _dst, dport, before = _udp(dgram)
        (verdict,) = engine.receive(n, dgram, "out", float(n))
        if dport != 5405 or reader.open(before)[1] != 0x81:  # knet type ping
            assert verdict.payload is None
            continue
        after = _udp(verdict.payload)[3]
        assert len(after) == len(before)  # aes256/sha256 again: salt 16, 2 blocks, HMAC 32
        assert after[:16] != before[:16]  # a fresh salt
        assert _mac_ok(authkey, after)
        old, new = reader.open(before), reader.open(after)
        assert new[7:23] == STAMP  # the ping's time: header 6, link 1
        assert new[:7] == old[:7] and new[23:] == old[23:]
        checked += 1
    assert checked > 5
    assert engine.stats[0].rewritten == checked and engine.stats[0].unrewritable == 0


def test_totem_field_rewrite_inside_an_encrypted_data_packet() -> None:
    authkey = (FOLDER / "authkey").read_bytes()
    reader = Independent(authkey)
    engine = Engine([parse_rule("rewrite totem.seq:=+7 type=mcast")],
                    corosync_keys=_ring(FOLDER / "authkey"))
    checked = 0
    for n, dgram in enumerate(_datagrams()):
        (verdict,) = engine.receive(n, dgram, "out", float(n))
        if verdict.payload is None:
            continue
        before, after = reader.open(_udp(dgram)[3]), reader.open(_udp(verdict.payload)[3])
        assert before[11] == 1 and before[14:18] == b"\x70\xc0\x03\x01"  # whole mcast
        old_seq, = struct.unpack_from("<I", before, 14 + 17)
        new_seq, = struct.unpack_from("<I", after, 14 + 17)
        assert new_seq == old_seq + 7
        assert after[:14 + 17] == before[:14 + 17] and after[14 + 21:] == before[14 + 21:]
        checked += 1
    assert checked > 20


def test_key_option_seals_with_another_key_and_stale_keeps_the_old_hmac(tmp_path: Path) -> None:
    authkey = (FOLDER / "authkey").read_bytes()
    other = _other_key(tmp_path)
    ring = _ring(FOLDER / "authkey", other)
    pings = [d for d in _datagrams() if _udp(d)[2] == 5405
             and Independent(authkey).open(_udp(d)[3])[1] == 0x81][:3]
    assert pings
    rekeyed = Engine([parse_rule(f"rewrite knet.time:=hex:{STAMP.hex()} key=other type=ping")],
                     corosync_keys=ring)
    for verdict in _run(rekeyed, pings):
        payload = _udp(verdict.payload)[3]
        assert not _mac_ok(authkey, payload) and _mac_ok(other.read_bytes(), payload)
    stale = Engine([parse_rule(f"rewrite knet.time:=hex:{STAMP.hex()} sign=stale type=ping")],
                   corosync_keys=ring)
    for dgram, verdict in zip(pings, _run(stale, pings), strict=True):
        payload = _udp(verdict.payload)[3]
        assert payload[-32:] == _udp(dgram)[3][-32:] and not _mac_ok(authkey, payload)


def test_packets_no_key_opens_pass_unchanged_and_are_counted(tmp_path: Path) -> None:
    dgrams = [d for d in _datagrams() if _udp(d)[2] == 5405][:200]
    engine = Engine([parse_rule("rewrite knet.link:=1 proto=knet"),
                     parse_rule("drop type=ping,pong,mcast")],
                    corosync_keys=_ring(_other_key(tmp_path)))
    verdicts = _run(engine, dgrams)
    assert all(v.accept and v.payload is None for v in verdicts)
    assert engine.undecryptable == len(dgrams)
    assert engine.stats[0].matched == len(dgrams) == engine.stats[0].unrewritable
    assert engine.stats[1].matched == 0


def test_hostile_bytes_on_the_knet_port_never_raise() -> None:
    """Random payloads to 5405 with keys and a corosync.* rule: verdicts, no exception."""
    from hbtools.faults.packet import Datagram, with_payload

    ring = _ring(FOLDER / "authkey")
    engine = Engine([parse_rule("drop corosync.cpg_group=crmd"),
                     parse_rule("rewrite totem.seq:=+1 knet.seq_num:=-1")], corosync_keys=ring)
    base = parse_ipv4(_datagrams()[0])
    assert isinstance(base, Datagram)
    rng = __import__("random").Random(15)
    plains = [bytes([1, 0, 0, 2, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0]) + os.urandom(40),
              bytes([1, 0, 0, 2, 0, 0, 0, 1, 0, 0, 3, 2, 0, 0]) + os.urandom(40)]
    payloads = [rng.randbytes(rng.randrange(0, 200)) for _ in range(200)]
    payloads += [knetcrypto.seal(p, ring.keys[0], knetcrypto.Suite("aes256", "sha256"))
                 for p in plains]
    for n, payload in enumerate(payloads):
        out = engine.receive(n, with_payload(base, payload), "out", float(n))
        assert len(out) == 1 and isinstance(out[0], Verdict)


@pytest.mark.parametrize(("rule", "problem"), [
    ("rewrite knet.nosuch:=1", "knet has no field a rewrite can set"),
    ("rewrite totem.ring_id:=+1", "a relative value needs a numeric field"),
    ("rewrite knet.link:=x", "expected a number"),
    ("rewrite knet.link:=1 st:=dead", "not both"),
    ("rewrite st:=dead key=other", "key= names a --corosync-authkey file"),
])
def test_rule_errors_say_what_is_wrong(rule: str, problem: str) -> None:
    with pytest.raises(RuleError, match=problem):
        parse_rule(rule)


def test_key_must_be_one_of_the_given_keys() -> None:
    with pytest.raises(RuleError, match="not a --corosync-authkey file name"):
        Engine([parse_rule("rewrite knet.link:=1 key=other")],
               corosync_keys=_ring(FOLDER / "authkey"))


def test_cli_bad_authkey_is_one_line_and_exit_2(tmp_path: Path) -> None:
    from hbtools.cli import cli

    short = tmp_path / "short"
    short.write_bytes(b"x" * 10)
    result = CliRunner().invoke(cli, ["fault", "--rule", "drop type=ping",
                                       "--corosync-authkey", str(short)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"hbtool fault: {short}: 10 bytes: corosync takes an authkey of 128 to 4096 bytes"]
