"""``hbtool decode --plot``: a capture as a picture, one lane per node (drawn by hbtools.plot).

The marks come from the same statistics ``--stats`` prints (dissectors.stats), read event by
event: after each record the counters of late heartbeats, gaps past deadtime, sequence gaps,
status and generation changes, retransmission requests and ring changes are compared with
their values before it, and what grew becomes a mark at that record's time. So the picture
and ``--stats`` can never disagree, and no second detector is written here.

Gratuitous ARPs are not UDP, so the dissector does not report them: a second pass over the
frames finds ARP announcements (sender address == target address) and puts each on the lane
of the node whose cluster traffic came from the same MAC address.

Lanes: a Heartbeat node by its name; a Corosync node as ``nodeid N`` (Totem carries no names).
Points are bounded (``MAX_POINTS``) so a huge capture draws in bounded memory; what is left
out is counted and said in the title.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from hbtools import arp
from hbtools.dissectors.capture import CaptureReader
from hbtools.dissectors.detect import HEARTBEAT, KNET, TOTEM
from hbtools.dissectors.layers import LINKTYPE_ETHERNET
from hbtools.dissectors.pipeline import Options, decode_stream, filtered, open_input
from hbtools.dissectors.records import Record
from hbtools.dissectors.stats import GARP_BURST_S, HeartbeatNode, Stats
from hbtools.plot import Event, Rendered, Series, Timeline, render

__all__ = ["MAX_POINTS", "PlotResult", "TimelineBuilder", "encrypted_lane", "plot_captures", "totem_lane"]

#: Marks kept for one picture; past this, marks are counted, not drawn.
MAX_POINTS = 200_000
_ETH_ARP = arp.ETHERTYPE

#: HeartbeatNode event lists whose growth is a mark, and the mark's kind.
_HB_MARKS = (
    ("late", "late"),
    ("over_deadtime", "gap"),
    ("seq_gaps", "seq_gap"),
    ("status_changes", "status"),
    ("generations", "generation"),
    ("rexmit_requests", "rexmit"),
    ("naks", "rexmit"),
)


def totem_lane(nodeid: int) -> str:
    """The lane name of a Corosync node."""
    return f"nodeid {nodeid}"


def encrypted_lane(address: str) -> str:
    """The lane of a Corosync node whose knet packets are encrypted: only its address shows."""
    return f"{address} (encrypted)"


@dataclass
class PlotResult:
    """What ``--plot`` drew (read back from the figure) and the timeline it drew from."""

    rendered: Rendered
    records: int
    garps: int
    not_drawn: int
    timeline: Timeline


class TimelineBuilder:
    """Feed records (and ARP frames); ``timeline()`` gives what to draw. Pure: no I/O."""

    def __init__(self, warntime_ms: int | None = None, max_points: int = MAX_POINTS) -> None:
        self.stats = Stats(warntime_ms=warntime_ms)
        self.events: list[Event] = []
        self.rotation: dict[str, list[tuple[float, float]]] = {}
        self.max_points = max_points
        self.not_drawn = 0
        self.records = 0
        self.garps = 0
        self.lanes: set[str] = set()
        #: source IP -> lane, from cluster records; MAC -> source IP, from the frames.
        self.ip_lane: dict[str, str] = {}
        self.mac_ip: dict[bytes, str] = {}
        self._last: float | None = None
        self._garp_last: dict[tuple[str, str], float] = {}

    def _mark(self, time: float, lane: str, kind: str, label: str = "") -> None:
        self.lanes.add(lane)
        if len(self.events) >= self.max_points:
            self.not_drawn += 1
            return
        self.events.append(Event(time, lane, kind, label))

    def _learn(self, address: str, lane: str) -> None:
        if len(self.ip_lane) < 4096:
            self.ip_lane.setdefault(address, lane)

    def add(self, record: Record) -> None:
        self.records += 1
        self._last = record.time if self._last is None else max(self._last, record.time)
        if record.proto == HEARTBEAT:
            self._heartbeat(record)
        elif record.proto in (TOTEM, KNET):
            self._totem(record)
        else:
            self.stats.add(record)

    def _heartbeat(self, record: Record) -> None:
        name = record.node if isinstance(record.node, str) else None
        node = self.stats.hb_nodes.get(name) if name is not None else None
        before = _counts(node)
        self.stats.add(record)
        if name is None:
            return
        node = self.stats.hb_nodes.get(name)
        if node is None:  # over the statistics' node limit
            return
        lane = name
        self._learn(record.src, lane)
        self._mark(record.time, lane, "heartbeat" if record.type == "status" else "message")
        self._grown(node, before, record.time, lane)

    def _grown(self, node: HeartbeatNode, before: tuple[int, ...], time: float, lane: str) -> None:
        for (attr, kind), old in zip(_HB_MARKS, before, strict=True):
            events = getattr(node, attr)
            if events.total > old:
                label, when = "", time
                item = events.items[-1] if events.total == len(events.items) else None
                if kind == "status" and item is not None:
                    label = str(item.get("new", ""))
                if kind == "gap" and item is not None:
                    # Drawn where the deadtime ran out, the moment a peer would declare death.
                    when = item["since"] + item["deadtime_ms"] / 1000
                self._mark(when, lane, kind, label)

    def _totem(self, record: Record) -> None:
        fields = record.get_fields()
        inner = fields.get("totem") if record.proto == KNET else fields
        inner = inner if isinstance(inner, dict) else {}
        sender = record.node if isinstance(record.node, int) else inner.get("nodeid")
        kind = inner.get("type_name") if inner else record.type
        rings = self.stats.ring_changes.total
        ring_before = self._ring_token(inner, sender)
        self.stats.add(record)
        if not isinstance(sender, int) or isinstance(sender, bool):
            if record.type == "encrypted":
                # knet crypto hides even the sender's nodeid: the address is all there is.
                lane = encrypted_lane(record.src)
                self._learn(record.src, lane)
                self._mark(record.time, lane, "message")
            return
        lane = totem_lane(sender)
        self._learn(record.src, lane)
        if record.proto == KNET and record.type in ("ping", "pong") and not inner:
            self._mark(record.time, lane, "heartbeat" if record.type == "ping" else "message")
        elif kind == "orf_token":
            self._mark(record.time, lane, "heartbeat")
            if (inner.get("rtr_list_entries") or 0) > 0:
                self._mark(record.time, lane, "rexmit")
        else:
            self._mark(record.time, lane, "message")
        if self.stats.ring_changes.total > rings:
            items = self.stats.ring_changes.items
            label = str(items[-1]["ring"]) if len(items) == self.stats.ring_changes.total else ""
            self._mark(record.time, lane, "ring", label)
        if ring_before is not None:
            ring, count, previous = ring_before
            if ring.rotation.count > count and previous is not None:
                points = self.rotation.setdefault(ring.ring, [])
                if len(points) < self.max_points:
                    points.append((record.time, (record.time - previous) * 1000))

    def _ring_token(self, fields: dict[str, Any], sender: Any) -> Any:
        """The ring a token belongs to, its rotation count and the sender's previous token time,
        taken before the statistics see the token (rotation = now - that time)."""
        from hbtools.dissectors.stats import ring_key

        if fields.get("type_name") != "orf_token":
            return None
        key = ring_key(fields.get("ring_id"))
        ring = self.stats.rings.get(key) if key is not None else None
        if ring is None:
            return None
        previous = ring._last_token.get(sender)  # noqa: SLF001 - the statistics' own memory
        return ring, ring.rotation.count, previous[0] if previous else None

    def ethernet(self, time: float, frame: bytes) -> None:
        """One Ethernet frame of the capture: learns MAC -> IP, marks gratuitous ARPs."""
        if len(frame) < 14:
            return
        etype = int.from_bytes(frame[12:14], "big")
        mac = frame[6:12]
        if etype == 0x0800 and len(frame) >= 34 and mac not in self.mac_ip:
            if len(self.mac_ip) < 4096:
                self.mac_ip[mac] = ".".join(str(b) for b in frame[26:30])
        elif etype == _ETH_ARP:
            packet = arp.from_frame(LINKTYPE_ETHERNET, frame)
            if packet is None or not packet.gratuitous:
                return  # an ordinary request or reply, not an announcement
            ip = self.mac_ip.get(frame[22:28]) or self.mac_ip.get(mac)
            lane = self.ip_lane.get(ip) if ip else None
            if lane is None:
                return
            self.garps += 1
            address = packet.sender_ip
            # An announcer sends a burst; name the address once per burst, not on every mark.
            burst = self._garp_last.get((lane, address))
            if len(self._garp_last) >= 4096:
                self._garp_last.clear()
            self._garp_last[(lane, address)] = time
            fresh = burst is None or time - burst > GARP_BURST_S
            self._mark(time, lane, "garp", address if fresh else "")

    def timeline(self, title: str = "") -> Timeline:
        """What to draw; Heartbeat nodes first (by name), then Corosync nodes (by nodeid)."""
        for name, node in self.stats.hb_nodes.items():
            before = _counts(node)
            node.close(self._last)
            self._grown(node, before, self._last or 0.0, name)
        hb = sorted(lane for lane in self.lanes if not lane.startswith("nodeid ")
                    and not lane.endswith(" (encrypted)"))
        hidden = sorted(lane for lane in self.lanes if lane.endswith(" (encrypted)"))
        totem = sorted((lane for lane in self.lanes if lane.startswith("nodeid ")),
                       key=lambda lane: int(lane.split()[1]))
        series = [Series(f"token rotation, ring {ring}", "ms", tuple(points))
                  for ring, points in self.rotation.items() if points]
        if len(series) > 8:  # many short-lived rings: one line for all keeps the legend readable
            merged = tuple(p for s in series for p in s.points)
            series = [Series("token rotation, all rings", "ms", merged)]
        if self.not_drawn:
            title = f"{title} ({self.not_drawn} marks not drawn)".strip()
        return Timeline(lanes=hb + totem + hidden, events=self.events, series=series, title=title)


def _counts(node: HeartbeatNode | None) -> tuple[int, ...]:
    if node is None:
        return tuple(0 for _ in _HB_MARKS)
    return tuple(getattr(node, attr).total for attr, _ in _HB_MARKS)


def _arp_pass(stream: BinaryIO, name: str, builder: TimelineBuilder) -> None:
    for ts, linktype, data, _orig in CaptureReader(stream, name):
        if linktype == LINKTYPE_ETHERNET:
            builder.ethernet(ts, data)


def _seekable(path: str) -> tuple[BinaryIO, str]:
    """The capture as a file that can be read twice; standard input is spooled to an unnamed
    temporary file first (never a named one a local user could swap)."""
    stream, name, _size = open_input(path)
    if stream is not sys.stdin.buffer:
        return stream, name
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the caller
    shutil.copyfileobj(stream, spool)
    spool.seek(0)
    return spool, name


def plot_captures(paths: Iterable[str], png: str, options: Options | None = None,
                  warntime_ms: int | None = None, max_points: int = MAX_POINTS) -> PlotResult:
    """Decode the captures and draw them into ``png``. Raises CaptureError / PlotError.

    The ARP pass runs after the record pass, so every node's address is known by then; the
    learning of MAC addresses happens in the same ARP pass, before the ARPs that follow.
    """
    options = options or Options()
    builder = TimelineBuilder(warntime_ms=warntime_ms, max_points=max_points)
    names = []
    for path in paths:
        stream, name = _seekable(path)
        names.append(os.path.basename(name))
        try:
            for record in filtered(decode_stream(stream, name, options), options.filter):
                builder.add(record)
            stream.seek(0)
            _arp_pass(stream, name, builder)
        finally:
            stream.close()
    timeline = builder.timeline(title=", ".join(names))
    rendered = render(timeline, png)
    return PlotResult(rendered=rendered, records=builder.records, garps=builder.garps,
                      not_drawn=builder.not_drawn, timeline=timeline)
