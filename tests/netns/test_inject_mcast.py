"""`hbtool inject --to GROUP --iface IF` against the REAL Heartbeat 3.0.6 on multicast media.

One real node, ``n1``, with ``mcast eth0 239.18.0.1 694 1 0`` (the medium of
captures/hb-mcast-sha1) and an ``active``-able ghost ``ghost1`` in its ``node`` line.
The injector runs in the lab's client namespace, which has TWO interfaces: ``eth0`` on
the lab bridge, and ``hbx0`` (one end of a veth pair that leads nowhere: this kernel
has no dummy driver), where the client's multicast route (224.0.0.0/4) points. So where
a datagram leaves is decided by ``--iface`` alone:

* without ``--iface`` the kernel follows the route: the datagrams are seen leaving on ``hbx0``,
  never on the bridge, and ``n1`` keeps ghost1 ``dead``;
* with ``--iface eth0`` they leave on eth0 against the route: the bridge capture shows
  them addressed to the group (IPv4 239.18.0.1, Ethernet 01:00:5e:12:00:01) with IP TTL 1
  (the ha.cf ttl, and the TTL the real node's own multicasts carry in the same capture),
  and ``cl_status nodestatus ghost1`` turns ``active``; the log says
  ``Status update for node ghost1: status active``;
* ``--iface nosuch0`` is refused in one line, exit status 2, nothing sent.
"""

from __future__ import annotations

import selectors
import subprocess
import time
from pathlib import Path

import pytest
from netns_helpers import hbtool, lab_with, node_env

from hbtools import heartbeat

pytestmark = pytest.mark.netns

AUTHKEYS = "auth 1\n1 sha1 hbtools-inject-mcast\n"
GROUP = "239.18.0.1"
GROUP_MAC = "01:00:5e:12:00:01"  # 01:00:5e + the low 23 bits of 239.18.0.1 (0x12 0x00 0x01)
MEDIUM = f"mcast eth0 {GROUP} 694 1 0"
CLIENT_IP = "198.18.0.250"
TOOLS = ("/usr/libexec/heartbeat/heartbeat", "cl_status", "tcpdump")
SIDE = "hbx0"
SIDE_IP = "198.19.0.250"


def _status(hb, peer: str) -> str:
    return hb.cl_status("nodestatus", peer).stdout.strip()


def _capture_in(labmod, node, path: Path, iface: str):
    """tcpdump inside a node's namespace (the lab's own capture only sees the bridge)."""
    proc = node.popen(["tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-s", "0",
                       "-Z", "root", "-w", str(path), "udp port 694"],
                      stderr=subprocess.PIPE)
    assert proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    seen = ""
    deadline = time.monotonic() + 5
    try:
        while "listening on" not in seen and time.monotonic() < deadline:
            if sel.select(max(0.0, deadline - time.monotonic())):
                line = proc.stderr.readline()
                if not line:
                    break
                seen += line
    finally:
        sel.close()
    assert "listening on" in seen, f"tcpdump on {iface} did not start: {seen!r}"
    return labmod.Capture(proc, path, "udp port 694", iface)


def _frames(path: Path) -> list[dict]:
    """Every Heartbeat datagram of a pcap, read with scapy (independent of hbtools' reader)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import rdpcap

    out = []
    for pkt in rdpcap(str(path)):
        if IP in pkt and UDP in pkt and pkt[UDP].dport == 694:
            payload = bytes(pkt[UDP].payload)
            msg = heartbeat.decode(payload)
            out.append({"src": pkt[IP].src, "dst": pkt[IP].dst, "ttl": pkt[IP].ttl,
                        "mac": pkt[Ether].dst if Ether in pkt else None,
                        "node": msg.src, "seq": msg.seq})
    return out


def test_multicast_through_iface_makes_ghost_active(tmp_path: Path) -> None:
    labmod = lab_with(*TOOLS)
    keyfile = tmp_path / "authkeys"
    keyfile.write_text(AUTHKEYS)
    keyfile.chmod(0o600)
    state = tmp_path / "state.json"
    bridge_pcap, side_pcap = tmp_path / "bridge.pcap", tmp_path / "side.pcap"
    common = ["--node", "ghost1", "-f", "st=active", "-f", "dt=3000", "--authkeys", str(keyfile),
              "--state", str(state), "--to", GROUP, "--interval", "0.25"]
    with labmod.Lab() as lab:
        hb = lab.add_heartbeat("n1")
        client = lab.add_client()
        hb.write_config(labmod.heartbeat_ha_cf(["n1", "ghost1"], [MEDIUM], keepalive="500ms",
                                               warntime="1", deadtime="2", initdead="4"),
                        AUTHKEYS)
        ns = client.netns
        for cmd in (["link", "add", SIDE, "type", "veth", "peer", "name", f"{SIDE}p"],
                    ["addr", "add", f"{SIDE_IP}/24", "dev", SIDE],
                    ["link", "set", f"{SIDE}p", "up"],
                    ["link", "set", SIDE, "up"],
                    ["route", "replace", "224.0.0.0/4", "dev", SIDE]):
            subprocess.run(["ip", "-n", ns, *cmd], check=True, timeout=10)
        route = subprocess.run(["ip", "-n", ns, "route", "get", GROUP], check=True, timeout=10,
                               capture_output=True, text=True).stdout
        assert f"dev {SIDE}" in route, route  # the kernel's own choice is hbx0
        hb.start()
        hb.wait_nodestatus("n1", "active", timeout=30)
        assert _status(hb, "ghost1") == "dead"
        bridge = lab.capture(bridge_pcap, "udp port 694")
        side = _capture_in(labmod, client, side_pcap, SIDE)

        # 1. No --iface: the route wins, nothing reaches the bridge, ghost1 stays dead.
        routed = client.run(hbtool("inject", *common, "--count", "4"), env=node_env(),
                            check=False, timeout=20)
        assert routed.returncode == 0, routed.stderr
        time.sleep(0.5)
        status_after_routed = _status(hb, "ghost1")

        # 2. A wrong interface name: one line, exit 2, nothing sent (state unchanged).
        wrong = client.run(hbtool("inject", *common, "--iface", "nosuch0"), env=node_env(),
                           check=False, timeout=20)

        # 3. --iface eth0, against the route: ghost1 comes alive.
        bound = client.popen(hbtool("inject", *common, "--iface", "eth0", "--count", "16"),
                             env=node_env(), stderr=subprocess.PIPE)
        try:
            labmod.wait_until(lambda: _status(hb, "ghost1") == "active", timeout=8,
                              interval=0.2, what="n1 to see ghost1 active")
        finally:
            _, err = bound.communicate(timeout=15)
        assert bound.returncode == 0, err
        bridge.stop()
        side.stop()
        log = hb.log_text()

    assert status_after_routed == "dead"
    assert wrong.returncode == 2
    assert wrong.stderr == "hbtool inject: error: unknown interface 'nosuch0' (see `ip link`)\n"
    assert "Status update for node ghost1: status active" in log

    on_bridge = _frames(bridge_pcap)
    injected = [f for f in on_bridge if f["node"] == "ghost1"]
    # seq 1-4 went to hbx0; the state file numbered the bound run from 5.
    assert [f["seq"] for f in injected] == list(range(5, 21))
    assert {(f["src"], f["dst"], f["ttl"], f["mac"]) for f in injected} == {
        (CLIENT_IP, GROUP, 1, GROUP_MAC)}
    real = [f for f in on_bridge if f["node"] == "n1"]
    assert real and {(f["dst"], f["ttl"], f["mac"]) for f in real} == {(GROUP, 1, GROUP_MAC)}

    on_side = _frames(side_pcap)
    assert [f["seq"] for f in on_side] == [1, 2, 3, 4]
    assert {(f["src"], f["dst"], f["ttl"], f["node"]) for f in on_side} == {
        (SIDE_IP, GROUP, 1, "ghost1")}
