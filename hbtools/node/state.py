"""The node's states and the events that move them, as tables a reader can check at a glance.

Everything that changes a state goes through :func:`transition`, so an event that a table does
not list for the current state is a bug in the core, not a silent no-op (the same idea as h11's
``_state.py``). Names are Heartbeat's: a node's status is what its ``st`` field says on the wire.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar


class LocalStatus(Enum):
    """What this node puts in ``st``: ``init`` → ``up`` → ``active``; ``dead`` in ``shutdone``."""

    INIT = "init"
    UP = "up"
    ACTIVE = "active"
    DEAD = "dead"


class LocalEvent(Enum):
    STARTED = "started"  # the first status went out
    ALL_PEERS_HEARD = "all peers heard"  # every configured node has spoken (Comm_now_up)
    INITDEAD_EXPIRED = "initdead expired"  # some never spoke; go on without them
    SHUTDOWN = "shutdown"  # clean stop: hand resources over, then shutdone


LOCAL_TRANSITIONS: dict[LocalStatus, dict[LocalEvent, LocalStatus]] = {
    LocalStatus.INIT: {
        LocalEvent.STARTED: LocalStatus.UP,
        LocalEvent.SHUTDOWN: LocalStatus.DEAD,
    },
    LocalStatus.UP: {
        LocalEvent.ALL_PEERS_HEARD: LocalStatus.ACTIVE,
        LocalEvent.INITDEAD_EXPIRED: LocalStatus.ACTIVE,
        LocalEvent.SHUTDOWN: LocalStatus.DEAD,
    },
    LocalStatus.ACTIVE: {
        LocalEvent.SHUTDOWN: LocalStatus.DEAD,
    },
    LocalStatus.DEAD: {},
}


class PeerStatus(Enum):
    """What this node believes about a peer (``cl_status nodestatus`` prints the same words)."""

    UNKNOWN = "unknown"  # configured, never heard since we started
    INIT = "init"
    UP = "up"
    ACTIVE = "active"
    DEAD = "dead"


class PeerEvent(Enum):
    HEARD_INIT = "heard st=init"
    HEARD_UP = "heard st=up"
    HEARD_ACTIVE = "heard st=active"
    DEADTIME_EXPIRED = "no heartbeat for its deadtime"
    INITDEAD_EXPIRED = "never heard within initdead"
    SHUTDONE = "shutdone (clean stop)"


_HEARD = {
    PeerEvent.HEARD_INIT: PeerStatus.INIT,
    PeerEvent.HEARD_UP: PeerStatus.UP,
    PeerEvent.HEARD_ACTIVE: PeerStatus.ACTIVE,
}

#: A peer can say any status at any time (it may have restarted), can die while alive, and a
#: dead peer comes back by speaking again. Only a never-heard peer can die of initdead.
PEER_TRANSITIONS: dict[PeerStatus, dict[PeerEvent, PeerStatus]] = {
    PeerStatus.UNKNOWN: {**_HEARD, PeerEvent.INITDEAD_EXPIRED: PeerStatus.DEAD,
                         PeerEvent.SHUTDONE: PeerStatus.DEAD},
    PeerStatus.INIT: {**_HEARD, PeerEvent.DEADTIME_EXPIRED: PeerStatus.DEAD,
                      PeerEvent.SHUTDONE: PeerStatus.DEAD},
    PeerStatus.UP: {**_HEARD, PeerEvent.DEADTIME_EXPIRED: PeerStatus.DEAD,
                    PeerEvent.SHUTDONE: PeerStatus.DEAD},
    PeerStatus.ACTIVE: {**_HEARD, PeerEvent.DEADTIME_EXPIRED: PeerStatus.DEAD,
                        PeerEvent.SHUTDONE: PeerStatus.DEAD},
    PeerStatus.DEAD: {**_HEARD},
}

ALIVE = frozenset({PeerStatus.INIT, PeerStatus.UP, PeerStatus.ACTIVE})


def heard(st: str | None) -> PeerEvent | None:
    """The event for a status message's ``st`` (None: a status we do not track, e.g. ``ping``)."""
    return {"init": PeerEvent.HEARD_INIT, "up": PeerEvent.HEARD_UP,
            "active": PeerEvent.HEARD_ACTIVE}.get(st or "")


class ResourcePhase(Enum):
    """Where the node is in owning its ``haresources`` groups.

    WAITING: not active yet, or active but not yet told what the peer holds (a ``resource``
    message) and initdead has not run out; taking anything now could double-own an address.
    STABLE: decisions are made (take, release, hand over). STOPPED: after a clean shutdown.
    """

    WAITING = "waiting"
    STABLE = "stable"
    STOPPED = "stopped"


class ResourceEvent(Enum):
    PEERS_KNOWN = "every live peer said what it holds"
    INITDEAD_EXPIRED = "initdead expired"
    SHUTDOWN = "shutdown"


RESOURCE_TRANSITIONS: dict[ResourcePhase, dict[ResourceEvent, ResourcePhase]] = {
    ResourcePhase.WAITING: {
        ResourceEvent.PEERS_KNOWN: ResourcePhase.STABLE,
        ResourceEvent.INITDEAD_EXPIRED: ResourcePhase.STABLE,
        ResourceEvent.SHUTDOWN: ResourcePhase.STOPPED,
    },
    ResourcePhase.STABLE: {
        ResourceEvent.SHUTDOWN: ResourcePhase.STOPPED,
    },
    ResourcePhase.STOPPED: {},
}


class Standby(Enum):
    """Heartbeat's ``going_standby``: the three-message hand-over of a resource set.

    The holder asks ``ask_resources info=me`` (auto_failback gives a peer its home groups back
    this way), the peer agrees with ``info=other``, the holder releases and says ``info=done``,
    the peer takes them and says ``info=done`` too. Releasing and taking are outputs here, so a
    node never waits for its own ``done`` the way 3.0.6 waits for its child process.
    """

    NOT = "not"  # no hand-over under way
    ME = "me"  # we asked to give a set away; waiting for the peer's "other"
    OTHER = "other"  # the peer gives a set to us; waiting for its "done"
    DONE = "done"  # we released; waiting for the peer's "done" (it took them)


class StandbyEvent(Enum):
    ASK = "we ask the peer to take a set (info=me)"
    ASKED = "the peer asks us to take a set (its info=me)"
    AGREED = "the peer agrees to take our set (its info=other)"
    PEER_DONE = "the peer released or took the set (its info=done)"
    ABANDON = "the peer died, the hand-over timed out, or we stop"


STANDBY_TRANSITIONS: dict[Standby, dict[StandbyEvent, Standby]] = {
    Standby.NOT: {StandbyEvent.ASK: Standby.ME, StandbyEvent.ASKED: Standby.OTHER,
                  StandbyEvent.ABANDON: Standby.NOT},
    Standby.ME: {StandbyEvent.AGREED: Standby.DONE, StandbyEvent.ABANDON: Standby.NOT},
    Standby.OTHER: {StandbyEvent.PEER_DONE: Standby.NOT, StandbyEvent.ABANDON: Standby.NOT},
    Standby.DONE: {StandbyEvent.PEER_DONE: Standby.NOT, StandbyEvent.ABANDON: Standby.NOT},
}


#: What a peer's ``ask_resources info=`` means in each hand-over state (3.0.6's
#: ask_for_resources). A pair not listed is ignored and logged ("unexpected in state ...").
STANDBY_MESSAGES: dict[tuple[Standby, str], StandbyEvent] = {
    (Standby.NOT, "me"): StandbyEvent.ASKED,
    (Standby.ME, "other"): StandbyEvent.AGREED,
    (Standby.OTHER, "done"): StandbyEvent.PEER_DONE,
    (Standby.DONE, "done"): StandbyEvent.PEER_DONE,
}


class FenceState(Enum):
    """Fencing of one dead peer: resources move only after NOT_NEEDED or DONE."""

    NOT_NEEDED = "not needed"  # alive, cleanly stopped, or no fence command configured
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class FenceEvent(Enum):
    DIED_UNCLEAN = "died without shutdone, with a fence command configured"
    NO_FENCE_NEEDED = "stopped cleanly, or no fence command configured"
    SUCCEEDED = "the fence command exited 0"
    FAILED = "the fence command failed or timed out"
    BACK = "the peer speaks again"


_ANY_FENCE = {FenceEvent.DIED_UNCLEAN: FenceState.PENDING, FenceEvent.NO_FENCE_NEEDED: FenceState.NOT_NEEDED,
              FenceEvent.BACK: FenceState.NOT_NEEDED}

#: A result only counts while the fence command runs; a death or a return can come at any time.
FENCE_TRANSITIONS: dict[FenceState, dict[FenceEvent, FenceState]] = {
    FenceState.NOT_NEEDED: dict(_ANY_FENCE),
    FenceState.PENDING: {**_ANY_FENCE, FenceEvent.SUCCEEDED: FenceState.DONE,
                         FenceEvent.FAILED: FenceState.FAILED},
    FenceState.DONE: dict(_ANY_FENCE),
    FenceState.FAILED: dict(_ANY_FENCE),
}


class MessageKind(Enum):
    """How the node dispatches a peer's message, by its ``t`` field (DISPATCH)."""

    STATUS = "status"
    REXMIT = "NS_rexmit"
    NAK = "NS_nak_rexmit"
    ACK = "NS_ackmsg"
    STARTING = "starting"
    RESOURCE = "resource"
    SHUTDONE = "shutdone"
    ASK_RESOURCES = "ask_resources"
    REQNODES = "reqnodes"
    PING_COUNT = "num_ping_nodes"
    OTHER = "other"  # counted and ignored (repnodes, ip-request-resp, stonith, …)


#: Message type on the wire -> what the node does with it; everything else is OTHER.
DISPATCH: dict[str, MessageKind] = {k.value: k for k in MessageKind if k is not MessageKind.OTHER}


def dispatch(message_type: str | None) -> MessageKind:
    return DISPATCH.get(message_type or "", MessageKind.OTHER)


class TransitionError(RuntimeError):
    """An event the table does not allow in the current state (a bug in the core)."""


_S = TypeVar("_S", bound=Enum)
_E = TypeVar("_E", bound=Enum)


def transition(table: dict[_S, dict[_E, _S]], state: _S, event: _E) -> _S:
    """The next state, or TransitionError naming the state and the event."""
    try:
        return table[state][event]
    except KeyError:
        raise TransitionError(f"event {event.value!r} not allowed in state {state.value!r}") from None
