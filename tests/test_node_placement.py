"""Placement rules as pure functions, one case per rule of Heartbeat v1's 2-node model
(shared/PROTOCOL-NOTES.md: crash takeover, clean stop hand-over at shutdone, fencing first)."""

from __future__ import annotations

import pytest

from hbtools.node.placement import PeerView, holds_group, ping_preferred, should_hold
from hbtools.node.state import FenceState


def peer(**kw) -> PeerView:
    base = dict(name="node2", alive=True, active=True, fence=FenceState.NOT_NEEDED, shutting_down=False,
                rsc_hold="none", ping_count=None)
    return PeerView(**{**base, **kw})


@pytest.mark.parametrize(("holding", "view", "expected"), [
    (False, None, True),  # a single node holds everything
    (False, peer(alive=False, active=False), True),  # crash takeover
    (False, peer(alive=False, active=False, fence=FenceState.PENDING), False),  # not before fencing
    (True, peer(alive=False, active=False, fence=FenceState.FAILED), True),  # and keep what we have
    (False, peer(shutting_down=True, rsc_hold="all"), False),  # it hands over at shutdone, not before
    (True, peer(rsc_hold=None), True),  # it restarted and has not said: change nothing
    (False, peer(rsc_hold=None), False),
    (True, peer(rsc_hold="foreign"), True),  # both hold node1's group: the home node keeps it
])
def test_home_node1_group(holding, view, expected):
    assert should_hold("node1", "node1", holding, view, None) is expected


def test_both_holding_the_peers_home_group_gives_it_up():
    assert should_hold("node1", "node2", True, peer(rsc_hold="local"), None) is False


def test_ping_counts_decide_before_home():
    view = peer(ping_count=0, rsc_hold="none")
    assert ping_preferred("node1", 1, view) == "node1" and ping_preferred("node1", 0, view) is None
    assert should_hold("node1", "node2", False, view, "node1") is True
    # a better-connected peer gets our group only once it is active
    assert should_hold("node1", "node1", True, peer(active=False, ping_count=2), "node2") is True
    assert should_hold("node1", "node1", True, peer(ping_count=2), "node2") is False


def test_rsc_hold_words():
    assert holds_group("local", "node2", "node2") and not holds_group("local", "node2", "node1")
    assert holds_group("foreign", "node2", "node1") and holds_group("all", "node2", "node1")
    assert not holds_group("none", "node2", "node2") and not holds_group(None, "node2", "node2")
