"""Fast paths: the common messages decoded straight to their JSON text.

Profiling ``hbtool decode`` showed the codecs' object models (a `Message` with `Field`
tuples, then `to_json_fields`; a `Record` per struct, then `to_dict`) cost 30-40 us per
packet, ten times the budget for beating tshark. The fast paths produce the same JSON
text without building those objects:

* Heartbeat: a message is a sequence of items (netstrings or classic lines) and most
  items repeat from one message to the next (``t=status``, ``src=node1``, the uuid...).
  Items are cut out with one regular expression and each distinct item is rendered to
  its JSON fragment once, by the field table (`hbtools.fields`), then looked up.
* Totem and kronosnet: each struct layout declared in `hbtools.totem` / `hbtools.knet`
  is compiled once into a small Python function that reads whole runs of fields with
  one ``struct`` call and fills a JSON template.

Neither declares a field: both read the codecs' tables. Anything unusual (nested or
compressed Heartbeat fields, type-dependent radix, duplicate names, knet fragments,
malformed bytes) falls back to the codec itself, so error messages and odd cases are the
codec's. The tests check that the fast text equals ``json.dumps`` of the codec's output.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import uuid
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from hbtools.dissectors.decoders import Decoders
from hbtools.dissectors.records import AUTH_OK, AUTH_UNCHECKED, Record

from hbtools import knet, totem
from hbtools.fields import (
    FIELDS,
    MAX_WIRE_MESSAGE,
    STRING_NEWLINE_SUBSTITUTE,
    Kind,
    WireType,
    spec_for,
)
from hbtools.heartbeat import CLASSIC_END, CLASSIC_START, NETSTRING_END, NETSTRING_START

__all__ = ["FastDecoders", "HeartbeatFast", "compile_layout"]

_jdump = json.dumps
_jstr = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
_TEXT = ("utf-8", "surrogateescape")


class _Fallback(Exception):
    """This message needs the codec (unusual, or malformed)."""


# -- Heartbeat -------------------------------------------------------------------------

#: Fields whose radix depends on the message type: their fragment cannot be cached by
#: item alone, so messages carrying them take the codec path (they are rare NS_ types).
_TYPE_DEPENDENT = frozenset(name for name, spec in FIELDS.items() if spec.kind_by_type)
#: The compression envelope is unwrapped by the codec path.
_CODEC_ONLY = _TYPE_DEPENDENT | {"_compressed_payload"}

_NS_TRAILER = re.compile(rb"(0|[1-9][0-9]{0,9}):([^,]*),(\x00?)")
_HEX = re.compile(r"-?[0-9a-fA-F]+")
_DEC = re.compile(r"-?[0-9]+")
_CACHE_MAX = 1 << 15
#: The caches are bounded by bytes as well as entries (issue 12: 1,000 unique 60 KB fields
#: made 571 MiB): an item, head or shape longer than these is rendered but never stored, and
#: the item cache is emptied when what it holds passes `_CACHE_BYTES`.
_ITEM_CACHE_MAX = 1024
_HEAD_CACHE_MAX = 256
_SHAPE_CACHE_MAX = 2048
_CACHE_BYTES = 4 << 20
_NEWLINE_SUBSTITUTE = bytes((STRING_NEWLINE_SUBSTITUTE,))

# An entry: (JSON fragment '"name": value', name, value as carried (str or bytes))
_Entry = tuple[str, str, Any]

# How a value is rendered, decided once per item head (the bytes before "=")
_K_TEXT, _K_HEX, _K_DEC, _K_UUID, _K_BYTES = range(5)
#: A head whose items missed the cache this often carries a fresh value in every
#: message (seq, auth...): its items are rendered but no longer stored.
_VOLATILE_AFTER = 64


class _Head(tuple[str, str, int, int, int, bool]):
    """(name, JSON key text, kind, declared length, offset of the length's end, classic).

    A plain tuple subclass: it is read millions of times, so attribute access is by
    index in the hot code.
    """


def _kind_of(name: str, wire_type: WireType) -> int:
    """The JSON rendering the field table gives this field (as the codec's to_json_fields)."""
    if name in _CODEC_ONLY:
        raise _Fallback(name)
    kind = spec_for(name, wire_type).kind
    if wire_type is WireType.BINARY:
        return _K_UUID if kind is Kind.UUID else _K_BYTES
    if kind is Kind.HEX_INT:
        return _K_HEX
    if kind is Kind.DEC_INT:
        return _K_DEC
    return _K_TEXT


def _fragment(kind: int, key: str, value: Any) -> str:
    """``"name": value`` exactly as json.dumps writes it for the codec's rendering."""
    if kind == _K_TEXT:
        return key + _jstr(value)
    if kind == _K_HEX:
        return key + (str(int(value, 16)) if _HEX.fullmatch(value) else _jstr(value))
    if kind == _K_DEC:
        return key + (str(int(value, 10)) if _DEC.fullmatch(value) else _jstr(value))
    if kind == _K_UUID and len(value) == 16:
        return f'{key}"{uuid.UUID(bytes=value)}"'
    return f'{key}"{value.hex()}"'


class _Items(dict[bytes, _Entry]):
    """Item bytes -> entry for one wire format; validates and renders on a miss.

    Netstring: the message is cut at every comma, so an item whose value holds a comma
    arrives in pieces; its first piece is always shorter than its length prefix says and
    fails the length check, which sends the message to the codec. A piece that passes is
    therefore a whole item, exactly as the netstring reader would have read it.
    Classic: an item is one line.
    """

    def __init__(self, classic: bool) -> None:
        super().__init__()
        self.classic = classic
        self.heads: dict[bytes, _Head] = {}
        self.misses: dict[bytes, int] = {}
        self.volatile: set[bytes] = set()
        self.bytes = 0  # what the cached items and their renderings hold, roughly

    def __missing__(self, item: bytes) -> _Entry:
        equals = item.find(b"=")
        if equals < 0:
            raise _Fallback("no '='")
        raw_head = item[:equals]
        head = self.heads.get(raw_head)
        if head is None:
            head = self._head(raw_head)
        name, key, kind, length, colon, classic = head
        raw = item[equals + 1 :]
        if classic:
            if kind >= _K_UUID:
                try:
                    value: Any = base64.b64decode(raw, validate=True)
                except (binascii.Error, ValueError):
                    raise _Fallback("base64") from None
                if base64.b64encode(value) != raw:
                    raise _Fallback("base64 not canonical")
            else:
                value = raw.replace(_NEWLINE_SUBSTITUTE, b"\n").decode(*_TEXT)
        else:
            if length != len(item) - colon - 1:
                raise _Fallback("netstring length")
            value = raw if kind >= _K_UUID else raw.decode(*_TEXT)
        # the rendering of _fragment, inlined: this runs for every fresh seq and signature
        if kind == _K_TEXT:
            entry = (key + _jstr(value), name, value)
        elif kind == _K_HEX and _HEX.fullmatch(value):
            entry = (key + str(int(value, 16)), name, value)
        else:
            entry = (_fragment(kind, key, value), name, value)
        if raw_head in self.volatile or len(item) > _ITEM_CACHE_MAX:
            return entry
        misses = self.misses.get(raw_head, 0) + 1
        if misses > _VOLATILE_AFTER:
            self.volatile.add(raw_head)
            return entry
        self.misses[raw_head] = misses
        cost = 2 * len(item) + len(entry[0]) + 200  # item, value, rendering, the objects
        if len(self) >= _CACHE_MAX or self.bytes + cost > _CACHE_BYTES:
            self.clear()
            self.bytes = 0
        self.bytes += cost
        self[item] = entry
        return entry

    def _head(self, raw_head: bytes) -> _Head:
        if self.classic:
            if raw_head[:1] == b"(":
                # only binary (base64) is handled here; other typed lines go to the codec
                if raw_head[:3] != b"(1)" or len(raw_head) == 3:
                    raise _Fallback("typed classic line")
                name = raw_head[3:].decode(*_TEXT)
                wire_type = WireType.BINARY
            else:
                if not raw_head:
                    raise _Fallback("empty name")
                name = raw_head.decode(*_TEXT)
                wire_type = WireType.STRING
            length = colon = -1
        else:
            colon = raw_head.find(b":")
            digits = raw_head[:colon]
            if not 0 < colon <= 10 or not digits.isdigit() or (colon > 1 and digits[0] == 0x30):
                raise _Fallback("netstring length")
            typed = raw_head[colon + 1 : colon + 4]
            if typed not in (b"(0)", b"(1)") or len(raw_head) == colon + 4:
                raise _Fallback("not a plain string or binary field")
            name = raw_head[colon + 4 :].decode(*_TEXT)
            wire_type = WireType.BINARY if typed == b"(1)" else WireType.STRING
            length = int(digits)
        head = _Head((name, _jdump(name) + ": ", _kind_of(name, wire_type), length, colon,
                      self.classic))
        if len(raw_head) > _HEAD_CACHE_MAX:
            return head
        if len(self.heads) >= 4096:
            self.heads.clear()
            self.misses.clear()
            self.volatile.clear()
        self.heads[raw_head] = head
        return head


_frag = itemgetter(0)
_name = itemgetter(1)


class HeartbeatFast:
    """Heartbeat payload -> (type, node, fields JSON text), or _Fallback."""

    def __init__(self) -> None:
        self.items = _Items(classic=False)
        self.lines = _Items(classic=True)
        #: field names in order -> positions of t and src (-1: absent); messages of one
        #: type from one node share a shape, so this is looked up, not recomputed
        self.shapes: dict[tuple[str, ...], tuple[int, int]] = {}

    def _shape(self, names: tuple[str, ...]) -> tuple[int, int]:
        if len(set(names)) != len(names):
            raise _Fallback("repeated field name")  # the codec renders them as name#2
        shape = (names.index("t") if "t" in names else -1,
                 names.index("src") if "src" in names else -1)
        if sum(map(len, names)) > _SHAPE_CACHE_MAX:
            return shape
        if len(self.shapes) >= 4096:
            self.shapes.clear()
        self.shapes[names] = shape
        return shape

    def __call__(self, payload: bytes) -> tuple[str | None, str | None, str]:
        if len(payload) > MAX_WIRE_MESSAGE:
            raise _Fallback("size")
        head = payload[:4]
        if head == NETSTRING_START:
            end = payload.find(NETSTRING_END, 4)
            if end < 0:
                raise _Fallback("no end")
            trailer = _NS_TRAILER.fullmatch(payload, end + 4)
            if trailer is None:
                rest = payload[end + 4 :]
                if rest and rest != b"\x00":
                    raise _Fallback("trailer")
            elif int(trailer.group(1)) != len(trailer.group(2)):
                raise _Fallback("trailer length")
            parts = payload[4:end].split(b",")
            if parts.pop():
                raise _Fallback("no comma before %%%")
            entries = list(map(self.items.__getitem__, parts))
        elif head == CLASSIC_START:
            stop = len(payload) - (5 if payload[-1:] == b"\x00" else 4)
            if stop < 4 or payload[stop : stop + 4] != CLASSIC_END:
                raise _Fallback("classic end")
            if stop == 4:
                entries = []
            else:
                if payload[stop - 1] != 0x0A:
                    raise _Fallback("classic line end")
                entries = list(map(self.lines.__getitem__,
                                   payload[4 : stop - 1].split(b"\n")))
        else:
            raise _Fallback("opening")
        names = tuple(map(_name, entries))
        shape = self.shapes.get(names)
        if shape is None:
            shape = self._shape(names)
        kind = entries[shape[0]][2] if shape[0] >= 0 else None
        node = entries[shape[1]][2] if shape[1] >= 0 else None
        return (
            kind if isinstance(kind, str) else None,
            node if isinstance(node, str) else None,
            "{" + ", ".join(map(_frag, entries)) + "}",
        )


# -- compiled struct layouts (Totem, kronosnet) -------------------------------------------

_NEUTRAL = frozenset("Bbcx?s")  # codes whose byte order does not matter


class _Gen:
    """Generates the source of one decoding function for a layout and byte order."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.lines: list[str] = []
        self.names: dict[str, Any] = {}
        self.counter = 0
        self.run: list[tuple[str, str]] = []  # pending (struct code with order, var)
        self.run_order = ""
        self.consts: list[tuple[str, int]] = []

    def var(self, stem: str = "v") -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def emit(self, line: str, indent: int) -> None:
        self.lines.append("    " * indent + line)

    def leaf(self, fmt: str, indent: int) -> str:
        """Queue one scalar read; returns the variable that will hold it."""
        if fmt[0] in "<>":
            order, code = fmt[0], fmt[1:]
        else:
            order, code = self.prefix, fmt
        if code[-1] in _NEUTRAL:
            order = ""
        if order and self.run_order and order != self.run_order:
            self.flush(indent)
        if order:
            self.run_order = order
        name = self.var()
        self.run.append((code, name))
        return name

    def flush(self, indent: int) -> None:
        if not self.run:
            return
        fmt = (self.run_order or "<") + "".join(code for code, _ in self.run)
        codec = struct.Struct(fmt)
        sname = self.var("S")
        self.names[sname] = codec.unpack_from
        targets = ", ".join(name for _, name in self.run)
        self.emit(f"{targets}, = {sname}(data, off)", indent)
        self.emit(f"off += {codec.size}", indent)
        for name, value in self.consts:
            self.emit(f"if {name} != {value!r}: raise _Bad", indent)
        self.run = []
        self.run_order = ""
        self.consts = []

    def layout(self, layout: Any, indent: int, top: dict[str, str] | None = None
               ) -> tuple[str, list[str]]:
        """Reads for one instance; returns (JSON template, argument expressions)."""
        parts: list[str] = []
        args: list[str] = []
        counts: dict[str, str] = {}
        for f in layout.fields:
            key = json.dumps(f.name).replace("%", "%%")
            nested = f.nested
            if f.is_rest:
                self.flush(indent)
                name = self.var("r")
                self.emit(f"{name} = data[off:].hex()", indent)
                self.emit("off = len(data)", indent)
                parts.append(f'{key}: "%s"')
                args.append(name)
                continue
            if f.is_array:
                if isinstance(f.count, int):
                    count_expr = str(f.count)
                else:
                    count_expr = counts[f.count]
                self.flush(indent)
                self.emit(f"if {count_expr} < 0: raise _Bad", indent)
                items = self.var("a")
                self.emit(f"{items} = []", indent)
                self.emit(f"for _ in range({count_expr}):", indent)
                if nested is not None:
                    tmpl, targs = self.layout(nested, indent + 1)
                else:
                    tmpl, targs = self._scalar(f.fmt, indent + 1)
                self.flush(indent + 1)
                self.emit(f"{items}.append({tmpl!r} % ({', '.join(targs)},))", indent + 1)
                parts.append(f"{key}: [%s]")
                args.append(f"', '.join({items})")
                continue
            if nested is not None:
                tmpl, targs = self.layout(nested, indent)
                parts.append(f"{key}: {tmpl}")
                args.extend(targs)
                continue
            tmpl, targs = self._scalar(f.fmt, indent)
            name = targs[0]
            if f.const is not None:
                self.consts.append((name, f.const))
            if f.name in layout.counted_by:
                counts[f.name] = name
            if top is not None:
                top[f.name] = name
            parts.append(f"{key}: {tmpl}")
            args.extend(targs)
        return "{" + ", ".join(parts) + "}", args

    def _scalar(self, fmt: str, indent: int) -> tuple[str, list[str]]:
        name = self.leaf(fmt, indent)
        if fmt.endswith("s"):
            return '"%s"', [f"{name}.hex()"]
        return "%d", [name]


class _Bad(Exception):
    pass


def compile_layout(
    layout: Any, endian: str, lead: str = "", want: tuple[str, ...] = ()
) -> Callable[[bytes], tuple[Any, ...]]:
    """A function ``data -> (json_text, *wanted top-level values)`` for one layout.

    `lead` is JSON text put first inside the braces (e.g. ``"endian": "little", ``).
    The function raises `_Fallback` for anything the layout does not describe exactly
    (short data, wrong constants, negative counts, trailing bytes).
    """
    gen = _Gen("<" if endian == "little" else ">")
    top: dict[str, str] = {}
    gen.emit("def decode(data):", 0)
    gen.emit("try:", 1)
    gen.emit("off = 0", 2)
    tmpl, args = gen.layout(layout, 2, top)
    gen.flush(2)
    gen.emit("if off != len(data): raise _Bad", 2)
    gen.emit("except (_Bad, StructError):", 1)
    gen.emit("raise _Fallback('layout') from None", 2)
    tmpl = "{" + lead.replace("%", "%%") + tmpl[1:]
    returns = ", ".join([f"{tmpl!r} % ({', '.join(args)},)", *(top[w] for w in want)])
    gen.emit(f"return ({returns},)", 1)
    namespace: dict[str, Any] = {"_Bad": _Bad, "_Fallback": _Fallback,
                                 "StructError": struct.error, **gen.names}
    exec("\n".join(gen.lines), namespace)  # noqa: S102 - source generated above
    function: Callable[[bytes], tuple[Any, ...]] = namespace["decode"]
    return function


_MCAST = totem.TYPE_CODES["mcast"]


def stateful(proto: str, payload: bytes) -> bool:
    """Does decoding this datagram need state kept across packets?

    knet fragments (reassembly), compressed knet data (it may hold anything), and Totem
    mcasts (totempg reassembles messages across a sender's mcasts, and copies of one
    mcast are told apart by what was seen before).
    """
    if proto == "totem":
        return payload[3:4] == b"\x01" if payload[:2] in (b"\x70\xc0", b"\xc0\x70") \
            else payload[:1] == b"\x01"
    if proto == "knet":
        if len(payload) < knet.USERDATA_AT or payload[1] != knet.DATA_TYPE:
            return False
        return (knet.is_fragment(payload) or payload[knet.COMPRESS_AT] != 0
                or payload[knet.USERDATA_AT + 3:knet.USERDATA_AT + 4] == b"\x01")
    return False


class TotemFast:
    """Totem payload -> (type name, nodeid, fields JSON text), or _Fallback."""

    def __init__(self, totem: Any) -> None:
        self.totem = totem
        self.table: dict[tuple[bool, str, int], Callable[[bytes], tuple[Any, ...]]] = {}
        for legacy, layouts in ((False, totem.LAYOUTS), (True, totem.LEGACY_LAYOUTS)):
            for code, name in totem.TYPES.items():
                for endian in ("little", "big"):
                    lead = f'"endian": "{endian}", "type_name": {json.dumps(name)}, '
                    self.table[(legacy, endian, code)] = compile_layout(
                        layouts[name], endian, lead, ("nodeid",))
        self.names = dict(totem.TYPES)
        self.frame: Callable[[bytes], tuple[bool, str, int] | None] = totem.frame

    def __call__(self, payload: bytes) -> tuple[str, int, str]:
        try:
            key = self.frame(payload)
        except self.totem.DecodeError:
            raise _Fallback("version") from None
        if key is None:
            raise _Fallback("magic")
        if key[2] == _MCAST:
            raise _Fallback("mcast")  # totempg and above: the codec path, with its state
        function = self.table.get(key)
        if function is None:
            raise _Fallback("type")
        text, nodeid = function(payload)
        return self.names[key[2]], nodeid, text


class KnetFast:
    """Cleartext, unfragmented knet packets, with the Totem they carry."""

    def __init__(self, knet: Any, totem_fast: TotemFast | None) -> None:
        self.knet = knet
        self.totem_fast = totem_fast
        self.looks_clear: Callable[[bytes], bool] = knet.looks_clear
        self.carries_totem: Callable[[bytes], bool] = knet.carries_totem
        self.userdata_at: int = knet.USERDATA_AT
        self.table: dict[int, tuple[str, Callable[[bytes], tuple[Any, ...]]]] = {}
        for code, name in knet.TYPES.items():
            lead = f'"type_name": {json.dumps(name)}, '
            self.table[code] = (name, compile_layout(knet.LAYOUTS[name], "big", lead,
                                                     ("node",)))

    def __call__(self, payload: bytes) -> tuple[str, int | None, str]:
        if not self.looks_clear(payload):
            raise _Fallback("not clear")  # encrypted or malformed: the codec decides
        entry = self.table.get(payload[1])
        if entry is None:
            raise _Fallback("type")
        name, function = entry
        text, node = function(payload)
        if name == "data" and payload[knet.COMPRESS_AT]:
            raise _Fallback("compressed")  # the codec decompresses
        if name == "data" and self.carries_totem(payload):
            if self.totem_fast is None:
                raise _Fallback("no totem")
            _kind, _nodeid, inner = self.totem_fast(payload[self.userdata_at:])
            text = text[:-1] + ', "totem": ' + inner + "}"
        return name, node, text


class FastDecoders(Decoders):
    """`Decoders` with the fast paths in front; every miss goes to the codec path."""

    def __init__(self, keys: Any = None, corosync_keys: Any = None) -> None:
        super().__init__(keys, corosync_keys)
        self.hb_fast = HeartbeatFast()
        self.totem_fast = TotemFast(totem)
        self.knet_fast = KnetFast(knet, self.totem_fast)
        self.by_proto["heartbeat"] = self.heartbeat_fast
        self.by_proto["totem"] = self.totem_fastpath
        self.by_proto["knet"] = self.knet_fastpath

    def heartbeat_fast(self, record: Record, payload: bytes) -> Record:
        if self.keys is not None:
            return self.heartbeat(record, payload)  # signatures need the codec's message
        try:
            record.type, record.node, record.fields_json = self.hb_fast(payload)
        except Exception:  # noqa: BLE001 - any refusal: the codec decides
            return self.heartbeat(record, payload)
        record.auth = AUTH_UNCHECKED
        return record

    def _knet_crypto(self, record: Record, payload: bytes) -> Record:
        """Open the packet once; its cleartext takes the fast path when it can."""
        opened = self.corosync_keys.open(payload)
        plain = opened.plain if opened is not None else b""
        if opened is None or knet.is_fragment(plain):
            return self.knet(record, payload, opened)
        try:
            record.type, record.node, text = self.knet_fast(plain)
        except Exception:  # noqa: BLE001 - any refusal: the codec decides
            return self.knet(record, payload, opened)
        crypto = (f'"crypto": {{"key": {_jstr(opened.key.name)}, "cipher": '
                  f'"{opened.suite.cipher or "none"}", "hash": "{opened.suite.hash}", '
                  f'"wire_size": {len(payload)}}}')
        record.fields_json = text[:-1] + ", " + crypto + "}"
        record.auth = AUTH_OK
        return record

    def totem_fastpath(self, record: Record, payload: bytes) -> Record:
        try:
            record.type, record.node, record.fields_json = self.totem_fast(payload)
        except Exception:  # noqa: BLE001 - any refusal: the codec decides
            return self.totem(record, payload)
        return record

    def knet_fastpath(self, record: Record, payload: bytes) -> Record:
        if self.corosync_keys is not None:
            return self._knet_crypto(record, payload)
        if knet.is_fragment(payload):
            return self.knet(record, payload)  # a fragment: the reassembler needs it
        try:
            record.type, record.node, record.fields_json = self.knet_fast(payload)
        except Exception:  # noqa: BLE001 - any refusal: the codec decides
            return self.knet(record, payload)
        return record
