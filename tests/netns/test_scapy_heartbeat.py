"""A status built in scapy (``hbtools.scapy.HB(...).sign(keys)``), sent by scapy's ``sendp`` from a
namespace with no daemon, is accepted by a real Heartbeat 3.0.6 node: the judge is the real
daemon (``cl_status nodestatus node2`` turns ``active``, its log has no authentication failure).
A control run signed with a different key first must leave node2 not active and be logged as an
authentication failure, so the test can fail.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hbtools.lab import heartbeat_ha_cf
from hbtools.node.labsupport import wait_for

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]
AUTHKEYS = "auth 2\n2 sha1 hbtools-scapy\n"
WRONG = "auth 2\n2 sha1 not-the-key\n"

SENDER = textwrap.dedent('''
    import sys, time, uuid
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.sendrecv import sendp
    from hbtools.auth import AuthKeys
    from hbtools.scapy import HB

    keys_path, src_ip, count, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    keys = AuthKeys.load(keys_path)
    me = uuid.UUID("8d5f3b5e-29b4-4a57-9d36-5d1f2c7f0a42")
    generation = int(time.time())
    for seq in range(1, count + 1):
        hb = HB(t="status", st="active", dt=0x3e8, protocol=1, src="node2", srcuuid=me,
                seq=seq, hg=generation, ts=int(time.time()), ld="0.00 0.00 0.00 1/50 1", ttl=3)
        frame = (Ether(dst="ff:ff:ff:ff:ff:ff") / IP(src=src_ip, dst="198.18.0.255", ttl=64)
                 / UDP(sport=694, dport=694) / hb.sign(keys))
        sendp(frame, iface="eth0", verbose=False)
        time.sleep(interval)
''')


def send(node, keys_file: Path, count: int) -> subprocess.Popen:
    script = node.workdir / "send_scapy.py"
    script.write_text(SENDER)
    return node.popen([sys.executable, str(script), str(keys_file), node.address, str(count), "0.2"],
                      stderr=subprocess.PIPE)


def test_scapy_signed_status_accepted_by_real_heartbeat(lab):
    real = lab.add_heartbeat("node1")
    ghost = lab.add_node("node2")
    real.write_config(heartbeat_ha_cf(["node1", "node2"], ["bcast eth0"], keepalive="200ms",
                                      warntime="600ms", deadtime="1", initdead="2"), AUTHKEYS)
    right = ghost.workdir / "authkeys"
    right.write_text(AUTHKEYS)
    right.chmod(0o600)
    wrong = ghost.workdir / "wrong-authkeys"
    wrong.write_text(WRONG)
    wrong.chmod(0o600)
    real.start()
    wait_for(lambda: real.nodestatus("node1") == "active", timeout=20, what="node1 to be active")

    control = send(ghost, wrong, 10)  # 2 s of statuses signed with another key
    assert control.wait(timeout=30) == 0, control.stderr.read() if control.stderr else ""
    time.sleep(0.5)
    log = real.log_text()
    assert "failed authentication" in log or "authtoken does not match" in log
    assert real.nodestatus("node2") != "active"

    good = send(ghost, right, 75)  # 15 s at most; ends as soon as node2 is active
    try:
        real.wait_nodestatus("node2", "active", timeout=15)
    finally:
        good.kill()
        good.wait(timeout=10)
    after = real.log_text()[len(log):]
    assert "failed authentication" not in after and "authtoken does not match" not in after
    assert "node2" in after  # the daemon's own line about the new node
