"""Typed events of the node core: one class per kind, so a consumer can match on the type.

The ``kind`` string of each class is what the JSON events file writes (unchanged format, see
docs/DAEMON.md); `Event` itself stays the base and the generic form the runner uses for its own
I/O events (``send_error``, ``ip_error``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """Something a person wants to read later: ``kind`` is stable, ``text`` is for humans."""

    at: float
    kind: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeadEvent(Event):
    kind: str = field(default="dead", init=False)


@dataclass(frozen=True)
class DroppedEvent(Event):
    kind: str = field(default="dropped", init=False)


@dataclass(frozen=True)
class DroppedSummaryEvent(Event):
    kind: str = field(default="dropped_summary", init=False)


@dataclass(frozen=True)
class FencedEvent(Event):
    kind: str = field(default="fence", init=False)


@dataclass(frozen=True)
class FenceFailedEvent(Event):
    kind: str = field(default="fence_failed", init=False)


@dataclass(frozen=True)
class FenceStartEvent(Event):
    kind: str = field(default="fence_start", init=False)


@dataclass(frozen=True)
class LateHeartbeatEvent(Event):
    kind: str = field(default="late_heartbeat", init=False)


@dataclass(frozen=True)
class LocalStatusEvent(Event):
    kind: str = field(default="local_status", init=False)


@dataclass(frozen=True)
class PartitionHealedEvent(Event):
    kind: str = field(default="partition_healed", init=False)


@dataclass(frozen=True)
class PeerPingCountEvent(Event):
    kind: str = field(default="peer_ping_count", init=False)


@dataclass(frozen=True)
class PeerResourcesEvent(Event):
    kind: str = field(default="peer_resources", init=False)


@dataclass(frozen=True)
class PeerStatusEvent(Event):
    kind: str = field(default="peer_status", init=False)


@dataclass(frozen=True)
class PingCountEvent(Event):
    kind: str = field(default="ping_count", init=False)


@dataclass(frozen=True)
class ResourcePhaseEvent(Event):
    kind: str = field(default="resource_phase", init=False)


@dataclass(frozen=True)
class ResourceReleasedEvent(Event):
    kind: str = field(default="resource_released", init=False)


@dataclass(frozen=True)
class ResourceTakenEvent(Event):
    kind: str = field(default="resource_taken", init=False)


@dataclass(frozen=True)
class RestartEvent(Event):
    kind: str = field(default="restart", init=False)


@dataclass(frozen=True)
class RestartingEvent(Event):
    kind: str = field(default="restarting", init=False)


@dataclass(frozen=True)
class RexmitGaveUpEvent(Event):
    kind: str = field(default="rexmit_gave_up", init=False)


@dataclass(frozen=True)
class RexmitNakEvent(Event):
    kind: str = field(default="rexmit_nak", init=False)


@dataclass(frozen=True)
class RexmitRequestEvent(Event):
    kind: str = field(default="rexmit_request", init=False)


@dataclass(frozen=True)
class RexmitServedEvent(Event):
    kind: str = field(default="rexmit_served", init=False)


@dataclass(frozen=True)
class SeqResetEvent(Event):
    kind: str = field(default="seq_reset", init=False)


@dataclass(frozen=True)
class ShutdownEvent(Event):
    kind: str = field(default="shutdown", init=False)


@dataclass(frozen=True)
class StandbyChangedEvent(Event):
    kind: str = field(default="standby", init=False)


@dataclass(frozen=True)
class StandbyIgnoredEvent(Event):
    kind: str = field(default="standby_ignored", init=False)


@dataclass(frozen=True)
class WarntimeEvent(Event):
    kind: str = field(default="warntime", init=False)


@dataclass(frozen=True)
class CheckFailedEvent(Event):
    kind: str = field(default="check_failed", init=False)


@dataclass(frozen=True)
class CheckRecoveredEvent(Event):
    kind: str = field(default="check_ok", init=False)


@dataclass(frozen=True)
class ResourceFailedEvent(Event):
    kind: str = field(default="resource_failed", init=False)


#: kind string -> class, for readers of the events file
EVENT_TYPES: dict[str, type[Event]] = {
    "dead": DeadEvent,
    "dropped": DroppedEvent,
    "dropped_summary": DroppedSummaryEvent,
    "fence": FencedEvent,
    "fence_failed": FenceFailedEvent,
    "fence_start": FenceStartEvent,
    "late_heartbeat": LateHeartbeatEvent,
    "local_status": LocalStatusEvent,
    "partition_healed": PartitionHealedEvent,
    "peer_ping_count": PeerPingCountEvent,
    "peer_resources": PeerResourcesEvent,
    "peer_status": PeerStatusEvent,
    "ping_count": PingCountEvent,
    "resource_phase": ResourcePhaseEvent,
    "resource_released": ResourceReleasedEvent,
    "resource_taken": ResourceTakenEvent,
    "restart": RestartEvent,
    "restarting": RestartingEvent,
    "rexmit_gave_up": RexmitGaveUpEvent,
    "rexmit_nak": RexmitNakEvent,
    "rexmit_request": RexmitRequestEvent,
    "rexmit_served": RexmitServedEvent,
    "seq_reset": SeqResetEvent,
    "shutdown": ShutdownEvent,
    "standby": StandbyChangedEvent,
    "standby_ignored": StandbyIgnoredEvent,
    "warntime": WarntimeEvent,
    "check_failed": CheckFailedEvent,
    "check_ok": CheckRecoveredEvent,
    "resource_failed": ResourceFailedEvent,
}

