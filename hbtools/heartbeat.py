"""Heartbeat (Linux-HA) message codec: bytes in, `Message` out, and back, byte-exact.

Sans-I/O: nothing here opens a socket or reads a clock. Two wire formats exist and a
receiver must take both (shared/PROTOCOL-NOTES.md):

* netstring: ``###\\n`` then one netstring per field ``len:(T)name=value,`` then
  ``%%%\\n`` and a trailing netstring ``len:N digest,`` that signs everything before it.
  Heartbeat 3.0.6 sends only this format, with an in-body ``auth`` field as well.
* classic: ``>>>\\n`` then ``name=value\\n`` lines then ``<<<\\n``; only non-string fields
  carry ``(T)``, binary values are base64, newlines in values are replaced by
  substitute bytes so that a line stays a line.

Field order is kept exactly as received because both signatures depend on it, and
anything the codec does not know (field names, message types) still decodes and
round-trips. `decode` raises only `DecodeError`, whatever the bytes.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import re
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from hbtools import errors
from hbtools.fields import (
    MAX_UNCOMPRESSED_MESSAGE,
    MAX_WIRE_MESSAGE,
    STRING_NEWLINE_SUBSTITUTE,
    STRUCT_NEWLINE_SUBSTITUTES,
    Kind,
    WireType,
    spec_for,
)

__all__ = [
    "DecodeError",
    "EncodeError",
    "Field",
    "Message",
    "WireFormat",
    "decode",
    "decompress",
    "encode",
    "inline_signed_text",
    "trailer_signed_region",
]

WireFormat = Literal["classic", "netstring"]
FieldValue = Any  # str | bytes | list[str] | Message, by wire type

NETSTRING_START = b"###\n"
NETSTRING_END = b"%%%\n"
CLASSIC_START = b">>>\n"
CLASSIC_END = b"<<<\n"
AUTH_FIELD = "auth"
#: How a Heartbeat message is recognised: its first four bytes are one of these openings
#: (declared once here for the codec, the dissector's detector, the fast path, the fault
#: engine and the Lua export).
OPENINGS = (NETSTRING_START, CLASSIC_START)
#: Heartbeat's UDP port (ha.cf ``udpport``, /etc/services ``ha-cluster``).
PORT = 694
MAX_DEPTH = len(STRUCT_NEWLINE_SUBSTITUTES)
_TEXT = ("utf-8", "surrogateescape")
_WIRE_TYPES = {t.value: t for t in WireType if t is not WireType.UNCOMPRESSED}
#: The usual start of a netstring field: length (no leading zero), ':' and a known type.
_FIELD_HEAD = re.compile(rb"([1-9][0-9]{0,9}):\(([0-4])\)")
#: Field names repeat in every packet: decode each distinct one once (bounded).
_NAME_CACHE: dict[bytes, str] = {}


class DecodeError(errors.DecodeError):
    """The bytes are not a Heartbeat message; `offset` says where it went wrong.

    Offset -1 means a field's value (not one byte position), as `Field` conversions say.
    """

    def __init__(self, offset: int, problem: str) -> None:
        super().__init__(problem, offset, f"offset {offset}: {problem}")


class EncodeError(errors.EncodeError):
    """The message cannot be written in the asked wire format."""


class Signer(Protocol):
    """What `encode` needs from `hbtools.auth.AuthKeys` (kept abstract: no import cycle)."""

    def sign(self, data: bytes) -> str: ...


class Field(NamedTuple):
    name: str
    type: WireType
    value: Any  # str | bytes | list[str] | Message, by type


def _infer_type(value: object) -> WireType:
    if isinstance(value, str):
        return WireType.STRING
    if isinstance(value, bytes | bytearray):
        return WireType.BINARY
    if isinstance(value, Message):
        return WireType.STRUCT
    if isinstance(value, list):
        return WireType.LIST
    raise EncodeError(f"no Heartbeat field type for a {type(value).__name__} value")


@dataclass(eq=True)
class Message:
    """One Heartbeat message: ordered fields plus what the wire said around them.

    `trailer` is the trailing auth netstring's text (``"1 a77e48e9"``) as received,
    kept so that an unchanged message re-encodes to the same bytes; `encode` with keys
    replaces it.
    """

    fields: list[Field] = field(default_factory=list)
    wire_format: WireFormat = "netstring"
    trailer: str | None = None
    nul_terminated: bool = False

    # -- building -------------------------------------------------------------
    @classmethod
    def build(
        cls, items: Any, wire_format: WireFormat = "netstring"
    ) -> Message:
        """Message from ``(name, value)`` pairs or a dict; types follow the values."""
        pairs = items.items() if isinstance(items, dict) else items
        msg = cls(wire_format=wire_format)
        for name, value in pairs:
            msg.add(name, value)
        return msg

    def _wire_text(self, name: str, value: Any) -> Any:
        """An int becomes the field's wire text: ``seq=5`` is ``"5"``, ``seq=44`` is ``"2c"``.

        One number convention (issue 14): numbers are given as decode shows them (decimal
        ints, as `seq` returns them), and written in the radix the field has on the wire
        for this message type (hbtools.fields). Text is kept as given (wire text).
        """
        if isinstance(value, int) and not isinstance(value, bool):
            kind = spec_for(name).kind_in(self.type)
            return format(value, "x") if kind is Kind.HEX_INT else str(value)
        return value

    def add(self, name: str, value: FieldValue | int, wire_type: WireType | None = None) -> None:
        value = self._wire_text(name, value)
        self.fields.append(Field(name, wire_type or _infer_type(value), value))

    def set(self, name: str, value: FieldValue | int, wire_type: WireType | None = None) -> None:
        """Replace the first field of that name in place (order matters), else append."""
        value = self._wire_text(name, value)
        new_type = wire_type or _infer_type(value)
        for index, existing in enumerate(self.fields):
            if existing.name == name:
                self.fields[index] = Field(name, new_type, value)
                return
        self.fields.append(Field(name, new_type, value))

    def remove(self, name: str) -> None:
        self.fields = [f for f in self.fields if f.name != name]

    # -- reading --------------------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        for f in self.fields:
            if f.name == name:
                return f.value
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        for f in self.fields:
            if f.name == name:
                return f.value
        return default

    def __contains__(self, name: object) -> bool:
        return any(f.name == name for f in self.fields)

    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def field_type(self, name: str) -> WireType:
        for f in self.fields:
            if f.name == name:
                return f.type
        raise KeyError(name)

    def number(self, name: str) -> int | None:
        """A numeric field read in the radix it has on the wire for this message type.

        Raises `DecodeError` (offset -1: the field, not a byte position) when the text
        is not a number, so callers keep a single exception type to handle.
        """
        text = self.get(name)
        if text is None:
            return None
        kind = spec_for(name).kind_in(self.type)
        if not isinstance(text, str):
            raise DecodeError(-1, f"field {name!r} is not text, cannot be a number")
        value = _parse_number(text, kind)
        if value is None:
            raise DecodeError(-1, f"field {name!r}={text!r} is not a {kind.value} number")
        return value

    @property
    def type(self) -> str | None:
        value = self.get("t")
        return value if isinstance(value, str) else None

    @property
    def status(self) -> str | None:
        value = self.get("st")
        return value if isinstance(value, str) else None

    @property
    def src(self) -> str | None:
        value = self.get("src")
        return value if isinstance(value, str) else None

    @property
    def dest(self) -> str | None:
        value = self.get("dest")
        return value if isinstance(value, str) else None

    @property
    def seq(self) -> int | None:
        return self.number("seq")

    @property
    def generation(self) -> int | None:
        return self.number("hg")

    @property
    def timestamp(self) -> int | None:
        return self.number("ts")

    @property
    def ttl(self) -> int | None:
        return self.number("ttl")

    @property
    def deadtime_ms(self) -> int | None:
        return self.number("dt")

    @property
    def ackseq(self) -> int | None:
        return self.number("ackseq")

    @property
    def firstseq(self) -> int | None:
        return self.number("firstseq")

    @property
    def lastseq(self) -> int | None:
        return self.number("lastseq")

    @property
    def srcuuid(self) -> uuid.UUID | None:
        raw = self.get("srcuuid")
        if isinstance(raw, bytes) and len(raw) == 16:
            return uuid.UUID(bytes=raw)
        return None

    def to_json_fields(self) -> dict[str, Any]:
        """Every field, interpreted by the field table, in wire order, for JSON output.

        Numbers become ints (text that is not a number stays text, so nothing is lost),
        uuids their canonical text, other bytes hex. A repeated name gets ``#2``, ``#3``.
        """
        out: dict[str, Any] = {}
        message_type = self.type
        for f in self.fields:
            key = f.name
            n = 2
            while key in out:
                key = f"{f.name}#{n}"
                n += 1
            out[key] = _json_value(f, message_type)
        return out

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_DEC_DIGITS = frozenset("0123456789")


def _parse_number(text: str, kind: Kind) -> int | None:
    """Strict: int() alone would also take '0x1c', ' 1c' or '1_c', which no node sends."""
    if kind is Kind.HEX_INT:
        digits, base = _HEX_DIGITS, 16
    elif kind is Kind.DEC_INT:
        digits, base = _DEC_DIGITS, 10
    else:
        return None
    body = text[1:] if text[:1] == "-" else text
    if not body or not digits.issuperset(body):
        return None
    return int(text, base)


_SPEC_CACHE: dict[tuple[str, WireType], Any] = {}


def _json_value(f: Field, message_type: str | None) -> Any:
    key = (f.name, f.type)
    spec = _SPEC_CACHE.get(key)
    if spec is None:
        spec = spec_for(f.name, f.type)
        if len(_SPEC_CACHE) < 4096:
            _SPEC_CACHE[key] = spec
    value = f.value
    if f.type is WireType.STRING:
        kind = spec.kind_in(message_type) if spec.kind_by_type else spec.kind
        if kind is Kind.HEX_INT or kind is Kind.DEC_INT:
            number = _parse_number(value, kind)
            return value if number is None else number
        return value
    if f.type is WireType.STRUCT:
        return value.to_json_fields()
    if f.type is WireType.LIST:
        return list(value)
    if spec.kind is Kind.UUID and len(value) == 16:
        return str(uuid.UUID(bytes=value))
    return value.hex()


# ---------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------


def looks(data: bytes | bytearray | memoryview) -> bool:
    """Does the payload open like a Heartbeat message (either wire format)?"""
    return bytes(data[:4]) in OPENINGS


class Items(NamedTuple):
    """A message cut into its items by `split_items`, nothing interpreted yet."""

    wire_format: WireFormat
    #: netstring: each ``len:(T)name=value`` without its comma; classic: each line
    #: without its newline.
    items: list[bytes]
    trailer: bytes | None
    nul_terminated: bool


#: The trailing auth netstring after ``%%%\n`` (a NUL may follow, as some senders add).
_NS_TRAILER = re.compile(rb"(0|[1-9][0-9]{0,9}):([^,]*),(\x00?)")


def split_items(data: bytes) -> Items | None:
    """Cut a message of the plain shape into its items: the one splitter of the codec
    (`decode` tries it first) and the dissector's fast path.

    Netstring bodies are cut at every comma and classic bodies at every newline, which
    is one C call per message. A value holding a comma arrives in pieces; the first
    piece is then shorter than its length prefix says, so every reader of an item checks
    that length (`_quick_fields`, the fast path) and gives the message to the careful,
    item-by-item reader when it does not hold. None when the framing itself is not plain
    (no end marker, a trailer holding a comma, bytes after it...): the careful reader
    then takes the message and says what is wrong.
    """
    head = data[:4]
    if head == NETSTRING_START:
        end = data.find(NETSTRING_END, 4)
        if end < 0:
            return None
        trailer = _NS_TRAILER.fullmatch(data, end + 4)
        if trailer is None:
            rest = data[end + 4 :]
            if rest and rest != b"\x00":
                return None
            signed, nul = None, rest == b"\x00"
        elif int(trailer.group(1)) != len(trailer.group(2)):
            return None
        else:
            signed, nul = trailer.group(2), trailer.group(3) == b"\x00"
        parts = data[4:end].split(b",")
        if parts.pop():
            return None  # no comma before %%%
        return Items("netstring", parts, signed, nul)
    if head == CLASSIC_START:
        nul = data[-1:] == b"\x00"
        stop = len(data) - (5 if nul else 4)
        if stop < 4 or data[stop : stop + 4] != CLASSIC_END:
            return None
        if stop == 4:
            return Items("classic", [], None, nul)
        if data[stop - 1] != 0x0A:
            return None
        return Items("classic", data[4 : stop - 1].split(b"\n"), None, nul)
    return None


def _quick_fields(split: Items) -> list[Field] | None:
    """The fields of a split message when every item is plain (netstring types 0, 1 and
    4; classic strings and base64 binaries), else None for the careful reader, which
    also reads nested structs and lists, and words every error."""
    fields: list[Field] = []
    append = fields.append
    names = _NAME_CACHE
    if split.wire_format == "netstring":
        match_head = _FIELD_HEAD.match
        for item in split.items:
            head = match_head(item)
            if head is None:
                return None
            after = head.end()
            if head.end(1) + 1 + int(head[1]) != len(item):
                return None  # a piece of an item whose value holds a comma
            equals = item.find(b"=", after)
            code = item[after - 2] - 0x30
            if equals <= after or code == 2 or code == 3:
                return None
            raw_name = item[after:equals]
            name = names.get(raw_name)
            if name is None:
                name = raw_name.decode(*_TEXT)
                if len(names) < 4096:
                    names[raw_name] = name
            raw = item[equals + 1 :]
            append(Field(name, _WIRE_TYPES[code], raw.decode(*_TEXT) if code == 0 else raw))
        return fields
    substitute = bytes((STRING_NEWLINE_SUBSTITUTE,))
    for line in split.items:
        binary = line[:3] == b"(1)"
        equals = line.find(b"=")
        if equals <= (3 if binary else 0) or line[3 if binary else 0 : 1 + (3 if binary else 0)] \
                == b"(":
            return None  # typed other than (1), no name, a name opening with '(' ...
        raw_name = line[3 if binary else 0 : equals]
        raw = line[equals + 1 :]
        if binary:
            try:
                value: Any = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                return None
            if base64.b64encode(value) != raw:
                return None
            append(Field(raw_name.decode(*_TEXT), WireType.BINARY, value))
        elif line == b"<<<" or line == b">>>":
            return None
        else:
            append(Field(raw_name.decode(*_TEXT), WireType.STRING,
                         raw.replace(substitute, b"\n").decode(*_TEXT)))
    return fields


def decode(data: bytes, *, limit: int = MAX_WIRE_MESSAGE) -> Message:
    """Decode one datagram's payload (either wire format).

    ``limit`` is the wire limit (256 KiB) by default; the message inside a compression envelope
    may be as big as Heartbeat's uncompressed limit (2 MiB), see `decompress`.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(0, f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > limit:
        size = "256 KiB" if limit == MAX_WIRE_MESSAGE else f"{limit} bytes"
        raise DecodeError(limit, f"message of {len(data)} bytes exceeds {size}")
    split = split_items(data)
    if split is not None:
        fields = _quick_fields(split)
        if fields is not None:
            trailer = split.trailer
            return Message(fields, split.wire_format,
                           None if trailer is None else trailer.decode(*_TEXT),
                           split.nul_terminated)
    if data.startswith(NETSTRING_START):
        return _decode_netstring(data, 0, top=True)
    if data.startswith(CLASSIC_START):
        return _decode_classic(data, 0, top=True)
    raise DecodeError(0, "expected '###\\n' (netstring) or '>>>\\n' (classic) at the start")


def _read_netstring(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """One ``len:payload,`` item at `pos`; returns the payload and the next position."""
    colon = data.find(b":", pos, min(end, pos + 11))
    if colon <= pos:
        raise DecodeError(pos, "expected a netstring length followed by ':'")
    digits = data[pos:colon]
    if not digits.isdigit() or (len(digits) > 1 and digits[0] == 0x30):
        raise DecodeError(pos, f"expected a decimal netstring length, got {digits!r}")
    length = int(digits)
    start = colon + 1
    stop = start + length
    if stop >= end:
        raise DecodeError(start, f"netstring of length {length} runs past the end")
    if data[stop] != 0x2C:
        raise DecodeError(stop, f"expected ',' after netstring of length {length}")
    return data[start:stop], stop + 1


def _split_typed_name(item: bytes, offset: int, require_type: bool) -> tuple[WireType, bytes, bytes]:
    """``(T)name=value`` or ``name=value`` into type, name and raw value."""
    wire_type = WireType.STRING
    name_start = 0
    if item[:1] == b"(":
        if len(item) < 3 or item[2] != 0x29:
            raise DecodeError(offset, "expected '(T)' with a one-digit type before the name")
        code = item[1] - 0x30
        found = _WIRE_TYPES.get(code)
        if found is None:
            raise DecodeError(offset + 1, f"unknown field type {chr(item[1])!r}")
        wire_type = found
        name_start = 3
    elif require_type:
        raise DecodeError(offset, "expected '(T)' type prefix on a netstring field")
    equals = item.find(b"=", name_start)
    if equals < 0:
        raise DecodeError(offset, "expected '=' between field name and value")
    if equals == name_start:
        raise DecodeError(offset + name_start, "empty field name")
    return wire_type, item[name_start:equals], item[equals + 1 :]


def _decode_netstring(data: bytes, depth: int, top: bool, base: int = 0) -> Message:
    end = len(data)
    pos = len(NETSTRING_START)
    fields: list[Field] = []
    append = fields.append
    match_head = _FIELD_HEAD.match
    names = _NAME_CACHE
    while True:
        head = match_head(data, pos)
        if head is None:
            if data.startswith(NETSTRING_END, pos):
                pos += len(NETSTRING_END)
                break
            if pos >= end:
                raise DecodeError(base + pos, "expected '%%%\\n' to end the message")
            # Not the common shape: let the careful parser say exactly what is wrong.
            item, next_pos = _read_netstring(data, pos, end)
            _split_typed_name(item, base + next_pos - len(item) - 1, require_type=True)
            raise DecodeError(base + pos, "malformed field")  # pragma: no cover (defensive)
        length = int(head[1])
        start = head.end(1) + 1
        stop = start + length
        if stop >= end or data[stop] != 0x2C:
            _read_netstring(data, pos, end)  # raises with the precise problem
        equals = data.find(b"=", head.end(), stop)
        if equals <= head.end():
            _split_typed_name(data[start:stop], base + start, require_type=True)
        raw_name = data[head.end() : equals]
        name = names.get(raw_name)
        if name is None:
            name = raw_name.decode(*_TEXT)
            if len(names) < 4096:
                names[raw_name] = name
        code = head[2][0] - 0x30
        raw_value = data[equals + 1 : stop]
        if code == 0:
            value: Any = raw_value.decode(*_TEXT)
        elif code == 2:
            value = _decode_nested_netstring(raw_value, depth, base + equals + 1)
        elif code == 3:
            value = _decode_list(raw_value, base + equals + 1)
        else:
            value = raw_value
        append(Field(name, _WIRE_TYPES[code], value))
        pos = stop + 1
    message = Message(fields, "netstring")
    if not top:
        if pos != end:
            raise DecodeError(base + pos, "unexpected bytes after a nested message")
        return message
    if pos < end:
        if data[pos:] == b"\x00":
            message.nul_terminated = True
            return message
        trailer, after = _read_netstring(data, pos, end)
        message.trailer = trailer.decode(*_TEXT)
        rest = data[after:]
        if rest == b"\x00":
            message.nul_terminated = True
        elif rest:
            raise DecodeError(after, "unexpected bytes after the auth netstring")
    return message


def _decode_nested_netstring(raw: bytes, depth: int, offset: int) -> Message:
    if depth + 1 >= MAX_DEPTH:
        raise DecodeError(offset, f"structs nested deeper than {MAX_DEPTH}")
    if not raw.startswith(NETSTRING_START):
        raise DecodeError(offset, "expected '###\\n' at the start of a struct field")
    return _decode_netstring(raw, depth + 1, top=False, base=offset)


def _decode_list(raw: bytes, offset: int) -> list[str]:
    items: list[str] = []
    pos = 0
    end = len(raw)
    while pos < end:
        item, pos = _read_list_item(raw, pos, offset)
        items.append(item.decode(*_TEXT))
    if not items:
        # encode refuses an empty list (`_pack_list`), so decode does too: one rule both ways.
        raise DecodeError(offset, "an empty list field (Heartbeat lists hold at least one item)")
    return items


def _read_list_item(raw: bytes, pos: int, offset: int) -> tuple[bytes, int]:
    colon = raw.find(b":", pos, pos + 11)
    if colon <= pos:
        raise DecodeError(offset + pos, "expected a list item length followed by ':'")
    digits = raw[pos:colon]
    if not digits.isdigit() or (len(digits) > 1 and digits[0] == 0x30) or digits == b"0":
        raise DecodeError(offset + pos, f"expected a positive list item length, got {digits!r}")
    stop = colon + 1 + int(digits)
    if stop >= len(raw) or raw[stop] != 0x2C:
        raise DecodeError(offset + min(stop, len(raw)), "expected ',' after a list item")
    return raw[colon + 1 : stop], stop + 1


def _decode_classic(data: bytes, depth: int, top: bool, base: int = 0) -> Message:
    nul = False
    body_end = len(data)
    if top and data.endswith(b"\x00"):
        nul = True
        body_end -= 1
    if not data.startswith(CLASSIC_END, body_end - len(CLASSIC_END)) or body_end < 8:
        raise DecodeError(base + body_end, "expected '<<<\\n' to end the message")
    fields: list[Field] = []
    pos = len(CLASSIC_START)
    stop = body_end - len(CLASSIC_END)
    while pos < stop:
        newline = data.find(b"\n", pos, stop)
        if newline < 0:
            raise DecodeError(base + stop, "expected '\\n' at the end of a field line")
        line = data[pos:newline]
        if line == b"<<<" or line == b">>>":
            raise DecodeError(base + pos, f"unexpected {line.decode()!r} line inside a message")
        wire_type, raw_name, raw_value = _split_typed_name(line, base + pos, require_type=False)
        if line[:1] == b"(" and wire_type is WireType.STRING:
            raise DecodeError(base + pos + 1, "a string field must not carry a '(0)' prefix")
        if raw_name[:1] == b"(":
            # encode cannot write such a name in classic text (`_name_bytes`): refused alike.
            raise DecodeError(base + pos, "a classic field name must not open with '('")
        value_offset = base + pos + len(line) - len(raw_value)
        value = _classic_value(wire_type, raw_value, depth, value_offset)
        fields.append(Field(raw_name.decode(*_TEXT), wire_type, value))
        pos = newline + 1
    return Message(fields, "classic", nul_terminated=nul)


def _classic_value(wire_type: WireType, raw: bytes, depth: int, offset: int) -> Any:
    if wire_type is WireType.STRING:
        return raw.replace(bytes([STRING_NEWLINE_SUBSTITUTE]), b"\n").decode(*_TEXT)
    if wire_type in (WireType.BINARY, WireType.COMPRESSED):
        try:
            value = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DecodeError(offset, f"expected base64 for a binary field ({exc})") from None
        if base64.b64encode(value) != raw:
            raise DecodeError(offset, "base64 value is not in canonical padded form")
        return value
    if wire_type is WireType.LIST:
        return _decode_list(raw, offset)
    # STRUCT: the child's own lines were folded into one with a depth-specific byte.
    if depth + 1 >= MAX_DEPTH:
        raise DecodeError(offset, f"structs nested deeper than {MAX_DEPTH}")
    if b"\n" in raw:
        raise DecodeError(offset, "newline inside a struct value")
    child = raw.replace(bytes([STRUCT_NEWLINE_SUBSTITUTES[depth]]), b"\n")
    if not child.startswith(CLASSIC_START):
        raise DecodeError(offset, "expected '>>>' at the start of a struct field")
    return _decode_classic(child, depth + 1, top=False, base=offset)


# ---------------------------------------------------------------------------
# encoding
# ---------------------------------------------------------------------------


def encode(
    msg: Message,
    keys: Signer | None = None,
    *,
    wire_format: WireFormat | None = None,
    inline_auth: bool | None = None,
) -> bytes:
    """Encode a message; with `keys`, sign it the way Heartbeat 3.0.6 does.

    Without keys the message's own `auth` field and trailer are written back as they
    are, which is what makes ``encode(decode(x)) == x``. With keys: the in-body
    ``auth`` field is recomputed when the message has one (or when `inline_auth` is
    true; false removes it), always for classic, and a netstring message gets a fresh
    trailer over everything up to ``%%%\\n``.
    """
    fmt = wire_format or msg.wire_format
    fields = msg.fields
    if keys is not None:
        has_inline = any(f.name == AUTH_FIELD for f in fields)
        want_inline = inline_auth if inline_auth is not None else (has_inline or fmt == "classic")
        unsigned = [f for f in fields if f.name != AUTH_FIELD]
        if want_inline:
            signature = keys.sign(_classic_lines(unsigned, 0))
            fields = _with_auth(fields, signature)
        else:
            fields = unsigned
    if fmt == "classic":
        out = CLASSIC_START + _classic_lines(fields, 0) + CLASSIC_END
    elif fmt == "netstring":
        body = _netstring_body(fields, 0)
        if keys is not None:
            out = body + _netstring(keys.sign(body).encode(*_TEXT))
        elif msg.trailer is not None:
            out = body + _netstring(msg.trailer.encode(*_TEXT))
        else:
            out = body
    else:
        raise EncodeError(f"unknown wire format {fmt!r}")
    if msg.nul_terminated:
        out += b"\x00"
    return out


def _with_auth(fields: list[Field], signature: str) -> list[Field]:
    """Replace the auth field where it stands, or append it last as Heartbeat does."""
    auth = Field(AUTH_FIELD, WireType.STRING, signature)
    if any(f.name == AUTH_FIELD for f in fields):
        return [auth if f.name == AUTH_FIELD else f for f in fields]
    return [*fields, auth]


def _netstring(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


def _name_bytes(name: str, classic: bool = False) -> bytes:
    """A name cannot hold '='; in classic text it also cannot hold a newline or open with '('."""
    raw = name.encode(*_TEXT)
    if not raw or b"=" in raw or (classic and (b"\n" in raw or raw[:1] == b"(")):
        raise EncodeError(f"field name {name!r} cannot be written in this format")
    return raw


def _netstring_body(fields: list[Field], depth: int) -> bytes:
    if depth >= MAX_DEPTH:
        raise EncodeError(f"structs nested deeper than {MAX_DEPTH}")
    parts = [NETSTRING_START]
    for f in fields:
        wire_type = WireType(f.type)
        if wire_type is WireType.STRING:
            value = _str_value(f)
        elif wire_type is WireType.STRUCT:
            value = _netstring_body(_struct_value(f).fields, depth + 1)
        elif wire_type is WireType.LIST:
            value = _pack_list(f)
        elif wire_type in (WireType.BINARY, WireType.COMPRESSED):
            value = _bytes_value(f)
        else:
            raise EncodeError(f"field {f.name!r}: type {wire_type.name} is never sent as such")
        parts.append(_netstring(b"(%d)%s=%s" % (wire_type, _name_bytes(f.name), value)))
    parts.append(NETSTRING_END)
    return b"".join(parts)


def _classic_lines(fields: list[Field], depth: int) -> bytes:
    """The classic text of the fields without ``>>>``/``<<<``: also what auth signs."""
    if depth >= MAX_DEPTH:
        raise EncodeError(f"structs nested deeper than {MAX_DEPTH}")
    parts = []
    for f in fields:
        wire_type = WireType(f.type)
        name = _name_bytes(f.name, classic=True)
        if wire_type is WireType.STRING:
            raw = _str_value(f)
            if STRING_NEWLINE_SUBSTITUTE in raw:
                raise EncodeError(f"field {f.name!r}: byte 0x13 cannot be carried in classic format")
            parts.append(name + b"=" + raw.replace(b"\n", bytes([STRING_NEWLINE_SUBSTITUTE])) + b"\n")
            continue
        if wire_type is WireType.STRUCT:
            child = CLASSIC_START + _classic_lines(_struct_value(f).fields, depth + 1) + CLASSIC_END
            substitute = STRUCT_NEWLINE_SUBSTITUTES[depth]
            if substitute in child:
                raise EncodeError(f"field {f.name!r}: struct text contains its newline substitute")
            value = child.replace(b"\n", bytes([substitute]))
        elif wire_type is WireType.LIST:
            value = _pack_list(f)
            if b"\n" in value:
                raise EncodeError(f"field {f.name!r}: newline in a list item (classic format)")
        elif wire_type in (WireType.BINARY, WireType.COMPRESSED):
            value = base64.b64encode(_bytes_value(f))
        else:
            raise EncodeError(f"field {f.name!r}: type {wire_type.name} is never sent as such")
        parts.append(b"(%d)%s=%s\n" % (wire_type, name, value))
    return b"".join(parts)


def _str_value(f: Field) -> bytes:
    if not isinstance(f.value, str):
        raise EncodeError(f"field {f.name!r} is a string field but holds {type(f.value).__name__}")
    return f.value.encode(*_TEXT)


def _bytes_value(f: Field) -> bytes:
    if not isinstance(f.value, bytes | bytearray):
        raise EncodeError(f"field {f.name!r} is a binary field but holds {type(f.value).__name__}")
    return bytes(f.value)


def _struct_value(f: Field) -> Message:
    if not isinstance(f.value, Message):
        raise EncodeError(f"field {f.name!r} is a struct field but holds {type(f.value).__name__}")
    return f.value


def _pack_list(f: Field) -> bytes:
    if not isinstance(f.value, list) or not all(isinstance(i, str) for i in f.value):
        raise EncodeError(f"field {f.name!r} is a list field but does not hold a list of str")
    parts = []
    for item in f.value:
        raw = item.encode(*_TEXT)
        if not raw:
            raise EncodeError(f"field {f.name!r}: Heartbeat lists cannot carry empty items")
        parts.append(_netstring(raw))
    if not parts:
        raise EncodeError(f"field {f.name!r}: Heartbeat lists cannot be empty")
    return b"".join(parts)


# ---------------------------------------------------------------------------
# what the signatures cover, and compression
# ---------------------------------------------------------------------------


def inline_signed_text(msg: Message) -> bytes:
    """What the in-body ``auth`` field signs: the classic lines of every other field."""
    try:
        return _classic_lines([f for f in msg.fields if f.name != AUTH_FIELD], 0)
    except EncodeError as exc:
        raise DecodeError(-1, f"cannot rebuild the signed text: {exc}") from None


def trailer_signed_region(data: bytes, msg: Message) -> bytes | None:
    """The bytes a netstring trailer signs: from the first ``#`` through ``%%%\\n``."""
    if msg.wire_format != "netstring" or msg.trailer is None:
        return None
    trailer_len = len(_netstring(msg.trailer.encode(*_TEXT))) + (1 if msg.nul_terminated else 0)
    return data[: len(data) - trailer_len]


def decompress(msg: Message) -> Message | None:
    """The message inside a traditional-compression envelope, or None if not one.

    The envelope's ``_compressed_payload`` holds a zlib or bz2 stream of the original
    message's classic text, ending in a NUL byte. Output is capped at Heartbeat's own
    2 MiB limit so that a hostile packet cannot inflate without bound.
    """
    payload = msg.get("_compressed_payload")
    if payload is None:
        return None
    if not isinstance(payload, bytes):
        raise DecodeError(-1, "_compressed_payload is not a binary field")
    algorithm = msg.get("_compression_algorithm", "zlib")
    if not isinstance(algorithm, str):
        raise DecodeError(-1, "_compression_algorithm is not a string")
    inner = _inflate(payload, algorithm)
    return decode(inner, limit=MAX_UNCOMPRESSED_MESSAGE)


def _inflate(payload: bytes, algorithm: str) -> bytes:
    limit = MAX_UNCOMPRESSED_MESSAGE
    try:
        if algorithm == "zlib":
            inflater = zlib.decompressobj()
            out = inflater.decompress(payload, limit + 1)
            finished = inflater.eof
        elif algorithm == "bz2":
            bz = bz2.BZ2Decompressor()
            out = bz.decompress(payload, limit + 1)
            finished = bz.eof
        else:
            raise DecodeError(-1, f"unknown compression algorithm {algorithm!r}")
    except (zlib.error, OSError, EOFError, ValueError) as exc:
        raise DecodeError(-1, f"{algorithm} stream does not decompress: {exc}") from None
    if len(out) > limit:
        raise DecodeError(-1, "decompressed message exceeds 2 MiB")
    if not finished:
        raise DecodeError(-1, f"{algorithm} stream is truncated")
    return out


def compress(msg: Message, algorithm: str = "zlib", keys: Signer | None = None) -> Message:
    """Wrap a message in a traditional-compression envelope, as Heartbeat does for big ones."""
    inner = Message(msg.fields, "classic", nul_terminated=True)
    text = encode(inner, keys)
    if algorithm == "zlib":
        payload = zlib.compress(text)
    elif algorithm == "bz2":
        payload = bz2.compress(text)
    else:
        raise EncodeError(f"unknown compression algorithm {algorithm!r}")
    envelope = Message(wire_format="netstring")
    envelope.add("_compressed_payload", payload)
    envelope.add("_compression_algorithm", algorithm)
    return envelope
