"""The accelerated detectors' beats and replies next to a REAL Heartbeat 3.0.6 node.

One real node ``n1`` whose ha.cf lists ``ghost1``; the client namespace plays ghost1: signed
status messages keep it alive while it also sends the beat/reply/join/leave datagrams declared in
``hbtools.detectors.wire``. What the real daemon does is the proof that it ignores them without
complaint: its log (compared before and after) gains no line about them and no error, ghost1
stays ``active``, n1 stays ``active``, and n1 asks for no retransmission.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from netns_helpers import hbtool, lab_with, node_env

from hbtools import heartbeat
from hbtools.auth import AuthKeys
from hbtools.detectors.base import BEAT, JOIN, LEAVE, REPLY, Send
from hbtools.detectors.wire import WIRE_TYPES, body_fields

pytestmark = pytest.mark.netns

AUTHKEYS = "auth 2\n2 sha1 hbtools-detector-wire\n"
BCAST = "198.18.0.255"


def test_real_306_node_ignores_accelerated_heartbeat_messages(tmp_path: Path) -> None:
    labmod = lab_with("/usr/libexec/heartbeat/heartbeat", "cl_status", "tcpdump")

    keyfile = tmp_path / "authkeys"
    keyfile.write_text(AUTHKEYS)
    keyfile.chmod(0o600)
    state = tmp_path / "state.json"
    pcap = tmp_path / "wire.pcap"
    env = node_env()
    with labmod.Lab() as lab:
        hb = lab.add_heartbeat("n1")
        client = lab.add_client()
        hb.write_config(labmod.heartbeat_ha_cf(["n1", "ghost1"], ["bcast eth0"], keepalive="500ms",
                                               warntime="1", deadtime="2", initdead="4"), AUTHKEYS)
        hb.start()
        hb.wait_nodestatus("n1", "active", timeout=30)
        cap = lab.capture(pcap, "udp port 694")
        # One status first, so the state file holds ghost1's generation before two injectors
        # read it: every later message, beats included, then carries the same hg.
        first = client.run(hbtool("inject", "--node", "ghost1", "-f", "st=active", "-f", "dt=2000",
                                   "--authkeys", str(keyfile), "--state", str(state), "--to",
                                   BCAST, "--count", "1"), env=env, check=False, timeout=20)
        assert first.returncode == 0, first.stderr
        alive = client.popen(
            hbtool("inject", "--node", "ghost1", "-f", "st=active", "-f", "dt=2000",
                    "--authkeys", str(keyfile), "--state", str(state), "--to", BCAST,
                    "--count", "240", "--interval", "0.25"),
            env=env, stderr=subprocess.PIPE)
        try:
            labmod.wait_until(lambda: hb.cl_status("nodestatus", "ghost1").stdout.strip() == "active",
                              timeout=8, interval=0.2, what="ghost1 active")
            before = hb.log_text()
            sent = 0
            for n, kind in enumerate([JOIN, BEAT, REPLY, BEAT, REPLY, LEAVE] * 3, start=1):
                rnd = None if kind in (JOIN, LEAVE) else n
                args = ["inject", "--node", "ghost1", "--authkeys", str(keyfile), "--to", BCAST,
                        "--count", "1", "--state", str(state)]
                fields = body_fields(Send(kind, 1, 0, rnd), "n1")
                args += ["-t", fields[0][1]]
                for name, value in fields[1:]:
                    args += ["-f", f"{name}={value}"]
                res = client.run(hbtool(*args), env=env, check=False, timeout=20)
                assert res.returncode == 0, res.stderr
                sent += 1
                time.sleep(0.1)
            time.sleep(1.0)
            ghost = hb.cl_status("nodestatus", "ghost1").stdout.strip()
            me = hb.cl_status("nodestatus", "n1").stdout.strip()
            after = hb.log_text()
        finally:
            alive.terminate()  # our own child, by its handle
            alive.communicate(timeout=20)
        time.sleep(1.5)
        cap.stop()

    new = after[len(before):]
    assert (ghost, me) == ("active", "active"), new
    assert "hbtools" not in new and "ERROR" not in new, new
    keys = AuthKeys.parse(AUTHKEYS)
    from scapy.layers.inet import IP, UDP
    from scapy.utils import rdpcap

    msgs = [(p[IP].src, heartbeat.decode(bytes(p[UDP].payload))) for p in rdpcap(str(pcap))
            if IP in p and UDP in p and p[UDP].dport == 694]
    ours = [m for _, m in msgs if m["t"] in WIRE_TYPES.values()]
    assert len(ours) == sent == 18
    assert all("seq" not in m.names() for m in ours)  # outside the sequenced stream
    raw = [bytes(p[UDP].payload) for p in rdpcap(str(pcap)) if UDP in p and p[UDP].dport == 694]
    assert all(keys.verify(r) for r in raw if heartbeat.decode(r)["t"] in WIRE_TYPES.values())
    assert not [m for _, m in msgs if m["t"] == "NS_rexmit"]
