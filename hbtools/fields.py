"""The Heartbeat field table: every known field and message type, declared once.

The decoder, the JSON output, the docs and the Wireshark Lua export all read this
table, so a field's wire type, radix and meaning can never disagree between them.
Facts come from Heartbeat 3.0.6 on the wire (see shared/PROTOCOL-NOTES.md) and from
cluster-glue's message library (the numeric type codes and newline substitutes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from types import MappingProxyType


class WireType(IntEnum):
    """The `(T)` digit in front of a field name: how its value is carried."""

    STRING = 0
    BINARY = 1
    STRUCT = 2
    LIST = 3
    COMPRESSED = 4
    #: Exists only in a sender's memory; on the wire it has become COMPRESSED.
    UNCOMPRESSED = 5


class Kind(Enum):
    """How a value is interpreted for people and JSON (the wire keeps it as text)."""

    TEXT = "text"
    HEX_INT = "hex"  # e.g. seq=2c is 44
    DEC_INT = "decimal"  # e.g. ttl=3
    UUID = "uuid"  # 16 raw bytes
    BYTES = "bytes"
    WORDS = "words"  # space separated names, with a trailing space
    SIGNATURE = "signature"  # "<key number> <hex digest>"
    STRUCT = "struct"
    LIST = "list"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    wire_type: WireType
    kind: Kind
    meaning: str
    #: Values Heartbeat is known to send, for docs and filters (empty: free form).
    values: tuple[str, ...] = ()
    #: Some fields change radix with the message type (firstseq in NS_nak_rexmit).
    kind_by_type: Mapping[str, Kind] = field(default_factory=dict)

    def kind_in(self, message_type: str | None) -> Kind:
        if message_type is not None and message_type in self.kind_by_type:
            return self.kind_by_type[message_type]
        return self.kind


@dataclass(frozen=True)
class MessageTypeSpec:
    name: str
    meaning: str
    #: Types starting with NS_ are outside the sequence space: they carry no seq.
    sequenced: bool


S, B, L, C = WireType.STRING, WireType.BINARY, WireType.LIST, WireType.COMPRESSED

_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("t", S, Kind.TEXT, "message type"),
    FieldSpec("st", S, Kind.TEXT, "node status",
              ("init", "up", "active", "dead", "ping")),
    FieldSpec("dt", S, Kind.HEX_INT, "sender's deadtime in milliseconds"),
    FieldSpec("protocol", S, Kind.DEC_INT, "protocol version"),
    FieldSpec("src", S, Kind.TEXT, "sending node name (uname -n)"),
    FieldSpec("dest", S, Kind.TEXT, "node the message is addressed to"),
    FieldSpec("srcuuid", B, Kind.UUID, "sending node's uuid"),
    FieldSpec("destuuid", B, Kind.UUID, "addressed node's uuid"),
    FieldSpec("seq", S, Kind.HEX_INT, "per-sender sequence number, from 1 at each start"),
    FieldSpec("hg", S, Kind.HEX_INT, "sender's generation: epoch seconds at first start, +1 per restart"),
    FieldSpec("ts", S, Kind.HEX_INT, "send time in epoch seconds, kept in retransmissions"),
    FieldSpec("ld", S, Kind.TEXT, "sender's load average (text of /proc/loadavg)"),
    FieldSpec("ttl", S, Kind.DEC_INT, "hop ttl, number of nodes + 1 (carried, not enforced)"),
    FieldSpec("auth", S, Kind.SIGNATURE, "in-body signature over the other fields"),
    FieldSpec("ackseq", S, Kind.HEX_INT, "highest sequence number acknowledged"),
    FieldSpec("firstseq", S, Kind.DEC_INT, "first sequence number asked for again",
              kind_by_type={"NS_nak_rexmit": Kind.HEX_INT}),
    FieldSpec("lastseq", S, Kind.DEC_INT, "last sequence number asked for again"),
    FieldSpec("rsc_hold", S, Kind.TEXT, "resources the sender holds",
              ("none", "local", "foreign", "all")),
    FieldSpec("rtype", S, Kind.TEXT, "resource message kind", ("full",)),
    FieldSpec("isstable", S, Kind.DEC_INT, "1 when the sender's resource state is stable",
              ("0", "1")),
    FieldSpec("info", S, Kind.TEXT, "free text: reason or comment"),
    FieldSpec("nodelist", S, Kind.WORDS, "node names, space separated"),
    FieldSpec("delnodelist", S, Kind.WORDS, "deleted node names, space separated"),
    FieldSpec("ipaddr", S, Kind.TEXT, "IP resource, e.g. IPaddr::198.18.0.100/24/eth0"),
    FieldSpec("weown", S, Kind.TEXT, "whether the sender owns the address", ("yes", "no")),
    FieldSpec("ok", S, Kind.TEXT, "result of an ip-request", ("OK",)),
    FieldSpec("node", S, Kind.TEXT, "node a stonith or membership message is about"),
    FieldSpec("result", S, Kind.TEXT, "stonith or API result",
              ("OK", "badhost", "bad", "n_stnth", "unneeded")),
    FieldSpec("from_id", S, Kind.TEXT, "sending API client id"),
    FieldSpec("to_id", S, Kind.TEXT, "addressed API client id"),
    FieldSpec("pid", S, Kind.DEC_INT, "process id of an API client"),
    FieldSpec("reqtype", S, Kind.TEXT, "API request type"),
    FieldSpec("ifname", S, Kind.TEXT, "interface name"),
    FieldSpec("ifstat", S, Kind.TEXT, "interface status", ("up", "dead")),
    FieldSpec("weight", S, Kind.DEC_INT, "node weight (setweight)"),
    FieldSpec("site", S, Kind.TEXT, "node site (setsite)"),
    FieldSpec("num_ping", S, Kind.DEC_INT, "ping nodes the sender reaches (ipfail's num_ping_nodes)"),
    FieldSpec("_compressed_payload", B, Kind.BYTES,
              "whole message compressed (traditional compression)"),
    FieldSpec("_compression_algorithm", S, Kind.TEXT, "compression algorithm",
              ("zlib", "bz2")),
    FieldSpec("_compressed", C, Kind.BYTES, "compressed struct field"),
)

#: Every known field by name. Unknown names still decode: see `spec_for`.
FIELDS: Mapping[str, FieldSpec] = MappingProxyType({f.name: f for f in _FIELDS})

_TYPES: tuple[MessageTypeSpec, ...] = (
    MessageTypeSpec("status", "heartbeat: the sender is alive, with its status", True),
    MessageTypeSpec("NS_st", "status outside the sequence space", False),
    MessageTypeSpec("NS_ackmsg", "acknowledgement of a peer's stream up to ackseq", False),
    MessageTypeSpec("NS_rexmit", "request to retransmit firstseq..lastseq", False),
    MessageTypeSpec("NS_nak_rexmit", "refusal: the asked message is no longer held", False),
    MessageTypeSpec("reqnodes", "request for the node list", True),
    MessageTypeSpec("repnodes", "reply with the node list", True),
    MessageTypeSpec("starting", "the sender is starting", True),
    MessageTypeSpec("resource", "the sender's resource state (rsc_hold)", True),
    MessageTypeSpec("ask_resources", "request for a peer's resources", True),
    MessageTypeSpec("ip-request", "request to take an IP resource", True),
    MessageTypeSpec("ip-request-resp", "answer to an ip-request", True),
    MessageTypeSpec("hbshutdown", "the sender is shutting down", True),
    MessageTypeSpec("shutdone", "the sender finished shutting down", True),
    MessageTypeSpec("stonith", "result of fencing a node", True),
    MessageTypeSpec("ifstat", "interface status change", True),
    MessageTypeSpec("query-cstatus", "query of a client's status", True),
    MessageTypeSpec("respond-cstatus", "answer with a client's status", True),
    MessageTypeSpec("addnode", "node added to the cluster", True),
    MessageTypeSpec("delnode", "node removed from the cluster", True),
    MessageTypeSpec("setweight", "node weight change", True),
    MessageTypeSpec("setsite", "node site change", True),
    MessageTypeSpec("hbapi-req", "API client request", True),
    MessageTypeSpec("hbapi-resp", "API client response", True),
    MessageTypeSpec("hbapi-clstat", "API client status", True),
    MessageTypeSpec("crmd", "Pacemaker CRM message", True),
    MessageTypeSpec("attrd", "Pacemaker attribute daemon message", True),
    MessageTypeSpec("num_ping_nodes", "how many ping nodes the sender reaches (ipfail)", True),
)

MESSAGE_TYPES: Mapping[str, MessageTypeSpec] = MappingProxyType({t.name: t for t in _TYPES})

#: In the classic format a newline inside a string value is written as this byte.
STRING_NEWLINE_SUBSTITUTE = 0x13
#: A nested struct's text has its newlines replaced by a byte that depends on the
#: nesting depth, so that a parent can still split its own lines.
STRUCT_NEWLINE_SUBSTITUTES: tuple[int, ...] = (
    20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 15, 16, 17, 18,
)

#: Sizes Heartbeat enforces: a datagram on the wire, and a decompressed message.
MAX_WIRE_MESSAGE = 256 * 1024
MAX_UNCOMPRESSED_MESSAGE = 2 * 1024 * 1024


def spec_for(name: str, wire_type: WireType = WireType.STRING) -> FieldSpec:
    """Known spec, or a neutral one so unknown fields decode and render anyway."""
    known = FIELDS.get(name)
    if known is not None:
        return known
    fallback_kind = {
        WireType.STRING: Kind.TEXT,
        WireType.BINARY: Kind.BYTES,
        WireType.STRUCT: Kind.STRUCT,
        WireType.LIST: Kind.LIST,
        WireType.COMPRESSED: Kind.BYTES,
        WireType.UNCOMPRESSED: Kind.STRUCT,
    }[wire_type]
    return FieldSpec(name, wire_type, fallback_kind, "unknown field")
