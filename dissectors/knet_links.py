"""One view per knet link: ping/pong pairs, round trips, gaps, and knet's own down rule.

Data packets carry no link id, but pings and pongs do (``link``); a pong echoes the ping's
16-byte ``time``, so the pair is found by (link, time). Each address pair seen in a ping or
pong is mapped to its link, and data packets between those addresses are counted on it.

knet's rule (libknet 1.25 ``threads_heartbeat.c`` / ``threads_rx.c``), per peer and link,
as the pinging node sees it: the link goes down when the time since the last pong reaches
``pong_timeout_adj = pong_timeout × backoff + 2 × latency`` (backoff decays to 1 on a
healthy link; latency is the running average of pong round trips), and comes back up on
the pong after ``pong_count`` pongs. knet checks for a timeout every KNET_THREADS_TIMERES
(200 ms), so its "down" comes up to that much after the instant computed here. corosync
sets ``pong_timeout = token / knet_pong_count`` and
``ping_interval = token / (2 × knet_pong_count)`` (token 3000, pong_count 2: 1500 / 750 ms).
`LinkView` replays that rule on the capture's times (the capture point, not the node's
clock: a few tenths of a millisecond off on a lab bridge).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LinkView"]

MAX_PENDING_PINGS = 4096
MAX_LINKS = 256  # (pinger, peer, link) triples tracked


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class _Link:
    """One direction of one link: `pinger` pings `peer` on `link`, and gets pongs."""

    pinger: int
    peer: int
    link: int
    pongs: int = 0
    rtts: list[float] = field(default_factory=list)
    latency: float = 0.0  # ms, knet's running average
    last_pong: float | None = None
    max_gap: float = 0.0
    down: bool = False
    good_pongs: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)


class LinkView:
    """Feed knet rows (`add`), read per-link figures and up/down events (`to_dict`)."""

    def __init__(self, token_ms: float = 3000.0, pong_count: int = 2,
                 latency_samples: int = 60) -> None:
        self.pong_timeout = token_ms / pong_count
        self.ping_interval = token_ms / (2 * pong_count)
        self.pong_count = pong_count
        self.latency_samples = latency_samples
        self._samples: dict[tuple[int, int, int], int] = {}
        self.links: dict[tuple[int, int, int], _Link] = {}
        self.addresses: dict[tuple[str, str], int] = {}
        self.data: dict[int, int] = {}
        self._unmapped_data = 0
        self._pending: OrderedDict[tuple[int, str], tuple[float, int, int]] = OrderedDict()
        self.last_time: float | None = None

    def _link(self, key: tuple[int, int, int]) -> _Link | None:
        link = self.links.get(key)
        if link is None and len(self.links) < MAX_LINKS:
            link = self.links[key] = _Link(*key)
        return link

    def add(self, record: Any) -> None:
        if record.proto != "knet" or record.error is not None:
            return
        self.last_time = record.time
        self._check_down(record.time)
        kind = record.type
        if kind == "data":
            link_id = self.addresses.get((record.src, record.dst))
            if link_id is None:
                self._unmapped_data += 1
            else:
                self.data[link_id] = self.data.get(link_id, 0) + 1
            return
        if kind not in ("ping", "pong"):
            return
        fields = record.get_fields()
        link_id, stamp, node = fields.get("link"), fields.get("time"), record.node
        if not isinstance(link_id, int) or not isinstance(node, int):
            return
        if len(self.addresses) < 1024:
            self.addresses.setdefault((record.src, record.dst), link_id)
            self.addresses.setdefault((record.dst, record.src), link_id)
        if kind == "ping":
            self._pending[(link_id, stamp)] = (record.time, node, link_id)
            while len(self._pending) > MAX_PENDING_PINGS:
                self._pending.popitem(last=False)
            return
        ping = self._pending.pop((link_id, stamp), None)
        if ping is None:
            return
        sent, pinger, _ = ping
        link = self._link((pinger, node, link_id))
        if link is None:
            return
        link.pongs += 1
        rtt = (record.time - sent) * 1000.0
        link.rtts.append(rtt)
        key = (pinger, node, link_id)
        n = min(self._samples.get(key, 0) + 1, self.latency_samples)
        self._samples[key] = n
        link.latency = (link.latency * (n - 1) + rtt) / n
        if link.last_pong is not None:
            link.max_gap = max(link.max_gap, (record.time - link.last_pong) * 1000.0)
        link.last_pong = record.time
        if link.down:
            link.good_pongs += 1
            # threads_rx.c counts pong_count pongs first, and says "up" on the next one
            if link.good_pongs > self.pong_count:
                link.down = False
                link.events.append({"time": record.time, "event": "up",
                                    "after_pongs": link.good_pongs})

    def _timeout(self, link: _Link) -> float:
        return self.pong_timeout + 2 * link.latency

    def _check_down(self, now: float) -> None:
        for link in self.links.values():
            if link.down or link.last_pong is None:
                continue
            limit = link.last_pong + self._timeout(link) / 1000.0
            if now >= limit:
                link.down = True
                link.good_pongs = 0
                link.events.append({"time": limit, "event": "down",
                                    "last_pong": link.last_pong,
                                    "timeout_ms": round(self._timeout(link), 3)})

    def to_dict(self) -> dict[str, Any]:
        if self.last_time is not None:
            self._check_down(self.last_time)
        pending_by_link: dict[int, int] = {}
        for _t, _node, link_id in self._pending.values():
            pending_by_link[link_id] = pending_by_link.get(link_id, 0) + 1
        links = []
        for (pinger, peer, link_id), link in sorted(self.links.items()):
            links.append({
                "link": link_id, "pinger": pinger, "peer": peer, "pongs": link.pongs,
                "rtt_ms": {"min": min(link.rtts), "median": _quantile(link.rtts, 0.5),
                           "p99": _quantile(link.rtts, 0.99), "max": max(link.rtts)},
                "latency_ms": round(link.latency, 3),
                "max_pong_gap_ms": round(link.max_gap, 3),
                "events": link.events,
            })
        return {"pong_timeout_ms": self.pong_timeout, "ping_interval_ms": self.ping_interval,
                "links": links, "data_by_link": dict(sorted(self.data.items())),
                "data_unmapped": self._unmapped_data,
                "unanswered_pings_by_link": dict(sorted(pending_by_link.items()))}


def render(summary: dict[str, Any], tabulate: Any, when: Any) -> str:
    """The per-link table and the link events (under 100 columns)."""
    if not summary["links"]:
        return ""
    rows = []
    for item in summary["links"]:
        rtt = item["rtt_ms"]
        rows.append([item["link"], f"{item['pinger']}->{item['peer']}", item["pongs"],
                     f"{rtt['min']:.2f}", f"{rtt['median']:.2f}", f"{rtt['max']:.2f}",
                     f"{item['max_pong_gap_ms']:.0f}",
                     summary["data_by_link"].get(item["link"], 0),
                     sum(1 for e in item["events"] if e["event"] == "down")])
    text = ("\nknet links (ping -> pong; down rule: pong_timeout "
            f"{summary['pong_timeout_ms']:.0f} ms + 2 x latency)\n" + tabulate(
                rows, headers=["link", "ping", "pongs", "rtt min", "median", "max",
                               "max gap", "data", "downs"],
                tablefmt="simple", disable_numparse=True))
    events = [[when(e["time"]), item["link"], f"{item['pinger']}->{item['peer']}", e["event"]]
              for item in summary["links"] for e in item["events"]]
    if events:
        events.sort()
        text += "\n\nknet link events (knet's rule replayed)\n" + tabulate(
            events, headers=["time (UTC)", "link", "ping", "event"], tablefmt="simple",
            disable_numparse=True)
    return text
