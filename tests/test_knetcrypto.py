"""knet crypto and compression against real corosync 3.1.7 captures.

The expected values come from the recordings, not from the code under test: every packet
in a capture taken with crypto on was accepted by a real corosync (it formed the
membership recorded in meta.json), so each one must authenticate and decrypt with that
capture's authkey and the suite its corosync.conf names, and (each capture has its own
random key) with no other capture's key. Compressed captures are checked against
corosync's own ``stats.knet.handle`` counters and the model in corosync.conf.
Packets are read with scapy here, not with the project's capture reader.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from hbtools import knet, knetcrypto, totem

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
VARIANTS = CAPTURES / "knet-variants"


def _folders() -> list[Path]:
    found = [p for p in sorted(VARIANTS.iterdir()) if (p / "meta.json").exists()]
    found += [CAPTURES / name for name in ("totem-knet-crypto", "pcmk-2node-crypto")]
    return found


FOLDERS = _folders()
ENCRYPTED = [p for p in FOLDERS if (p / "authkey").exists()]


def _payloads(folder: Path) -> list[bytes]:
    from scapy.all import UDP, PcapReader

    out = []
    with PcapReader(str(folder / "capture.pcap")) as reader:
        for pkt in reader:
            if UDP in pkt and pkt[UDP].dport in knet.LINK_PORTS:
                out.append(bytes(pkt[UDP].payload))
    return out


def _conf(folder: Path) -> dict[str, str]:
    """``key: value`` lines of the totem section (enough for crypto and compression)."""
    values = {}
    for line in (folder / "corosync.conf").read_text().splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key.startswith(("crypto_", "knet_compression")):
            values[key] = value.strip()
    return values


def test_the_matrix_is_complete() -> None:
    """Every cipher x hash x model corosync accepts, hash-only, and each compression model."""
    seen = {(c.get("crypto_model", "nss"), c.get("crypto_cipher"), c.get("crypto_hash"))
            for c in map(_conf, FOLDERS)}
    for model in knetcrypto.MODELS:
        for cipher in knetcrypto.CIPHERS:
            for hash_name in knetcrypto.HASHES:
                assert (model, cipher, hash_name) in seen
    for hash_name in knetcrypto.HASHES:
        assert any(c == "none" and h == hash_name for _m, c, h in seen)
    models = {_conf(p).get("knet_compression_model") for p in FOLDERS}
    assert set(knet.COMPRESS_MODELS.values()) - {"none"} <= models


@pytest.mark.parametrize("folder", ENCRYPTED, ids=lambda p: p.name)
def test_every_packet_opens_with_its_key_and_suite(folder: Path) -> None:
    conf = _conf(folder)
    key = knetcrypto.Key.load(folder / "authkey")
    ring = knetcrypto.KeyRing([key])
    payloads = _payloads(folder)
    assert payloads
    kinds: Counter[str] = Counter()
    for payload in payloads:
        opened = ring.open(payload)
        assert opened is not None
        assert (opened.suite.cipher or "none", opened.suite.hash) == (
            conf["crypto_cipher"], conf["crypto_hash"])
        kinds[knet.decode(opened.plain, crypto=False).type_name] += 1
    assert kinds["data"] > 0
    # corosync's own count says it encrypted packets (a clear run would show 0).
    meta = json.loads((folder / "meta.json").read_text())
    stats = meta.get("corosync_view", {}).get("knet_stats")
    if stats:
        assert all(int(s["stats.knet.handle.tx_crypt_packets"]) > 0 for s in stats.values())


def test_no_packet_opens_with_another_key() -> None:
    keys = {p: knetcrypto.Key.load(p / "authkey") for p in ENCRYPTED}
    for folder in ENCRYPTED:
        others = knetcrypto.KeyRing([k for p, k in keys.items() if p != folder])
        for payload in _payloads(folder)[:12]:
            assert others.open(payload) is None


def test_a_changed_byte_fails_authentication() -> None:
    folder = VARIANTS / "nss-aes256-sha256"
    ring = knetcrypto.KeyRing([knetcrypto.Key.load(folder / "authkey")])
    payload = _payloads(folder)[0]
    assert ring.open(payload) is not None
    for position in (0, 16, len(payload) // 2, len(payload) - 1):
        tampered = bytearray(payload)
        tampered[position] ^= 0x01
        assert ring.open(bytes(tampered)) is None


def test_seal_is_what_open_takes_back() -> None:
    """Round trip on every suite (the real-node acceptance is tests/netns/...)."""
    key = knetcrypto.Key("k", bytes(range(256)))
    plain = knet.encode(knet.Packet("ping", node=1, link=0, time=bytes(16), seq_num=7, timed=1))
    for suite in knetcrypto.SUITES:
        wire = knetcrypto.seal(plain, key, suite)
        assert len(wire) == len(plain) + knetcrypto.HASHES[suite.hash] + (
            0 if suite.cipher is None else knetcrypto.SALT_SIZE + 16 - len(plain) % 16)
        opened = knetcrypto.KeyRing([key]).open(wire)
        assert opened is not None and opened.plain == plain and opened.suite == suite


def _compressed(folder: Path) -> list[Path]:
    return [p for p in FOLDERS if _conf(p).get("knet_compression_model")]


@pytest.mark.parametrize("folder", _compressed(VARIANTS), ids=lambda p: p.name)
def test_compressed_captures(folder: Path) -> None:
    model = _conf(folder)["knet_compression_model"]
    ring = (knetcrypto.KeyRing([knetcrypto.Key.load(folder / "authkey")])
            if (folder / "authkey").exists() else None)
    compressed = decoded = 0
    for payload in _payloads(folder):
        if ring is not None:
            opened = ring.open(payload)
            assert opened is not None
            payload = opened.plain
        packet = knet.decode(payload, crypto=False)
        if packet.type_name != "data" or not packet.compress:
            continue
        compressed += 1
        assert knet.COMPRESS_MODELS[packet.compress] == model
        if model in knet.UNSUPPORTED_COMPRESSION:
            with pytest.raises(knet.DecodeError, match=model):
                knet.decompress(packet.compress, packet.userdata)
            continue
        assert isinstance(packet.totem, totem.Message), packet.totem_error
        decoded += 1
    assert compressed > 0
    meta = json.loads((folder / "meta.json").read_text())
    for stats in meta["corosync_view"]["knet_stats"].values():
        assert int(stats["stats.knet.handle.tx_compressed_packets"]) > 0


def _hbtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from hbtools.cli import main; main()", "decode", *args],
                          capture_output=True, text=True, check=False, cwd=ROOT)


def test_cli_auth_ok_bad_and_two_keys() -> None:
    a, b = VARIANTS / "nss-aes256-sha256", VARIANTS / "openssl-aes128-md5"
    for folder, keys, expect in (
        (a, [a], "ok"),
        (a, [b], "bad"),
        (a, [b, a], "ok"),
        (b, [b, a], "ok"),
    ):
        args = [str(folder / "capture.pcap"), "-f", "json"]
        for k in keys:
            args += ["--corosync-authkey", str(k / "authkey")]
        res = _hbtool(*args)
        assert res.returncode == 0, res.stderr
        rows = [json.loads(line) for line in res.stdout.splitlines()]
        assert len(rows) == len(_payloads(folder))
        assert {r["auth"] for r in rows} == {expect}
        if expect == "bad":
            assert {r["type"] for r in rows} == {"encrypted"}
        else:
            assert sum(r["fields"].get("totem", {}).get("type_name") == "orf_token"
                       for r in rows) > 0


def test_cli_bad_key_file_is_one_line(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_bytes(b"x" * 10)
    res = _hbtool(str(VARIANTS / "nss-aes256-sha256" / "capture.pcap"),
                  "--corosync-authkey", str(short))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "short" in res.stderr and "128" in res.stderr
