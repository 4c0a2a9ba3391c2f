"""What a Totem ``mcast`` carries, all the way down: totempg, exec, CPG, Pacemaker.

`Stack` is the per-capture state a reader needs (totempg reassembly per sender, CPG
partial_mcast reassembly, and which mcasts were already seen: on knet every mcast is sent
once per receiver, and retransmitted copies repeat it). `Stack.mcast` takes one decoded
Totem mcast and returns the JSON-ready ``totempg`` fields for its row; `summary` flattens
them into the few keys filters and fault rules name (`SUMMARY_KEYS`).

Pure: bytes and decoded records in, dicts out; the codecs are `hbtools.totempg`,
`hbtools.cpg` and `hbtools.pcmk`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from hbtools import cpg, pcmk, totempg

__all__ = ["SUMMARY_KEYS", "Stack", "decode_message", "summary"]

#: Keys of a row's ``corosync`` summary (each a list: an mcast can pack several messages).
SUMMARY_KEYS: Mapping[str, str] = {
    "service": "corosync service of each message (cmap, cfg, cpg, votequorum, sync, ...)",
    "function": "exec function of each message (procjoin, mcast, downlist, nodeinfo, ...)",
    "cpg_group": "CPG group of each CPG message (cib, crmd, attrd, stonith-ng, ...)",
    "daemon": "Pacemaker daemon, by the CPG group (pacemaker-based, -controld, ...)",
    "pcmk_op": "what each Pacemaker message asks (cib_op, st_op, crm_task, task, subt or t)",
    "pcmk_t": "the XML root's t attribute",
    "pcmk_from": "Pacemaker sender node name",
    "pcmk_to": "Pacemaker destination node name ('' for every node)",
}
#: Mcasts remembered to recognise copies; a copy shows what its first sighting decoded.
SEEN_MAX = 512


def decode_message(message: bytes, endian: str, partials: cpg.PartialAssembler | None = None
                   ) -> dict[str, Any]:
    """One whole totempg message: groups, exec header, CPG and Pacemaker fields."""
    groups, body = totempg.split_groups(message, endian)
    out: dict[str, Any] = {"groups": groups}
    try:
        out.update(cpg.decode(body, endian, groups[0]))
    except cpg.DecodeError as exc:
        out["error"] = str(exc)
        return out
    payload = out.pop("message", None)
    if out.get("function") == "partial_mcast" and payload is not None:
        whole = partials.add({**out, "message": payload}) if partials is not None else None
        payload = whole
        out["reassembled"] = whole is not None
    group = out.get("group")
    if payload is not None:
        out["message_size"] = len(payload)
        daemon = pcmk.DAEMONS.get(group or "")
        if daemon is not None:
            out["daemon"] = daemon
            try:
                out["pcmk"] = pcmk.decode(payload, endian)
            except pcmk.DecodeError as exc:
                out["pcmk_error"] = str(exc)
    return out


def summary(totempg_fields: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The `SUMMARY_KEYS` of an mcast row, from its decoded ``totempg`` fields."""
    out: dict[str, list[Any]] = {key: [] for key in SUMMARY_KEYS}
    for m in totempg_fields.get("messages", ()):
        out["service"].append(m.get("service"))
        out["function"].append(m.get("function"))
        if "group" in m:
            out["cpg_group"].append(m["group"])
        if "daemon" in m:
            out["daemon"].append(m["daemon"])
        p = m.get("pcmk")
        if p is not None:
            out["pcmk_op"].append(pcmk.operation(p))
            out["pcmk_t"].append(p.get("t"))
            out["pcmk_from"].append(p["sender"]["uname"])
            out["pcmk_to"].append(p["host"]["uname"])
    return {k: v for k, v in out.items() if v}


class Stack:
    """The state of one capture's Corosync traffic above Totem (bounded)."""

    def __init__(self) -> None:
        self.assembler = totempg.Assembler()
        self.partials = cpg.PartialAssembler()
        self._seen: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()

    def mcast(self, message: Any) -> dict[str, Any]:
        """The ``totempg`` fields of a decoded Totem mcast (raises nothing on bad bytes)."""
        ring = message.ring_id
        key = (message.nodeid, getattr(ring, "rep", None), getattr(ring, "seq", None),
               message.seq, message.encapsulated)
        seen = self._seen.get(key)
        if seen is not None:
            self._seen.move_to_end(key)
            return {**seen, "duplicate": True}
        fields = self._first(message)
        self._seen[key] = fields
        while len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)
        return fields

    def _first(self, message: Any) -> dict[str, Any]:
        if message.encapsulated == 1:
            # Recovery: an old ring's mcast re-sent whole; it was decoded when first sent.
            return {"encapsulated": True}
        endian = message.endian
        try:
            packed = totempg.split(message.payload, endian)
        except totempg.DecodeError as exc:
            return {"error": str(exc)}
        fields: dict[str, Any] = packed.header()
        whole, dropped = self.assembler.add(message.nodeid, packed)
        messages = []
        for piece in whole:
            try:
                messages.append(decode_message(piece, endian, self.partials))
            except totempg.DecodeError as exc:
                messages.append({"error": str(exc)})
        fields["messages"] = messages
        pending = self.assembler.pending(message.nodeid)
        if pending:
            fields["pending"] = pending
        if dropped:
            fields["dropped"] = dropped
        return fields


def describe(row_summary: Mapping[str, list[Any]]) -> str:
    """A short text for a table row: ``crmd join_offer node1->node2`` per Pacemaker
    message, ``service function`` for the others (at most three, then ``+N``)."""
    parts: list[str] = []
    ops = iter(zip(row_summary.get("pcmk_op", ()), row_summary.get("pcmk_from", ()),
                   row_summary.get("pcmk_to", ()), strict=False))
    groups = iter(row_summary.get("cpg_group", ()))
    for service, function in zip(row_summary.get("service", ()),
                                 row_summary.get("function", ()), strict=False):
        if service == "cpg" and function in ("mcast", "partial_mcast"):
            group = next(groups, "?")
            if group in pcmk.DAEMONS:
                op, src, dst = next(ops, ("?", "?", "?"))
                parts.append(f"{group} {op} {src}->{dst or '*'}")
            else:
                parts.append(f"cpg {function} {group}")
        else:
            if service == "cpg" and function in ("procjoin", "procleave"):
                next(groups, None)
                function = f"{function} {row_summary.get('cpg_group', ['?'])[0]}"
            parts.append(f"{service} {function}")
    if len(parts) > 3:
        parts = parts[:3] + [f"+{len(parts) - 3}"]
    return ", ".join(parts)
