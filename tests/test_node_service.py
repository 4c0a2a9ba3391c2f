"""Service checks in the node core: a failing check or a failed start moves the group, but only
to a peer whose own check passes (ldirectord's fallback), and nothing moves to a dead peer.

Driven through the in-memory cluster (tests/node_sim.py) with check results fed by hand, as the
runner feeds them; the hand-over on the wire is 3.0.6's ask_resources me → other → done (the
same messages as auto_failback, tests/test_node_failback.py checks them against real nodes).
"""

from __future__ import annotations

import pytest
from node_sim import Sim, ha_cf, make_config

from hbtools.node.config import ConfigError, attach_checks
from hbtools.node.service import ServiceWatch, may_accept, parse_check_directive

VIP = "IPaddr::198.18.0.100/24/eth0"
CHECK = "check 198.18.0.100 http://127.0.0.1/ expect=node interval=1 timeout=500ms failures=2"


def cluster(*extra: str, haresources: str = f"node1 {VIP}\n") -> Sim:
    config = make_config(ha_cf(*extra), haresources)
    config.groups = attach_checks(config.groups, config.ha.checks, "ha.cf")
    sim = Sim(config)
    sim.start("node1")
    sim.start("node2")
    sim.run_for(15)
    assert 0 in sim.nodes["node1"].held  # home node holds its group
    return sim


def feed(sim: Sim, node: str, ok: bool, reason: str = "") -> None:
    sim._handle(node, sim.nodes[node].check_result(0, ok, reason or ("fine" if ok else "HTTP 502"),
                                                   sim.now))


def holder(sim: Sim) -> set[str]:
    return {name for name, n in sim.nodes.items() if 0 in n.held}


def test_failing_check_moves_group_to_peer_whose_check_passes():
    sim = cluster(CHECK)
    feed(sim, "node2", True)
    feed(sim, "node1", False)
    sim.run_for(1)
    assert holder(sim) == {"node1"}  # one failure is not enough (failures=2)
    feed(sim, "node1", False, "connection refused")
    sim.run_for(2)
    assert holder(sim) == {"node2"}
    failed = sim.events("node1", "check_failed")
    assert len(failed) == 1 and "connection refused" in failed[0].text
    entry = sim.nodes["node1"].report(sim.now)["groups"][0]
    assert entry["check"] == {"ok": False, "failures_in_a_row": 2, "reason": "connection refused"}
    assert entry["held_by"] == ["node2"]
    assert sim.releases("node1") and sim.takes("node2")
    # it stays there: node1's check recovering moves nothing back
    feed(sim, "node1", True)
    sim.run_for(5)
    assert holder(sim) == {"node2"}
    assert sim.events("node1", "check_ok")


def test_peer_whose_check_fails_refuses_and_group_stays():
    sim = cluster(CHECK)
    feed(sim, "node2", False, "HTTP 500")
    feed(sim, "node1", False)
    feed(sim, "node1", False)
    sim.run_for(3)
    assert holder(sim) == {"node1"}  # quiescent: nobody better
    ignored = sim.events("node2", "standby_ignored")
    assert ignored and "our own check fails (HTTP 500)" in ignored[0].text
    # once node2's check passes, node1 asks again (after the 10 s hand-over timeout) and it moves
    feed(sim, "node2", True)
    sim.run_for(25)
    assert holder(sim) == {"node2"}
    assert len([e for e in sim.events("node1", "standby") if "offering" in e.text]) == 2


def test_peer_without_result_yet_refuses():
    assert may_accept(ServiceWatch(2), False) == (False, "our own check fails (no result yet)")
    assert may_accept(None, False) == (True, "")
    assert may_accept(None, True)[0] is False


def test_dead_peer_means_no_move():
    sim = cluster(CHECK)
    sim.crash("node2")
    sim.run_for(10)
    feed(sim, "node1", False)
    feed(sim, "node1", False)
    sim.run_for(5)
    assert holder(sim) == {"node1"}
    assert not [e for e in sim.events("node1", "standby") if "offering" in e.text]


def test_failed_start_hands_group_over():
    """As ResourceManager: a start that fails gives the group up; the peer (no check) takes it."""
    sim = cluster()
    node1 = sim.nodes["node1"]
    sim._handle("node1", node1.resource_failed(0, "start", "Dummy start: exit 1 (generic error)",
                                               sim.now))
    assert 0 not in node1.held
    sim.run_for(3)
    assert holder(sim) == {"node2"}
    assert sim.events("node1", "resource_failed")
    # and node1 does not take it back by itself
    sim.run_for(20)
    assert holder(sim) == {"node2"}


def test_failed_start_peer_dead_nobody_holds():
    sim = cluster()
    sim.crash("node2")
    sim.run_for(10)
    sim._handle("node1", sim.nodes["node1"].resource_failed(0, "start", "boom", sim.now))
    sim.run_for(5)
    assert 0 not in sim.nodes["node1"].held  # not started again in a loop


@pytest.mark.parametrize(("line", "words"), [
    ("check 198.18.0.100", "expected 'check GROUP URL"),
    ("check 198.18.0.100 http://h/ failures=0", "failures="),
    ("check 198.18.0.100 http://h/ interval=1 timeout=2", "longer than its interval"),
    ("check 198.18.0.100 gopher://h/", "unknown scheme"),
])
def test_bad_check_lines(line, words):
    from hbtools.node.config import parse_ha_cf
    with pytest.raises(ConfigError, match=words):
        parse_ha_cf(ha_cf(line))


def test_check_must_name_a_group():
    config = make_config(ha_cf("check 198.18.0.7 tcp://127.0.0.1:80"), f"node1 {VIP}\n")
    with pytest.raises(ConfigError, match="no haresources group has a resource '198.18.0.7'"):
        attach_checks(config.groups, config.ha.checks, "ha.cf")


def test_check_directive_values():
    gc = parse_check_directive(["198.18.0.100", "http://127.0.0.1/", "expect=x", "interval=2",
                                "failures=4", "timeout=1"])
    assert (gc.interval, gc.failures, gc.check.timeout, gc.check.expect) == (2.0, 4, 1.0, "x")

