"""Fast paths: the common messages decoded straight to their JSON text.

Profiling ``hbtool decode`` showed the codecs' object models (a `Message` with `Field`
tuples, then `to_json_fields`; a `Record` per struct, then `to_dict`) cost 30-40 us per
packet, ten times the budget for beating tshark. The fast paths produce the same JSON
text without building those objects:

* Heartbeat: a message is a sequence of items (netstrings or classic lines) and most
  items repeat from one message to the next (``t=status``, ``src=node1``, the uuid...).
  Items are cut out by the codec's own splitter (`heartbeat.split_items`) and each
  distinct item is rendered to
  its JSON fragment once, by the field table (`hbtools.fields`), then looked up.
* Totem and kronosnet: the codecs render themselves (`totem.decode_json`,
  `knet.decode_json`: each layout compiled once into a function that reads whole runs of
  fields with one ``struct`` call and fills a JSON template, `hbtools.layout`); speed
  belongs to the codec, so nothing here knows a Totem or knet field.

Nothing here declares a field: Heartbeat's rendering reads the field table. Anything unusual (nested or
compressed Heartbeat fields, type-dependent radix, duplicate names, knet fragments,
malformed bytes) falls back to the codec itself, so error messages and odd cases are the
codec's. The tests check that the fast text equals ``json.dumps`` of the codec's output.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
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
from hbtools.heartbeat import split_items

__all__ = ["FastDecoders", "HeartbeatFast", "stateful"]

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
        split = split_items(payload)
        if split is None:
            raise _Fallback("framing")  # the codec's careful reader words the problem
        items = self.lines if split.wire_format == "classic" else self.items
        entries = list(map(items.__getitem__, split.items))
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


def stateful(proto: str, payload: bytes) -> bool:
    """Does decoding this datagram need state kept across packets?

    knet fragments (reassembly), compressed knet data (it may hold anything), and Totem
    mcasts (totempg reassembles messages across a sender's mcasts, and copies of one
    mcast are told apart by what was seen before).
    """
    if proto == "totem":
        return totem.is_mcast(payload)
    if proto == "knet":
        if len(payload) < knet.USERDATA_AT or payload[1] != knet.DATA_TYPE:
            return False
        return (knet.is_fragment(payload) or payload[knet.COMPRESS_AT] != 0
                or totem.is_mcast(payload[knet.USERDATA_AT:]))
    return False


class FastDecoders(Decoders):
    """`Decoders` with the fast paths in front; every miss goes to the codec path."""

    def __init__(self, keys: Any = None, corosync_keys: Any = None) -> None:
        super().__init__(keys, corosync_keys)
        self.hb_fast = HeartbeatFast()
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
        found = knet.decode_json(plain, mcast=False)
        if found is None:
            return self.knet(record, payload, opened)
        record.type, record.node, text = found
        crypto = (f'"crypto": {{"key": {_jstr(opened.key.name)}, "cipher": '
                  f'"{opened.suite.cipher or "none"}", "hash": "{opened.suite.hash}", '
                  f'"wire_size": {len(payload)}}}')
        record.fields_json = text[:-1] + ", " + crypto + "}"
        record.auth = AUTH_OK
        return record

    def totem_fastpath(self, record: Record, payload: bytes) -> Record:
        found = totem.decode_json(payload, mcast=False)
        if found is None:
            return self.totem(record, payload)  # an mcast (totempg), or malformed
        record.type, record.node, record.fields_json = found
        return record

    def knet_fastpath(self, record: Record, payload: bytes) -> Record:
        if self.corosync_keys is not None:
            return self._knet_crypto(record, payload)
        if knet.is_fragment(payload):
            return self.knet(record, payload)  # a fragment: the reassembler needs it
        found = knet.decode_json(payload, mcast=False)
        if found is None:
            return self.knet(record, payload)
        record.type, record.node, record.fields_json = found
        return record
