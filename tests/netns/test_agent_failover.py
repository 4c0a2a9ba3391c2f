"""A failed start is a fail-over, as in Heartbeat v1: two `hbtool daemon` nodes, a group of
``IPaddr`` + a resource.d script + the real OCF Dummy agent.

Each node's config directory has its own ``resource.d/websvc`` (the script records its calls in
the node's directory); on node1 its start fails (exit 1). node1 must start the group in order
(address, then websvc: status, start → fails), give the whole group up in reverse (Dummy is
never reached, websvc and the address are stopped), and hand it over; node2 then holds the VIP
and has run websvc and Dummy (its state file, which the real agent creates, exists).
"""

from __future__ import annotations

import pytest
from policy import require_tools

from hbtools.lab import Lab, heartbeat_ha_cf
from hbtools.node.labsupport import HbtoolsDaemon, wait_for

pytestmark = pytest.mark.netns

VIP = "198.18.0.100"
SCRIPT = """#!/bin/sh
echo "$*" >> {log}
case "$1" in
  status) [ -e {state} ] && echo running || echo "not running" ;;
  start) {start} ;;
  stop) rm -f {state} ;;
esac
"""


def test_failed_start_moves_the_group(lab: Lab, tmp_path) -> None:
    require_tools("/usr/lib/ocf/resource.d/heartbeat/Dummy")
    dummy_dir = tmp_path / "dummy"
    dummy_dir.mkdir()
    ha_cf = heartbeat_ha_cf(["node1", "node2"], ["bcast eth0"], keepalive="200ms",
                            warntime="600ms", deadtime="1", initdead="2")
    # one haresources for both nodes: only node2 ever gets as far as Dummy (node1 fails before)
    haresources = (f"node1 IPaddr::{VIP}/24/eth0 websvc "
                   f"Dummy::state={dummy_dir}/state\n")
    daemons = {}
    for name in ("node1", "node2"):
        d = HbtoolsDaemon(lab.add_node(name))
        d.write_config(ha_cf, "auth 1\n1 crc\n", haresources)
        rdir = d.conf_dir / "resource.d"
        rdir.mkdir()
        log, state = d.node.workdir / "websvc.log", d.node.workdir / "websvc.state"
        start = "exit 1" if name == "node1" else f"touch {state}"
        (rdir / "websvc").write_text(SCRIPT.format(log=log, state=state, start=start))
        (rdir / "websvc").chmod(0o755)
        daemons[name] = d
    node1, node2 = daemons["node1"], daemons["node2"]
    node1.start()
    node2.start()
    node1.wait_peer_status("node2", "active", timeout=20)
    wait_for(lambda: node2.node.has_address(VIP) and (dummy_dir / "state").exists(), timeout=30,
             what="node2 to hold the group after node1's start failed")
    assert not node1.node.has_address(VIP)
    calls1 = (node1.node.workdir / "websvc.log").read_text().split("\n")
    assert calls1[:3] == ["status", "start", "stop"], calls1  # given up, in reverse
    calls2 = (node2.node.workdir / "websvc.log").read_text().split("\n")
    assert "start" in calls2
    failed = node1.events("resource_failed")
    assert failed and "websvc start: exit 1" in failed[0]["text"], failed
    assert any("its start failed here" in e["text"] for e in node1.events("standby"))
    for d in daemons.values():
        d.stop()
    assert not (dummy_dir / "state").exists()  # node2's clean stop ran Dummy's stop
