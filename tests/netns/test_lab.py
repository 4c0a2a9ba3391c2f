"""The namespace lab itself: two REAL Heartbeat 3.0.6 nodes find each other, and nothing of
a lab survives its closing (processes, namespaces, directories)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hbtools.lab import HEARTBEAT_BIN, Lab, LabError, heartbeat_ha_cf

pytestmark = pytest.mark.netns

# Short timers keep the test quick; the daemon accepts millisecond values.
FAST = {"keepalive": "500ms", "warntime": "1", "deadtime": "2", "initdead": "4"}


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def _start_pair(lab: Lab):
    from policy import require_tools

    require_tools(HEARTBEAT_BIN, "cl_status", "tcpdump")
    hbs = [lab.add_heartbeat(name) for name in ("node1", "node2")]
    conf = heartbeat_ha_cf(["node1", "node2"], ["bcast eth0"], **FAST)
    for hb in hbs:
        hb.write_config(conf, "auth 1\n1 crc\n")
    for hb in hbs:
        hb.start()
    return hbs


def test_two_real_nodes_see_each_other_active(lab, tmp_path):
    cap = lab.capture(tmp_path / "lab.pcap")
    node1, node2 = _start_pair(lab)
    node1.wait_nodestatus("node2", "active", timeout=20)
    node2.wait_nodestatus("node1", "active", timeout=20)
    # Each node runs in its own UTS namespace: its name is its own, not the host's.
    assert node1.node.run(["uname", "-n"]).stdout.strip() == "node1"
    assert node1.master_pid() != node2.master_pid()
    assert cap.stop(), "tcpdump on the bridge saw no packets"
    assert (tmp_path / "lab.pcap").stat().st_size > 24


def test_close_leaves_nothing_behind():
    with Lab() as lab:
        node1, node2 = _start_pair(lab)
        node1.wait_nodestatus("node2", "active", timeout=20)
        pids = node1.node.processes() + node2.node.processes()
        namespaces = {n for n in _netns_names() if n.startswith(lab.prefix + "-")}
        workdir = lab.workdir
        node1.kill()  # a crashed node's orphans must go too
    assert namespaces and pids
    assert not namespaces & _netns_names()
    assert not workdir.exists()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _ns_changed(pid), f"pid {pid} survived"


def _ns_changed(pid: int) -> bool:
    """A pid number may have been reused by an unrelated process; that is not a leak."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    except OSError:
        return True


def test_lab_traffic_stays_in_the_lab(lab):
    client = lab.add_client()
    with pytest.raises(LabError, match="198.18.0.0/15"):
        client.ping("192.0.2.1")
