"""The generated Wireshark plugin, proven with the real tshark against `hbtool decode`.

Two independent decoders read the same packets: tshark running `wireshark/hbtools.lua`
(Lua, Wireshark's own IP reassembly and UDP layers) and `hbtool decode --format json`
(Python: dissectors/ + the codecs). Every field of every packet must agree, and display
filters must pick exactly the packets `hbtool decode --filter` picks. Field types are
read back from tshark's own field registry (`tshark -G fields`), not from the generator.
Real captures come from `captures/*/capture.pcap`; synthetic ones are built here with
the codecs' encoders to reach what the daemons did not send (classic format, md5,
lists, structs, compression, bad signatures, big-endian Totem, malformed bytes).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import re
import shutil
import stat
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hbtools import heartbeat, knet, totem
from hbtools.auth import AuthKeys
from hbtools.cli import cli
from hbtools.fields import FIELDS
from hbtools.wireshark import generate, totem_field_paths

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "wireshark" / "hbtools.lua"
CAPTURES = sorted(p for p in ROOT.glob("captures/*/capture.pcap")
                  if not p.parent.name.startswith("."))  # skip recordings in progress
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
PROTOS = ("heartbeat", "totem", "kronosnet")
MALFORMED = ("heartbeat.malformed", "totem.malformed", "kronosnet.malformed")
LUA_ERRORS = ("heartbeat.dissector_error", "totem.dissector_error")


# --------------------------------------------------------------------------- tshark side

def run_tshark(pcap: Path, *args: str) -> str:
    assert TSHARK is not None
    proc = subprocess.run(
        [TSHARK, "-n", "-X", f"lua_script:{PLUGIN}", "-r", str(pcap), *args],
        capture_output=True, text=True, errors="replace", timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Lua: Error" not in proc.stderr, proc.stderr
    return proc.stdout


_REGISTRY: dict[str, tuple[str, str]] = {}


def registry() -> dict[str, tuple[str, str]]:
    """abbrev -> (ftype, base) of every field tshark knows with the plugin loaded."""
    if not _REGISTRY:
        assert TSHARK is not None
        out = subprocess.run([TSHARK, "-G", "fields", "-X", f"lua_script:{PLUGIN}"],
                             capture_output=True, text=True, timeout=120, check=True).stdout
        for line in out.splitlines():
            cols = line.split("\t")
            if cols[0] == "F" and cols[2].split(".")[0] in PROTOS:
                _REGISTRY[cols[2]] = (cols[3], cols[5] if len(cols) > 5 else "")
    return _REGISTRY


def _normal(abbrev: str, text: str) -> Any:
    ftype, _ = registry()[abbrev]
    if ftype.startswith(("FT_UINT", "FT_INT")):
        return int(text, 0)
    if ftype == "FT_BOOLEAN":
        return text not in ("0", "False", "false")
    if ftype == "FT_BYTES":
        return text.replace(":", "")
    return text


def _leaves(pairs: list[tuple[str, Any]], proto: str, out: list[tuple[str, Any]]) -> None:
    """Fields of one protocol in tree order.

    For a compression envelope hbtool decode reports the message inside, so the
    decompressed message's fields replace the envelope's.
    """
    for key, value in pairs:
        if key in ("heartbeat.compressed_message", "heartbeat.compressed_message_tree"):
            # ... followed by the algorithm used (zlib when the envelope names none).
            algorithm = [leaf for leaf in out if leaf[0] == "heartbeat._compression_algorithm"]
            out.clear()
            _leaves(value, proto, out)
            out.extend(algorithm or [("heartbeat._compression_algorithm", "zlib")])
            continue  # the envelope's overall auth verdict follows
        if isinstance(value, list) and value and isinstance(value[0], tuple):
            _leaves(value, proto, out)
            continue
        if not key.startswith(proto + ".") or key not in registry():
            continue
        if registry()[key][0] == "FT_NONE":
            continue
        values = value if isinstance(value, list) else [value]
        out.extend((key, _normal(key, v)) for v in values)


def _experts(pairs: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(pairs, list):
        for item in pairs:
            if isinstance(item, tuple):
                key, value = item
                found.add(key)
                found |= _experts(value)
            else:
                found |= _experts(item)
    return found


def tshark_packets(pcap: Path, *args: str) -> dict[int, dict[str, Any]]:
    """frame number -> {proto: [(abbrev, value), ...], "experts": {...}}."""
    # An ICMP error quotes the datagram it answers; hbtool decode does not count those.
    text = run_tshark(pcap, "-T", "json", "-Y", f"({' || '.join(PROTOS)}) && !icmp", *args)
    packets = json.loads(text, object_pairs_hook=lambda pairs: pairs) if text.strip() else []
    out: dict[int, dict[str, Any]] = {}
    for packet in packets:
        layers = dict(dict(packet)["_source"])["layers"]
        frame = int(dict(dict(layers)["frame"])["frame.number"])
        entry: dict[str, Any] = {"experts": _experts(layers)}
        for proto in PROTOS:
            found: list[tuple[str, Any]] = []
            for key, value in layers:
                if key == proto:
                    _leaves(value, proto, found)
            entry[proto] = found
        out[frame] = entry
    return out


def tshark_frames(pcap: Path, display_filter: str) -> list[int]:
    out = run_tshark(pcap, "-T", "fields", "-e", "frame.number", "-Y",
                     f"({display_filter}) && !icmp")
    return [int(x) for x in out.split()]


# --------------------------------------------------------------------------- Python side

def decode_records(pcap: Path, *args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["decode", "--format", "json", "--no-progress",
                                      *args, str(pcap)])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"hbtool decode crashed on {pcap}: {result.exception!r}")
    assert result.exit_code in (0, 1), result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [r for r in rows if r["proto"] != "arp"]  # ARP rows: tshark's own ARP, not the plugin's


def expected_heartbeat(fields: dict[str, Any]) -> list[tuple[str, Any]]:
    """What the plugin must show for `hbtool decode`'s interpreted Heartbeat fields."""
    reg = registry()
    out: list[tuple[str, Any]] = []
    for key, value in fields.items():
        name = _utf8(key.split("#")[0])
        if isinstance(value, str):
            value = _utf8(value)
        abbrev = f"heartbeat.{name}"
        ftype = reg.get(abbrev, ("", ""))[0] if name in FIELDS else ""
        if isinstance(value, dict):
            if ftype == "FT_NONE":
                out.extend(expected_heartbeat(value))
            else:
                out.append(("heartbeat.field", f"{name}=(struct)"))
                out.extend(expected_heartbeat(value))
        elif isinstance(value, list):
            out.append(("heartbeat.field", f"{name}=(list)"))
            out.extend(("heartbeat.list_item", _utf8(item)) for item in value)
        elif isinstance(value, int):
            out.append((abbrev, value))
        elif ftype == "FT_STRING":
            out.append((abbrev, value))
        elif ftype == "FT_GUID" and _is_uuid(value):
            out.append((abbrev, value))
        elif ftype == "FT_BYTES" and value:
            out.append((abbrev, value))
        else:
            out.append(("heartbeat.field", f"{name}={value}"))
    return out


def _utf8(text: str) -> str:
    """tshark shows bytes that are not UTF-8 as U+FFFD; hbtool decode's JSON shows each as
    ``\\xNN`` text (hbtools.escape): back to the bytes, then decoded as tshark does."""
    raw = re.sub(r"\\x([89a-f][0-9a-f])", lambda m: chr(0xDC00 + int(m.group(1), 16)), text)
    return raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def expected_layout(proto: str, fields: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Leaves of a Totem/knet `to_dict()` in wire order, as tshark names them."""
    out: list[tuple[str, Any]] = []
    for key, value in fields.items():
        # totempg/corosync: compared message by message in tests/test_wireshark_corosync.py
        if not prefix and key in ("type_name", "endian", "totem", "totem_error", "totempg",
                                  "corosync"):
            continue
        path = f"{proto}.{prefix}{key}"
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                out.extend(expected_layout(proto, item, f"{prefix}{key}."))
            elif item == "" and registry()[path][0] == "FT_BYTES":
                continue  # an empty payload has no bytes to show
            else:
                out.append((path, item))
    return out


def expected(record: dict[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    fields = record["fields"] or {}
    want: dict[str, list[tuple[str, Any]]] = {p: [] for p in PROTOS}
    if record["proto"] == "heartbeat":
        want["heartbeat"] = expected_heartbeat(fields)
    elif record["proto"] == "totem":
        want["totem"] = expected_layout("totem", fields)
    elif record["proto"] == "knet":
        if fields.get("encrypted"):
            want["kronosnet"] = [("kronosnet.encrypted", True)]
        else:
            want["kronosnet"] = expected_layout("kronosnet", fields)
        if "totem" in fields:
            want["totem"] = expected_layout("totem", fields["totem"])
    return want


HB_SHOWN = {f"heartbeat.{n}" for n in FIELDS} | {"heartbeat.field", "heartbeat.list_item"}


def compare(pcap: Path, authkeys: Path | None = None) -> int:
    """Packet-by-packet agreement of tshark+plugin and hbtool decode; returns packets seen."""
    args = ("-a", str(authkeys)) if authkeys else ()
    records = decode_records(pcap, *args)
    targs = ("-o", f"heartbeat.authkeys:{authkeys}") if authkeys else ()
    shown = tshark_packets(pcap, *targs)
    decoded = {r["frame"]: r for r in records}
    assert sorted(shown) == sorted(decoded), "tshark and hbtool decode see different packets"
    for frame, record in decoded.items():
        got = shown[frame]
        where = f"{pcap} frame {frame}"
        problem = record["error"] or (record["fields"] or {}).get("totem_error")
        if problem:
            assert got["experts"] & set(MALFORMED), f"{where}: no malformed expert ({problem})"
        else:
            assert not got["experts"] & set(MALFORMED), f"{where}: malformed in tshark only"
        assert not got["experts"] & set(LUA_ERRORS), f"{where}: Lua error"
        want = expected(record)
        if record["error"] and record["proto"] == "heartbeat":
            continue  # the codec stops at the problem; only the expert is compared
        hb = [(k, v) for k, v in got["heartbeat"] if k in HB_SHOWN]
        assert hb == want["heartbeat"], where
        if record["error"]:
            continue
        totem_got = [(k, v) for k, v in got["totem"] if k != "totem.endian"]
        if not problem:
            assert totem_got == want["totem"], where
        kn = [(k, v) for k, v in got["kronosnet"] if k != "kronosnet.ciphertext"]
        assert kn == want["kronosnet"], where
        if record["proto"] == "heartbeat" and authkeys is not None:
            valid = dict(got["heartbeat"]).get("heartbeat.auth.valid")
            assert record["auth"] in ("ok", "bad"), where
            assert valid == (record["auth"] == "ok"), f"{where}: auth {record['auth']} vs {valid}"
        if want["totem"]:
            endian = (record["fields"].get("totem") or record["fields"])["endian"]
            assert ("totem.endian", endian) in got["totem"], where
    return len(decoded)


# --------------------------------------------------------------------------- synthetic

def write_pcap(path: Path, payloads: list[tuple[bytes, int, int]]) -> Path:
    from scapy.all import IP, UDP, Ether, wrpcap

    frames = [Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff")
              / IP(src="198.18.0.1", dst="198.18.0.2") / UDP(sport=s, dport=d) / p
              for p, s, d in payloads]
    wrpcap(str(path), frames)
    return path


def hb_message(seq: str = "2c", src: str = "node1", **extra: Any) -> heartbeat.Message:
    items: list[tuple[str, Any]] = [
        ("t", "status"), ("st", "active"), ("dt", "1388"), ("protocol", "1"), ("src", src),
        ("srcuuid", bytes(range(16))), ("seq", seq), ("hg", "6b05eff9"), ("ts", "6b05eff8"),
        ("ld", "0.02 0.11 0.08 1/92 19549"), ("ttl", "3")]
    items.extend(extra.items())
    return heartbeat.Message.build(items)


KEYS_TEXT = "auth 2\n1 crc\n2 md5 md5-secret\n3 sha1 a-sha1-secret-longer-than-64-bytes-" \
            "to-exercise-the-hmac-key-hashing-path-xxxxxxxxxxxx\n"


def heartbeat_payloads() -> list[bytes]:
    keys = AuthKeys.parse(KEYS_TEXT)
    crc = AuthKeys.parse("auth 1\n1 crc\n")
    sha = AuthKeys.parse(KEYS_TEXT.replace("auth 2", "auth 3"))
    nested = heartbeat.Message.build([("t", "inner"), ("x", "1\n2")])
    out = [
        heartbeat.encode(hb_message(), crc, inline_auth=True),
        heartbeat.encode(hb_message(seq="1"), keys, inline_auth=True),
        heartbeat.encode(hb_message(seq="ff"), sha, inline_auth=True),
        heartbeat.encode(hb_message(src="node2", info="line1\nline2"), keys, wire_format="classic"),
        heartbeat.encode(hb_message(src="node2"), sha, wire_format="classic"),
        heartbeat.encode(heartbeat.Message.build([
            ("t", "NS_nak_rexmit"), ("dest", "node1"), ("firstseq", "2c"), ("info", "gone")]), crc),
        heartbeat.encode(heartbeat.Message.build([
            ("t", "NS_rexmit"), ("dest", "node1"), ("firstseq", "44"), ("lastseq", "44")]), crc),
        heartbeat.encode(hb_message(seq="zz", custom="x=y", blob=b"\x00\x01\xff"), crc),
        heartbeat.encode(heartbeat.Message.build([
            ("t", "repnodes"), ("nodelist", "node1 node2 "), ("names", ["a", "bc"]),
            ("sub", nested)]), crc, inline_auth=True),
        heartbeat.encode(heartbeat.Message.build([
            ("t", "x"), ("names", ["a", "bc"]), ("sub", nested), ("b", b"\x01\x02")]),
            sha, wire_format="classic"),
        heartbeat.encode(heartbeat.compress(hb_message(seq="3"), keys=crc), crc),
    ]
    wrong = bytearray(heartbeat.encode(hb_message(seq="5"), crc, inline_auth=True))
    wrong[wrong.index(b"seq=5") + 4] = ord("6")  # body changed after signing
    out.append(bytes(wrong))
    return out


def totem_payloads() -> list[bytes]:
    ring = totem.RingId(rep=1, seq=0x1D)
    msgs = [
        totem.Message("orf_token", nodeid=1, ring_id=ring, seq=7, token_seq=100, aru=0xFFFFFFFF,
                      aru_addr=2, backlog=3, fcc=4, retrans_flg=-1,
                      rtr_list=(totem.RtrItem(ring_id=ring, seq=99),
                                totem.RtrItem(ring_id=totem.RingId(rep=3, seq=2**40), seq=1))),
        totem.Message("mcast", nodeid=2, system_from=2, seq=5, this_seqno=-3, ring_id=ring,
                      node_id=2, guarantee=1, payload=b"hello"),
        totem.Message("memb_merge_detect", nodeid=1, system_from=1, ring_id=ring),
        totem.Message("memb_join", nodeid=3, system_from=3, ring_seq=2**63 + 5,
                      proc_list=(1, 2, 3), failed_list=(4,)),
        totem.Message("memb_commit_token", nodeid=1, token_seq=9, ring_id=ring,
                      retrans_flg=0xFFFFFFFF, memb_index=1, addr=(1, 2),
                      memb_list=(totem.MembEntry(ring_id=ring, aru=1, high_delivered=2,
                                                 received_flg=1),) * 2),
        totem.Message("token_hold_cancel", nodeid=1, ring_id=ring),
    ]
    out = [totem.encode(m) for m in msgs]
    out += [totem.encode(_big(m)) for m in msgs]
    return out


def _big(m: totem.Message) -> totem.Message:
    values = {f.name: getattr(m, f.name) for f in m.layout.stored if f.name != "type"}
    return totem.Message(m.type_name, endian="big", **values)


def knet_payloads() -> list[bytes]:
    token = totem.Message("orf_token", nodeid=1, ring_id=totem.RingId(rep=1, seq=2))
    rnd = random.Random(8)
    return [
        knet.encode(knet.Packet("data", node=1, seq_num=300, bcast=1, totem=token)),
        knet.encode(knet.Packet("data", node=2, seq_num=1, frag_num=2, frag_seq=1,
                                userdata=b"\x70\xc0\x03")),
        knet.encode(knet.Packet("ping", node=2, link=0, time=bytes(range(16)), seq_num=9,
                                timed=1)),
        knet.encode(knet.Packet("pong", node=1, link=0, time=bytes(16), seq_num=0, timed=0)),
        knet.encode(knet.Packet("pmtud", node=1, link=0, size=1500, pmtud_data=bytes(20))),
        bytes(rnd.randrange(256) for _ in range(80)),
    ]


def mutations(payloads: list[bytes], seed: int, per: int, shortest: int = 1) -> list[bytes]:
    """Truncations and byte flips: malformed packets the dissector must survive."""
    rnd = random.Random(seed)
    out = []
    for data in payloads:
        for _ in range(per):
            if rnd.random() < 0.5:
                out.append(data[: rnd.randrange(shortest, len(data))])
            else:
                flipped = bytearray(data)
                flipped[rnd.randrange(len(data))] = rnd.randrange(256)
                out.append(bytes(flipped))
    return out


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("ws")
    keys = base / "authkeys"
    keys.write_text(KEYS_TEXT)
    keys.chmod(0o600)
    hb = heartbeat_payloads()
    co = totem_payloads() + knet_payloads()
    return {
        "authkeys": keys,
        "heartbeat": write_pcap(base / "hb.pcap", [(p, 40000, 694) for p in hb]),
        "corosync": write_pcap(base / "co.pcap", [(p, 5405, 5405) for p in co]),
        "hb_fuzz": write_pcap(base / "hbf.pcap",
                              [(p, 40000, 694) for p in mutations(hb, 1, 25)]),
        # Payloads under 4 bytes on 5405 crash hbtool decode's Totem fast path
        # (dissectors/fast.py, head[3]); reported. The plugin alone is tested on them below.
        "co_fuzz": write_pcap(base / "cof.pcap",
                              [(p, 5405, 5405) for p in mutations(co, 2, 25, shortest=4)]),
        "tiny": write_pcap(base / "tiny.pcap",
                           [(b"\x70\xc0\x03"[:n], 5405, 5405) for n in range(4)]
                           + [(b"\x01\x00\x00"[:n], 5405, 5405) for n in range(4)]
                           + [(b"###\n"[:n], 1, 694) for n in range(5)]),
    }


# --------------------------------------------------------------------------- tests

def test_committed_plugin_is_current() -> None:
    """wireshark/hbtools.lua is what `hbtool wireshark export` writes from today's tables."""
    assert PLUGIN.read_text(encoding="utf-8") == generate(), (
        "wireshark/hbtools.lua is stale: run hbtool wireshark export -o wireshark/hbtools.lua")


def test_export_cli_writes_file_and_installs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "hbtools.lua"
    result = CliRunner().invoke(cli, ["wireshark", "export", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == generate()
    monkeypatch.setenv("HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["wireshark", "export", "--install"])
    target = tmp_path / ".local/lib/wireshark/plugins/hbtools.lua"
    assert result.exit_code == 0 and target.read_text() == generate()
    assert str(target) in result.output
    bad = CliRunner().invoke(cli, ["wireshark", "export", "-o", "/proc/nonexistent/x.lua"])
    assert bad.exit_code == 2 and "does not exist" in bad.output and "Traceback" not in bad.output


def test_export_writes_through_special_files_and_links(tmp_path: Path) -> None:
    """-o on a FIFO or a symlink writes through it; neither is replaced by a plain file."""
    fifo = tmp_path / "plugin.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = CliRunner().invoke(cli, ["wireshark", "export", "-o", str(fifo)])
    reader.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert received == [generate().encode()]
    real = tmp_path / "real.lua"
    real.write_text("old")
    link = tmp_path / "link.lua"
    link.symlink_to(real)
    result = CliRunner().invoke(cli, ["wireshark", "export", "-o", str(link)])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and real.read_text() == generate()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.lua", "plugin.fifo", "real.lua"]


@needs_tshark
def test_every_table_field_is_a_wireshark_field() -> None:
    """Each Heartbeat field and each Totem/knet layout path is filterable, typed by its C type."""
    reg = registry()
    for name, spec in FIELDS.items():
        want = {"hex": "FT_UINT64", "decimal": "FT_INT64", "uuid": "FT_GUID",
                "bytes": "FT_BYTES", "struct": "FT_NONE"}.get(spec.kind.value, "FT_STRING")
        assert reg[f"heartbeat.{name}"][0] == want, name
        if spec.kind.value == "hex":
            # one number convention (issue 14): shown in decimal, as hbtool decode shows it
            assert reg[f"heartbeat.{name}"][1] == "BASE_DEC", name
    for extra in ("heartbeat.format", "heartbeat.auth.method", "heartbeat.auth.valid"):
        assert extra in reg
    sizes = {1: "8", 2: "16", 4: "32", 8: "64"}
    for layouts, proto in ((totem.LAYOUTS, "totem"), (knet.LAYOUTS, "kronosnet")):
        for layout in layouts.values():
            if layout.name == knet.ENCRYPTED:
                continue
            for path, f in layout.walk():
                ftype = reg[f"{proto}.{path}"][0]
                if f.nested is not None:
                    assert ftype == "FT_NONE", path
                elif f.is_bytes():
                    assert ftype == "FT_BYTES", path
                else:
                    size = f.scalar_size()
                    assert size is not None
                    signed = f.fmt.lstrip("<>").islower()  # type: ignore[union-attr]
                    kind = ("FT_INT" if signed else "FT_UINT") + sizes[size]
                    assert ftype == kind or ftype == "FT_INT" + sizes[min(8, size * 2)], path
    assert {"totem.type", "totem.nodeid", "totem.ring_id.rep", "totem.ring_id.seq",
            "totem.token_seq", "totem.aru"} <= set(totem_field_paths()["totem"])


@needs_tshark
@pytest.mark.parametrize("pcap", CAPTURES, ids=[p.parent.name for p in CAPTURES])
def test_real_capture_agrees_with_hbtool_decode(pcap: Path) -> None:
    """Every packet of every committed capture: same fields in tshark+plugin and hbtool decode."""
    keys = pcap.parent / "authkeys"
    seen = compare(pcap, keys if keys.exists() else None)
    assert seen > 0


@needs_tshark
def test_synthetic_heartbeat_agrees(synthetic: dict[str, Path]) -> None:
    assert compare(synthetic["heartbeat"], synthetic["authkeys"]) == len(heartbeat_payloads())


@needs_tshark
def test_synthetic_corosync_agrees(synthetic: dict[str, Path]) -> None:
    assert compare(synthetic["corosync"]) == len(totem_payloads()) + len(knet_payloads())


@needs_tshark
def test_signature_checks_match_python_hmac(synthetic: dict[str, Path]) -> None:
    """Lua crc/HMAC-MD5/HMAC-SHA1 against Python's hashlib, including a bad body."""
    keys = AuthKeys.parse(KEYS_TEXT)
    shown = tshark_packets(synthetic["heartbeat"], "-o", f"heartbeat.authkeys:{synthetic['authkeys']}")
    for frame, data in enumerate(heartbeat_payloads(), start=1):
        if b"_compressed_payload" in data:
            continue  # its leaves are the inner message's (see _leaves)
        check = keys.check(data)
        got = dict(shown[frame]["heartbeat"])
        if check.trailer is not None:
            assert got["heartbeat.auth.trailer_valid"] == check.trailer, frame
        if check.inline is not None:
            assert got["heartbeat.auth.inline_valid"] == check.inline, frame
    assert any(not keys.check(p).valid for p in heartbeat_payloads())
    # Without the secrets md5/sha1 are left unchecked, never guessed; crc is always checked.
    bare = tshark_packets(synthetic["heartbeat"])
    assert "heartbeat.auth.valid" not in dict(bare[2]["heartbeat"])
    assert "heartbeat.auth.unchecked" in bare[2]["experts"]
    assert dict(bare[1]["heartbeat"])["heartbeat.auth.valid"] is True
    # Independent vectors: RFC 2202 HMAC test case 2, computed by hashlib, seen via a key.
    assert hmac.new(b"Jefe", b"what do ya want for nothing?", hashlib.md5).hexdigest() \
        == "750c783e6ab0b503eaa86e310a5db738"


@needs_tshark
@pytest.mark.parametrize("name", ["hb_fuzz", "co_fuzz"])
def test_malformed_packets_get_expert_info_not_lua_errors(synthetic: dict[str, Path],
                                                          name: str) -> None:
    """Truncated and corrupted packets: malformed exactly when the Python codec says so."""
    compare(synthetic[name], synthetic["authkeys"] if name == "hb_fuzz" else None)


@needs_tshark
def test_tiny_payloads_are_not_lua_errors(synthetic: dict[str, Path]) -> None:
    shown = tshark_packets(synthetic["tiny"])
    assert shown, "the tiny packets were not dissected at all"
    for frame, packet in shown.items():
        assert not packet["experts"] & set(LUA_ERRORS), frame


def _node_in(pcap: Path) -> str | None:
    for r in decode_records(pcap):
        if r["proto"] == "heartbeat" and r["type"] == "status":
            return str(r["node"])
    return None


@needs_tshark
@pytest.mark.parametrize("pcap", CAPTURES, ids=[p.parent.name for p in CAPTURES])
def test_display_filters_select_what_decode_filter_selects(pcap: Path) -> None:
    node = _node_in(pcap)
    if node is not None:
        want = [r["frame"] for r in decode_records(pcap, "--filter", f"type=status node={node}")]
        got = tshark_frames(pcap, f'heartbeat.t == "status" && heartbeat.src == "{node}"')
        assert want and got == want
    joins = sorted({r["frame"] for r in decode_records(pcap, "--filter", "type=memb_join")}
                   | {r["frame"] for r in decode_records(pcap, "--filter", "totem.type=3")})
    # Also where both are empty (knet with crypto): the plugin must not see joins in ciphertext.
    assert tshark_frames(pcap, "totem.type == 3") == joins


@needs_tshark
def test_display_filters_on_synthetic(synthetic: dict[str, Path]) -> None:
    pcap = synthetic["heartbeat"]
    want = [r["frame"] for r in decode_records(pcap, "--filter", "type=status node=node2")]
    assert want == [4, 5]
    assert tshark_frames(pcap, 'heartbeat.t == "status" && heartbeat.src == "node2"') == want
    assert tshark_frames(pcap, "heartbeat.seq == 0x2c") == [1, 4, 5]
    # 11 is a netstring envelope around a classic message (Heartbeat compresses classic text)
    assert tshark_frames(pcap, 'heartbeat.format == "classic"') == [4, 5, 10, 11]
    co = synthetic["corosync"]
    assert tshark_frames(co, "totem.type == 3") == [4, 10]
    assert tshark_frames(co, "totem.ring_id.seq == 0x1d && totem.nodeid == 1") == [1, 3, 5, 6, 7, 9,
                                                                                    11, 12]


def _lua_binaries() -> Iterator[str]:
    for name in ("lua5.2", "lua5.3", "lua5.4"):
        path = shutil.which(name)
        if path:
            yield path


@pytest.mark.parametrize("lua", list(_lua_binaries()) or [None])
def test_plugin_loads_on_plain_lua(lua: str | None, tmp_path: Path) -> None:
    """The plugin parses and its bit/hash code runs on Lua 5.2, 5.3 and 5.4 without bit32.

    Wireshark's API is replaced by a permissive stub; what is checked is the code that does
    not depend on it: no 5.3-only syntax for 5.2, and CRC-32 on 5.4 where bit32 is gone.
    """
    if lua is None:
        pytest.skip("no standalone lua5.x interpreter installed (apt-get install lua5.4)")
    stub = tmp_path / "run.lua"
    stub.write_text(_STUB.replace("@PLUGIN@", str(PLUGIN)))
    proc = subprocess.run([lua, str(stub)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    # crc "123456789" -> 765e7680 (PROTOCOL-NOTES), HMAC-MD5/SHA1 from RFC 2202 case 2.
    assert proc.stdout.split() == [
        "765e7680", "750c783e6ab0b503eaa86e310a5db738",
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"]


_STUB = r"""
if _VERSION ~= "Lua 5.2" then bit32 = nil end  -- as on 5.4 builds without the compat library
local function any() return setmetatable({}, {__index = function() return any() end,
  __call = function() return any() end, __newindex = function() end}) end
for _, name in ipairs({"Proto", "ProtoField", "ProtoExpert", "Pref", "DissectorTable",
                       "expert", "base", "UInt64", "Int64", "ByteArray"}) do _G[name] = any() end
local digest
HBTOOLS_TEST = function(f) digest = f end
dofile("@PLUGIN@")
print(digest("crc", "", "123456789"))
print(digest("md5", "Jefe", "what do ya want for nothing?"))
print(digest("sha1", "Jefe", "what do ya want for nothing?"))
"""
