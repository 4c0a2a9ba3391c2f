"""``--stats``: what a capture says about each node and each ring.

The numbers are the ones an operator asks after an incident: how regular were the
heartbeats, which were late (over warntime) or would have been declared dead (over
deadtime), which sequence numbers went missing, who asked for retransmissions, who
restarted (generation change), whose signatures failed; for Corosync, how fast the
token went round, which rings existed and who was in them, how many retransmit requests
the token carried.

Memory must stay flat however long the capture, so intervals go into fixed-resolution
histograms (exact to 0.1 ms, bounded by the spread of values, not their number) and
event lists keep their first entries and count the rest.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hbtools.dissectors.corosync_stats import CorosyncStats
from hbtools.dissectors.decoders import ARP
from hbtools.dissectors.detect import HEARTBEAT, KNET, TOTEM
from hbtools.dissectors.knet_links import LinkView
from hbtools.dissectors.records import AUTH_BAD, Record

from hbtools.failover import Death, Garp, failover

__all__ = ["Histogram", "Stats"]

#: Event lists keep this many entries; later ones are only counted.
MAX_EVENTS = 100
#: Gratuitous ARP bursts remembered for failovers, and the pause that starts a new burst.
MAX_GARPS = 10_000
GARP_BURST_S = 5.0
_RESOLUTION = 1e4  # histogram buckets per second: 0.1 ms


class Histogram:
    """Distribution of intervals in seconds, in bounded memory."""

    __slots__ = ("buckets", "count", "max", "min")

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.min = float("inf")
        self.max = float("-inf")

    def add(self, value: float) -> None:
        self.buckets[round(value * _RESOLUTION)] += 1
        self.count += 1
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def quantile(self, q: float) -> float | None:
        """Nearest-rank quantile, at the histogram's 0.1 ms resolution."""
        if not self.count:
            return None
        rank = max(1, -(-int(q * self.count * 1_000_000) // 1_000_000))
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return bucket / _RESOLUTION
        return self.max

    def summary_ms(self) -> dict[str, Any]:
        """`summary` in milliseconds, the unit the text tables print (one unit per number)."""
        out = self.summary()
        for key in ("min", "median", "p99", "max"):
            if out[key] is not None:
                out[key] = round(out[key] * 1000, 3)
        return out

    def summary(self) -> dict[str, Any]:
        if not self.count:
            return {"count": 0, "min": None, "median": None, "p99": None, "max": None}
        return {
            "count": self.count,
            "min": round(self.min, 6),
            "median": self.quantile(0.5),
            "p99": self.quantile(0.99),
            "max": round(self.max, 6),
        }


@dataclass
class Events:
    """The first MAX_EVENTS events of a kind, and how many there were in all."""

    items: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0

    def add(self, **event: Any) -> None:
        self.total += 1
        if len(self.items) < MAX_EVENTS:
            self.items.append(event)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.total, "events": self.items}
        if self.total > len(self.items):
            out["not_listed"] = self.total - len(self.items)
        return out


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


#: How many missing seqs per node are remembered for late arrivals (Heartbeat itself gives
#: up on gaps over 250).
MAX_OUTSTANDING_SEQS = 256


@dataclass
class HeartbeatNode:
    name: str
    first: float | None = None
    last: float | None = None
    messages: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    addresses: set[str] = field(default_factory=set)
    intervals: Histogram = field(default_factory=Histogram)
    late: Events = field(default_factory=Events)
    over_deadtime: Events = field(default_factory=Events)
    seq_gaps: Events = field(default_factory=Events)
    missing_seqs: int = 0
    #: Seqs that arrived after a higher one (reordered on the wire, or retransmitted
    #: after an NS_rexmit): they fill a gap, they are not repeats.
    late_seqs: int = 0
    repeated_seqs: int = 0
    rexmit_requests: Events = field(default_factory=Events)
    naks: Events = field(default_factory=Events)
    generations: Events = field(default_factory=Events)
    status_changes: Events = field(default_factory=Events)
    auth_failures: int = 0
    errors: int = 0
    deadtime_ms: int | None = None
    # running state
    _generation: int | None = None
    _max_seq: int | None = None
    _outstanding: set[int] = field(default_factory=set)
    _last_status: float | None = None
    _status: str | None = None

    def add(self, record: Record, warntime_ms: int | None) -> None:
        now = record.time
        if self.first is None:
            self.first = now
        self.last = now
        self.messages += 1
        if len(self.addresses) < 16:
            self.addresses.add(record.src)
        if record.auth == AUTH_BAD:
            self.auth_failures += 1
        if record.error is not None:
            self.errors += 1
        fields = record.get_fields()
        kind = record.type or "?"
        self.by_type[kind] += 1

        generation = _int(fields.get("hg"))
        if generation is not None:
            if self._generation is not None and generation != self._generation:
                self.generations.add(time=now, old=self._generation, new=generation)
                self._max_seq = None  # a restarted daemon counts from 1 again
                self._outstanding.clear()
            self._generation = generation

        fresh = True
        seq = _int(fields.get("seq"))
        if seq is not None:
            if self._max_seq is None or seq == self._max_seq + 1:
                self._max_seq = seq
            elif seq > self._max_seq + 1:
                missing = seq - self._max_seq - 1
                self.seq_gaps.add(time=now, after=self._max_seq, next=seq, missing=missing)
                self.missing_seqs += missing
                # Remember a bounded window of what is missing, so a late arrival can fill it.
                for lost in range(max(self._max_seq + 1, seq - MAX_OUTSTANDING_SEQS), seq):
                    self._outstanding.add(lost)
                while len(self._outstanding) > MAX_OUTSTANDING_SEQS:
                    self._outstanding.remove(min(self._outstanding))
                self._max_seq = seq
            elif seq in self._outstanding:
                # Late, not repeated: the gap is filled. Not fresh either, so an old
                # status does not count as a heartbeat interval.
                self._outstanding.discard(seq)
                self.missing_seqs -= 1
                self.late_seqs += 1
                fresh = False
            else:
                fresh = False  # a retransmission, or the same datagram on another path
                self.repeated_seqs += 1

        if kind == "status" and fresh:
            if self._last_status is not None:
                interval = now - self._last_status
                self.intervals.add(interval)
                deadtime = self.deadtime_ms
                warn = warntime_ms if warntime_ms is not None else (
                    deadtime // 2 if deadtime is not None else None)
                if warn is not None and interval * 1000 > warn:
                    self.late.add(time=now, interval_ms=round(interval * 1000, 1),
                                  warntime_ms=warn)
                if deadtime is not None and interval * 1000 > deadtime:
                    self.over_deadtime.add(time=now, since=self._last_status,
                                           interval_ms=round(interval * 1000, 1),
                                           deadtime_ms=deadtime)
            self._last_status = now
            status = fields.get("st")
            if isinstance(status, str) and status != self._status:
                self.status_changes.add(time=now, old=self._status, new=status)
                self._status = status
        deadtime = _int(fields.get("dt"))
        if deadtime is not None:
            self.deadtime_ms = deadtime
        if kind == "NS_rexmit":
            self.rexmit_requests.add(time=now, dest=fields.get("dest"),
                                     firstseq=fields.get("firstseq"),
                                     lastseq=fields.get("lastseq"))
        elif kind == "NS_nak_rexmit":
            self.naks.add(time=now, dest=fields.get("dest"), firstseq=fields.get("firstseq"),
                          info=fields.get("info"))

    def close(self, capture_end: float | None) -> None:
        """A node silent from its last heartbeat to the end of the capture for longer than
        its deadtime is what a cluster declares dead: report it like a gap."""
        deadtime = self.deadtime_ms
        last = self._last_status
        if capture_end is None or last is None or deadtime is None:
            return
        silence = capture_end - last
        if silence * 1000 > deadtime:
            self.over_deadtime.add(time=capture_end, since=last,
                                   interval_ms=round(silence * 1000, 1), deadtime_ms=deadtime,
                                   until_capture_end=True)
        self._last_status = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.name,
            "first": self.first,
            "last": self.last,
            "messages": self.messages,
            "by_type": dict(self.by_type.most_common()),
            "addresses": sorted(self.addresses),
            "deadtime_ms": self.deadtime_ms,
            "heartbeat_interval_ms": self.intervals.summary_ms(),
            "late_heartbeats": self.late.to_dict(),
            "gaps_over_deadtime": self.over_deadtime.to_dict(),
            "seq_gaps": self.seq_gaps.to_dict(),
            "missing_seqs": self.missing_seqs,
            "late_seqs": self.late_seqs,
            "repeated_seqs": self.repeated_seqs,
            "rexmit_requests": self.rexmit_requests.to_dict(),
            "naks": self.naks.to_dict(),
            "generation_changes": self.generations.to_dict(),
            "status_changes": self.status_changes.to_dict(),
            "auth_failures": self.auth_failures,
            "errors": self.errors,
        }


def ring_key(ring: Any) -> str | None:
    """``rep.seq`` with seq in hex, as ``corosync-quorumtool -s`` prints a ring id."""
    if not isinstance(ring, dict):
        return None
    rep = ring.get("rep")
    seq = ring.get("seq")
    if isinstance(rep, dict):  # 1.x/2.x: rep is an address struct with a nodeid
        rep = rep.get("nodeid")
    if not isinstance(rep, int) or not isinstance(seq, int):
        return None
    return f"{rep}.{seq:x}"


def _node_ids(addrs: Any) -> list[int]:
    out: list[int] = []
    if not isinstance(addrs, list):
        return out
    for addr in addrs:
        if isinstance(addr, int):
            out.append(addr)
        elif isinstance(addr, dict):  # 1.x/2.x srp_addr: {"addr": [{"nodeid": ...}, ...]}
            inner = addr.get("addr")
            if isinstance(inner, list) and inner and isinstance(inner[0], dict):
                nodeid = inner[0].get("nodeid")
                if isinstance(nodeid, int):
                    out.append(nodeid)
    return out


@dataclass
class TotemRing:
    ring: str
    first: float | None = None
    last: float | None = None
    messages: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    members: list[int] | None = None
    formed: float | None = None
    rotation: Histogram = field(default_factory=Histogram)
    token_repeats: int = 0
    rtr_entries: int = 0
    rtr_max: int = 0
    tokens_with_rtr: int = 0
    _last_token: dict[int, tuple[float, int | None]] = field(default_factory=dict)

    def add(self, now: float, sender: int | None, fields: dict[str, Any]) -> None:
        if self.first is None:
            self.first = now
        self.last = now
        self.messages += 1
        kind = fields.get("type_name") or "?"
        self.by_type[kind] += 1
        if kind == "orf_token" and sender is not None:
            # token_seq grows by one at every hop (seq is the ring's message sequence and
            # stands still on an idle ring): the same token_seq again from the same sender
            # is a retransmitted token.
            token_seq = _int(fields.get("token_seq"))
            previous = self._last_token.get(sender)
            if previous is not None and token_seq is not None and previous[1] == token_seq:
                self.token_repeats += 1  # the same token again: a token retransmission
            else:
                if previous is not None:
                    self.rotation.add(now - previous[0])
                if len(self._last_token) < 1024:
                    self._last_token[sender] = (now, token_seq)
            entries = _int(fields.get("rtr_list_entries")) or 0
            if entries:
                self.tokens_with_rtr += 1
                self.rtr_entries += entries
                self.rtr_max = max(self.rtr_max, entries)
        elif kind == "memb_commit_token" and self.members is None:
            self.members = _node_ids(fields.get("addr"))
            self.formed = now

    def to_dict(self) -> dict[str, Any]:
        return {
            "ring": self.ring,
            "first": self.first,
            "last": self.last,
            "messages": self.messages,
            "by_type": dict(self.by_type.most_common()),
            "members": self.members,
            "formed": self.formed,
            "token_rotation_ms": self.rotation.summary_ms(),
            "token_repeats": self.token_repeats,
            "rtr_list_entries": self.rtr_entries,
            "rtr_list_max": self.rtr_max,
            "tokens_with_rtr": self.tokens_with_rtr,
        }


@dataclass
class TotemNode:
    nodeid: int
    first: float | None = None
    last: float | None = None
    messages: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    knet_by_type: Counter[str] = field(default_factory=Counter)
    addresses: set[str] = field(default_factory=set)
    rings: list[str] = field(default_factory=list)
    joins: int = 0
    errors: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "first": self.first,
            "last": self.last,
            "messages": self.messages,
            "by_type": dict(self.by_type.most_common()),
            "knet_by_type": dict(self.knet_by_type.most_common()),
            "addresses": sorted(self.addresses),
            "rings": self.rings,
            "memb_joins": self.joins,
            "errors": self.errors,
        }


#: Distinct nodes tracked per protocol: a real cluster has a handful, and a hostile
#: capture full of made-up names must not grow memory without bound.
MAX_NODES = 4096


class Stats:
    """Feed every (filtered) record to `add`; read the summary with `to_dict`."""

    def __init__(self, warntime_ms: int | None = None) -> None:
        self.warntime_ms = warntime_ms
        self.hb_nodes: dict[str, HeartbeatNode] = {}
        self.rings: dict[str, TotemRing] = {}
        self.ring_changes = Events()
        self.totem_nodes: dict[int, TotemNode] = {}
        #: Records of nodes beyond MAX_NODES: counted, not summarised.
        self.untracked_node_records = 0
        self.records = 0
        self.by_proto: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.first: float | None = None
        self.last: float | None = None
        self.corosync = CorosyncStats()
        self.knet_links = LinkView()
        #: Failovers (`hbtools.failover`): gratuitous ARPs (first of each burst), the node
        #: each MAC sent Heartbeat from, and the deaths peers declared (t=stonith node=X).
        self.garps: list[Garp] = []
        self._garp_burst: dict[tuple[str, str], float] = {}
        self.owner_of_mac: dict[str, str] = {}
        self.deaths: dict[str, list[Death]] = {}

    def add(self, record: Record) -> None:
        self.records += 1
        self.corosync.add(record)
        self.knet_links.add(record)
        self.by_proto[record.proto] += 1
        if self.first is None or record.time < self.first:
            self.first = record.time
        if self.last is None or record.time > self.last:
            self.last = record.time
        if record.error is not None:
            self.errors[record.proto] += 1
        if record.proto == ARP:
            self._arp(record)
        elif record.proto == HEARTBEAT:
            name = record.node if isinstance(record.node, str) else None
            if name is None:
                return  # undecodable: counted in errors, belongs to no node
            self._failover_facts(name, record)
            node = self.hb_nodes.get(name)
            if node is None:
                if len(self.hb_nodes) >= MAX_NODES:
                    self.untracked_node_records += 1
                    return
                node = self.hb_nodes[name] = HeartbeatNode(name)
            node.add(record, self.warntime_ms)
        elif record.proto == TOTEM:
            if record.error is None:
                self._totem(record, record.get_fields(), None)
            elif isinstance(record.node, int):
                totem_node = self._totem_node(record.node, record)
                if totem_node is not None:
                    totem_node.errors += 1
        elif record.proto == KNET:
            fields = record.get_fields()
            if isinstance(record.node, int):
                totem_node = self._totem_node(record.node, record)
                if totem_node is not None:
                    totem_node.knet_by_type[record.type or "?"] += 1
                    if record.error is not None:
                        totem_node.errors += 1
            inner = fields.get("totem")
            if isinstance(inner, dict):
                self._totem(record, inner, record.type)

    def _arp(self, record: Record) -> None:
        """Keep the first gratuitous ARP of each burst (an announcer repeats it for seconds)."""
        fields = record.get_fields()
        if not fields.get("gratuitous"):
            return
        mac, address = str(fields.get("sender_mac")), str(fields.get("sender_ip"))
        previous = self._garp_burst.get((mac, address))
        if len(self._garp_burst) < MAX_NODES:
            self._garp_burst[(mac, address)] = record.time
        if previous is not None and record.time - previous <= GARP_BURST_S:
            return
        if len(self.garps) < MAX_GARPS:
            self.garps.append((record.time, mac, address))

    def _failover_facts(self, name: str, record: Record) -> None:
        """Which MAC sends for which node (the frame's Ethernet source), and deaths declared:
        a peer's ``t=stonith node=X`` (3.0.6 sends it once it gave X up) or X's ``st=dead``."""
        raw = record.raw
        if raw is not None and record.linktype == 1 and len(raw) >= 12 \
                and len(self.owner_of_mac) < MAX_NODES:
            self.owner_of_mac.setdefault(raw[6:12].hex(":"), name)
        if record.type not in ("stonith", "status"):
            return
        fields = record.get_fields()
        if record.type == "stonith" and isinstance(fields.get("node"), str) \
                and fields["node"] != name:
            victim, how = fields["node"], f"stonith {fields.get('result', '?')}"
        elif record.type == "status" and fields.get("st") == "dead":
            victim, how = name, "st=dead"
        else:
            return
        deaths = self.deaths.get(victim)
        if deaths is None and len(self.deaths) < MAX_NODES:
            deaths = self.deaths[victim] = []
        if deaths is not None and len(deaths) < MAX_EVENTS:
            deaths.append((record.time, name, how))

    def failovers(self) -> list[dict[str, Any]]:
        """Every gap over deadtime that a peer's declaration or another node's gratuitous ARP
        followed: last heartbeat -> declared dead -> first GARP of the new owner."""
        out = []
        for name, node in sorted(self.hb_nodes.items()):
            gaps = node.over_deadtime.items
            for i, gap in enumerate(gaps):
                until = gaps[i + 1]["since"] if i + 1 < len(gaps) else None
                found = failover(name, gap["since"], self.garps, self.owner_of_mac,
                                 self.deaths.get(name, ()), until=until)
                if found is not None:
                    out.append(found.to_dict())
        return sorted(out, key=lambda f: f["last_heartbeat"])

    def _totem_node(self, nodeid: int, record: Record) -> TotemNode | None:
        node = self.totem_nodes.get(nodeid)
        if node is None:
            if len(self.totem_nodes) >= MAX_NODES:
                self.untracked_node_records += 1
                return None
            node = self.totem_nodes[nodeid] = TotemNode(nodeid)
        if node.first is None:
            node.first = record.time
        node.last = record.time
        if len(node.addresses) < 16:
            node.addresses.add(record.src)
        return node

    def _totem(self, record: Record, fields: dict[str, Any], via: str | None) -> None:
        sender = _int(fields.get("nodeid"))
        kind = fields.get("type_name") or "?"
        node = self._totem_node(sender, record) if sender is not None else None
        if node is not None:
            node.messages += 1
            node.by_type[kind] += 1
            if kind == "memb_join":
                node.joins += 1
        key = ring_key(fields.get("ring_id"))
        if key is None:
            return
        ring = self.rings.get(key)
        if ring is None:
            if len(self.rings) >= 10_000:
                return
            ring = self.rings[key] = TotemRing(key)
            self.ring_changes.add(time=record.time, ring=key, seen_from=sender)
        ring.add(record.time, sender, fields)
        if node is not None:
            if key not in node.rings and len(node.rings) < MAX_EVENTS:
                node.rings.append(key)

    def to_dict(self) -> dict[str, Any]:
        for node in self.hb_nodes.values():
            node.close(self.last)
        return {
            "records": self.records,
            "by_proto": dict(self.by_proto),
            "errors": dict(self.errors),
            "untracked_node_records": self.untracked_node_records,
            "first": self.first,
            "last": self.last,
            "heartbeat": {
                "warntime_ms": self.warntime_ms,
                "nodes": [n.to_dict() for n in sorted(self.hb_nodes.values(),
                                                      key=lambda n: n.name)],
                "failovers": self.failovers(),
            },
            "totem": {
                "nodes": [n.to_dict() for n in sorted(self.totem_nodes.values(),
                                                      key=lambda n: n.nodeid)],
                "rings": [r.to_dict() for r in self.rings.values()],
                "ring_changes": self.ring_changes.to_dict(),
            },
            "corosync": self.corosync.to_dict(),
            "knet_links": self.knet_links.to_dict(),
        }
