"""``--stats`` above Totem: what Corosync and Pacemaker did, from the decoded rows.

Counts by service/function, by CPG group and by Pacemaker operation (each mcast counted
once: copies to other receivers and retransmissions are marked ``duplicate`` by the
decoder), and a timeline of events: memberships formed (commit token), processes joining
and leaving CPG groups, nodes reported down, Pacemaker DC elections (``vote`` /
``no-vote`` in ``crmd``), which node acts as DC (it sends ``join_offer``), and the
transition actions the DC hands to nodes (``lrm_invoke`` with its ``transition-key``).
Bounded: at most MAX_EVENTS events are kept (the count of the rest is kept).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from hbtools import pcmk

__all__ = ["CorosyncStats", "render"]

MAX_EVENTS = 500
_TRANSITION = re.compile(r'operation_key="([^"]{1,200})"[^>]*?on_node="([^"]{1,200})"'
                         r'[^>]*?transition-key="(\d+):(\d+):(\d+):([0-9a-f-]{1,64})"')


class CorosyncStats:
    def __init__(self) -> None:
        self.services: Counter[str] = Counter()
        self.groups: Counter[str] = Counter()
        self.ops: Counter[tuple[str, str]] = Counter()
        self.events: list[dict[str, Any]] = []
        self.dropped_events = 0
        self.duplicates = 0
        self._rings: set[str] = set()
        self._dc: str | None = None
        self._voting = False

    def _event(self, time: float, kind: str, detail: str, node: Any = None) -> None:
        if len(self.events) >= MAX_EVENTS:
            self.dropped_events += 1
            return
        self.events.append({"time": time, "event": kind, "node": node, "detail": detail})

    def add(self, record: Any) -> None:
        if record.error is not None or record.proto not in ("totem", "knet"):
            return
        fields = record.get_fields()
        inner = fields.get("totem", fields) if record.proto == "knet" else fields
        if not isinstance(inner, dict):
            return
        kind = inner.get("type_name")
        if kind == "memb_commit_token":
            ring = inner.get("ring_id") or {}
            key = f"{ring.get('rep')}.{ring.get('seq', 0):x}" if isinstance(
                ring.get("seq"), int) else None
            members = inner.get("addr") or []
            if key and key not in self._rings and len(self._rings) < 10_000:
                self._rings.add(key)
                self._event(record.time, "membership", f"ring {key} members "
                            + " ".join(str(m) for m in members), inner.get("nodeid"))
            return
        above = inner.get("totempg")
        if kind != "mcast" or not isinstance(above, dict):
            return
        if above.get("duplicate"):
            self.duplicates += 1
            return
        for m in above.get("messages", ()):
            self._message(record, inner.get("nodeid"), m)

    def _message(self, record: Any, sender: Any, m: dict[str, Any]) -> None:
        service, function = m.get("service"), m.get("function")
        self.services[f"{service} {function}"] += 1
        group = m.get("group")
        if group is not None and function in ("mcast", "partial_mcast"):
            self.groups[group] += 1
        if function in ("procjoin", "procleave"):
            self._event(record.time, function, f"{group} pid {m.get('pid')} "
                        f"({m.get('reason_name')})", sender)
        elif function == "downlist" and m.get("nodeids"):
            self._event(record.time, "downlist", "left: " + " ".join(
                str(n) for n in m["nodeids"]), sender)
        p = m.get("pcmk")
        if p is None or group is None:
            return
        op = pcmk.operation(p)
        self.ops[(group, op)] += 1
        who = p["sender"]["uname"] or sender
        if group == "crmd":
            if op in ("vote", "no-vote"):
                if not self._voting:
                    self._event(record.time, "election", f"DC election: {op} from {who}", who)
                self._voting = True
            elif op == "join_offer":
                self._voting = False
                if who != self._dc:
                    self._dc = who
                    self._event(record.time, "dc", f"{who} is DC (sends join_offer)", who)
            elif op == "lrm_invoke":
                t = _TRANSITION.search(p.get("xml", ""))
                if t is not None:
                    self._event(record.time, "transition",
                                f"transition {t.group(4)}: action {t.group(3)} "
                                f"{t.group(1)} on {t.group(2)}", who)

    def to_dict(self) -> dict[str, Any]:
        return {
            "by_service": dict(self.services.most_common()),
            "by_cpg_group": dict(self.groups.most_common()),
            "by_pacemaker_op": [{"group": g, "op": o, "count": c}
                                for (g, o), c in self.ops.most_common()],
            "duplicates": self.duplicates,
            "events": self.events,
            "events_dropped": self.dropped_events,
        }


def render(summary: dict[str, Any], tabulate: Any, when: Any) -> str:
    """The Corosync part of ``--stats`` as text tables (each well under 100 columns)."""
    parts: list[str] = []
    if summary["by_service"]:
        rows = [[k, v] for k, v in summary["by_service"].items()]
        parts.append("\nCorosync messages by service (each mcast once)\n" + tabulate(
            rows, headers=["service function", "count"], tablefmt="simple"))
    if summary["by_pacemaker_op"]:
        by_group: dict[str, list[str]] = {}
        for item in summary["by_pacemaker_op"]:
            by_group.setdefault(item["group"], []).append(f"{item['op']} {item['count']}")
        rows = []
        for group, count in summary["by_cpg_group"].items():
            ops = by_group.get(group, [])
            line: list[str] = []
            for op in ops:  # wrap the operations at ~60 columns
                if line and len(", ".join(line + [op])) > 60:
                    rows.append([group, count, ", ".join(line)])
                    group, count, line = "", "", []
                line.append(op)
            rows.append([group, count, ", ".join(line)])
        parts.append("\nCPG groups (Pacemaker operations)\n" + tabulate(
            rows, headers=["group", "mcasts", "operations"], tablefmt="simple",
            disable_numparse=True))
    if summary["events"]:
        rows = [[when(e["time"]), e["event"], e["node"] if e["node"] is not None else "",
                 e["detail"][:56]] for e in summary["events"]]
        parts.append("\nCorosync and Pacemaker events\n" + tabulate(
            rows, headers=["time (UTC)", "event", "node", "detail"], tablefmt="simple",
            disable_numparse=True))
        if summary["events_dropped"]:
            parts.append(f"({summary['events_dropped']} more events not kept)")
    return "\n".join(parts)
