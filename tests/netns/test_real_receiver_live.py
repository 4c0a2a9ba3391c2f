"""A real Heartbeat 3.0.6 node decides what ``auth`` means, and decode is live (issue 14).

One real node ``n1`` lists two nodes that never run. From the lab's client namespace two
streams of hand-built status messages (tests/receiver_vectors.py, stdlib HMAC only) go out:

* ``ghost1``: in-body ``auth`` WRONG, trailer right -> the real node takes them
  (``cl_status nodestatus n1 ghost1`` becomes ``active``);
* ``ghost2``: in-body ``auth`` right, NO trailer -> the real node drops them (stays ``dead``).

Meanwhile a real ``tcpdump -U -w -`` on the lab bridge is piped into ``hbtool decode -``
(JSON, with the authkeys). Its rows must arrive while tcpdump still runs (item 1) and
their ``auth`` must be what the real node did (item 2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from receiver_vectors import AUTHKEYS, netstring_datagram, status_fields
from test_decode_live import _Reader

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]
BCAST = "198.18.0.255"
CLIENT_IP = "198.18.0.250"  # hbtools.lab CLIENT_HOST on the lab segment

SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
files = sys.argv[2:]
for name in files:
    with open(name, 'rb') as f:
        s.sendto(f.read(), (sys.argv[1], 694))
    time.sleep(0.2)
"""


def test_real_node_takes_trailer_only_and_live_decode_agrees(tmp_path: Path) -> None:
    from policy import require_tools

    require_tools("/usr/libexec/heartbeat/heartbeat", "cl_status", "tcpdump")
    from hbtools import lab as labmod

    keyfile = tmp_path / "authkeys"
    keyfile.write_text(AUTHKEYS)
    keyfile.chmod(0o600)
    gen = int(time.time())
    files: list[str] = []
    for seq in range(1, 13):
        for node, body_right, trailer in (("ghost1", False, "right"), ("ghost2", True, "none")):
            uuid = (b"\x11" if node == "ghost1" else b"\x22") * 16
            data = netstring_datagram(status_fields(node, seq, uuid, gen, gen),
                                      body_right=body_right, trailer=trailer)
            path = tmp_path / f"{node}-{seq}.bin"
            path.write_bytes(data)
            files.append(str(path))
    with labmod.Lab() as lab:
        hb = lab.add_heartbeat("n1")
        client = lab.add_client()
        hb.write_config(labmod.heartbeat_ha_cf(["n1", "ghost1", "ghost2"], ["bcast eth0"],
                                               keepalive="500ms", warntime="1", deadtime="2",
                                               initdead="4"), AUTHKEYS)
        hb.start()
        labmod.wait_until(lambda: hb.cl_status("nodestatus", "n1").stdout.strip() == "active",
                          timeout=30, interval=0.2, what="n1 active")
        tcpdump = subprocess.Popen(
            ["ip", "netns", "exec", lab.bridge_ns, "tcpdump", "-i", labmod.BRIDGE, "-n", "-U",
             "--immediate-mode", "-s", "0", "-w", "-", f"udp port 694 and src host {CLIENT_IP}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        decode = subprocess.Popen(
            [sys.executable, "-c", "from hbtools.cli import main; main()", "decode", "-",
             "-f", "json", "-a", str(keyfile), "--filter", "node=ghost1,ghost2"],
            stdin=tcpdump.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd="/")
        assert tcpdump.stdout is not None and decode.stdout is not None
        tcpdump.stdout.close()
        try:
            time.sleep(1.0)  # tcpdump is listening
            sender = client.popen([sys.executable, "-c", SENDER, BCAST, *files])
            reader = _Reader(decode.stdout.fileno())
            rows = []
            for _ in range(len(files)):
                line = reader.line(15.0)
                if line is None:
                    break
                rows.append(json.loads(line))
            # all rows came while tcpdump was still capturing: that is "live"
            assert tcpdump.poll() is None
            sender.wait(timeout=30)
            labmod.wait_until(
                lambda: hb.cl_status("nodestatus", "ghost1").stdout.strip() == "active",
                timeout=10, interval=0.2, what="n1 to take ghost1")
            ghost2 = hb.cl_status("nodestatus", "ghost2").stdout.strip()
            log = hb.log_text()
        finally:
            for proc in (tcpdump, decode):
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)
    assert len(rows) == len(files), rows[-2:]
    assert ghost2 == "dead"
    assert "Status update for node ghost1: status active" in log
    assert "Status update for node ghost2" not in log
    by_node = {n: [r for r in rows if r["node"] == n] for n in ("ghost1", "ghost2")}
    # the real node took ghost1 (wrong in-body auth) and dropped ghost2 (no trailer)
    assert {r["auth"] for r in by_node["ghost1"]} == {"ok"}
    assert {r["auth"] for r in by_node["ghost2"]} == {"bad"}
    assert {(r["signatures"]["trailer"], r["signatures"]["body"]) for r in by_node["ghost1"]} == {
        ("ok", "bad")}
    assert {(r["signatures"]["trailer"], r["signatures"]["body"]) for r in by_node["ghost2"]} == {
        ("absent", "ok")}
