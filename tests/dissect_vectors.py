"""Hand-built inputs for the dissector tests, made without the code under test.

Heartbeat payloads are written out as netstrings by hand here (not with the codec), the
frames around them by scapy, and the expected values are read back from these inputs
with regular expressions, so a test never checks the dissector against itself.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent


def netstring(item: bytes) -> bytes:
    return b"%d:%s," % (len(item), item)


def hb_netstring(fields: list[tuple[str, str]], trailer: str = "1 a77e48e9") -> bytes:
    """A netstring-format Heartbeat datagram with string fields, written by hand."""
    body = b"###\n" + b"".join(netstring(f"(0){k}={v}".encode()) for k, v in fields)
    body += b"%%%\n"
    return body + netstring(trailer.encode())


def hb_classic(fields: list[tuple[str, str]]) -> bytes:
    return b">>>\n" + b"".join(f"{k}={v}\n".encode() for k, v in fields) + b"<<<\n"


def hb_status(node: str, seq: int, *, st: str = "active", dt: int = 5000, hg: int = 0x6B05EFF9,
              ts: int = 0x6B05EFF8, classic: bool = False) -> bytes:
    fields = [("t", "status"), ("st", st), ("dt", f"{dt:x}"), ("protocol", "1"),
              ("src", node), ("seq", f"{seq:x}"), ("hg", f"{hg:x}"), ("ts", f"{ts:x}"),
              ("ld", "0.02 0.11 0.08 1/92 19549"), ("ttl", "3")]
    if classic:
        return hb_classic([*fields, ("auth", "1 0")])
    return hb_netstring([*fields, ("auth", "1 0")])


SEQ_RE = re.compile(rb"\(0\)seq=([0-9a-f]+),|^seq=([0-9a-f]+)$", re.M)
SRC_RE = re.compile(rb"\(0\)src=([^,]*),|^src=(.*)$", re.M)
TYPE_RE = re.compile(rb"\(0\)t=([^,]*),|^t=(.*)$", re.M)


def regex_field(regex: re.Pattern[bytes], payload: bytes) -> str | None:
    m = regex.search(payload)
    if m is None:
        return None
    return (m.group(1) if m.group(1) is not None else m.group(2)).decode()


def totem_token(nodeid: int, rep: int, ring_seq: int, token_seq: int, *, big: bool = False
                ) -> bytes:
    """A Corosync 3 orf_token laid out from PROTOCOL-NOTES with struct, no codec.

    The message seq (first body field) stands at 30 as on an idle ring; token_seq (the
    second) is the one that grows at every hop.
    """
    e = ">" if big else "<"
    head = struct.pack(e + "HBBBII", 0xC070, 3, 0, 0, nodeid, 0)
    body = struct.pack(e + "IIIIIQIIii", 30, token_seq, 30, nodeid, rep, ring_seq, 0, 0, 0, 0)
    return head + body


def totem_mcast(nodeid: int, rep: int, ring_seq: int, seq: int, payload: bytes = b"hello") -> bytes:
    head = struct.pack("<HBBBII", 0xC070, 3, 1, 2, nodeid, 0)
    body = struct.pack("<IIiIQIi", nodeid, seq, 1, rep, ring_seq, nodeid, 0)
    return head + body + payload


def run_cli(*args: str, input: bytes | None = None) -> tuple[int, str, str]:
    """``hbtool`` in-process (fast); returns exit code, stdout, stderr."""
    from hbtools.cli import cli

    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def run_hbtool(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """``hbtool`` as a real process: what a user sees on stderr, tracebacks included."""
    code = "import sys; sys.argv[0] = 'hbtool'; from hbtools.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], input=input, cwd=ROOT,
                          capture_output=True, timeout=300, check=False)


def json_rows(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]
