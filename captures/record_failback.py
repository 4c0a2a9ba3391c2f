#!/usr/bin/env python3
"""Record two real Heartbeat 3.0.6 nodes failing back with ``auto_failback on``.

node2 owns the VIP; its Heartbeat is SIGKILLed, node1 takes the VIP over; node2's stale VIP
is removed by hand (3.0.6 would keep it) and node2 restarts: node1 gives the VIP back with the
``ask_resources`` hand-over (``info=me`` / ``other`` / ``done``). The exchange is the reference
for hbtools' own auto_failback (tests/test_node_failback.py). Run as root::

    python captures/record_failback.py            # writes captures/hb-failback/
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from hbtools.lab import Lab, heartbeat_ha_cf, wait_until  # noqa: E402

VIP = "198.18.0.100"
AUTHKEYS = "auth 1\n1 crc\n"
HARESOURCES = f"node2 IPaddr::{VIP}/24/eth0\n"


def main() -> int:
    out = HERE / "hb-failback"
    out.mkdir(exist_ok=True)
    ha_cf = heartbeat_ha_cf(["node1", "node2"], ["bcast eth0"], keepalive="200ms", warntime="600ms",
                            deadtime="1", initdead="2", auto_failback="on")
    events: list[dict[str, object]] = []
    with Lab() as lab:
        n1, n2 = lab.add_heartbeat("node1"), lab.add_heartbeat("node2")
        for hb in (n1, n2):
            hb.write_config(ha_cf, AUTHKEYS, HARESOURCES)
        start = time.time()

        def event(what: str) -> None:
            events.append({"what": what, "at": round(time.time() - start, 3)})

        with lab.capture(out / "capture.pcap"):
            n1.start()
            n2.start()
            wait_until(lambda: n2.node.has_address(VIP), timeout=30, what="node2 to take its VIP")
            event("node2 holds the VIP")
            time.sleep(1)
            n2.kill()
            event("node2 SIGKILLed")
            wait_until(lambda: n1.node.has_address(VIP), timeout=30, what="node1 to take the VIP")
            event("node1 holds the VIP")
            n2.node.run(["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"], check=False)
            time.sleep(1)
            n2.start()
            event("node2 restarted")
            wait_until(lambda: n2.node.has_address(VIP) and not n1.node.has_address(VIP), timeout=30,
                       what="the VIP to fail back to node2")
            event("VIP back on node2, gone from node1")
            time.sleep(2)
        for hb in (n1, n2):
            shutil.copy(hb.log_path, out / f"{hb.name}.ha-log")
        nodes = [{"name": hb.name, "address": hb.node.address, "mac": hb.node.mac} for hb in (n1, n2)]
    (out / "ha.cf").write_text(ha_cf)
    (out / "authkeys").write_text(AUTHKEYS)
    (out / "haresources").write_text(HARESOURCES)
    meta = {"scenario": "hb-failback",
            "description": "2 real 3.0.6 nodes, bcast, crc, auto_failback on, VIP homed on node2: "
                           "node2 killed, node1 takes over, node2 restarts and gets the VIP back "
                           "through ask_resources me/other/done",
            "recorder": "captures/record_failback.py (hbtools.lab)",
            "software": {"heartbeat": "1:3.0.6 (Debian 12)"},
            "nodes": nodes, "events": events}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(events))
    return 0


if __name__ == "__main__":
    sys.exit(main())
