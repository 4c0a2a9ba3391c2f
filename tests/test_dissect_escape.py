"""Issue 12, item 5: whatever came from the wire is escaped wherever the dissector shows it.

A capture of hostile Heartbeat datagrams (written by hand: ESC, BEL, a newline, bytes that
are not UTF-8) goes through every output form under a strict UTF-8 stdout, as a real process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from scapy.all import IP, UDP, Ether, PcapWriter, Raw

from tests.dissect_vectors import ROOT, netstring

HOSTILE_SRC = b"n1\x1b[2J\x07\nnode node1: is dead"  # clears a terminal, rings, forges a row
NOT_UTF8 = b"\xff\xfe\x80"


def _message(src: bytes, st: bytes) -> bytes:
    items = [b"(0)t=status", b"(0)src=" + src, b"(0)st=" + st, b"(0)seq=1", b"(0)hg=1",
             b"(0)ts=1", b"(0)dt=1388", b"(0)protocol=1", b"(0)auth=1 0"]
    return b"###\n" + b"".join(netstring(i) for i in items) + b"%%%\n" + netstring(b"1 00")


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    path = tmp_path_factory.mktemp("escape") / "hostile.pcap"
    writer = PcapWriter(str(path), sync=True)
    payloads = [_message(HOSTILE_SRC, b"active"), _message(b"n2" + NOT_UTF8, b"up\x1b]0;x\x07"),
                _message(b"n3", b"act" + NOT_UTF8)]
    for i, payload in enumerate(payloads):
        frame = Ether() / IP(src=f"198.18.0.{i + 1}", dst="198.18.0.255") / UDP(
            sport=694, dport=694) / Raw(payload)
        frame.time = 1_700_000_000.0 + i
        writer.write(frame)
    writer.close()
    return path


def _run(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}
    return subprocess.run([sys.executable, "-c", "from hbtools.cli import main; main()", *args],
                          capture_output=True, timeout=120, cwd=ROOT, env=env, check=False)


def _assert_clean(out: bytes) -> str:
    text = out.decode("utf-8")  # strict: raises on what is not UTF-8
    assert not any(ch in text for ch in "\x1b\x07\r"), text
    return text


@pytest.mark.parametrize("args", [["--format", "table"], ["--format", "csv"], ["--stats"],
                                  ["--stats", "--format", "json"]])
def test_text_outputs_escape_wire_bytes(capture, args):
    done = _run("decode", str(capture), *args)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    text = _assert_clean(done.stdout)
    assert "node node1: is dead" not in text.splitlines()  # no forged line of its own
    if args == ["--format", "table"]:
        assert len(text.splitlines()) == 2 + 3  # header, rule, one line per message
        assert "n1\\x1b[2J\\x07\\x0anode node1: is dead" in text
        assert "n2\\xff\\xfe\\x80" in text
    if args == ["--format", "csv"]:
        assert len(text.splitlines()) == 1 + 3
    if "json" in args:
        for line in text.splitlines():
            for s in _strings(json.loads(line)):
                s.encode("utf-8")  # a lone surrogate cannot be encoded: this raises


def _strings(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_json_lines_carry_no_lone_surrogates(capture):
    done = _run("decode", str(capture), "--format", "json")
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    rows = [json.loads(line) for line in _assert_clean(done.stdout).splitlines()]
    assert len(rows) == 3
    for row in rows:
        for s in _strings(row):
            s.encode("utf-8")  # a lone surrogate cannot be encoded: this raises
    assert rows[1]["node"] == "n2\\xff\\xfe\\x80"
    assert rows[0]["node"] == HOSTILE_SRC.decode()  # JSON escapes control characters itself


def test_one_escape_function_for_daemon_and_dissector():
    from hbtools import escape
    from hbtools.node import core

    assert core.shown is escape.shown
    assert escape.text("a\x1bb\udcff\n") == "a\\x1bb\\xff\\x0a"
