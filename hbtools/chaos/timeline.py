"""The per-run timeline picture (Jepsen style: fault windows shaded), via :mod:`hbtools.plot`.

Lanes: one per node (heartbeats it sent, its gratuitous ARPs, nemesis marks, the time it held
the VIP as a bar) and one for the client (which node its ARP entry pointed at).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hbtools import plot
from hbtools.chaos.wire import Wire

CLIENT_LANE = "client ARP"
PALETTE = ("#4c72b0", "#dd8452", "#8172b3", "#937860", "#da8bc3")


def _spans(samples: Sequence[tuple[float, Any]], holds: Any, end: float
           ) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    start: float | None = None
    for t, value in samples:
        if holds(value) and start is None:
            start = t
        elif not holds(value) and start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, end))
    return out


def _status_events(cluster: Any) -> list[plot.Event]:
    """Peer status changes from an hbtools daemon's event log (what it believed, for reading
    the picture; the verdict never uses it)."""
    events: list[plot.Event] = []
    logs = cluster.logs() if cluster.kind == "hbtools" else {}
    for node, path in logs.items():
        try:
            lines = Path(path).read_text().splitlines()[-2000:]
        except OSError:
            continue
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("kind") in ("peer_status", "dead") and "wall" in rec:
                label = f"{rec.get('node', '?')} {rec.get('status', 'dead')}"
                events.append(plot.Event(float(rec["wall"]), node, "status", label[:24]))
    return events


def draw(path: Path, scenario: Any, impl: str, cluster: Any, samples: Sequence[Any],
         played: Any, seen: Wire, macs: Mapping[str, str], t0: float, end: float) -> str:
    nodes = list(cluster.nodes)
    lanes = [*nodes, CLIENT_LANE]
    by_mac = {m: n for n, m in macs.items()}
    events: list[plot.Event] = []
    for node, times in seen.heartbeats.items():
        events += [plot.Event(t, node, "heartbeat") for t in times if t0 - 1 <= t <= end]
    for t, mac in seen.garps:
        if mac in by_mac and t0 - 1 <= t <= end:
            events.append(plot.Event(t, by_mac[mac], "garp"))
    for t, node, what in played.marks:
        kind = "crash" if what in ("crash", "kill", "stop", "freeze") else "note"
        events.append(plot.Event(t, node, kind, what))
    events += [e for e in _status_events(cluster) if t0 - 1 <= e.time <= end]
    intervals = []
    for node in nodes:
        for a, b in _spans([(t, o) for t, o, _ in samples], lambda o, n=node: n in o, end):
            intervals.append(plot.Interval(node, a, b, "holds the VIP"))
    for i, node in enumerate(nodes):
        mac = macs[node]
        for a, b in _spans([(t, m) for t, _, m in samples], lambda m, mac=mac: m == mac, end):
            intervals.append(plot.Interval(CLIENT_LANE, a, b, f"client → {node}",
                                           PALETTE[i % len(PALETTE)]))
    windows = [plot.Window(start, stop if stop is not None else end, label[:40])
               for label, start, stop in played.windows]
    timeline = plot.Timeline(lanes, events, intervals, windows,
                             title=f"{scenario.name} × {impl}: {scenario.description}"[:200],
                             origin=t0)
    plot.render(timeline, str(path))
    return str(path)
