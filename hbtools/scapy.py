"""scapy layers for Heartbeat, Totem (both header generations) and kronosnet.

Import on demand (``from hbtools.scapy import HB, Totem, Knet``): scapy stays optional for
the rest of hbtools. Importing binds the layers to their UDP ports, so ``rdpcap`` shows
them::

    IP()/UDP(sport=694)/HB          Heartbeat, port 694 either way
    IP()/UDP()/Totem3OrfToken       Corosync udp/udpu (ports 5404, 5405)
    IP()/UDP()/Knet...Data/Totem... kronosnet links (5405 + link), Totem inside data

Nothing is declared twice. The Totem and knet layer classes are *generated* from the codecs'
field tables (``hbtools.totem.LAYOUTS``/``LEGACY_LAYOUTS``, ``hbtools.knet.LAYOUTS``, read
through ``hbtools.layout``): one class per message type, byte order and header generation,
with the same field names, struct formats, counts, constants and value names. Which class a
datagram gets is decided by the codecs' own sniffing (``dissectors.detect.corosync_kind``,
``knet.looks_clear`` and the Totem magic / endian detector). The Heartbeat layer has one
scapy field per entry of the Heartbeat field table (``hbtools.fields.FIELDS``) and builds
and dissects through ``hbtools.heartbeat.encode``/``decode`` themselves, so its bytes are the
codec's bytes, signatures included (``HB(...).sign(keys)``).

Two names differ from the codecs because scapy's ``Packet`` owns them: a field called
``time`` (knet ping timestamp) is ``time_`` here, and a ``REST`` field carrying another
message (Totem mcast ``payload``, knet ``userdata``) is the scapy payload (``Raw``, or
``Totem`` inside knet data) instead of a field. ``CODEC_NAMES`` maps them back.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from scapy.fields import (
    EnumField,
    Field,
    FieldLenField,
    FieldListField,
    PacketField,
    PacketListField,
    StrField,
    StrFixedLenField,
)
from scapy.layers.inet import UDP
from scapy.packet import Packet, Raw, bind_layers

from hbtools import heartbeat as _hb
from hbtools import knet as _knet
from hbtools import totem as _totem
from hbtools.dissectors.detect import KNET, TOTEM, corosync_kind
from hbtools.fields import FIELDS, Kind, WireType
from hbtools.layout import ENDIAN_PREFIX, Layout
from hbtools.layout import Field as LayoutField

__all__ = [
    "CODEC_NAMES",
    "HB",
    "HEARTBEAT_PORT",
    "Corosync",
    "Knet",
    "Totem",
    "knet_class",
    "totem_class",
]

HEARTBEAT_PORT = 694
#: Codec field names scapy cannot use as field names -> the name the layers use.
RENAMED: Mapping[str, str] = {"time": "time_"}
#: scapy name -> codec name, for code comparing a layer with the codec's record.
CODEC_NAMES: Mapping[str, str] = {v: k for k, v in RENAMED.items()}
#: REST fields that carry another message: they are the scapy payload, not a field.
_AS_PAYLOAD = frozenset({"payload", "userdata"})


def _scapy_name(name: str) -> str:
    return RENAMED.get(name, name)


# --------------------------------------------------------------------------- generic


class _Struct(Packet):
    """A nested C struct (ring id, address): ends where its fields end."""

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


def _fields_for(layout: Layout, endian: str, nested: Callable[[Layout], type[Packet]]) -> list[Any]:
    """scapy fields for one field table, in wire order, in the given byte order."""
    prefix = ENDIAN_PREFIX[endian]
    out: list[Any] = []
    for f in layout.fields:
        if f.is_rest and f.name in _AS_PAYLOAD:
            continue
        out.append(_field_for(layout, f, prefix, nested))
    return out


def _field_for(layout: Layout, f: LayoutField, prefix: str,
               nested: Callable[[Layout], type[Packet]]) -> Any:
    name = _scapy_name(f.name)
    if f.is_rest:
        return StrField(name, b"")
    if f.name in layout.counted_by:
        return FieldLenField(name, None, count_of=_scapy_name(layout.counted_by[f.name][0]),
                             fmt=_fmt(f.fmt, prefix))
    if f.is_array:
        count = f.count
        if isinstance(count, int):
            def count_from(_pkt: Packet, n: int = count) -> int:
                return n
        else:
            def count_from(pkt: Packet, c: str = _scapy_name(str(count))) -> int:
                return int(pkt.getfieldval(c))
        if f.nested is not None:
            return PacketListField(name, [], nested(f.nested), count_from=count_from)
        return FieldListField(name, [], _scalar("", f, prefix), count_from=count_from)
    if f.nested is not None:
        cls = nested(f.nested)
        return PacketField(name, cls(), cls)
    return _scalar(name, f, prefix)


def _fmt(fmt: Any, prefix: str) -> str:
    assert isinstance(fmt, str)
    return fmt if fmt[0] in "<>" else prefix + fmt


def _scalar(name: str, f: LayoutField, prefix: str) -> Any:
    assert isinstance(f.fmt, str)
    if f.fmt.endswith("s"):
        size = int(f.fmt.lstrip("<>")[:-1])
        return StrFixedLenField(name, bytes(size), length=size)
    default = f.const if f.const is not None else 0
    if f.values:
        return EnumField(name, default, dict(f.values), fmt=_fmt(f.fmt, prefix))
    return Field(name, default, _fmt(f.fmt, prefix))


def _apply_defaults(fields: list[Any], record: Any) -> list[Any]:
    """Scalar defaults from an empty record made by the codec's own constructor (type codes,
    mcast's ``encapsulated``, knet's ``frag_num``): the codec decides them, not this module."""
    for fld in fields:
        if isinstance(fld, PacketField | PacketListField | FieldListField | FieldLenField):
            continue
        value = getattr(record, CODEC_NAMES.get(fld.name, fld.name), None)
        if isinstance(value, int | bytes) and not isinstance(value, bool):
            fld.default = value
    return fields


def _class_name(*parts: str) -> str:
    return "".join(p.replace("_", " ").title().replace(" ", "") for p in parts)


# --------------------------------------------------------------------------- Totem

_TOTEM_CLASSES: dict[tuple[int | None, str, str], type[Packet]] = {}


class _Family(Packet):
    """A protocol whose datagrams get one generated class per message type: ``pkt[Totem]`` and
    ``haslayer(Knet)`` match every class of the family (match_subclass)."""

    match_subclass = True
    fields_desc: list[Any] = []

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        return cls._pick(_pkt) if _pkt else cls

    @classmethod
    def _pick(cls, data: bytes) -> type[Packet]:
        raise NotImplementedError


class Totem(_Family):
    """Any Totem SRP message: dissection picks the generated class for it.

    ``Totem(raw_bytes)`` or a UDP binding gives e.g. ``Totem3OrfToken`` (Corosync 3, little
    endian); build with those classes, or ``totem_class("orf_token", version=None,
    endian="big")`` for the 1.x/2.x header and the other byte order.
    """

    name = "Totem"

    @classmethod
    def _pick(cls, _pkt: bytes) -> type[Packet]:
        try:
            table, endian, code = _totem._sniff(_pkt)  # the codec's own judgement
        except _totem.DecodeError:
            return Raw
        type_name = _totem.TYPES.get(code)
        if type_name is None:
            return Raw
        return totem_class(type_name, version=None if table is _totem.LEGACY_LAYOUTS else 3,
                           endian=endian)


def totem_class(type_name: str, version: int | None = 3, endian: str = "little") -> type[Packet]:
    """The generated layer class of one Totem message type, header generation and byte order."""
    key = (version, endian, type_name)
    cls = _TOTEM_CLASSES.get(key)
    if cls is None:
        table = _totem.LAYOUTS if version == 3 else _totem.LEGACY_LAYOUTS
        layout = table[type_name]
        structs: dict[str, type[Packet]] = {}

        def nested(sub: Layout) -> type[Packet]:
            got = structs.get(sub.name)
            if got is None:
                got = structs[sub.name] = type(
                    _class_name("totem", str(version or "legacy"), endian, sub.name),
                    (_Struct,), {"name": sub.name, "fields_desc": _fields_for(sub, endian, nested)})
            return got

        gen = "3" if version == 3 else "Legacy"
        suffix = "" if endian == "little" else "BE"
        cls = type(f"Totem{gen}{_class_name(type_name)}{suffix}", (Totem,), {
            "name": f"Totem {type_name}" + ("" if version == 3 else " (1.x/2.x)"),
            "fields_desc": _apply_defaults(_fields_for(layout, endian, nested),
                                           _totem.Message(type_name, endian=endian,
                                                          version=version)),
            "codec_layout": layout,
            "endian": endian,
            "dispatch_hook": classmethod(lambda c, _pkt=None, *a, **k: c),
        })
        _TOTEM_CLASSES[key] = cls
    return cls


# --------------------------------------------------------------------------- kronosnet

_KNET_CLASSES: dict[str, type[Packet]] = {}


class Knet(_Family):
    """Any kronosnet packet: dissection picks the generated class (``KnetData``, ``KnetPing``,
    ...; ``KnetEncrypted`` when crypto hides it). A data packet's user data is its payload:
    ``Totem`` when it is a whole clear Totem message, else ``Raw``."""

    name = "Knet"

    @classmethod
    def _pick(cls, _pkt: bytes) -> type[Packet]:
        if not _knet.looks_clear(_pkt):
            return knet_class(_knet.ENCRYPTED)
        return knet_class(_knet.TYPES[_pkt[1]])


def _knet_payload(self: Packet, payload: bytes) -> type[Packet]:
    """What a knet data packet carries, decided as the codec decides (Packet._attach_totem)."""
    if (self.getfieldval("frag_num") == 1 and self.getfieldval("compress") == 0
            and corosync_kind(payload) == TOTEM):
        return Totem
    return Raw


def knet_class(type_name: str) -> type[Packet]:
    """The generated layer class of one knet packet type (or ``"encrypted"``)."""
    cls = _KNET_CLASSES.get(type_name)
    if cls is None:
        layout = _knet.LAYOUTS[type_name]
        attrs: dict[str, Any] = {
            "name": f"Knet {type_name}",
            "fields_desc": _apply_defaults(_fields_for(layout, "big", lambda sub: _Struct),
                                           _knet.Packet(type_name)),
            "codec_layout": layout,
            "dispatch_hook": classmethod(lambda c, _pkt=None, *a, **k: c),
        }
        if any(f.name in _AS_PAYLOAD for f in layout.fields):
            attrs["guess_payload_class"] = _knet_payload
        cls = type(f"Knet{_class_name(type_name)}", (Knet,), attrs)
        _KNET_CLASSES[type_name] = cls
    return cls


# scapy asks a class for dispatch_hook only in its own __dict__: give each family the shared one.
for _family in (Totem, Knet):
    _family.dispatch_hook = _Family.__dict__["dispatch_hook"]  # type: ignore[method-assign]


class Corosync(Packet):
    """A datagram on a Corosync port: Totem (udp/udpu) or kronosnet, by its first bytes."""

    name = "Corosync"
    fields_desc: list[Any] = []

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type[Packet]:
        if not _pkt:
            return Raw
        kind = corosync_kind(_pkt)
        return Totem._pick(_pkt) if kind == TOTEM else Knet._pick(_pkt) if kind == KNET else Raw


# --------------------------------------------------------------------------- Heartbeat


class _HBValue(Field):
    """One Heartbeat field's value as people write it: text, an int for numeric fields
    (written in the field's radix), bytes or a UUID for uuids, a list for list fields.
    ``None`` means absent. The bytes come from the codec, never from this field."""

    def __init__(self, name: str) -> None:
        Field.__init__(self, name, None, "B")

    def any2i(self, pkt: Packet | None, x: Any) -> Any:
        return x

    def i2repr(self, pkt: Packet | None, x: Any) -> str:
        if isinstance(x, bytes) and len(x) == 16 and self.name.endswith("uuid"):
            return str(uuid.UUID(bytes=x))
        return repr(x)

    def addfield(self, pkt: Packet, s: bytes, val: Any) -> bytes:  # HB.self_build does it
        return s

    def getfield(self, pkt: Packet, s: bytes) -> tuple[bytes, Any]:  # HB.do_dissect does it
        return s, None


def _wire_value(name: str, value: Any, message_type: str | None) -> tuple[Any, WireType]:
    """A people's value as the codec's field value and wire type (radix from the table)."""
    spec = FIELDS.get(name)
    wire_type = spec.wire_type if spec is not None else None
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        kind = spec.kind_in(message_type) if spec is not None else Kind.DEC_INT
        text = format(value, "x") if kind is Kind.HEX_INT else str(value)
        return text, WireType.STRING
    if isinstance(value, uuid.UUID):
        return value.bytes, WireType.BINARY
    if isinstance(value, str) and spec is not None and spec.kind is Kind.UUID:
        return uuid.UUID(value).bytes, WireType.BINARY
    if isinstance(value, list):
        return [str(v) for v in value], WireType.LIST
    if isinstance(value, bytes | bytearray):
        return bytes(value), wire_type if wire_type in (WireType.BINARY, WireType.COMPRESSED) \
            else WireType.BINARY
    if isinstance(value, _hb.Message):
        return value, WireType.STRUCT
    return str(value), wire_type or WireType.STRING


def _people_value(f: _hb.Field, message_type: str | None) -> Any:
    """The codec's field value as people read it; numbers only when they re-encode the same."""
    spec = FIELDS.get(f.name)
    if spec is not None and f.type is WireType.STRING and isinstance(f.value, str):
        kind = spec.kind_in(message_type)
        if kind in (Kind.HEX_INT, Kind.DEC_INT):
            try:
                number = int(f.value, 16 if kind is Kind.HEX_INT else 10)
            except ValueError:
                return f.value
            if _wire_value(f.name, number, message_type)[0] == f.value:
                return number
    return f.value


#: Fields set without an order of the caller's are written in the field table's order.
_TABLE_ORDER = {name: i for i, name in enumerate(FIELDS)}


class HB(Packet):
    """One Heartbeat message. ``HB(t="status", st="active", seq=5)``; ``.sign(keys)`` signs it.

    Fields are the Heartbeat field table's names; set ones are written in the order given
    (a dissected message keeps its wire order, unknown fields, format and trailer, so it
    rebuilds byte-exact). ``HB(...).sign(keys)`` signs as Heartbeat 3.0.6 does: an in-body
    ``auth`` field and the netstring trailer (``inline_auth=False``: the trailer only).
    ``wire_format`` ("netstring", the default, or "classic") is an option, not a field.
    """

    name = "Heartbeat"
    fields_desc = [_HBValue(spec.name) for spec in FIELDS.values()]

    def __init__(self, _pkt: bytes = b"", *args: Any, wire_format: str = "netstring",
                 extra: Mapping[str, Any] | None = None, **kargs: Any) -> None:
        _set = object.__setattr__  # scapy's __setattr__ would look for a field of that name
        _set(self, "_hb_message", None)
        _set(self, "_hb_keys", None)
        _set(self, "_hb_inline", True)
        _set(self, "_hb_format", wire_format)
        _set(self, "_hb_extra", dict(extra or {}))
        # scapy keeps fields in its own order; Heartbeat signs the order, so remember the caller's.
        _set(self, "_hb_order", [*kargs, *(extra or {})])
        _set(self, "_hb_seen", {})  # field values as dissected: unchanged ones need no re-encoding
        Packet.__init__(self, _pkt, *args, **kargs)

    def sign(self, keys: Any, inline_auth: bool = True) -> HB:
        """Sign with an ``AuthKeys`` (its active key) when built; returns self for chaining."""
        object.__setattr__(self, "_hb_keys", keys)
        object.__setattr__(self, "_hb_inline", inline_auth)
        self.clear_cache()
        return self

    _HB_STATE = ("_hb_message", "_hb_keys", "_hb_inline", "_hb_format", "_hb_extra", "_hb_order",
                 "_hb_seen")

    def _carry(self, clone: Packet) -> Packet:
        """scapy copies packets (``/``, ``copy``, building) knowing only fields: carry the rest."""
        for attr in self._HB_STATE:
            value = getattr(self, attr)
            object.__setattr__(clone, attr, value.copy() if isinstance(value, dict | list) else value)
        return clone

    def copy(self) -> Packet:
        return self._carry(Packet.copy(self))

    def clone_with(self, payload: Any = None, **kargs: Any) -> Packet:
        return self._carry(Packet.clone_with(self, payload, **kargs))

    def do_dissect(self, s: bytes) -> bytes:
        msg = _hb.decode(bytes(s))
        object.__setattr__(self, "_hb_message", msg)
        object.__setattr__(self, "_hb_format", msg.wire_format)
        message_type = msg.type
        for f in msg.fields:
            if f.name in FIELDS and f.name not in self.fields:
                self.fields[f.name] = _people_value(f, message_type)
        object.__setattr__(self, "_hb_seen", dict(self.fields))
        return b""

    def message(self) -> _hb.Message:
        """The codec's Message for the current field values."""
        base = self._hb_message
        msg = _hb.Message(list(base.fields) if base else [], self._hb_format,
                          base.trailer if base else None, base.nul_terminated if base else False)
        message_type = self.fields.get("t", msg.type)
        wanted = {**self.fields, **self._hb_extra}
        table_order = _TABLE_ORDER
        caller_order = {name: i for i, name in enumerate(self._hb_order)}
        order = sorted(wanted, key=lambda n: (n not in caller_order, caller_order.get(n, 0),
                                              table_order.get(n, len(table_order))))
        seen = self._hb_seen
        for name in order:
            value = wanted[name]
            if name in seen and seen[name] == value and name not in self._hb_extra:
                continue  # as dissected: the base message already has it, in place
            if value is None:
                msg.remove(name)
                continue
            wire, wire_type = _wire_value(name, value, message_type)
            if base is not None and name in base and base.get(name) == wire:
                continue  # unchanged: keep the wire type and place exactly as received
            msg.set(name, wire, wire_type)
        return msg

    def do_build(self) -> bytes:
        """scapy's do_build first clones the packet once per combination of volatile field
        values; a Heartbeat field holds plain values only, so build this one directly."""
        pkt = self.self_build()
        for transform in self.post_transforms:
            pkt = transform(pkt)
        return self.post_build(pkt, self.do_build_payload())

    def self_build(self) -> bytes:
        keys = self._hb_keys
        msg = self.message()
        if keys is None:
            return _hb.encode(msg)
        return _hb.encode(msg, keys, inline_auth=self._hb_inline)

    def mysummary(self) -> str:
        t = self.fields.get("t") or "?"
        return f"Heartbeat {t} from {self.fields.get('src') or '?'}"


# --------------------------------------------------------------------------- bindings

bind_layers(UDP, HB, dport=HEARTBEAT_PORT)
bind_layers(UDP, HB, sport=HEARTBEAT_PORT)
for _port in sorted({5404, *_knet.LINK_PORTS}):
    bind_layers(UDP, Corosync, dport=_port)
    bind_layers(UDP, Corosync, sport=_port)
for _type in _totem.TYPES.values():
    for _version in (3, None):
        for _endian in ("little", "big"):
            totem_class(_type, _version, _endian)
for _type in _knet.LAYOUTS:
    knet_class(_type)

Totem3OrfToken = totem_class("orf_token")
Totem3Mcast = totem_class("mcast")
Totem3MembJoin = totem_class("memb_join")
Totem3MembCommitToken = totem_class("memb_commit_token")
KnetData = knet_class("data")
KnetPing = knet_class("ping")
KnetEncrypted = knet_class(_knet.ENCRYPTED)
