"""The state tables against the protocol text: 3.0.6's ask_for_resources accepts exactly four
(state, info) pairs; a fence result counts only while the command runs; message types dispatch
by Heartbeat's names (shared/PROTOCOL-NOTES.md)."""

from __future__ import annotations

import pytest

from hbtools.node.state import (
    FENCE_TRANSITIONS,
    STANDBY_MESSAGES,
    FenceEvent,
    FenceState,
    MessageKind,
    Standby,
    StandbyEvent,
    TransitionError,
    dispatch,
    transition,
)


def test_standby_pairs_are_3_0_6s():
    assert STANDBY_MESSAGES == {(Standby.NOT, "me"): StandbyEvent.ASKED,
                                (Standby.ME, "other"): StandbyEvent.AGREED,
                                (Standby.OTHER, "done"): StandbyEvent.PEER_DONE,
                                (Standby.DONE, "done"): StandbyEvent.PEER_DONE}


def test_fence_results_count_only_while_pending():
    assert transition(FENCE_TRANSITIONS, FenceState.PENDING, FenceEvent.SUCCEEDED) is FenceState.DONE
    assert transition(FENCE_TRANSITIONS, FenceState.PENDING, FenceEvent.FAILED) is FenceState.FAILED
    for state in (FenceState.NOT_NEEDED, FenceState.DONE, FenceState.FAILED):
        with pytest.raises(TransitionError):
            transition(FENCE_TRANSITIONS, state, FenceEvent.SUCCEEDED)
    for state in FenceState:
        assert transition(FENCE_TRANSITIONS, state, FenceEvent.BACK) is FenceState.NOT_NEEDED


@pytest.mark.parametrize(("wire", "kind"), [
    ("status", MessageKind.STATUS), ("NS_rexmit", MessageKind.REXMIT), ("NS_ackmsg", MessageKind.ACK),
    ("shutdone", MessageKind.SHUTDONE), ("ask_resources", MessageKind.ASK_RESOURCES),
    ("repnodes", MessageKind.OTHER), ("STATUS", MessageKind.OTHER), (None, MessageKind.OTHER),
])
def test_dispatch_by_heartbeats_type_names(wire, kind):
    assert dispatch(wire) is kind


def test_every_typed_event_kind_is_documented():
    """The JSON `kind` of each event class is what docs/DAEMON.md promises readers of --events."""
    import re
    from pathlib import Path

    from hbtools.node.events import EVENT_TYPES

    doc = (Path(__file__).resolve().parent.parent / "docs" / "DAEMON.md").read_text()
    section = doc.split("## Event kinds", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_]+)`", section))
    assert set(EVENT_TYPES) <= documented, set(EVENT_TYPES) - documented
    assert all(cls.kind == kind for kind, cls in EVENT_TYPES.items())
