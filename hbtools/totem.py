"""Corosync Totem SRP messages: decode and encode, both header generations, sans-I/O.

Corosync 3 (3.1.7 here) sends `struct totemsrp_message_header` (magic 0xC070, version 3,
4-byte node ids, 12-byte ring ids). tshark 4.0 only knows the Corosync 1.x/2.x layout
(endian detector 0xff22, 22-byte `totem_ip_address`es), so it rejects every Corosync 3
frame; this module decodes both. Every struct is declared once below as a field table
(see `hbtools.layout`); the decoder, the encoder, the record attributes, `to_dict()` and
the Wireshark export all come from those tables.

Byte order is the sender's: the magic (or the endian detector) read in the wrong order
tells us to swap, exactly as corosync itself decides whether to convert.

The tables follow the structs in corosync's exec/totemsrp.c; the 1.x/2.x ones follow
Wireshark's packet-corosync-totemsrp.c (two `totem_ip_address` per `srp_addr`, which is
what tshark checks our encoder against). Sizes seen on the wire for Corosync 3:
orf_token 57 + 16n, mcast 45 + payload, memb_merge_detect 29, memb_join 33 + 4(p+f),
memb_commit_token 41 + 28n, token_hold_cancel 25.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from hbtools import errors
from hbtools.layout import REST, Field, Layout, LayoutError, Record, record_type

__all__ = [
    "ENCAPSULATED",
    "LAYOUTS",
    "LEGACY_LAYOUTS",
    "TYPES",
    "DecodeError",
    "EncodeError",
    "LegacyMembEntry",
    "LegacyRingId",
    "LegacyRtrItem",
    "MembEntry",
    "Message",
    "RingId",
    "RtrItem",
    "SrpAddr",
    "TotemIpAddress",
    "decode",
    "decode_json",
    "encode",
    "is_mcast",
    "nodeid_of",
]


class DecodeError(errors.DecodeError):
    """The bytes are not one well-formed Totem SRP message (the only error decode raises)."""


class EncodeError(errors.EncodeError):
    """A field of the message does not fit its C type (the only error encode raises)."""


#: TOTEM_MH_MAGIC: first two bytes of every Corosync 3 message, in the sender's order.
MAGIC = 0xC070
#: TOTEM_MH_VERSION: the only header version Corosync 3 accepts.
VERSION = 3
#: ENDIAN_LOCAL: the 1.x/2.x header's byte-order detector, in the sender's order.
ENDIAN_DETECTOR = 0xFF22
#: Corosync's UDP ports for udp/udpu: mcastport - 1 (sending) and mcastport (5405).
PORTS = (5404, 5405)

#: enum message_type in totemsrp.c.
TYPES: Mapping[int, str] = MappingProxyType({
    0: "orf_token",
    1: "mcast",
    2: "memb_merge_detect",
    3: "memb_join",
    4: "memb_commit_token",
    5: "token_hold_cancel",
})
TYPE_CODES: Mapping[str, int] = MappingProxyType({v: k for k, v in TYPES.items()})

#: MESSAGE_ENCAPSULATED / MESSAGE_NOT_ENCAPSULATED; 0 in every message that is not mcast.
ENCAPSULATED: Mapping[int, str] = MappingProxyType({
    0: "not_mcast",
    1: "encapsulated",
    2: "not_encapsulated",
})

# --------------------------------------------------------------------------- Corosync 3

RING_ID = Layout("memb_ring_id", (
    Field("rep", "I", "node id of the ring's representative, the node that formed it"),
    Field("seq", "Q", "ring sequence number; grows with every new ring and is persisted "
                      "in /var/lib/corosync/ringid_<nodeid>"),
), "identity of a ring: corosync-quorumtool prints it as rep.seq with seq in hex")


def _rtr_item(ring_id: Layout, generation: str) -> Layout:
    """struct rtr_item of either generation (only the ring id's type differs)."""
    return Layout("rtr_item", (
        Field("ring_id", ring_id, "ring the missing message was sent on"),
        Field("seq", "I", "sequence number of the message to retransmit"),
    ), "one entry of the token's retransmission request list" + generation)


def _memb_entry(ring_id: Layout, generation: str) -> Layout:
    """struct memb_commit_token_memb_entry of either generation."""
    return Layout("memb_commit_token_memb_entry", (
        Field("ring_id", ring_id, "ring the member was on before this membership change"),
        Field("aru", "I", "all-received-up-to sequence number on the member's old ring"),
        Field("high_delivered", "I", "highest sequence number the member delivered"),
        Field("received_flg", "I",
              "1 when the member has received all messages of its old ring"),
    ), "one member's recovery state carried in the commit token" + generation)


RTR_ITEM = _rtr_item(RING_ID, "")
MEMB_ENTRY = _memb_entry(RING_ID, "")

RingId = record_type(RING_ID, "RingId", "A Corosync 3 `memb_ring_id`: `rep` and `seq`.")
RtrItem = record_type(RTR_ITEM, "RtrItem", "A Corosync 3 retransmission request.")
MembEntry = record_type(MEMB_ENTRY, "MembEntry", "A Corosync 3 commit-token member entry.")

HEADER = (
    Field("magic", "H", "TOTEM_MH_MAGIC; read byte-swapped it means the other byte order",
          const=MAGIC, base="hex"),
    Field("version", "B", "TOTEM_MH_VERSION", const=VERSION),
    Field("type", "B", "message type", values=TYPES),
    Field("encapsulated", "B", "mcast only: 1 encapsulated (recovery), 2 not encapsulated",
          values=ENCAPSULATED),
    Field("nodeid", "I", "node id of the sender"),
    Field("target_nodeid", "I", "addressed node (knet); corosync leaves it uninitialised "
                                "on udp/udpu, so any value occurs there"),
)

# ---------------------------------------------------------------- Corosync 1.x / 2.x

TOTEM_IP_ADDRESS = Layout("totem_ip_address", (
    Field("nodeid", "I", "node id"),
    Field("family", "H", "address family as the sender's OS numbers it (AF_INET is 2)"),
    Field("addr", "16s", "the address; an IPv4 address is followed by 12 padding bytes"),
), "a node address as corosync 1.x/2.x sends it")

SRP_ADDR_LEGACY = Layout("srp_addr", (
    Field("addr", TOTEM_IP_ADDRESS, "one address per redundant ring interface", count=2),
), "a processor address: INTERFACE_MAX (2) interface addresses")

RING_ID_LEGACY = Layout("memb_ring_id", (
    Field("rep", TOTEM_IP_ADDRESS, "address of the ring's representative"),
    Field("seq", "Q", "ring sequence number"),
), "identity of a ring in corosync 1.x/2.x")

RTR_ITEM_LEGACY = _rtr_item(RING_ID_LEGACY, " (1.x/2.x)")
MEMB_ENTRY_LEGACY = _memb_entry(RING_ID_LEGACY, " (1.x/2.x)")

TotemIpAddress = record_type(TOTEM_IP_ADDRESS, "TotemIpAddress",
                             "A 1.x/2.x `totem_ip_address`: nodeid, family, 16 address bytes.")
SrpAddr = record_type(SRP_ADDR_LEGACY, "SrpAddr",
                      "A 1.x/2.x `srp_addr`: two `TotemIpAddress`es in `addr`.")
LegacyRingId = record_type(RING_ID_LEGACY, "LegacyRingId",
                           "A 1.x/2.x `memb_ring_id`: `rep` is a `TotemIpAddress`.")
LegacyRtrItem = record_type(RTR_ITEM_LEGACY, "LegacyRtrItem",
                            "A 1.x/2.x retransmission request.")
LegacyMembEntry = record_type(MEMB_ENTRY_LEGACY, "LegacyMembEntry",
                              "A 1.x/2.x commit-token member entry.")

HEADER_LEGACY = (
    Field("type", "B", "message type", values=TYPES),
    Field("encapsulated", "B", "mcast only: 1 encapsulated (recovery), 2 not encapsulated",
          values=ENCAPSULATED),
    Field("endian_detector", "H", "ENDIAN_LOCAL; read byte-swapped it means the other order",
          const=ENDIAN_DETECTOR, base="hex"),
    Field("nodeid", "I", "node id of the sender"),
)


# ------------------------------------------------------------------- message bodies

def _bodies(
    srp_addr: str | Layout, ring_id: Layout, rtr_item: Layout, memb_entry: Layout
) -> dict[str, tuple[Field, ...]]:
    """The six message bodies; only the address and ring-id types differ by generation."""
    return {
        "orf_token": (
            Field("seq", "I", "highest message sequence number broadcast on the ring"),
            Field("token_seq", "I", "token sequence number: grows at every hop, so a node can "
                  "recognise a retransmitted or redundant token"),
            Field("aru", "I", "all-received-up-to: every node has every message up to it "
                              "(0xffffffff in the first token of a new ring)"),
            Field("aru_addr", "I", "node id of the node that last lowered aru"),
            Field("ring_id", ring_id, "ring the token circulates on"),
            Field("backlog", "I", "messages waiting to be sent, summed over the ring"),
            Field("fcc", "I", "flow control count: messages broadcast in the last rotation"),
            Field("retrans_flg", "i", "1 while messages are being retransmitted"),
            Field("rtr_list_entries", "i", "number of retransmission requests"),
            Field("rtr_list", rtr_item, "messages some node still misses",
                  count="rtr_list_entries"),
        ),
        "mcast": (
            Field("system_from", srp_addr, "originating node"),
            Field("seq", "I", "ring-wide message sequence number"),
            Field("this_seqno", "i", "sender's own message counter"),
            Field("ring_id", ring_id, "ring the message was sent on"),
            Field("node_id", "I", "sender's node id"),
            Field("guarantee", "i", "delivery guarantee requested (agreed)"),
            Field("payload", REST, "totempg data, or a whole mcast when encapsulated"),
        ),
        "memb_merge_detect": (
            Field("system_from", srp_addr, "representative looking for other rings"),
            Field("ring_id", ring_id, "sender's ring"),
        ),
        "memb_join": (
            Field("system_from", srp_addr, "node sending the join"),
            Field("proc_list_entries", "I", "number of processors the sender believes in"),
            Field("failed_list_entries", "I", "number of processors the sender believes failed"),
            Field("ring_seq", "Q", "highest ring sequence number the sender has seen"),
            Field("proc_list", srp_addr, "processors in the sender's view, in its order",
                  count="proc_list_entries"),
            Field("failed_list", srp_addr, "processors the sender considers failed",
                  count="failed_list_entries"),
        ),
        "memb_commit_token": (
            Field("token_seq", "I", "commit token sequence number"),
            Field("ring_id", ring_id, "the new ring being installed"),
            Field("retrans_flg", "I", "retransmission flag"),
            Field("memb_index", "i", "index in addr of the node that last forwarded it"),
            Field("addr_entries", "i", "number of members of the new ring"),
            Field("addr", srp_addr, "members of the new ring", count="addr_entries"),
            Field("memb_list", memb_entry, "each member's state on its previous ring",
                  count="addr_entries"),
        ),
        "token_hold_cancel": (
            Field("ring_id", ring_id, "ring whose token holder should stop holding"),
        ),
    }


_MEANINGS = {
    "orf_token": "ordering, reliability and flow control token",
    "mcast": "ring-ordered multicast message",
    "memb_merge_detect": "probe for other rings to merge with",
    "memb_join": "membership join message",
    "memb_commit_token": "membership commit token",
    "token_hold_cancel": "ask the token holder to stop holding the token",
}


def _message_layouts(
    header: tuple[Field, ...], bodies: dict[str, tuple[Field, ...]]
) -> Mapping[str, Layout]:
    layouts = {}
    for name, body in bodies.items():
        layout = Layout(name, header + body, _MEANINGS[name])
        layout.record_type = Message
        layouts[name] = layout
    return MappingProxyType(layouts)


class Message(Record):
    """One Totem SRP message; fields are attributes named as in corosync's structs.

    Build one for an injector with `Message("orf_token", nodeid=1, ring_id=RingId(...))`;
    fields left out are zero, as in a zeroed C struct. `version` is 3 for the Corosync 3
    header and None for the 1.x/2.x header (which carries no version number); `endian` is
    "little" or "big".
    """

    __slots__ = ("_endian",)
    _endian: str

    def __init__(
        self,
        type_name: str,
        *,
        endian: str = "little",
        version: int | None = VERSION,
        **fields: Any,
    ) -> None:
        if endian not in ("little", "big"):
            raise ValueError(f"endian must be 'little' or 'big', not {endian!r}")
        if version not in (VERSION, None):
            raise ValueError(f"version must be {VERSION} or None (1.x/2.x header)")
        table = LAYOUTS if version == VERSION else LEGACY_LAYOUTS
        layout = table.get(type_name)
        if layout is None:
            raise ValueError(f"unknown Totem message type {type_name!r}")
        if "type" in fields and fields["type"] != TYPE_CODES[type_name]:
            raise ValueError("type conflicts with type_name")
        fields["type"] = TYPE_CODES[type_name]
        if type_name == "mcast":
            fields.setdefault("encapsulated", 2)
        self._init(layout, fields)
        object.__setattr__(self, "_endian", endian)

    def _after_replace(self, original: Record) -> None:
        assert isinstance(original, Message)
        object.__setattr__(self, "_endian", original._endian)

    @property
    def type_name(self) -> str:
        return self._layout.name

    @property
    def endian(self) -> str:
        return self._endian

    @property
    def version(self) -> int | None:
        return None if self._layout is LEGACY_LAYOUTS.get(self._layout.name) else VERSION

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return Record.__eq__(self, other) and self._endian == other._endian

    def __hash__(self) -> int:
        return hash((Record.__hash__(self), self._endian))

    def __repr__(self) -> str:
        return f"{Record.__repr__(self)} <{self._endian}, version {self.version}>"

    def to_dict(self) -> dict[str, Any]:
        """Wire fields by the codec's names, led by `endian` and `type_name` (JSON-ready)."""
        return {"endian": self._endian, "type_name": self.type_name, **Record.to_dict(self)}


LAYOUTS: Mapping[str, Layout] = _message_layouts(
    HEADER, _bodies("I", RING_ID, RTR_ITEM, MEMB_ENTRY))
LEGACY_LAYOUTS: Mapping[str, Layout] = _message_layouts(
    HEADER_LEGACY, _bodies(SRP_ADDR_LEGACY, RING_ID_LEGACY, RTR_ITEM_LEGACY, MEMB_ENTRY_LEGACY))


# ------------------------------------------------------------------- recognition
# How a Totem message is recognised, declared once for every reader (decode, the
# dissector's detector, the fast path, the fault engine, the Lua export): scapy's
# bind_layers idea, "how you recognise me" lives with the layer.

#: The magic's two bytes as each byte order puts them on the wire.
MAGIC_BYTES: Mapping[bytes, str] = MappingProxyType({
    MAGIC.to_bytes(2, "little"): "little", MAGIC.to_bytes(2, "big"): "big"})
#: The 1.x/2.x endian detector's two bytes (offset 2) in each byte order.
DETECTOR_BYTES: Mapping[bytes, str] = MappingProxyType({
    ENDIAN_DETECTOR.to_bytes(2, "little"): "little",
    ENDIAN_DETECTOR.to_bytes(2, "big"): "big"})
#: Offset of the endian detector in the 1.x/2.x header (after type and encapsulated).
DETECTOR_OFFSET = 2
#: Size of the Corosync 3 header (13): nothing shorter is Totem on a foreign port.
HEADER_SIZE = sum(f.scalar_size() or 0 for f in HEADER)


def frame(data: bytes | bytearray | memoryview) -> tuple[bool, str, int] | None:
    """(legacy header, byte order, type code) as corosync judges the first bytes.

    None when the bytes carry neither the magic nor the endian detector. A Corosync 3
    header must also carry `VERSION`: `DecodeError` when it does not (or is cut short
    before the version), exactly what `decode` reports.
    """
    head = bytes(data[:4])
    endian = MAGIC_BYTES.get(head[:2])
    if endian is not None:
        if len(head) < 4:
            raise DecodeError(f"truncated Totem header: {len(head)} bytes", len(head))
        if head[2] != VERSION:
            raise DecodeError(f"unsupported Totem header version {head[2]}", 2)
        return False, endian, head[3]
    endian = DETECTOR_BYTES.get(head[2:4])
    if endian is not None:
        return True, endian, head[0]
    return None


def claims(data: bytes | bytearray | memoryview) -> bool:
    """On a Corosync port: is this Totem (else kronosnet, clear or encrypted)?

    Magic and version decide for Corosync 3: a message with a bad type or length is a
    malformed Totem message, not an "encrypted" knet packet (ciphertext matches these
    three bytes once in 2^24 packets). A 1.x/2.x header must also carry a known type and
    encapsulation value, since its marker sits at offset 2 and is weaker.
    """
    head = bytes(data[:4])
    if head[:2] in MAGIC_BYTES:
        return head[2:3] == bytes((VERSION,))
    if head[2:4] in DETECTOR_BYTES:
        return head[0] in TYPES and head[1] in ENCAPSULATED
    return False


def looks(data: bytes | bytearray | memoryview) -> bool:
    """On any other port: does the payload look enough like Totem to be shown as Totem?

    Stricter than `claims`: a known type too, and at least a Corosync 3 header's size.
    """
    head = bytes(data[:4])
    if len(data) < HEADER_SIZE or not claims(head):
        return False
    return (head[3] if head[:2] in MAGIC_BYTES else head[0]) in TYPES


def _sniff(data: bytes | memoryview) -> tuple[Mapping[str, Layout], str, int]:
    """Which header generation and byte order, and the type code, as corosync would judge."""
    found = frame(data)
    if found is None:
        raise DecodeError(
            "not a Totem SRP message: neither magic 0xc070 nor endian detector 0xff22 "
            f"(starts {bytes(data[:4]).hex()})", 0
        )
    legacy, endian, code = found
    return LEGACY_LAYOUTS if legacy else LAYOUTS, endian, code


def decode(data: bytes | bytearray | memoryview) -> Message:
    """Decode one whole Totem message (a UDP payload, or a knet data packet's user data).

    The message must be consumed to its exact length: trailing bytes are an error, because
    corosync never sends them and a dissector should notice a wrong layout rather than
    hide it.
    """
    data = bytes(data)
    table, endian, code = _sniff(data)
    name = TYPES.get(code)
    if name is None:
        raise DecodeError(f"unknown Totem message type {code}", 0 if table is LEGACY_LAYOUTS
                          else 3)
    layout = table[name]
    try:
        message, end = layout.decode_from(data, 0, endian)
    except LayoutError as exc:
        raise DecodeError(f"{name}: {exc}", exc.offset) from None
    if end != len(data):
        raise DecodeError(f"{name}: {len(data) - end} bytes after the end of the message",
                          end)
    assert isinstance(message, Message)
    object.__setattr__(message, "_endian", endian)
    return message


_MCAST = TYPE_CODES["mcast"]
#: (legacy header, byte order, type code) -> the compiled JSON view of that layout.
_JSON: dict[tuple[bool, str, int], Any] = {}


def is_mcast(data: bytes | bytearray | memoryview) -> bool:
    """An mcast of either header generation (its payload is read with state by totempg)."""
    try:
        found = frame(data)
    except DecodeError:
        return False
    return found is not None and found[2] == _MCAST


def decode_json(data: bytes, *, mcast: bool = True) -> tuple[str, int, str] | None:
    """``(type name, nodeid, JSON text of decode(data).to_dict())`` without building records.

    The same table as `decode`, compiled once into a function that fills a JSON template
    (`hbtools.layout.compile_json`): what a dissector prints for millions of packets.
    None for anything `decode` would refuse (then `decode` says why) and, with
    ``mcast=False``, for an mcast, whose payload a caller reads with totempg's state.
    """
    try:
        key = frame(data)
    except DecodeError:
        return None
    if key is None or (key[2] == _MCAST and not mcast):
        return None
    render = _JSON.get(key)
    if render is None:
        name = TYPES.get(key[2])
        if name is None:
            return None
        legacy, endian, _code = key
        layout = (LEGACY_LAYOUTS if legacy else LAYOUTS)[name]
        render = _JSON[key] = layout.json_reader(
            endian, f'"endian": "{endian}", "type_name": "{name}", ', ("nodeid",))
    found = render(data)
    if found is None:
        return None
    return TYPES[key[2]], found[1], found[0]


def encode(msg: Message) -> bytes:
    """The exact wire bytes of `msg` (`EncodeError`, a ValueError, if a field does not fit
    its C type)."""
    out = bytearray()
    try:
        msg.layout.encode_into(msg, msg.endian, out)
    except ValueError as exc:
        raise EncodeError(str(exc), len(out)) from None
    return bytes(out)


def nodeid_of(addr: int | Record) -> int:
    """Node id of an `srp_addr` or ring representative of either generation.

    Corosync 3 sends a bare node id; 1.x/2.x send address structs that carry one.
    """
    if isinstance(addr, int):
        return addr
    if addr.layout is SRP_ADDR_LEGACY:
        return int(addr.addr[0].nodeid)
    if addr.layout is TOTEM_IP_ADDRESS:
        return int(addr.nodeid)
    raise TypeError(f"not a node address: {addr!r}")
