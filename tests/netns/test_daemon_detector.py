"""The ha.cf ``detector`` directive in namespaces: φ next to a REAL 3.0.6 node, and an
accelerated detector between two hbtools nodes.

Judges: the kill time is taken here (CLOCK_MONOTONIC, the same clock the daemons stamp their
events with), the deadtime and the accelerated bound are the configuration's own numbers
(tmax + tmax + tmax/2 + … + tmin, Gouda & McGuire's halving rule written out by hand), and the
real node's liveness is what ``cl_status`` says. Timers: keepalive 1 s, deadtime 10 s (φ), and
tmax 0.5 s (accelerated), so the whole file runs in well under a minute.
"""

from __future__ import annotations

import time

import pytest

from hbtools.lab import Lab, heartbeat_ha_cf
from hbtools.node.labsupport import HbtoolsDaemon, wait_for

pytestmark = pytest.mark.netns

AUTH = "auth 3\n3 sha1 hbtools-detector\n"
TIMES = dict(keepalive="1", warntime="5", deadtime="10", initdead="20")


def _dead_at(daemon: HbtoolsDaemon, peer: str) -> tuple[float, str]:
    (event,) = [e for e in daemon.events("dead") if e["node"] == peer]
    return event["mono"], event.get("detector", "fixed")


def test_phi_finds_a_killed_real_node_sooner_than_the_fixed_deadtime(lab: Lab) -> None:
    """node1: real 3.0.6; node2: hbtools with `detector phi`; node3: hbtools, fixed deadtime.
    One SIGKILL of node1 measures both detectors on the same last heartbeat."""
    from policy import require_tools

    require_tools("/usr/libexec/heartbeat/heartbeat", "cl_status")
    nodes = ["node1", "node2", "node3"]
    base = heartbeat_ha_cf(nodes, ["bcast eth0"], **TIMES)
    real = lab.add_heartbeat("node1")
    phi = HbtoolsDaemon(lab.add_node("node2"))
    fixed = HbtoolsDaemon(lab.add_node("node3"))
    real.write_config(base, AUTH)
    phi.write_config(base + "detector phi\n", AUTH)
    fixed.write_config(base, AUTH)
    real.start()
    phi.start()
    fixed.start()
    for ours in (phi, fixed):
        ours.wait_peer_status("node1", "active", timeout=30)
    real.wait_nodestatus("node2", "active", timeout=30)
    real.wait_nodestatus("node3", "active", timeout=30)
    time.sleep(12)  # a dozen intervals for φ's window
    assert phi.events("dead") == [] and fixed.events("dead") == []
    killed = time.monotonic()
    real.kill()
    wait_for(lambda: fixed.peer_status("node1") == "dead", timeout=15, what="node3 to see node1 dead")
    phi_at, phi_by = _dead_at(phi, "node1")
    fixed_at, fixed_by = _dead_at(fixed, "node1")
    t_phi, t_fixed = phi_at - killed, fixed_at - killed
    print(f"\ndetection after SIGKILL of a real 3.0.6 node: phi {t_phi:.2f} s, fixed {t_fixed:.2f} s")
    assert (phi_by, fixed_by) == ("phi", "fixed")
    # fixed: 10 s after the last status, which came at most one keepalive (+ scheduling) before
    assert 8.8 <= t_fixed <= 10.6
    # φ (Akka defaults, pause 3 s): about mean + 3 s + 5.6·std after the same status
    assert 2.0 <= t_phi <= 7.0 and t_fixed - t_phi >= 3.0
    assert phi.events("dead")[0]["node"] == "node1" and len(phi.events("dead")) == 1


def test_accelerated_between_hbtools_nodes_no_false_death_then_crash_within_bound(lab: Lab) -> None:
    tmax, tmin = 0.5, 0.0625
    bound = tmax + tmax + tmax / 2 + tmax / 4 + tmax / 8  # down to tmin = tmax/8: 1.4375 s
    cf = heartbeat_ha_cf(["node1", "node2"], ["bcast eth0"], **TIMES)
    cf += f"detector binary tmax={tmax} tmin={tmin}\n"
    one = HbtoolsDaemon(lab.add_node("node1"))
    two = HbtoolsDaemon(lab.add_node("node2"))
    for d in (one, two):
        d.write_config(cf, AUTH)
        d.start()
    one.wait_peer_status("node2", "active", timeout=30)
    two.wait_peer_status("node1", "active", timeout=30)
    time.sleep(10)  # ~20 rounds each way, no loss: nobody may be suspected
    assert one.events("dead") == [] and two.events("dead") == []
    counters = one.status()["counters"]
    assert counters.get("detector:NS_hbtools_reply", 0) >= 15, counters
    assert counters.get("detector:NS_hbtools_beat", 0) >= 15, counters
    killed = time.monotonic()
    two.kill()
    wait_for(lambda: one.peer_status("node2") == "dead", timeout=12, what="node1 to see node2 dead")
    at, by = _dead_at(one, "node2")
    print(f"\nbinary detector: node2 SIGKILLed, node1 declared it dead after {at - killed:.3f} s "
          f"(bound {bound} s; deadtime 10 s)")
    assert by == "binary"
    assert 0 < at - killed <= bound + 0.3  # 0.3 s: the daemons' own scheduling on a loaded host
