"""tshark habits in ``hbtool decode`` (issue 14, item 4): -c, -w, -t, -V, -x, file per row.

Expected values are tshark's own reading of the same capture (frame times, UDP payload
bytes) or of the file hbtool wrote, never hbtool's.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from dissect_vectors import ROOT, run_cli
from policy import CAPTURES

HB = CAPTURES / "hb-bcast-crc" / "capture.pcap"
KNET = CAPTURES / "totem-knet" / "capture.pcap"
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")


def _tshark(pcap, *args: str) -> list[list[str]]:
    out = subprocess.run(["tshark", "-n", "-r", str(pcap), "-T", "fields", "-E", "separator=|",
                          *args], capture_output=True, text=True, timeout=120, cwd=ROOT,
                         check=True).stdout
    return [line.split("|") for line in out.splitlines()]


def _json(*args: str) -> list[dict]:
    code, out, err = run_cli("decode", "-f", "json", *args)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_count_stops_after_n_rows_after_the_filter():
    rows = _json("-c", "3", "--filter", "type=status node=node2", str(HB))
    assert len(rows) == 3 and {r["node"] for r in rows} == {"node2"}
    code, out, _ = run_cli("decode", "-c", "2", str(HB), str(KNET))
    assert code == 0 and len(out.splitlines()) == 2 + 2  # header, rule, two rows
    # the budget spans files: all from the first one
    assert all(line.split()[0].startswith(str(HB)) for line in out.splitlines()[2:])


@needs_tshark
def test_write_keeps_exactly_the_matched_packets(tmp_path):
    out = tmp_path / "tokens.pcap"
    rows = _json("-w", str(out), "--filter", "type=orf_token", str(KNET))
    assert rows
    frames = {r["frame"] for r in rows}
    original = {int(f): (t, p) for f, t, p in _tshark(KNET, "-e", "frame.number", "-e",
                                                      "frame.time_epoch", "-e", "udp.payload")}
    written = [(t, p) for t, p in _tshark(out, "-e", "frame.time_epoch", "-e", "udp.payload")]
    assert [p for _, p in written] == [original[f][1] for f in sorted(frames)]
    assert [round(float(t), 6) for t, _ in written] == [
        round(float(original[f][0]), 6) for f in sorted(frames)]


def test_write_refuses_a_symlink(tmp_path):
    link = tmp_path / "x.pcap"
    link.symlink_to(tmp_path / "elsewhere")
    code, _, err = run_cli("decode", "-w", str(link), str(HB))
    assert code == 2 and "cannot write" in err
    assert not (tmp_path / "elsewhere").exists()


@needs_tshark
def test_time_formats_follow_tshark():
    want = _tshark(HB, "-Y", "udp.port == 694", "-e", "frame.time_epoch")[:5]
    for mode in ("e", "r", "d"):
        code, out, err = run_cli("decode", "-t", mode, "-c", "5", str(HB))
        assert code == 0, err
        got = [float(line.split()[1]) for line in out.splitlines()[2:]]
        epochs = [float(w[0]) for w in want]
        expected = {"e": epochs,
                    "r": [e - epochs[0] for e in epochs],
                    "d": [0.0] + [b - a for a, b in zip(epochs, epochs[1:], strict=False)]}[mode]
        assert got == pytest.approx(expected, abs=2e-6)
    code, out, _ = run_cli("decode", "-t", "u", "-c", "1", str(HB))
    assert out.splitlines()[0].split()[1:3] == ["time", "(UTC)"]
    assert len(out.splitlines()[2].split()[1]) == len("21:08:44.410665")


@needs_tshark
def test_detail_and_hex_of_one_packet():
    frame, payload = _tshark(HB, "-Y", "udp.port == 694", "-e", "frame.number", "-e",
                             "udp.payload")[0]
    code, out, err = run_cli("decode", "-V", "-x", "--filter", f"frame={frame}", str(HB))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"Frame {frame}: ")
    raw = bytes.fromhex(payload)
    # every "(0)name=value," netstring item of the real bytes is a "name: value" line
    items = [i.split(b"=", 1) for i in raw.split(b",") if i.startswith(b"(0)") is False
             and b":(0)" in i]
    for head, value in items:
        name = head.split(b":(0)", 1)[1].decode()
        if name in ("t", "st", "src", "ld"):
            assert f"        {name}: {value.decode()}" in lines
    dump = [line.strip() for line in lines if line.startswith("        ") and
            line.strip()[:4].isalnum() and line.strip()[4:6] == "  "]
    hexed = "".join("".join(line[6:53].split()) for line in dump)
    assert hexed == payload


def test_several_files_name_the_file_in_every_row():
    rows = _json("-c", "400", str(HB), str(KNET))
    assert {r["file"] for r in rows} == {str(HB), str(KNET)} or {r["file"] for r in rows} == {str(HB)}
    code, out, _ = run_cli("decode", "-f", "csv", str(HB), str(KNET))
    header, *body = out.splitlines()
    assert header.startswith("file,frame,") and body[0].startswith(f"{HB},")
    assert body[-1].startswith(f"{KNET},")
