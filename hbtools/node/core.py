"""The sans-I/O Heartbeat node: datagrams and times in, datagrams and actions out.

`Node` never opens a socket, reads a clock or draws an unseeded random number. The runner (or a
test) calls :meth:`Node.start`, :meth:`Node.receive`, :meth:`Node.tick` at
:meth:`Node.next_timer`, and reports what it did through :meth:`Node.ping_reply` and
:meth:`Node.fence_result`; every call returns an ordered list of outputs to carry out in that
order (a `ReleaseResource` before the ``shutdone`` that follows it, for example).

What goes on the wire copies Heartbeat 3.0.6 (shared/PROTOCOL-NOTES.md, section 1, and the
captures in captures/hb-*): field order per message type, hex seq/hg/ts/dt, decimal ttl, both
signatures, ``init`` → ``up`` → ``active``, ``dt`` = deadtime + 2 s during the first deadtime,
``starting`` and ``resource`` at activation, ``resource info=shutdown`` then ``shutdone`` on a
clean stop. Resource ownership follows Heartbeat v1's 2-node ``haresources`` model.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hbtools import heartbeat
from hbtools.detectors import wire as detector_wire
from hbtools.detectors.adapter import Outgoing, make_watch
from hbtools.escape import shown  # the one wire-text escape (runner imports it from here)
from hbtools.heartbeat import Message
from hbtools.node.config import ClusterConfig, ResourceGroup
from hbtools.node.events import (  # noqa: F401 - re-exported: callers import Event from here
    CheckFailedEvent,
    CheckRecoveredEvent,
    DeadEvent,
    DroppedEvent,
    DroppedSummaryEvent,
    Event,
    FencedEvent,
    FenceFailedEvent,
    FenceStartEvent,
    LateHeartbeatEvent,
    LocalStatusEvent,
    PartitionHealedEvent,
    PeerPingCountEvent,
    PeerResourcesEvent,
    PeerStatusEvent,
    PingCountEvent,
    ResourceFailedEvent,
    ResourcePhaseEvent,
    ResourceReleasedEvent,
    ResourceTakenEvent,
    RestartEvent,
    RestartingEvent,
    RexmitGaveUpEvent,
    RexmitNakEvent,
    RexmitRequestEvent,
    RexmitServedEvent,
    SeqResetEvent,
    ShutdownEvent,
    StandbyChangedEvent,
    StandbyIgnoredEvent,
    WarntimeEvent,
)
from hbtools.node.placement import PeerView, holds_group, ping_preferred, should_hold
from hbtools.node.service import ServiceWatch, may_accept, should_offer
from hbtools.node.state import (
    ALIVE,
    FENCE_TRANSITIONS,
    LOCAL_TRANSITIONS,
    PEER_TRANSITIONS,
    RESOURCE_TRANSITIONS,
    STANDBY_MESSAGES,
    STANDBY_TRANSITIONS,
    FenceEvent,
    FenceState,
    LocalEvent,
    LocalStatus,
    MessageKind,
    PeerEvent,
    PeerStatus,
    ResourceEvent,
    ResourcePhase,
    Standby,
    StandbyEvent,
    dispatch,
    heard,
    transition,
)
from hbtools.node.stream import ACK_MSG_DIV, PeerStream, Seen

__all__ = [
    "Event",
    "Fence",
    "Node",
    "Output",
    "ReleaseResource",
    "Restart",
    "Send",
    "SendPing",
    "TakeResource",
]

HISTORY_SIZE = 500  # messages kept for retransmission (Heartbeat's MAXMSGHIST)
STANDBY_INIT_TIMEOUT = 10.0  # 3.0.6 waits 10 s for the peer to agree (STANDBY_INIT_TO_MS)
STANDBY_RSC_TIMEOUT = 3600.0  # then up to an hour for the resources to move (HB_STANDBY_RSC_TO_MS)
PARTITION_RESTART_DELAY = 2.0  # 3.0.6 restarts 2 s after "returning after partition"
STARTUP_EXTRA_DT_MS = 2000  # dt carries deadtime + 2 s while the node starts (seen on the wire)
PROTOCOL_VERSION = "1"


# ----------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Send:
    """A datagram for every medium (and every ucast peer)."""

    data: bytes
    message_type: str


@dataclass(frozen=True)
class TakeResource:
    """Add the group's addresses and announce them with gratuitous ARP."""

    group: ResourceGroup


@dataclass(frozen=True)
class ReleaseResource:
    """Remove the group's addresses."""

    group: ResourceGroup


@dataclass(frozen=True)
class Fence:
    """Run the fence command for ``node``; report with `Node.fence_result`."""

    node: str


@dataclass(frozen=True)
class SendPing:
    """One ICMP echo to a ping node; report replies with `Node.ping_reply`."""

    address: str


@dataclass(frozen=True)
class Restart:
    """Start again as a new incarnation: persist generation + 1 and run a fresh `Node`.

    Comes last, after the outputs of a clean stop (resources released, ``shutdone``); 3.0.6
    restarts itself this way when a node it declared dead turns out to be alive (a healed
    partition), so that at most one side keeps the resources.
    """

    reason: str


Output = Send | TakeResource | ReleaseResource | Fence | SendPing | Event | Restart


# ----------------------------------------------------------------------------- drops and wire text


DROP_WINDOW = 10.0  # seconds summarised by one "N datagrams dropped" line
DROP_SOURCES = 64  # distinct (reason, address) pairs reported per window; the rest are summed
MAX_COUNTERS = 128  # distinct counter names (some carry a wire message type)
QUARANTINE_AFTER = 200  # bad datagrams from one address in a window before it is ignored unread

_DROP_LABELS = {
    "undecodable": "undecodable", "auth": "bad auth", "bad_compression": "bad compression",
    "unknown_node": "unknown node", "bad_field": "bad field", "old_generation": "old generation",
    "quarantined": f"an address that sent over {QUARANTINE_AFTER} bad ones (not read)",
}


@dataclass
class DropLog:
    """Rate-limited reports of dropped datagrams, aggregated per reason and source address.

    The first drop of a (reason, address) pair in a window is reported in full; the others are
    counted and summarised when the window closes ("N datagrams dropped for bad auth from X in
    the last 10 s"). Memory is bounded by DROP_SOURCES pairs; beyond that, drops are summed per
    reason under "other addresses". Pure: the node calls `note` and `flush` with its ``now``.
    """

    window_end: float | None = None
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    overflow: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)  # drops per address this window
    good: set[str] = field(default_factory=set)  # addresses that sent an accepted message

    @property
    def due(self) -> float | None:
        return self.window_end

    def quarantined(self, source: str) -> bool:
        """True for an address that sent QUARANTINE_AFTER bad datagrams and nothing accepted in
        this window: its datagrams are dropped before decoding, so a flood from one address
        costs a dict lookup each, and the socket queue keeps room for the real peers."""
        return self.by_source.get(source, 0) >= QUARANTINE_AFTER and source not in self.good

    def accepted(self, source: str) -> None:
        if source not in self.good and len(self.good) < DROP_SOURCES:
            self.good.add(source)

    def note(self, now: float, reason: str, source: str) -> bool:
        """Record one drop; True if it should be reported in full."""
        if self.window_end is None:
            self.window_end = now + DROP_WINDOW
        if source in self.by_source or len(self.by_source) < DROP_SOURCES:
            self.by_source[source] = self.by_source.get(source, 0) + 1
        key = (reason, source)
        if key in self.counts:
            self.counts[key] += 1
            return False
        if len(self.counts) >= DROP_SOURCES:
            self.overflow[reason] = self.overflow.get(reason, 0) + 1
            return False
        self.counts[key] = 0
        return True

    def flush(self, now: float) -> list[Event]:
        """Summary events for a window that has closed (nothing before its end)."""
        if self.window_end is None or now < self.window_end:
            return []
        out: list[Event] = [DroppedSummaryEvent(now, f"{n} datagrams dropped for {_DROP_LABELS.get(r, r)} "
                     f"from {src} in the last {DROP_WINDOW:g} s", {"reason": r, "source": src, "count": n})
               for (r, src), n in self.counts.items() if n]
        out.extend(DroppedSummaryEvent(now, f"{n} datagrams dropped for {_DROP_LABELS.get(r, r)} "
                         f"from other addresses in the last {DROP_WINDOW:g} s",
                         {"reason": r, "source": "other", "count": n}) for r, n in self.overflow.items())
        self.window_end = None
        self.counts.clear()
        self.overflow.clear()
        self.by_source.clear()
        self.good.clear()
        return out


# ----------------------------------------------------------------------------- peers


@dataclass
class Peer:
    """What this node knows about one other configured node."""

    name: str
    status: PeerStatus = PeerStatus.UNKNOWN
    uuid: bytes | None = None
    generation: int | None = None
    deadtime_ms: int | None = None  # from its own dt field
    last_heard: float | None = None  # last status message (the heartbeat)
    late_warned: bool = False
    stream: PeerStream = field(default_factory=PeerStream)  # sequence tracking of its stream
    # resources
    rsc_hold: str | None = None  # None: it has not told us since it (or we) started
    stable: bool = False  # other_is_stable: its last resource message said isstable=1
    shutting_down: bool = False
    ping_count: int | None = None
    fence: FenceState = FenceState.NOT_NEEDED
    lost: bool = False  # declared dead by deadtime (a partition can heal), not by shutdone


# ----------------------------------------------------------------------------- the node


class Node:
    """One Heartbeat node.

    ``uuid`` (16 bytes) and ``generation`` come from the runner's persisted state;
    ``wall_offset`` turns the monotonic ``now`` into epoch seconds for the ``ts`` field;
    ``rng`` makes retransmission delays reproducible in tests; ``loadavg`` supplies ``ld``.
    """

    def __init__(
        self,
        config: ClusterConfig,
        name: str,
        *,
        uuid: bytes,
        generation: int,
        wall_offset: float = 0.0,
        rng: random.Random | None = None,
        loadavg: Callable[[], str] | None = None,
        fencing: bool = False,
    ) -> None:
        ha = config.ha
        if name not in ha.nodes:
            raise ValueError(f"node name {name!r} is not a 'node' in ha.cf ({' '.join(ha.nodes)})")
        if len(uuid) != 16:
            raise ValueError("uuid must be 16 bytes")
        self.config = config
        self.name = name
        self.uuid = uuid
        self.generation = generation
        self.wall_offset = wall_offset
        self.rng = rng or random.Random(0)
        self.loadavg = loadavg or (lambda: "0.00 0.00 0.00 1/1 1")
        self.fencing = fencing
        self.keepalive = ha.keepalive_ms / 1000
        self.deadtime_ms = ha.deadtime_ms
        self.warntime = ha.effective_warntime_ms / 1000
        self.initdead = ha.effective_initdead_ms / 1000
        self.inline_auth = ha.msgfmt == "classic"
        self.ttl = str(len(ha.nodes) + 1)
        self.peers: dict[str, Peer] = {n: Peer(n) for n in ha.nodes if n != name}
        # 3.0.6 draws one ack trigger per node, its own stream included (it acks itself too).
        self.own_ack_trigger = self.rng.randrange(ACK_MSG_DIV)
        for peer in self.peers.values():
            peer.stream.ack_trigger = self.rng.randrange(ACK_MSG_DIV)
        self._own_acks: list[tuple[Send, Send]] = []
        self.reqnodes_sent = False
        self.standby = Standby.NOT
        self.standby_rsc = "all"  # the set being handed over, in the words of the node that asked
        self.standby_deadline: float | None = None
        self.needs_failback = False  # rsc_needs_failback: we took groups from a dead peer
        self.groups = list(config.groups)
        self.held: set[int] = set()
        self.status = LocalStatus.INIT
        self.phase = ResourcePhase.WAITING
        self.seq = 0
        self.history: OrderedDict[int, bytes] = OrderedDict()
        self.started_at: float | None = None
        self.next_keepalive: float | None = None
        self.startup_dt_until: float | None = None
        self.initdead_at: float | None = None
        self.ping_last: dict[str, float | None] = {a: None for a in ha.ping_nodes}
        self.ping_count: int | None = None
        self.next_ping: float | None = None
        self.ping_ready_at: float | None = None
        self.counters: dict[str, int] = {}
        self.drops = DropLog()
        self.restart_at: float | None = None  # a healed partition: give up and restart then
        # service checks (issue 17): per group with a `check`, and groups whose start failed here
        self.watches: dict[int, ServiceWatch] = {
            i: ServiceWatch(g.check.failures) for i, g in enumerate(self.groups) if g.check}
        self.failed_start: set[int] = set()
        self.handed_over: set[int] = set()  # given to the peer for a failure: not wanted back yet
        self.service_offer: int | None = None  # the group our pending hand-over is about
        self.offer_not_before = 0.0
        # The ha.cf `detector` (None: Heartbeat's fixed deadtime only). Its verdict is ORed with
        # the fixed rule below, which stays the upper bound; hbtools/detectors/adapter.py.
        self.detector = ha.detector.kind
        self.watch = make_watch(ha.detector, name, ha.nodes, self.keepalive, ha.deadtime_ms / 1000)
        self._now = 0.0  # the latest `now` the node was given (for next_timer, which takes none)

    # ------------------------------------------------------------------ public API

    def start(self, now: float) -> list[Output]:
        """First status messages: ``init`` then ``up`` twice, as 3.0.6 sends them."""
        out: list[Output] = []
        self._now = now
        self.started_at = now
        self.startup_dt_until = now + self.deadtime_ms / 1000
        self.initdead_at = now + self.initdead
        self.next_keepalive = now + self.keepalive
        out.append(self._event(now, LocalStatusEvent, f"local status now {self.status.value}",
                               status=self.status.value, generation=self.generation))
        out.append(self._status_message(now))
        self._set_local(LocalEvent.STARTED, now, out)
        out.append(self._status_message(now))
        out.append(self._status_message(now))
        if self.ping_last:
            self.next_ping = now
            self.ping_ready_at = now + 2 * self.keepalive
        if not self.peers:
            self._set_local(LocalEvent.ALL_PEERS_HEARD, now, out)
        if self.watch is not None:
            self._detector_sends(now, self.watch.start(now), out)
        out.extend(self.tick(now))
        return self._finish(out)

    def next_timer(self) -> float | None:
        """The earliest time `tick` has something to do (None: nothing, e.g. after shutdown)."""
        if self.status is LocalStatus.DEAD or self.started_at is None:
            return None
        # Every pending deadline of the node itself; None is "nothing pending".
        times = [t for t in (self.next_keepalive, self.next_ping, self.startup_dt_until,
                             self.initdead_at, self.ping_ready_at, self.standby_deadline,
                             self.drops.due, self.restart_at) if t is not None]
        for peer in self.peers.values():
            if peer.status in ALIVE and peer.last_heard is not None:
                times.append(peer.last_heard + self._peer_deadtime(peer))
                if not peer.late_warned:
                    times.append(peer.last_heard + self.warntime)
            due = peer.stream.next_due()
            if due is not None:
                times.append(due)
        if self.watch is not None:
            due = self.watch.next_timer(self._now)
            if due is not None:
                times.append(due)
        return min(times) if times else None

    def tick(self, now: float) -> list[Output]:
        """Do everything that is due at ``now``: heartbeats, deaths, retransmission requests."""
        out: list[Output] = []
        if self.status is LocalStatus.DEAD or self.started_at is None:
            return out
        self._now = max(self._now, now)
        if self.startup_dt_until is not None and now >= self.startup_dt_until:
            # Heartbeat announces its real deadtime with an extra status at this point.
            self.startup_dt_until = None
            out.append(self._status_message(now))
        if self.next_keepalive is not None and now >= self.next_keepalive:
            out.append(self._status_message(now))
            # Keep the cadence; after a long stall, restart it from now instead of bursting.
            self.next_keepalive += self.keepalive
            if self.next_keepalive <= now:
                self.next_keepalive = now + self.keepalive
        if self.watch is not None:
            self._detector_sends(now, self.watch.tick(now), out)
        for peer in self.peers.values():
            self._check_peer_timers(peer, now, out)
        if self.initdead_at is not None and now >= self.initdead_at:
            self.initdead_at = None
            self._initdead_expired(now, out)
        if self.standby_deadline is not None and now >= self.standby_deadline:
            self._abandon_standby(now, out, "timed out")
        self._ping_tick(now, out)
        self._plan(now, out)
        out.extend(self.drops.flush(now))
        if self.restart_at is not None and now >= self.restart_at:
            out = self._finish(out)
            out.extend(self.shutdown(now))
            out.append(self._event(now, RestartingEvent, "Heartbeat restart triggered (healed partition)",
                                   generation=self.generation))
            out.append(Restart("healed partition"))
            return out
        return self._finish(out)

    def receive(self, data: bytes, addr: tuple[str, int] | None, now: float) -> list[Output]:
        """Handle one datagram from ``addr``; anything not authentic is dropped and logged.

        Drops are reported through `DropLog`: the first of each kind from each address in full,
        then one summary line per 10 s, so a flood cannot turn into a flood of log lines.
        """
        out: list[Output] = []
        if self.status is LocalStatus.DEAD or self.started_at is None:
            return out
        self._now = max(self._now, now)
        host = shown(addr[0]) if addr else "?"
        if self.drops.quarantined(host):
            self._drop(now, out, "quarantined", host, f"ignoring datagrams from {host} unread until the "
                       f"window ends: over {QUARANTINE_AFTER} bad ones and nothing valid from it")
            return out
        where = f"{host}:{addr[1]}" if addr else "?"
        try:
            msg = heartbeat.decode(data)
        except heartbeat.DecodeError as err:
            self._drop(now, out, "undecodable", host, f"undecodable datagram from {where}: "
                       f"{shown(err.problem)}", addr=where)
            return out
        try:
            authentic = self._authentic(msg, data)
        except heartbeat.DecodeError:
            authentic = False  # a signature layout no real node could check
        if not authentic:
            self._drop(now, out, "auth", host, f"authentication failed for a message from "
                       f"{shown(msg.src)} at {where}", src=msg.src, addr=where, type=msg.type)
            return out
        if "_compressed_payload" in msg:
            try:
                inner = heartbeat.decompress(msg)
            except heartbeat.DecodeError as err:
                inner = None
                problem = err.problem
            else:
                problem = "not a compressed message"
            if inner is None:
                self._drop(now, out, "bad_compression", host, f"bad compressed message from "
                           f"{shown(msg.src)} at {where}: {shown(problem)}", src=msg.src, addr=where)
                return out
            msg = inner
        src = msg.src
        if src == self.name:
            self._count("own")  # our own broadcast or multicast loop
            return out
        peer = self.peers.get(src or "")
        if peer is None:
            self._drop(now, out, "unknown_node", host, f"message from unknown node {shown(src)} "
                       f"at {where}", src=src, addr=where)
            return out
        try:
            self._accept(peer, msg, now, where, out)
        except heartbeat.DecodeError as err:
            self._drop(now, out, "bad_field", host, f"bad field from {src} at {where}: "
                       f"{shown(err.problem)}", src=src, addr=where)
        return self._finish(out)

    def ping_reply(self, address: str, now: float) -> list[Output]:
        """An ICMP echo reply came back from a ping node."""
        out: list[Output] = []
        if address in self.ping_last:
            self.ping_last[address] = now
            self._ping_tick(now, out)
            self._plan(now, out)
        return self._finish(out)

    def fence_result(self, node: str, ok: bool, now: float, detail: str = "") -> list[Output]:
        """The fence command for ``node`` finished; only success lets resources move."""
        out: list[Output] = []
        peer = self.peers.get(node)
        if peer is None or peer.fence is not FenceState.PENDING:
            return out
        if ok:
            peer.fence = transition(FENCE_TRANSITIONS, peer.fence, FenceEvent.SUCCEEDED)
            out.append(self._event(now, FencedEvent, f"node {node}: fenced", node=node, ok=True,
                                   detail=detail))
        else:
            peer.fence = transition(FENCE_TRANSITIONS, peer.fence, FenceEvent.FAILED)
            out.append(self._event(now, FenceFailedEvent,
                                   f"node {node}: fence FAILED ({detail or 'no detail'}); "
                                   "not taking over its resources", node=node, ok=False, detail=detail))
        self._plan(now, out)
        return self._finish(out)

    def check_result(self, index: int, ok: bool, reason: str, now: float) -> list[Output]:
        """The runner ran group ``index``'s check: count it, and move the group if it failed."""
        out: list[Output] = []
        watch = self.watches.get(index)
        if watch is None:
            return out
        was_failed = watch.failed
        group = self.groups[index].name
        if watch.record(ok, reason):
            out.append(self._event(now, CheckFailedEvent, f"check of {group} failed "
                                   f"{watch.in_a_row} times: {shown(reason, 200)}", group=group,
                                   reason=reason, held=index in self.held))
        elif ok and was_failed:
            out.append(self._event(now, CheckRecoveredEvent, f"check of {group} passes again",
                                   group=group))
        self._service_moves(now, out)
        return self._finish(out)

    def resource_failed(self, index: int, operation: str, detail: str, now: float) -> list[Output]:
        """A group's start or stop failed in the runner (after it stopped the group again, for a
        start). As Heartbeat: the group is given up here and handed to the peer."""
        out: list[Output] = []
        group = self.groups[index]
        out.append(self._event(now, ResourceFailedEvent, f"{operation} of {group.name} failed: "
                               f"{shown(detail, 200)}", group=group.name, operation=operation,
                               detail=detail))
        if operation == "start":
            self.failed_start.add(index)
            if index in self.held:
                self.held.discard(index)
                out.append(self._resource_message(now, None))
        self._service_moves(now, out)
        return self._finish(out)

    def shutdown(self, now: float) -> list[Output]:
        """Clean stop: ``resource info=shutdown``, release everything, then ``shutdone``."""
        out: list[Output] = []
        if self.status is LocalStatus.DEAD:
            return out
        out.append(self._event(now, ShutdownEvent, "shutting down: handing resources over"))
        if self.status is LocalStatus.ACTIVE:
            out.append(self._send(now, [("t", "resource"), ("rsc_hold", "none"), ("rtype", "full"),
                                        ("isstable", "0"), ("info", "shutdown")]))
        for index in sorted(self.held):
            out.append(ReleaseResource(self.groups[index]))
            out.append(self._event(now, ResourceReleasedEvent,
                                   f"released {self.groups[index].name} (shutdown)",
                                   group=self.groups[index].name, reason="shutdown"))
        self.held.clear()
        self.phase = transition(RESOURCE_TRANSITIONS, self.phase, ResourceEvent.SHUTDOWN)
        if self.standby is not Standby.NOT:
            self._standby_to(StandbyEvent.ABANDON, now, out, "standby hand-over abandoned: shutdown", None)
        if self.watch is not None:
            self._detector_sends(now, self.watch.stop(now), out)
        self._set_local(LocalEvent.SHUTDOWN, now, out)
        out.append(self._send(now, [("t", "shutdone"), ("st", "dead")]))
        return self._finish(out)

    def report(self, now: float) -> dict[str, Any]:
        """What ``hbtool daemon status`` shows (cl_status's questions): node states, who holds
        which group, and how long ago each peer's last heartbeat came. JSON-ready, pure."""
        peers = {}
        for peer in self.peers.values():
            ago = None if peer.last_heard is None else round((now - peer.last_heard) * 1000)
            peers[peer.name] = {"status": peer.status.value, "last_heartbeat_ms_ago": ago,
                                "generation": peer.generation, "rsc_hold": peer.rsc_hold}
            if self.watch is not None:
                peers[peer.name]["detector_level"] = round(self.watch.level(peer.name, now), 3)
        groups = []
        for i, group in enumerate(self.groups):
            holders = [self.name] if i in self.held else []
            for peer in self.peers.values():
                if peer.status in ALIVE and holds_group(peer.rsc_hold, peer.name, group.home):
                    holders.append(peer.name)
            entry: dict[str, Any] = {"group": group.name, "home": group.home, "held_by": holders}
            watch = self.watches.get(i)
            if watch is not None:  # this node's own check of the group's service
                entry["check"] = {"ok": watch.ok, "failures_in_a_row": watch.in_a_row,
                                  "reason": watch.reason}
            if i in self.failed_start:
                entry["start_failed_here"] = True
            groups.append(entry)
        return {"node": self.name, "status": self.status.value, "generation": self.generation,
                "detector": self.detector, "resources": self.phase.value, "rsc_hold": self.rsc_hold,
                "peers": peers, "groups": groups, "counters": dict(self.counters)}

    @property
    def rsc_hold(self) -> str:
        """What we hold in Heartbeat's words: none, local (our home groups), foreign, all."""
        local = any(self.groups[i].home == self.name for i in self.held)
        foreign = any(self.groups[i].home != self.name for i in self.held)
        return {(False, False): "none", (True, False): "local", (False, True): "foreign",
                (True, True): "all"}[(local, foreign)]

    # ------------------------------------------------------------------ receiving

    def _authentic(self, msg: Message, data: bytes) -> bool:
        """As a real node checks: the trailer of a netstring datagram, ``auth=`` of a classic one."""
        return self.config.keys.accepts(msg, data)

    def _accept(self, peer: Peer, msg: Message, now: float, where: str, out: list[Output]) -> None:
        generation = msg.generation
        known = peer.generation
        if generation is not None:
            if peer.generation is not None and generation < peer.generation:
                self._count("replay")
                self._drop(now, out, "old_generation", where.rsplit(":", 1)[0],
                           f"node {peer.name}: generation {generation} older than "
                           f"{peer.generation} (replay?) from {where}", src=peer.name, addr=where,
                           generation=generation, known=peer.generation)
                return
            if peer.generation is not None and generation > peer.generation:
                out.append(self._event(now, RestartEvent, f"node {peer.name} restarted "
                                       f"(generation {peer.generation} -> {generation})",
                                       node=peer.name, generation=generation))
                peer.stream.reset()
                peer.rsc_hold = None
                peer.stable = False
                peer.ping_count = None
                peer.shutting_down = False
                if self.watch is not None:
                    self.watch.forget(peer.name)  # its old intervals and rounds: another life
                self._reannounce(peer, now, out)
            peer.generation = generation
        self.drops.accepted(where.rsplit(":", 1)[0])  # authentic, known, not a replay
        # 3.0.6 sees a healed partition in a new status message from a node it declared dead
        # (deadtime, not shutdone: a cleanly stopped node is not marked dead there) that did
        # not restart: same generation.
        healed = (msg.type == "status" and peer.status is PeerStatus.DEAD and peer.lost
                  and generation is not None and generation == known and generation > 0
                  and self.restart_at is None)
        raw_uuid = msg.get("srcuuid")
        if isinstance(raw_uuid, bytes) and len(raw_uuid) == 16:
            peer.uuid = raw_uuid
        mtype = msg.type or ""
        seq = msg.seq
        if seq is not None:
            if not self._track_seq(peer, seq, now, out):
                self._count("duplicate")
                return
        if healed:
            self._partition_healed(peer, now, out)
        kind = dispatch(mtype)
        if kind is MessageKind.STATUS:
            self._on_status(peer, msg, now, out)
        elif kind is MessageKind.REXMIT:
            self._on_rexmit(peer, msg, now, out)
        elif kind is MessageKind.NAK:
            self._on_nak(peer, msg, now, out)
        elif kind is MessageKind.ACK:
            self._count("ack")
        elif kind is MessageKind.STARTING:
            # It (re)starts resource negotiation: tell it what we hold, and whether we are
            # settled (3.0.6: isstable says whether our own resource state is stable).
            peer.rsc_hold = None
            peer.stable = False
            if self.status is LocalStatus.ACTIVE:
                out.append(self._resource_message(now, None, stable=self.phase is ResourcePhase.STABLE))
                if self.ping_count is not None:
                    out.append(self._ping_count_message(now))
        elif kind is MessageKind.RESOURCE:
            self._on_resource(peer, msg, now, out)
        elif kind is MessageKind.SHUTDONE:
            self._peer_event(peer, PeerEvent.SHUTDONE, now, out, clean=True)
        elif kind is MessageKind.ASK_RESOURCES:
            self._on_ask_resources(peer, msg, now, out)
        elif kind is MessageKind.REQNODES:
            if msg.dest == self.name:
                out.append(self._send(now, [("dest", peer.name), ("t", "repnodes"),
                                            ("nodelist", " ".join(self.config.ha.nodes) + " "),
                                            ("delnodelist", " "), *self._destuuid(peer)]))
            else:
                self._count("ignored:reqnodes")
        elif kind is MessageKind.PING_COUNT:
            count = msg.get("num_ping")
            if isinstance(count, str) and count.isdigit():
                peer.ping_count = int(count)
                out.append(self._event(now, PeerPingCountEvent,
                                       f"node {peer.name} reaches {count} ping node(s)",
                                       node=peer.name, count=int(count)))
        elif mtype in detector_wire.KINDS_BY_TYPE:
            self._on_detector(peer, msg, mtype, now, out)
        else:
            self._count(f"ignored:{shown(mtype)[:40]}")
        self._plan(now, out)

    def _reannounce(self, peer: Peer, now: float, out: list[Output]) -> None:
        """A peer came back with a new generation: announce again what we hold.

        A peer restarts after a healed partition (it gave up what it had taken) or after a
        crash; either way it may have been the last to send gratuitous ARP for our groups,
        so clients on the segment still point at it although it no longer has the address.
        Taking a held group again is idempotent (``ip addr replace``) and sends a fresh round
        of gratuitous ARP, so clients come back to the one owner at once instead of after
        their ARP entries age out. (3.0.6 does not, and its clients stay misdirected.)
        """
        for i in sorted(self.held):
            out.append(TakeResource(self.groups[i]))
            out.append(self._event(now, ResourceTakenEvent,
                                   f"announced {self.groups[i].name} again ({peer.name} restarted)",
                                   group=self.groups[i].name, reason=f"{peer.name} restarted"))

    def _partition_healed(self, peer: Peer, now: float, out: list[Output]) -> None:
        """A node we declared dead speaks again without having restarted (same generation).

        Both sides may hold the same resources now. 3.0.6's answer (should_drop_message): log
        "Cluster node X returning after partition", send a status at once, and 2 s later give
        up every resource and restart with a new generation; the peer, which never lost us,
        keeps what it holds. That ends with one owner, which is what this copies.
        """
        out.append(self._event(now, PartitionHealedEvent, f"Cluster node {peer.name} returning after "
                               "partition; restarting to give up resources", node=peer.name))
        out.append(self._status_message(now))
        self.restart_at = now + PARTITION_RESTART_DELAY

    def _track_seq(self, peer: Peer, seq: int, now: float, out: list[Output]) -> bool:
        """Record ``seq`` in the peer's stream; False for a duplicate."""
        last = peer.stream.last_seq
        seen, ack = peer.stream.track(seq, now, self.rng)
        if seen is Seen.DUPLICATE:
            return False
        if seen is Seen.RESET:
            out.append(self._event(now, SeqResetEvent,
                                   f"node {peer.name}: seq jumped {last} -> {seq}; tracking reset",
                                   node=peer.name, seq=seq, last=last))
        if ack:
            out.append(self._ack(now, peer.name, seq, peer.uuid))
        return True

    def _ack(self, now: float, dest: str, seq: int, uuid: bytes | None) -> Send:
        return self._send(now, [("t", "NS_ackmsg"), ("dest", dest), ("ackseq", format(seq, "x")),
                                *([("destuuid", uuid)] if uuid is not None else [])], sequenced=False)

    def _on_status(self, peer: Peer, msg: Message, now: float, out: list[Output]) -> None:
        if peer.last_heard is not None and peer.status in ALIVE:
            interval = now - peer.last_heard
            if interval > self.warntime:
                out.append(self._event(now, LateHeartbeatEvent,
                                       f"Late heartbeat: Node {peer.name}: interval {interval * 1000:.0f} ms",
                                       node=peer.name, interval_ms=round(interval * 1000)))
        peer.last_heard = now
        peer.late_warned = False
        dt = msg.deadtime_ms
        if dt is not None and dt > 0:
            peer.deadtime_ms = dt
        event = heard(msg.status)
        if event is not None:
            self._peer_event(peer, event, now, out)
        if self.watch is not None and peer.status in ALIVE:
            self._detector_sends(now, self.watch.heard(peer.name, now, dt), out)
        if self.status is LocalStatus.UP and not self.reqnodes_sent:
            # 3.0.6 asks the first node it hears for the node list before it goes active.
            self.reqnodes_sent = True
            out.append(self._send(now, [("t", "reqnodes"), ("dest", peer.name), *self._destuuid(peer)]))
        if self.status is LocalStatus.UP and all(
            p.status is not PeerStatus.UNKNOWN for p in self.peers.values()
        ):
            self._set_local(LocalEvent.ALL_PEERS_HEARD, now, out)

    def _on_resource(self, peer: Peer, msg: Message, now: float, out: list[Output]) -> None:
        hold = msg.get("rsc_hold")
        info = msg.get("info")
        if info == "shutdown":
            peer.shutting_down = True
        if isinstance(hold, str) and hold in ("none", "local", "foreign", "all"):
            if hold != peer.rsc_hold:
                out.append(self._event(now, PeerResourcesEvent, f"node {peer.name} holds {hold} resources"
                                       + (f" ({info})" if isinstance(info, str) else ""),
                                       node=peer.name, rsc_hold=hold, info=info))
            peer.rsc_hold = hold
        stable = msg.get("isstable")
        if stable == "1" and not peer.stable:
            # "remote resource transition completed": 3.0.6 answers with what it holds.
            peer.stable = True
            if self.status is LocalStatus.ACTIVE:
                out.append(self._resource_message(now, None, stable=self.phase is ResourcePhase.STABLE))
        elif stable is not None and stable != "1":
            peer.stable = False

    def _on_rexmit(self, peer: Peer, msg: Message, now: float, out: list[Output]) -> None:
        if msg.dest not in (None, self.name):
            return
        first, last = msg.firstseq, msg.lastseq
        if first is None:
            return
        last = first if last is None else last
        for seq in range(first, min(last, first + HISTORY_SIZE - 1) + 1):
            copy = self.history.get(seq)
            if copy is not None:
                self._count("rexmit_served")
                out.append(Send(copy, "rexmit"))
                out.append(self._event(now, RexmitServedEvent, f"resent seq {seq} for {peer.name}",
                                       node=peer.name, seq=seq))
            else:
                self._count("nak")
                out.append(self._send(now, [("t", "NS_nak_rexmit"), ("firstseq", format(seq, "x")),
                                            ("info", "seqno not found"), ("dest", peer.name),
                                            *self._destuuid(peer)], sequenced=False))
                out.append(self._event(now, RexmitNakEvent, f"seq {seq} asked by {peer.name} is too old",
                                       node=peer.name, seq=seq))

    def _on_nak(self, peer: Peer, msg: Message, now: float, out: list[Output]) -> None:
        if msg.dest not in (None, self.name):
            return
        seq = msg.firstseq
        if seq is not None and peer.stream.give_up(seq):
            out.append(self._event(now, RexmitGaveUpEvent, f"node {peer.name} no longer has seq {seq}",
                                   node=peer.name, seq=seq, reason="nak"))

    def _on_detector(self, peer: Peer, msg: Message, mtype: str, now: float, out: list[Output]) -> None:
        """A failure detector's beat/reply/join/leave (hbtools.detectors.wire), addressed to us.

        Only a peer we have heard a status from takes part, and only while it is alive: a dead
        peer comes back by its status messages first (heal or restart), then joins again.
        """
        if self.watch is None or msg.dest != self.name or peer.status not in ALIVE:
            self._count(f"ignored:{mtype}")
            return
        self._count(f"detector:{mtype}")
        rnd = msg.get(detector_wire.ROUND_FIELD)
        kind = detector_wire.KINDS_BY_TYPE[mtype]
        sends = self.watch.message(peer.name, kind, detector_wire.parse_round(rnd if isinstance(rnd, str)
                                                                              else None), now)
        self._detector_sends(now, sends, out)

    def _detector_sends(self, now: float, sends: list[Outgoing], out: list[Output]) -> None:
        """The detector's messages as signed datagrams outside the sequenced stream (no seq)."""
        for dest, msg in sends:
            if dest in self.peers:  # the form tests/netns/test_detector_wire.py shows 3.0.6 ignores
                out.append(self._send(now, detector_wire.body_fields(msg, dest), sequenced=False))

    # ------------------------------------------------------------------ timers

    def _peer_deadtime(self, peer: Peer) -> float:
        """The peer's OWN deadtime (its ``dt``), as Heartbeat uses it; ours until it says."""
        return (peer.deadtime_ms or self.deadtime_ms) / 1000

    def _check_peer_timers(self, peer: Peer, now: float, out: list[Output]) -> None:
        if peer.status in ALIVE and peer.last_heard is not None:
            silent = now - peer.last_heard
            if silent >= self._peer_deadtime(peer):
                self._peer_event(peer, PeerEvent.DEADTIME_EXPIRED, now, out, by="fixed")
            elif self.watch is not None and self.watch.dead(peer.name, now):
                self._peer_event(peer, PeerEvent.DEADTIME_EXPIRED, now, out, by=self.detector)
            elif silent >= self.warntime and not peer.late_warned:
                peer.late_warned = True
                out.append(self._event(now, WarntimeEvent, f"node {peer.name}: no heartbeat for "
                                       f"{silent * 1000:.0f} ms (warntime)", node=peer.name,
                                       silent_ms=round(silent * 1000)))
        for seq, attempt in peer.stream.due(now):
            if attempt is None:
                out.append(self._event(now, RexmitGaveUpEvent, f"node {peer.name}: seq {seq} never came",
                                       node=peer.name, seq=seq, reason="tries"))
                continue
            self._count("rexmit_request")
            out.append(self._send(now, [("t", "NS_rexmit"), ("firstseq", str(seq)), ("lastseq", str(seq)),
                                        ("dest", peer.name), *self._destuuid(peer)], sequenced=False))
            out.append(self._event(now, RexmitRequestEvent, f"asked {peer.name} for seq {seq}",
                                   node=peer.name, seq=seq, attempt=attempt))

    def _initdead_expired(self, now: float, out: list[Output]) -> None:
        for peer in self.peers.values():
            if peer.status is PeerStatus.UNKNOWN:
                self._peer_event(peer, PeerEvent.INITDEAD_EXPIRED, now, out)
        if self.status is LocalStatus.UP:
            self._set_local(LocalEvent.INITDEAD_EXPIRED, now, out)
        if self.phase is ResourcePhase.WAITING:
            self._set_phase(ResourceEvent.INITDEAD_EXPIRED, now, out)

    def _ping_tick(self, now: float, out: list[Output]) -> None:
        if not self.ping_last:
            return
        if self.next_ping is not None and now >= self.next_ping:
            out.extend(SendPing(a) for a in self.ping_last)
            self.next_ping += self.keepalive
            if self.next_ping <= now:
                self.next_ping = now + self.keepalive
        if self.ping_ready_at is not None:
            if now < self.ping_ready_at:
                return
            self.ping_ready_at = None
        window = self.deadtime_ms / 1000
        count = sum(1 for t in self.ping_last.values() if t is not None and now - t < window)
        if count != self.ping_count:
            old, self.ping_count = self.ping_count, count
            out.append(self._event(now, PingCountEvent, f"{count} of {len(self.ping_last)} ping node(s) "
                                   "reachable", count=count, previous=old))
            if self.status is LocalStatus.ACTIVE:
                out.append(self._ping_count_message(now))

    # ------------------------------------------------------------------ state changes

    def _set_local(self, event: LocalEvent, now: float, out: list[Output]) -> None:
        old = self.status
        self.status = transition(LOCAL_TRANSITIONS, old, event)
        if self.status is old:
            return
        out.append(self._event(now, LocalStatusEvent, f"local status now {self.status.value} ({event.value})",
                               status=self.status.value, previous=old.value))
        if self.status is LocalStatus.ACTIVE:
            out.append(self._status_message(now))
            out.append(self._send(now, [("t", "starting")]))
            out.append(self._resource_message(now, None, stable=False))
            if self.ping_count is not None:
                out.append(self._ping_count_message(now))

    def _set_phase(self, event: ResourceEvent, now: float, out: list[Output]) -> None:
        old = self.phase
        self.phase = transition(RESOURCE_TRANSITIONS, old, event)
        if self.phase is not old:
            out.append(self._event(now, ResourcePhaseEvent, f"resources {self.phase.value} ({event.value})",
                                   phase=self.phase.value))

    def _peer_event(self, peer: Peer, event: PeerEvent, now: float, out: list[Output],
                    clean: bool = False, by: str | None = None) -> None:
        old = peer.status
        peer.status = transition(PEER_TRANSITIONS, old, event)
        if peer.status is old:
            return
        if self.watch is not None and PeerStatus.DEAD in (old, peer.status):
            self.watch.forget(peer.name)  # dead, or back from the dead: start afresh
        peer.lost = peer.status is PeerStatus.DEAD and event is PeerEvent.DEADTIME_EXPIRED
        if peer.status is PeerStatus.DEAD:
            silent = None if peer.last_heard is None else round((now - peer.last_heard) * 1000)
            how = "stopped cleanly" if clean else "is dead"
            extra = {} if by is None else {"detector": by}
            out.append(self._event(now, DeadEvent, f"node {peer.name}: {how}"
                                   + ("" if by in (None, "fixed") else f" ({by} detector)"),
                                   node=peer.name, reason=event.name.lower(), silent_ms=silent, **extra))
            peer.rsc_hold = None
            peer.shutting_down = False
            peer.ping_count = None
            peer.stream.missing.clear()
            peer.stable = True  # a dead node is not going anywhere (takeover_from_node)
            if self.standby is not Standby.NOT:
                self._abandon_standby(now, out, f"{peer.name} is dead")
            if self.fencing and not clean:
                peer.fence = transition(FENCE_TRANSITIONS, peer.fence, FenceEvent.DIED_UNCLEAN)
                out.append(self._event(now, FenceStartEvent, f"node {peer.name}: fencing", node=peer.name))
                out.append(Fence(peer.name))
            else:
                peer.fence = transition(FENCE_TRANSITIONS, peer.fence, FenceEvent.NO_FENCE_NEEDED)
        else:
            if old is PeerStatus.DEAD:
                peer.fence = transition(FENCE_TRANSITIONS, peer.fence, FenceEvent.BACK)
                peer.stable = False  # back: unsettled until its resource message says isstable=1
                if self.status is LocalStatus.ACTIVE:
                    # Back from the dead without a restart (a healed partition): it forgot what
                    # we hold, and both may hold the same group now. Tell it, so one gives up.
                    out.append(self._resource_message(now, None))
            out.append(self._event(now, PeerStatusEvent, f"node {peer.name}: status {peer.status.value}",
                                   node=peer.name, status=peer.status.value, previous=old.value))

    # ------------------------------------------------------------------ resources

    def _plan(self, now: float, out: list[Output]) -> None:
        """Take or release groups so that each is held by the node that should hold it."""
        if self.status is not LocalStatus.ACTIVE or not self.groups:
            return
        just_stable = False
        if self.phase is ResourcePhase.WAITING:
            if all(p.rsc_hold is not None or p.status not in ALIVE for p in self.peers.values()):
                self._set_phase(ResourceEvent.PEERS_KNOWN, now, out)
                just_stable = True
            else:
                return
        if self.phase is not ResourcePhase.STABLE:
            return
        if self.standby is not Standby.NOT:
            return  # a hand-over is under way: only its messages move resources now
        peer = next(iter(self.peers.values()), None)
        for i in list(self.handed_over):  # until the peer says it holds it, or it dies
            if (peer is None or peer.status not in ALIVE
                    or holds_group(peer.rsc_hold, peer.name, self.groups[i].home)):
                self.handed_over.discard(i)
        want = {i for i, g in enumerate(self.groups) if self._should_hold(i, g, peer)
                and i not in self.failed_start and i not in self.handed_over}
        release, take = sorted(self.held - want), sorted(want - self.held)
        if not release and not take:
            if just_stable:
                # 3.0.6 says "I am stable now" even when it takes nothing: a peer that holds
                # our home groups waits for exactly this before it gives them back.
                out.append(self._resource_message(now, None))
            self._auto_failback(peer, now, out)
            self._service_moves(now, out)
            return
        for i in release:
            self.held.discard(i)
            out.append(ReleaseResource(self.groups[i]))
            out.append(self._event(now, ResourceReleasedEvent, f"released {self.groups[i].name}",
                                   group=self.groups[i].name, reason=self._reason(peer)))
        for i in take:
            self.held.add(i)
            out.append(TakeResource(self.groups[i]))
            out.append(self._event(now, ResourceTakenEvent, f"took {self.groups[i].name}",
                                   group=self.groups[i].name, reason=self._reason(peer)))
        info = "mach_down" if peer is not None and peer.status is PeerStatus.DEAD else None
        if take and info is not None:
            self.needs_failback = True  # rsc_needs_failback: give them back when it returns
        out.append(self._resource_message(now, info))

    def _service_moves(self, now: float, out: list[Output]) -> None:
        """Offer the peer a group whose check failed here, or whose start failed here, with the
        standby hand-over (ask_resources info=me); the peer takes it only if it can serve it."""
        peer = next(iter(self.peers.values()), None)
        if (peer is None or self.status is not LocalStatus.ACTIVE or self.phase is not ResourcePhase.STABLE
                or self.standby is not Standby.NOT or now < self.offer_not_before):
            return
        ready = peer.status is PeerStatus.ACTIVE and peer.stable and not peer.shutting_down
        for i, group in enumerate(self.groups):
            holding = i in self.held
            failed_check = should_offer(holding, self.watches.get(i), ready)
            failed_start = (ready and i in self.failed_start and not holding
                            and not holds_group(peer.rsc_hold, peer.name, group.home))
            if not (failed_check or failed_start):
                continue
            why = "its check fails here" if failed_check else "its start failed here"
            self.service_offer = i
            self.standby_rsc = "local" if group.home == self.name else "foreign"
            self._standby_to(StandbyEvent.ASK, now, out, f"offering {peer.name} {group.name}: {why} "
                             "(ask_resources info=me)", now + STANDBY_INIT_TIMEOUT)
            out.append(self._ask_resources(now, "me"))
            return

    def _reason(self, peer: Peer | None) -> str:
        if peer is None:
            return "single node"
        if peer.status is PeerStatus.DEAD:
            return f"{peer.name} dead"
        if self._ping_preferred() is not None:
            return "ping nodes"
        return "auto_failback" if self.config.ha.auto_failback else "initial"

    def _peer_view(self, peer: Peer | None) -> PeerView | None:
        if peer is None:
            return None
        return PeerView(peer.name, peer.status in ALIVE, peer.status is PeerStatus.ACTIVE, peer.fence,
                        peer.shutting_down, peer.rsc_hold, peer.ping_count)

    def _ping_preferred(self) -> str | None:
        peer = next(iter(self.peers.values()), None)
        return ping_preferred(self.name, self.ping_count, self._peer_view(peer))

    def _should_hold(self, index: int, group: ResourceGroup, peer: Peer | None) -> bool:
        view = self._peer_view(peer)
        return should_hold(self.name, group.home, index in self.held, view,
                           ping_preferred(self.name, self.ping_count, view))

    # ------------------------------------------------------------------ standby (ask_resources)

    def _set_of(self, rsc: str, asker: str) -> list[int]:
        """The groups a resource-set word names, in the words of node ``asker`` (2-node model)."""
        if rsc == "all":
            return list(range(len(self.groups)))
        return [i for i, g in enumerate(self.groups) if (g.home == asker) == (rsc == "local")]

    def _standby_to(self, event: StandbyEvent, now: float, out: list[Output], text: str,
                    deadline: float | None) -> None:
        old = self.standby
        self.standby = transition(STANDBY_TRANSITIONS, old, event)
        self.standby_deadline = deadline
        out.append(self._event(now, StandbyChangedEvent, text, state=self.standby.value, previous=old.value,
                               rsc=self.standby_rsc))

    def _ask_resources(self, now: float, info: str) -> Send:
        return self._send(now, [("t", "ask_resources"), ("rsc_hold", self.standby_rsc), ("info", info)])

    def _auto_failback(self, peer: Peer | None, now: float, out: list[Output]) -> None:
        """PerformAutoFailback: offer a returning peer its home groups back (``info=me``).

        As 3.0.6: only after we took them from it while it was dead, only with auto_failback
        on, and only once both sides are stable; the peer answers ``info=other``.
        """
        if not self.needs_failback:
            return
        if not self.config.ha.auto_failback or not any(self.groups[i].home != self.name for i in self.held):
            self.needs_failback = False
            return
        if (peer is None or peer.status is not PeerStatus.ACTIVE or not peer.stable
                or peer.shutting_down or self.standby is not Standby.NOT):
            return  # "Auto failback delayed": tried again at the next decision
        self.needs_failback = False
        peer.stable = False  # it is about to pick them up
        self.standby_rsc = "foreign"
        self._standby_to(StandbyEvent.ASK, now, out, f"auto_failback: offering {peer.name} its "
                         "groups back (ask_resources info=me)", now + STANDBY_INIT_TIMEOUT)
        out.append(self._ask_resources(now, "me"))

    def _on_ask_resources(self, peer: Peer, msg: Message, now: float, out: list[Output]) -> None:
        """The three-message hand-over, from either side (3.0.6's ask_for_resources)."""
        info = msg.get("info")
        rsc = msg.get("rsc_hold")
        rsc = "all" if rsc is None else rsc
        if self.phase is ResourcePhase.STOPPED:
            return
        why = ""
        event = STANDBY_MESSAGES.get((self.standby, info)) if isinstance(info, str) else None
        if rsc not in ("none", "local", "foreign", "all") or not isinstance(info, str):
            why = "bad rsc_hold or info"
        elif event is StandbyEvent.ASKED:
            if not peer.stable:
                why = "other side is in flux"
            elif self.phase is not ResourcePhase.STABLE:
                why = "local resources in flux"
            elif refusal := self._refuse_groups(rsc, peer.name):
                why = refusal
            else:
                peer.stable = False
                self.standby_rsc = rsc
                self._standby_to(StandbyEvent.ASKED, now, out, f"{peer.name} gives us its {rsc} "
                                 "resources (ask_resources info=other)", now + STANDBY_RSC_TIMEOUT)
                out.append(self._ask_resources(now, "other"))
                return
        elif event is StandbyEvent.AGREED:
            self.standby_rsc = rsc
            offered = self._set_of(rsc, self.name)
            give = [i for i in offered if i in self.held]
            self.held.difference_update(give)
            reason = "auto_failback"
            if self.service_offer is not None:
                reason = "service failed here"
                self.failed_start.difference_update(offered)  # the peer has them now
                self.handed_over.update(offered)
            self.service_offer = None
            self._standby_to(StandbyEvent.AGREED, now, out, f"{peer.name} takes our {rsc} resources: "
                             "releasing", now + STANDBY_RSC_TIMEOUT)
            out.append(self._resource_message(now, "standby", stable=False))
            for i in give:
                out.append(ReleaseResource(self.groups[i]))
                out.append(self._event(now, ResourceReleasedEvent, f"released {self.groups[i].name}",
                                       group=self.groups[i].name, reason=reason))
            out.append(self._ask_resources(now, "done"))
            return
        elif event is StandbyEvent.PEER_DONE and self.standby is Standby.OTHER:
            self.standby_rsc = rsc
            take = [i for i in self._set_of(rsc, peer.name) if i not in self.held]
            self._standby_to(StandbyEvent.PEER_DONE, now, out, f"{peer.name} released its {rsc} "
                             "resources: taking them", None)
            for i in take:
                self.held.add(i)
                out.append(TakeResource(self.groups[i]))
                out.append(self._event(now, ResourceTakenEvent, f"took {self.groups[i].name}",
                                       group=self.groups[i].name, reason="auto_failback"))
            out.append(self._ask_resources(now, "done"))
            out.append(self._resource_message(now, None))
            return
        elif event is StandbyEvent.PEER_DONE:  # from DONE: the peer took what we released
            self._standby_to(StandbyEvent.PEER_DONE, now, out, f"{peer.name} completed the standby "
                             f"takeover of {rsc} resources", None)
            out.append(self._resource_message(now, None))
            return
        else:
            why = f"unexpected in state {self.standby.value}"
        self._count("standby_ignored")
        out.append(self._event(now, StandbyIgnoredEvent, f"ignored standby message {info!r} from "
                               f"{peer.name}: {why}", node=peer.name, info=info, rsc=rsc, reason=why))

    def _refuse_groups(self, rsc: str, asker: str) -> str:
        """Why we cannot take the groups ``asker`` offers (empty: we can): ldirectord's
        fallback only to a server whose check passes, and never back to a failed start."""
        for i in self._set_of(rsc, asker):
            ok, why = may_accept(self.watches.get(i), i in self.failed_start)
            if not ok:
                return f"cannot serve {self.groups[i].name}: {why}"
        return ""

    def _abandon_standby(self, now: float, out: list[Output], why: str) -> None:
        if self.service_offer is not None:
            self.service_offer = None
            self.offer_not_before = now + STANDBY_INIT_TIMEOUT  # ask again later, not at once
        elif self.standby is Standby.ME:
            self.needs_failback = True  # the offer was never taken up: make it again later
        self._standby_to(StandbyEvent.ABANDON, now, out, f"standby hand-over abandoned: {why}", None)

    # ------------------------------------------------------------------ sending

    def _finish(self, out: list[Output]) -> list[Output]:
        """Put each NS_ackmsg for our own stream right after the message it acks."""
        pending: list[tuple[Send, Send]] = []
        for sent, ack in self._own_acks:
            at = next((i for i, o in enumerate(out) if o is sent), None)
            if at is None:
                pending.append((sent, ack))
            else:
                out.insert(at + 1, ack)
        self._own_acks = pending
        return out

    def _destuuid(self, peer: Peer) -> list[tuple[str, Any]]:
        return [("destuuid", peer.uuid)] if peer.uuid is not None else []

    def _status_message(self, now: float) -> Send:
        dt = self.deadtime_ms + (STARTUP_EXTRA_DT_MS if self.startup_dt_until is not None else 0)
        return self._send(now, [("t", "status"), ("st", self.status.value), ("dt", format(dt, "x")),
                                ("protocol", PROTOCOL_VERSION)])

    def _resource_message(self, now: float, info: str | None, stable: bool = True) -> Send:
        fields: list[tuple[str, Any]] = [("t", "resource"), ("rsc_hold", self.rsc_hold), ("rtype", "full"),
                                         ("isstable", "1" if stable else "0")]
        if info:
            fields.append(("info", info))
        return self._send(now, fields)

    def _ping_count_message(self, now: float) -> Send:
        return self._send(now, [("t", "num_ping_nodes"), ("num_ping", str(self.ping_count or 0))])

    def _send(self, now: float, head: list[tuple[str, Any]], *, sequenced: bool = True) -> Send:
        """Append the common tail in 3.0.6's order and sign; sequenced messages enter the history."""
        msg = Message.build(head)
        msg.add("src", self.name)
        msg.add("srcuuid", self.uuid)
        if sequenced:
            self.seq += 1
            msg.add("seq", format(self.seq, "x"))
        msg.add("hg", format(self.generation, "x"))
        msg.add("ts", format(int(now + self.wall_offset), "x"))
        if sequenced:
            msg.add("ld", self.loadavg())
        msg.add("ttl", self.ttl)
        data = heartbeat.encode(msg, self.config.keys, inline_auth=self.inline_auth)
        sent = Send(data, msg.type or "")
        if sequenced:
            self.history[self.seq] = data
            while len(self.history) > HISTORY_SIZE:
                self.history.popitem(last=False)
            if self.seq % ACK_MSG_DIV == self.own_ack_trigger:
                # 3.0.6 hears its own broadcasts and acks its own stream like anyone's.
                self._own_acks.append((sent, self._ack(now, self.name, self.seq, self.uuid)))
        return sent

    def _event(self, now: float, cls: type[Event], text: str, **data: Any) -> Event:
        return cls(now, text, data)  # type: ignore[call-arg]  # kind is fixed per class

    def _count(self, what: str) -> None:
        """Count by name; names made of wire text are bounded (MAX_COUNTERS, then ``other``)."""
        if what not in self.counters and len(self.counters) >= MAX_COUNTERS:
            what = "other"
        self.counters[what] = self.counters.get(what, 0) + 1

    def _drop(self, now: float, out: list[Output], reason: str, source: str, text: str,
              **data: Any) -> None:
        """Count a dropped datagram and report it through the rate-limited `DropLog`."""
        self._count(reason)
        if self.drops.note(now, reason, source):
            out.append(self._event(now, DroppedEvent, text, reason=reason, **data))
