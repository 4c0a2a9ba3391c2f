"""Where each ``haresources`` group should be: Heartbeat v1's 2-node rules as pure functions.

The node asks these for every group at every decision and turns the differences with what it
holds into take and release outputs; nothing here reads a clock or changes state, so each rule
can be checked by itself. The hand-over of groups that are already placed (auto_failback's
``ask_resources``) is a conversation, not a placement, and stays in the node.
"""

from __future__ import annotations

from dataclasses import dataclass

from hbtools.node.state import FenceState

__all__ = ["PeerView", "holds_group", "ping_preferred", "should_hold"]


@dataclass(frozen=True)
class PeerView:
    """What placement needs to know about the (one) peer."""

    name: str
    alive: bool  # init, up or active
    active: bool  # st=active
    fence: FenceState
    shutting_down: bool  # it said resource info=shutdown
    rsc_hold: str | None  # none, local, foreign, all; None: not told since it (or we) started
    ping_count: int | None


def holds_group(rsc_hold: str | None, holder: str, home: str) -> bool:
    """Whether a node whose resource message said ``rsc_hold`` holds a group homed at ``home``."""
    return rsc_hold == "all" or rsc_hold == ("local" if home == holder else "foreign")


def ping_preferred(me: str, my_count: int | None, peer: PeerView | None) -> str | None:
    """The node that should hold everything because it reaches more ping nodes (ipfail)."""
    if peer is None or my_count is None or peer.ping_count is None:
        return None
    if my_count > peer.ping_count:
        return me
    if my_count < peer.ping_count:
        return peer.name
    return None


def should_hold(me: str, home: str, holding: bool, peer: PeerView | None, by_ping: str | None) -> bool:
    """Whether ``me`` should hold the group homed at ``home`` now.

    No peer: hold. A dead peer: take over, unless its fencing is pending or failed. A peer
    shutting down, or one that has not said what it holds: change nothing. Both holding: the
    preferred node (ping count, else home) keeps it. A group we hold goes to a better-connected
    peer only once that peer is active; auto_failback gives home groups back by hand-over.
    """
    if peer is None:
        return True
    if not peer.alive:
        return holding if peer.fence in (FenceState.PENDING, FenceState.FAILED) else True
    if peer.shutting_down or peer.rsc_hold is None:
        return holding
    peer_holds = holds_group(peer.rsc_hold, peer.name, home)
    preferred = by_ping or home
    if holding:
        if peer_holds:
            return preferred == me
        if preferred == peer.name and by_ping is not None:
            return not peer.active
        return True
    if peer_holds:
        return False
    return preferred == me
