"""The corosync exec header, its services, and CPG's messages between nodes, sans-I/O.

Facts from corosync 3.1 (``exec/main.c``, ``exec/cpg.c``, ``exec/sync.c``, libqb's
``qb_ipc_request_header``) on x86_64, in the sender's byte order:

* Every message of group ``a`` starts with the exec header: i32 ``id`` at 0 and i32
  ``size`` (the whole message) at 8, each aligned to 8 (16 bytes). ``id`` is
  ``service << 16 | function``; services are numbered as corosync registers them.
* CPG structs align every member to 8: a group name (``mar_cpg_name_t``) is a u32 length
  at +0 and 128 bytes at +8 (136 in all); a message source is a node id at +0 and the
  sender's connection pointer (u64) at +8.
* Group ``sync`` carries corosync's sync protocol: barrier (0) and service_build (1), with
  the same header.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from hbtools.layout import REST, Field, Layout, LayoutError, aligned

__all__ = [
    "CPG_LAYOUTS",
    "EXEC_HEADER",
    "FUNCTIONS",
    "SERVICES",
    "DecodeError",
    "PartialAssembler",
    "decode",
]


class DecodeError(ValueError):
    """Bytes that are not a well-formed exec message."""


#: corosync's service ids (corotypes.h / service.c), in the exec header's high 16 bits.
SERVICES: Mapping[int, str] = MappingProxyType({
    0: "cmap", 1: "cfg", 2: "cpg", 3: "quorum", 4: "pload", 5: "votequorum", 6: "mon",
    7: "wd",
})
SERVICE_IDS: Mapping[str, int] = MappingProxyType({v: k for k, v in SERVICES.items()})

#: Exec (node-to-node) functions of each service, in the exec header's low 16 bits.
FUNCTIONS: Mapping[str, Mapping[int, str]] = MappingProxyType({
    "cmap": MappingProxyType({0: "mcast"}),
    "cfg": MappingProxyType({0: "ringreenable", 1: "killnode", 2: "shutdown",
                             3: "reload_config", 4: "crypto_reconfig"}),
    "cpg": MappingProxyType({0: "procjoin", 1: "procleave", 2: "joinlist", 3: "mcast",
                             4: "downlist_old", 5: "downlist", 6: "partial_mcast"}),
    "quorum": MappingProxyType({}),
    "pload": MappingProxyType({0: "start", 1: "mcast"}),
    "votequorum": MappingProxyType({0: "nodeinfo", 1: "reconfigure", 2: "qdevice_reg",
                                    3: "qdevice_reconfigure"}),
    "mon": MappingProxyType({}),
    "wd": MappingProxyType({}),
    # Not a service: group "sync" (sync.c) uses the header's id for its own messages.
    "sync": MappingProxyType({0: "barrier", 1: "service_build"}),
})

#: cpg.h: why a process joined or left a group (procjoin/procleave reason).
REASONS: Mapping[int, str] = MappingProxyType({
    0: "undefined", 1: "join", 2: "leave", 3: "nodedown", 4: "nodeup", 5: "procdown"})
#: ipc_cpg.h LIBCPG_PARTIAL_*: which piece of a message too big for one mcast.
PARTIAL_TYPES: Mapping[int, str] = MappingProxyType({1: "first", 2: "continued", 3: "last"})

EXEC_HEADER = Layout("exec_header", (
    *aligned("id", "i", "service << 16 | function"),
    *aligned("size", "i", "bytes of the whole message, header included"),
), "qb_ipc_request_header: in front of every corosync exec message")

CPG_NAME = Layout("mar_cpg_name", (
    Field("length", "I", "bytes of the name used"),
    Field("pad", "4s", "alignment to 8"),
    Field("value", "128s", "the group name (CPG_MAX_NAME_LENGTH), NUL padded"),
), "a CPG group name")

SOURCE = Layout("mar_message_source", (
    Field("nodeid", "I", "node the sending process runs on"),
    Field("pad", "4s", "alignment to 8"),
    Field("conn", "Q", "the sender's IPC connection (a pointer on its node)"),
), "who sent a CPG message")


def _u32(name: str, meaning: str) -> tuple[Field, ...]:
    """A mar_uint32_t aligned to 8: the value and its padding."""
    return aligned(name, "I", meaning)


PROCJOIN_FIELDS = (
    Field("group_name", CPG_NAME, "the group"),
    *_u32("pid", "process id of the member on its node"),
    *_u32("reason", "why (cpg.h CPG_REASON_*)"),
)
CPG_LAYOUTS: Mapping[str, Layout] = MappingProxyType({
    "procjoin": Layout("cpg_procjoin", PROCJOIN_FIELDS, "a process joins a CPG group"),
    "procleave": Layout("cpg_procleave", PROCJOIN_FIELDS, "a process leaves a CPG group"),
    "joinlist": Layout("cpg_joinlist", (
        # sent with a qb_ipc_response_header (24 bytes): one more aligned i32 than others
        *_u32("error", "qb_ipc_response_header.error (0)"),
        Field("entries", Layout("join_list_entry", (
            *_u32("pid", "process id of the member"),
            Field("group_name", CPG_NAME, "its group"),
        ), "one local member of one group, as a node announces at a membership change"),
              "every (process, group) of the sending node",
              count=None),
    ), "after a membership change: the sender's local members of every group"),
    "mcast": Layout("cpg_mcast", (
        Field("group_name", CPG_NAME, "the group"),
        *_u32("msglen", "bytes of the application message"),
        *_u32("pid", "sender's process id"),
        Field("source", SOURCE, "sender"),
        Field("message", REST, "the application message (Pacemaker's, in its groups)"),
    ), "a message to every member of a group"),
    "partial_mcast": Layout("cpg_partial_mcast", (
        Field("group_name", CPG_NAME, "the group"),
        *_u32("msglen", "bytes of the whole application message"),
        *_u32("fraglen", "bytes of this piece"),
        *_u32("pid", "sender's process id"),
        *_u32("type", "which piece (LIBCPG_PARTIAL_*)"),
        Field("source", SOURCE, "sender"),
        Field("message", REST, "this piece of the application message"),
    ), "one piece of a message too big for one mcast"),
    "downlist_old": Layout("cpg_downlist_old", (
        *_u32("left_nodes", "nodes gone"),
        Field("nodeids", REST, "PROCESSOR_COUNT_MAX u32 node ids, left_nodes used"),
    ), "corosync 1.x downlist"),
    "downlist": Layout("cpg_downlist", (
        *_u32("old_members", "members of the sender's previous ring"),
        *_u32("left_nodes", "nodes gone since then"),
        Field("nodeids", REST, "PROCESSOR_COUNT_MAX u32 node ids, left_nodes used"),
    ), "after a membership change: the nodes the sender saw leave"),
})
_JOIN_ENTRY = CPG_LAYOUTS["joinlist"].field("entries").fmt
assert isinstance(_JOIN_ENTRY, Layout)
_JOIN_ENTRY_SIZE = 144
MAX_JOIN_ENTRIES = 4096


def _cstring(raw: bytes, length: int | None = None) -> str:
    """A C char array as text: up to `length` (or the NUL), non-ASCII escaped."""
    if length is not None and 0 <= length <= len(raw):
        raw = raw[:length]
    raw = raw.split(b"\0", 1)[0]
    return raw.decode("ascii", "backslashreplace")


def group_name(record: Any) -> str:
    """The text of a decoded ``mar_cpg_name`` (Pacemaker counts the NUL: "cib\\0")."""
    return _cstring(record.value, record.length)


def _view(record: Any) -> dict[str, Any]:
    """JSON-ready fields of a CPG record: no padding, names as text, sources flattened."""
    out: dict[str, Any] = {}
    for f in record.layout.stored:
        if f.name.startswith("pad") or f.name in ("message", "nodeids", "entries"):
            continue
        value = getattr(record, f.name)
        if f.name == "group_name":
            out["group"] = group_name(value)
        elif f.name == "source":
            out["source_nodeid"] = value.nodeid
            out["source_conn"] = value.conn
        else:
            out[f.name] = value
    return out


def decode(data: bytes, endian: str, group: str = "a") -> dict[str, Any]:
    """One whole exec message: service and function by name, and the CPG fields.

    CPG mcast / partial_mcast payloads are left as bytes under ``message`` (the caller
    hands them to the application's codec, e.g. `hbtools.pcmk`).
    """
    head, offset = EXEC_HEADER.read(data, endian, DecodeError, "exec header")
    service_id, function_id = head.id >> 16 & 0xFFFF, head.id & 0xFFFF
    service = "sync" if group == "sync" else SERVICES.get(service_id, f"service{service_id}")
    function = FUNCTIONS.get(service, {}).get(function_id, f"function{function_id}")
    out: dict[str, Any] = {"service": service, "function": function, "exec_size": head.size}
    if head.size != len(data):
        out["exec_size_mismatch"] = len(data)
    layout = CPG_LAYOUTS.get(function) if service == "cpg" else None
    if layout is None:
        return out
    if function == "joinlist":
        entries = []
        offset += 8  # the response header's error field
        for start in range(offset, len(data) - _JOIN_ENTRY_SIZE + 1, _JOIN_ENTRY_SIZE):
            try:
                entry, _ = _JOIN_ENTRY.decode_from(data, start, endian)
            except LayoutError:
                break
            entries.append({"pid": entry.pid, "group": group_name(entry.group_name)})
            if len(entries) >= MAX_JOIN_ENTRIES:
                break
        out["entries"] = entries
        return out
    record, _ = layout.read(data, endian, DecodeError, f"cpg {function}", offset)
    out.update(_view(record))
    if "reason" in out:
        out["reason_name"] = REASONS.get(out["reason"], str(out["reason"]))
    if "type" in out and function == "partial_mcast":
        out["type_name"] = PARTIAL_TYPES.get(out["type"], str(out["type"]))
    if function in ("downlist", "downlist_old"):
        raw = record.nodeids
        count = min(record.left_nodes, len(raw) // 4)
        order = "<" if endian == "little" else ">"
        import struct

        out["nodeids"] = list(struct.unpack_from(f"{order}{count}I", raw))
    if function in ("mcast", "partial_mcast"):
        message = bytes(record.message)
        wanted = out["fraglen"] if function == "partial_mcast" else out["msglen"]
        if wanted != len(message):
            out["message_size_mismatch"] = len(message)
        out["message"] = message[:wanted]
    return out


class PartialAssembler:
    """Joins CPG partial_mcast pieces into the whole message, as libcpg does.

    Keyed by (source node, source connection, pid, group). Bounded: a message longer than
    `max_message` or more than `max_pending` unfinished messages are dropped (oldest first).
    """

    def __init__(self, max_pending: int = 64, max_message: int = 16 << 20) -> None:
        self.max_pending = max_pending
        self.max_message = max_message
        self._pending: OrderedDict[tuple[Any, ...], bytearray] = OrderedDict()

    def add(self, fields: Mapping[str, Any]) -> bytes | None:
        key = (fields["source_nodeid"], fields["source_conn"], fields["pid"], fields["group"])
        kind = fields.get("type_name")
        piece = fields["message"]
        if kind == "first":
            buf = bytearray(piece)
        else:
            existing = self._pending.pop(key, None)
            if existing is None:
                return None  # its first piece was not seen
            buf = existing + piece
        if len(buf) > self.max_message or len(buf) > fields["msglen"]:
            return None
        if kind == "last":
            return bytes(buf)
        self._pending[key] = buf
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
        return None
