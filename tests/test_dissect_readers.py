"""Capture formats, link layers, IP versions and fragments, each built by scapy.

Every vector is written by scapy (or by hand with struct), never by the reader under
test, and the expected rows are read back from the payloads with regular expressions.
"""

from __future__ import annotations

import os
import random
import struct

import pytest
from scapy.all import (
    IP,
    UDP,
    CookedLinux,
    CookedLinuxV2,
    Dot1Q,
    Ether,
    IPv6,
    Loopback,
    PcapNgWriter,
    PcapWriter,
    Raw,
    fragment,
    fragment6,
)
from scapy.layers.inet6 import IPv6ExtHdrFragment

from tests.dissect_vectors import (
    SEQ_RE,
    SRC_RE,
    hb_status,
    json_rows,
    regex_field,
    run_cli,
    run_hbtool,
    totem_token,
)

BASE_TIME = 1_700_000_000


def _payloads(n: int = 6) -> list[bytes]:
    out = []
    for i in range(n):
        out.append(hb_status("node1" if i % 2 == 0 else "node2", i // 2 + 1))
    return out


def _ipv4_frames(payloads: list[bytes], sport: int = 40000, dport: int = 694) -> list:
    return [IP(src="198.18.0.1", dst="198.18.0.255") / UDP(sport=sport, dport=dport) / Raw(p)
            for p in payloads]


def _write(path, packets, *, linktype=None, nano=False, endianness="", times=None) -> None:
    writer = PcapWriter(str(path), linktype=linktype, nano=nano, endianness=endianness,
                        sync=True)
    for i, pkt in enumerate(packets):
        pkt.time = times[i] if times else BASE_TIME + i * 0.25
        writer.write(pkt)
    writer.close()


def _decode_json(path, *extra: str) -> list[dict]:
    code, out, err = run_cli("decode", "-f", "json", str(path), *extra)
    assert code == 0, err
    return json_rows(out)


def _check_heartbeat_rows(rows: list[dict], payloads: list[bytes]) -> None:
    assert len(rows) == len(payloads)
    for row, payload in zip(rows, payloads, strict=True):
        assert row["error"] is None
        assert row["proto"] == "heartbeat"
        assert row["node"] == regex_field(SRC_RE, payload)
        assert row["fields"]["seq"] == int(regex_field(SEQ_RE, payload), 16)


@pytest.mark.parametrize("endianness", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path, endianness, nano):
    payloads = _payloads()
    frames = [Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / p
              for p in _ipv4_frames(payloads)]
    times = [BASE_TIME + i + 0.123456789 for i in range(len(frames))]
    path = tmp_path / "c.pcap"
    _write(path, frames, nano=nano, endianness=endianness, times=times)
    magic = path.read_bytes()[:4]
    expected_magic = struct.pack(endianness + "I", 0xA1B23C4D if nano else 0xA1B2C3D4)
    assert magic == expected_magic  # the vector really is the variant under test
    rows = _decode_json(path)
    _check_heartbeat_rows(rows, payloads)
    for row, t in zip(rows, times, strict=True):
        assert row["time"] == pytest.approx(t, abs=1e-6 if not nano else 1e-6)
        if nano:
            # nanoseconds survive to the float's precision (~0.24 us at this epoch)
            assert abs(row["time"] - t) < 5e-7
    assert [r["frame"] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0]["src"] == "198.18.0.1" and rows[0]["dst"] == "198.18.0.255"
    assert rows[0]["sport"] == 40000 and rows[0]["dport"] == 694


def test_json_keys_are_exactly_the_published_ones(tmp_path):
    path = tmp_path / "c.pcap"
    _write(path, [Ether() / p for p in _ipv4_frames(_payloads(2))])
    for row in _decode_json(path):
        assert list(row) == ["frame", "time", "src", "dst", "sport", "dport", "proto", "type",
                             "node", "fields", "auth", "error", "signatures"]
        assert row["auth"] == "unchecked"


def _link_variants(payloads):
    ip = _ipv4_frames(payloads)
    return {
        "ethernet": (None, [Ether() / p for p in ip]),
        "vlan": (None, [Ether() / Dot1Q(vlan=10) / p for p in ip]),
        "qinq": (None, [Ether(type=0x88A8) / Dot1Q(vlan=100, type=0x8100) / Dot1Q(vlan=10) / p
                        for p in ip]),
        "sll": (113, [CookedLinux(pkttype=4, lladdrtype=1, lladdrlen=6, proto=0x0800) / p
                      for p in ip]),
        "sll2": (276, [CookedLinuxV2(proto=0x0800, ifindex=3, lladdrtype=1, lladdrlen=6) / p
                       for p in ip]),
        "raw": (101, list(ip)),
        "raw228": (228, list(ip)),
        "null": (0, [Loopback(type=2) / p for p in ip]),
    }


@pytest.mark.parametrize("link", ["ethernet", "vlan", "qinq", "sll", "sll2", "raw", "raw228",
                                  "null"])
def test_link_layers(tmp_path, link):
    payloads = _payloads()
    linktype, frames = _link_variants(payloads)[link]
    path = tmp_path / f"{link}.pcap"
    _write(path, frames, linktype=linktype)
    rows = _decode_json(path)
    _check_heartbeat_rows(rows, payloads)


def test_null_link_in_other_byte_order(tmp_path):
    # DLT_NULL holds the family in the capturing host's order: a big-endian host's file.
    payloads = _payloads(2)
    frames = [b"\x00\x00\x00\x02" + bytes(p) for p in _ipv4_frames(payloads)]
    path = tmp_path / "null-be.pcap"
    blob = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 0)
    for i, frame in enumerate(frames):
        blob += struct.pack("<IIII", BASE_TIME + i, 0, len(frame), len(frame)) + frame
    path.write_bytes(blob)
    _check_heartbeat_rows(_decode_json(path), payloads)


def test_ipv6(tmp_path):
    payloads = _payloads(4)
    frames = [Ether() / IPv6(src="fd00::1", dst="ff02::1") / UDP(sport=40000, dport=694) / Raw(p)
              for p in payloads]
    path = tmp_path / "v6.pcap"
    _write(path, frames)
    rows = _decode_json(path)
    _check_heartbeat_rows(rows, payloads)
    assert rows[0]["src"] == "fd00::1" and rows[0]["dst"] == "ff02::1"


def _big_payload() -> bytes:
    # A long nodelist makes a datagram far bigger than one Ethernet frame.
    from tests.dissect_vectors import hb_netstring

    names = " ".join(f"node{i}" for i in range(2000)) + " "
    return hb_netstring([("t", "repnodes"), ("src", "node1"), ("seq", "2c"),
                         ("nodelist", names)])


def test_ipv4_fragments_reassembled_in_any_order(tmp_path):
    big = _big_payload()
    small = hb_status("node2", 7)
    datagram = IP(src="198.18.0.1", dst="198.18.0.2", id=4242) / UDP(sport=40000, dport=694) / Raw(big)
    frags = fragment(datagram, fragsize=1400)
    assert len(frags) > 5
    random.Random(4).shuffle(frags)
    # another datagram in between the fragments
    frames = [Ether() / f for f in frags[:3]]
    frames.append(Ether() / IP(src="198.18.0.2", dst="198.18.0.1") / UDP(sport=40001, dport=694)
                  / Raw(small))
    frames += [Ether() / f for f in frags[3:]]
    path = tmp_path / "frag.pcap"
    _write(path, frames)
    rows = _decode_json(path)
    assert len(rows) == 2
    small_row, big_row = rows
    assert small_row["frame"] == 4 and small_row["node"] == "node2"
    assert big_row["frame"] == len(frames)  # reported at the fragment that completed it
    assert big_row["error"] is None
    assert big_row["fields"]["nodelist"] == regex_field(
        __import__("re").compile(rb"\(0\)nodelist=([^,]*),"), big)
    assert big_row["fields"]["seq"] == 0x2C


def test_ipv6_fragments_reassembled(tmp_path):
    big = _big_payload()
    pkt = IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrFragment(id=99) / UDP(
        sport=40000, dport=694) / Raw(big)
    frags = fragment6(pkt, 1400)
    assert len(frags) > 5
    path = tmp_path / "frag6.pcap"
    _write(path, [Ether() / f for f in reversed(frags)])
    rows = _decode_json(path)
    assert len(rows) == 1 and rows[0]["error"] is None
    assert rows[0]["fields"]["t"] == "repnodes"


def test_missing_fragment_is_an_error_row_and_decoding_goes_on(tmp_path):
    big = _big_payload()
    frags = fragment(IP(src="198.18.0.1", dst="198.18.0.2", id=7) / UDP(sport=40000, dport=694)
                     / Raw(big), fragsize=1400)
    frames = [Ether() / f for f in frags[:-2] + frags[-1:]]  # one fragment lost
    frames.append(Ether() / _ipv4_frames([hb_status("node1", 9)])[0])
    path = tmp_path / "lost.pcap"
    _write(path, frames)
    rows = _decode_json(path)
    assert len(rows) == 2
    ok = [r for r in rows if r["error"] is None]
    bad = [r for r in rows if r["error"] is not None]
    assert len(ok) == 1 and ok[0]["fields"]["seq"] == 9
    assert len(bad) == 1 and "incomplete" in bad[0]["error"] and bad[0]["frame"] == 1
    assert bad[0]["proto"] == "heartbeat"


def test_fragment_timeout_frees_memory(tmp_path):
    # Fragments of many datagrams that never complete, spread over minutes of capture
    # time: each is given up after the timeout, and later traffic still decodes.
    frames = []
    for i in range(50):
        frags = fragment(IP(src="198.18.0.1", dst="198.18.0.2", id=1000 + i)
                         / UDP(sport=40000, dport=694) / Raw(_big_payload()), fragsize=1400)
        frames.append(Ether() / frags[0])
    frames.append(Ether() / _ipv4_frames([hb_status("node1", 1)])[0])
    times = [BASE_TIME + i * 10.0 for i in range(len(frames))]
    path = tmp_path / "timeouts.pcap"
    _write(path, frames, times=times)
    rows = _decode_json(path)
    errors = [r for r in rows if r["error"]]
    assert len(errors) == 50
    assert all("incomplete" in r["error"] for r in errors)
    assert sum(1 for r in errors if "timed out" in r["error"]) >= 45


def test_snaplen_cut_datagram_is_an_error_row(tmp_path):
    payload = hb_status("node1", 3)
    frame = bytes(Ether() / _ipv4_frames([payload])[0])
    path = tmp_path / "snap.pcap"
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 96, 1)
    cut = frame[:96]
    rec = struct.pack("<IIII", BASE_TIME, 0, len(cut), len(frame))
    path.write_bytes(head + rec + cut)
    rows = _decode_json(path)
    assert len(rows) == 1 and rows[0]["error"] and "snaplen" in rows[0]["error"]


def test_pcapng_several_interfaces_and_link_types(tmp_path):
    # Two interfaces of different link types in one file, written by hand (pcapng).
    payloads = _payloads(4)
    eth_frames = [bytes(Ether() / p) for p in _ipv4_frames(payloads[:2])]
    raw_frames = [bytes(p) for p in _ipv4_frames(payloads[2:])]

    def block(btype: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb_eth = block(1, struct.pack("<HHI", 1, 0, 65535))
    # if_tsresol 9 = nanoseconds on the second interface
    opts = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
    idb_raw = block(1, struct.pack("<HHI", 101, 0, 65535) + opts)

    def epb(iface: int, ticks: int, data: bytes) -> bytes:
        return block(6, struct.pack("<IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF,
                                    len(data), len(data)) + data)

    blob = shb + idb_eth + idb_raw
    blob += epb(0, (BASE_TIME + 1) * 1_000_000, eth_frames[0])
    blob += epb(1, (BASE_TIME + 2) * 1_000_000_000, raw_frames[0])
    blob += epb(0, (BASE_TIME + 3) * 1_000_000, eth_frames[1])
    blob += epb(1, (BASE_TIME + 4) * 1_000_000_000, raw_frames[1])
    path = tmp_path / "multi.pcapng"
    path.write_bytes(blob)
    rows = _decode_json(path)
    _check_heartbeat_rows(rows, [payloads[0], payloads[2], payloads[1], payloads[3]])
    assert [r["time"] for r in rows] == [BASE_TIME + 1, BASE_TIME + 2, BASE_TIME + 3,
                                          BASE_TIME + 4]


def test_pcapng_written_by_scapy(tmp_path):
    payloads = _payloads()
    path = tmp_path / "s.pcapng"
    writer = PcapNgWriter(str(path))
    for i, pkt in enumerate(_ipv4_frames(payloads)):
        frame = Ether() / pkt
        frame.time = BASE_TIME + i
        writer.write(frame)
    writer.close()
    _check_heartbeat_rows(_decode_json(path), payloads)


def test_stdin_and_several_files(tmp_path):
    payloads = _payloads(4)
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    _write(a, [Ether() / p for p in _ipv4_frames(payloads[:2])])
    _write(b, [Ether() / p for p in _ipv4_frames(payloads[2:])])
    code, out, err = run_cli("decode", "-f", "json", str(a), str(b))
    assert code == 0, err
    _check_heartbeat_rows(json_rows(out), payloads)
    code, out, err = run_cli("decode", "-f", "json", "-", input=a.read_bytes())
    assert code == 0, err
    _check_heartbeat_rows(json_rows(out), payloads[:2])


def test_totem_detected_by_port_and_by_content(tmp_path):
    tokens = [totem_token(1, 1, 13, s) for s in range(3)]
    frames = [Ether() / IP() / UDP(sport=5405, dport=5405) / Raw(tokens[0]),
              Ether() / IP() / UDP(sport=6000, dport=6001) / Raw(tokens[1]),
              Ether() / IP() / UDP(sport=7000, dport=53) / Raw(b"\x12\x34not a cluster packet"),
              Ether() / IP() / UDP(sport=6000, dport=7694) / Raw(hb_status("n9", 1))]
    path = tmp_path / "t.pcap"
    _write(path, frames)
    rows = _decode_json(path)
    assert [r["proto"] for r in rows] == ["totem", "totem", "heartbeat"]
    assert [r["frame"] for r in rows] == [1, 2, 4]
    assert rows[0]["node"] == "1" and rows[0]["type"] == "orf_token"  # node: text (issue 14)
    # --no-heuristics keeps only the cluster ports
    rows = _decode_json(path, "--no-heuristics")
    assert [r["frame"] for r in rows] == [1]
    # --port replaces the port table
    rows = _decode_json(path, "--no-heuristics", "--port", "7694=heartbeat")
    assert [r["frame"] for r in rows] == [4]


def test_malformed_packets_are_rows_and_decoding_goes_on(tmp_path):
    good = hb_status("node1", 1)
    frames = [Ether() / IP() / UDP(sport=40000, dport=694) / Raw(good[:40]),
              Ether() / IP() / UDP(sport=40000, dport=694) / Raw(b"garbage"),
              Ether() / IP() / UDP(sport=5405, dport=5405) / Raw(b"\x70\xc0\x03\x09" + bytes(20)),
              Ether() / IP() / UDP(sport=40000, dport=694) / Raw(good)]
    path = tmp_path / "bad.pcap"
    _write(path, frames)
    rows = _decode_json(path)
    assert len(rows) == 4
    assert all(r["error"] for r in rows[:3])
    assert rows[3]["error"] is None and rows[3]["fields"]["seq"] == 1


# -- clean errors ---------------------------------------------------------------------


def _assert_one_line_error(proc, name: str) -> None:
    assert proc.returncode == 2, proc
    err = proc.stderr.decode()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert name in lines[0]


def test_truncated_capture_is_one_line_exit_2(tmp_path):
    payloads = _payloads(6)
    path = tmp_path / "whole.pcap"
    _write(path, [Ether() / p for p in _ipv4_frames(payloads)])
    data = path.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 50])
    proc = run_hbtool("decode", "-f", "json", str(cut))
    _assert_one_line_error(proc, "cut.pcap")
    assert "cut short" in proc.stderr.decode()
    # the rows before the cut are still printed
    rows = json_rows(proc.stdout.decode())
    _check_heartbeat_rows(rows, payloads[:5])


def test_random_bytes_are_one_line_exit_2(tmp_path):
    path = tmp_path / "random.bin"
    path.write_bytes(random.Random(1).randbytes(5000))
    proc = run_hbtool("decode", str(path))
    _assert_one_line_error(proc, "random.bin")
    assert "not a pcap" in proc.stderr.decode()


@pytest.mark.parametrize("magic", [b"\xd4\xc3\xb2\xa1", b"\x0a\x0d\x0d\x0a"])
def test_capture_header_then_garbage(tmp_path, magic):
    path = tmp_path / "garbage.pcap"
    rng = random.Random(2)
    path.write_bytes(magic + rng.randbytes(3000))
    proc = run_hbtool("decode", str(path))
    _assert_one_line_error(proc, "garbage.pcap")


def test_missing_empty_and_directory(tmp_path):
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    for target, word in ((tmp_path / "nope.pcap", "No such file"), (empty, "empty"),
                         (tmp_path, "directory")):
        proc = run_hbtool("decode", str(target))
        _assert_one_line_error(proc, os.path.basename(str(target)))
        assert word in proc.stderr.decode()


def test_bad_file_among_good_ones_still_decodes_the_others(tmp_path):
    payloads = _payloads(2)
    good = tmp_path / "good.pcap"
    _write(good, [Ether() / p for p in _ipv4_frames(payloads)])
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"hello world, not a capture")
    proc = run_hbtool("decode", "-f", "json", str(bad), str(good))
    _assert_one_line_error(proc, "bad.pcap")
    _check_heartbeat_rows(json_rows(proc.stdout.decode()), payloads)
