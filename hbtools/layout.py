"""Binary message layouts declared as data, and the one generic codec that reads them.

Totem and kronosnet are C structs sent as they sit in memory. Rather than hand-writing a
parse step per field, each struct is declared once as a `Layout`: an ordered table of
`Field`s (name as in the C struct, struct-module format, meaning). The same table drives
decoding, encoding, the attribute names of decoded records, their JSON view (`to_dict`)
and, later, the generated Wireshark Lua dissector, so none of these can drift apart.

A field's `fmt` is one of:

* a `struct` format code ("B", "b", "H", "h", "I", "i", "Q", "16s"). Without a byte-order
  prefix it takes the message's byte order (Totem is sent in the sender's order); a "<" or
  ">" prefix pins it (kronosnet's node id is always big endian, its PMTUd size little).
* a nested `Layout` (a struct inside a struct, e.g. `memb_ring_id`).
* `REST`: every remaining byte (a payload or fill).

With `count` a field is an array: `count` names an earlier field that holds the number of
elements (the count field is then derived from the array when encoding, and is not stored
in the record), or is a fixed int. With `const` a field always carries one value (a magic
number): decoding checks it, encoding writes it, the record does not store it.

Nothing here touches sockets or clocks: bytes in, records out.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

#: Marks a field that takes every remaining byte.
REST = "*"

#: Byte-order prefixes of the struct module, by the names used in records and JSON.
ENDIAN_PREFIX = {"little": "<", "big": ">"}


class LayoutError(ValueError):
    """Raised by the generic codec; each protocol module re-raises it as its own DecodeError.

    Keeping one internal error type lets `totem` and `knet` promise that only their own
    `DecodeError` escapes, whatever the bytes. `offset` is where the field that failed
    starts, which the protocol's error carries on.
    """

    def __init__(self, problem: str, offset: int | None = None) -> None:
        super().__init__(problem)
        self.offset = offset


@dataclass(frozen=True)
class Field:
    """One member of a C struct on the wire."""

    name: str
    fmt: str | Layout
    meaning: str
    #: Array length: the name of an earlier count field, or a fixed number of elements.
    count: str | int | None = None
    #: The value every message carries in this field (magic numbers, fixed versions).
    const: int | None = None
    #: Names of enumerated values, for people, JSON and the Wireshark value_string.
    values: Mapping[int, str] | None = None
    #: Display radix for people and the Lua export: "dec" or "hex".
    base: str = "dec"

    @property
    def is_array(self) -> bool:
        return self.count is not None

    @property
    def is_rest(self) -> bool:
        return self.fmt == REST

    @property
    def nested(self) -> Layout | None:
        return self.fmt if isinstance(self.fmt, Layout) else None

    def scalar_size(self) -> int | None:
        """Size of one element, or None when it varies (nested layouts with arrays, REST)."""
        if isinstance(self.fmt, Layout):
            return self.fmt.fixed_size
        if self.fmt == REST:
            return None
        return struct.calcsize("<" + self.fmt.lstrip("<>"))

    def is_bytes(self) -> bool:
        return isinstance(self.fmt, str) and (self.fmt == REST or self.fmt.endswith("s"))


class Layout:
    """An ordered field table: one C struct as it travels on the wire."""

    #: Record class that decoded values of this layout are wrapped in.
    record_type: type[Record]

    def __init__(self, name: str, fields: tuple[Field, ...], meaning: str) -> None:
        self.name = name
        self.fields = fields
        self.meaning = meaning
        self.record_type = Record
        names = [f.name for f in fields]
        if len(set(names)) != len(names):
            raise ValueError(f"{name}: duplicate field names")
        by_name = {f.name: f for f in fields}
        #: count field name -> the array fields it counts (all must have equal length).
        self.counted_by: dict[str, tuple[str, ...]] = {}
        for position, f in enumerate(fields):
            if isinstance(f.count, str):
                counter = by_name.get(f.count)
                if counter is None or names.index(f.count) >= position:
                    raise ValueError(f"{name}.{f.name}: count field must come earlier")
                self.counted_by[f.count] = (*self.counted_by.get(f.count, ()), f.name)
            if f.is_rest and position != len(fields) - 1:
                raise ValueError(f"{name}.{f.name}: REST must be the last field")
        #: Fields a record stores: constants and counts are implied by the rest.
        self.stored = tuple(
            f for f in fields if f.const is None and f.name not in self.counted_by
        )
        self._by_name = by_name
        #: Compiled readers by byte order, and JSON views by arguments (made on first use,
        #: so a protocol module may still set `record_type` after building the table).
        self._readers: dict[str, Callable[[bytes | memoryview, int], tuple[Record, int]]] = {}
        self._json_readers: dict[tuple[str, str, tuple[str, ...]],
                                 Callable[[bytes], tuple[Any, ...] | None]] = {}

    def __repr__(self) -> str:
        return f"Layout({self.name!r})"

    def field(self, name: str) -> Field:
        return self._by_name[name]

    @property
    def fixed_size(self) -> int | None:
        """Wire size when no field varies, else None."""
        total = 0
        for f in self.fields:
            if f.is_array and not isinstance(f.count, int):
                return None
            size = f.scalar_size()
            if size is None:
                return None
            total += size * (f.count if isinstance(f.count, int) else 1)
        return total

    def offset_of(self, name: str) -> int:
        """Byte offset of field `name`: fixed when every field before it has a fixed size.

        What readers that peek at one byte (recognisers, the Lua export) use instead of
        writing the offset down a second time.
        """
        total = 0
        for f in self.fields:
            if f.name == name:
                return total
            size = f.scalar_size()
            if size is None or (f.is_array and not isinstance(f.count, int)):
                raise ValueError(f"{self.name}.{name}: offset depends on the data")
            total += size * (f.count if isinstance(f.count, int) else 1)
        raise KeyError(f"{self.name} has no field {name!r}")

    @property
    def min_size(self) -> int:
        """Smallest possible wire size: every array empty, REST empty."""
        total = 0
        for f in self.fields:
            if f.is_rest or isinstance(f.count, str):
                continue
            elem = f.nested.min_size if f.nested is not None else f.scalar_size()
            total += (elem or 0) * (f.count if isinstance(f.count, int) else 1)
        return total

    # ---------------------------------------------------------------- decode
    def decode_from(
        self, data: bytes | memoryview, offset: int, endian: str, path: str = ""
    ) -> tuple[Record, int]:
        """Decode one instance at `offset`; return it and the offset just past it.

        The table is compiled once per byte order into a function that reads whole runs
        of fields with one ``struct`` call (`compile_reader`, dpkt's idea for `__hdr__`);
        only when that function refuses (short data, a wrong constant, an impossible
        count) does the field-by-field reader below run, to say exactly what is wrong.
        """
        reader = self._readers.get(endian)
        if reader is None:
            reader = self._readers[endian] = compile_reader(self, endian)
        try:
            return reader(data, offset)
        except (_Bad, struct.error):
            return self.decode_slowly(data, offset, endian, path)

    def read(
        self, data: bytes | memoryview, endian: str, error: type[Exception], what: str,
        offset: int = 0,
    ) -> tuple[Record, int]:
        """`decode_from`, with a `LayoutError` re-raised as the protocol's own error type
        worded ``"<what>: <problem>"`` (what totempg, CPG and Pacemaker raise)."""
        try:
            return self.decode_from(data, offset, endian)
        except LayoutError as exc:
            raise error(f"{what}: {exc}") from None

    def json_reader(
        self, endian: str, lead: str = "", want: tuple[str, ...] = ()
    ) -> Callable[[bytes], tuple[Any, ...] | None]:
        """The compiled JSON view of this table (`compile_json`), made once per arguments."""
        key = (endian, lead, want)
        function = self._json_readers.get(key)
        if function is None:
            function = self._json_readers[key] = compile_json(self, endian, lead, want)
        return function

    def decode_slowly(
        self, data: bytes | memoryview, offset: int, endian: str, path: str = ""
    ) -> tuple[Record, int]:
        """`decode_from` field by field: the reference the compiled readers must equal,
        and the one that names the field and offset of a problem (`LayoutError`)."""
        values: dict[str, Any] = {}
        counts: dict[str, int] = {}
        prefix = ENDIAN_PREFIX[endian]
        for f in self.fields:
            where = f"{path}{f.name}"
            if f.is_rest:
                values[f.name] = bytes(data[offset:])
                offset = len(data)
                continue
            if f.is_array:
                n = f.count if isinstance(f.count, int) else counts[f.count]
                elem_min = f.nested.min_size if f.nested is not None else f.scalar_size()
                if n < 0:
                    raise LayoutError(f"{where}: negative element count {n}", offset)
                if n * (elem_min or 1) > len(data) - offset:
                    raise LayoutError(
                        f"{where}: {n} elements do not fit in the {len(data) - offset} "
                        f"bytes left at offset {offset}", offset
                    )
                items = []
                for i in range(n):
                    item, offset = self._decode_one(f, data, offset, endian, prefix,
                                                    f"{where}[{i}].")
                    items.append(item)
                values[f.name] = tuple(items)
                continue
            start = offset
            value, offset = self._decode_one(f, data, offset, endian, prefix, f"{where}.")
            if f.const is not None:
                if value != f.const:
                    raise LayoutError(f"{where}: expected {f.const:#x}, found {value:#x}",
                                      start)
                continue
            if f.name in self.counted_by:
                counts[f.name] = value
                continue
            values[f.name] = value
        return self.record_type._make(self, values), offset

    @staticmethod
    def _decode_one(
        f: Field, data: bytes | memoryview, offset: int, endian: str, prefix: str, path: str
    ) -> tuple[Any, int]:
        nested = f.nested
        if nested is not None:
            return nested.decode_slowly(data, offset, endian, path)
        assert isinstance(f.fmt, str)
        codec = _struct_for(f.fmt, prefix)
        end = offset + codec.size
        if end > len(data):
            raise LayoutError(
                f"{path[:-1]}: needs {codec.size} bytes at offset {offset}, "
                f"only {len(data) - offset} left", offset
            )
        (value,) = codec.unpack_from(data, offset)
        return value, end

    # ---------------------------------------------------------------- encode
    def encode_into(self, record: Record, endian: str, out: bytearray) -> None:
        """Append the wire form of `record` to `out`."""
        prefix = ENDIAN_PREFIX[endian]
        for f in self.fields:
            if f.const is not None:
                value: Any = f.const
            elif f.name in self.counted_by:
                lengths = {len(record._values[a]) for a in self.counted_by[f.name]}
                if len(lengths) != 1:
                    raise ValueError(
                        f"{self.name}: arrays {self.counted_by[f.name]} counted by "
                        f"{f.name} differ in length"
                    )
                value = lengths.pop()
            else:
                value = record._values[f.name]
            if f.is_rest:
                out += value
            elif f.is_array:
                if isinstance(f.count, int) and len(value) != f.count:
                    raise ValueError(f"{self.name}.{f.name}: needs exactly {f.count} items")
                for item in value:
                    self._encode_one(f, item, endian, prefix, out)
            else:
                self._encode_one(f, value, endian, prefix, out)

    @staticmethod
    def _encode_one(f: Field, value: Any, endian: str, prefix: str, out: bytearray) -> None:
        nested = f.nested
        if nested is not None:
            if not isinstance(value, Record) or value._layout is not nested:
                raise ValueError(f"{f.name}: expects a {nested.name} record, got {value!r}")
            nested.encode_into(value, endian, out)
            return
        assert isinstance(f.fmt, str)
        codec = _struct_for(f.fmt, prefix)
        if f.fmt.endswith("s") and len(value) != codec.size:
            raise ValueError(f"{f.name}: needs exactly {codec.size} bytes, got {len(value)}")
        try:
            out += codec.pack(value)
        except struct.error as exc:
            raise ValueError(f"{f.name}: {exc}") from None

    # ---------------------------------------------------------------- values
    def default_value(self, f: Field) -> Any:
        """Zero value for a field a caller left out (what a zeroed C struct holds)."""
        if f.is_array:
            if isinstance(f.count, int):
                return tuple(self._default_scalar(f) for _ in range(f.count))
            return ()
        return self._default_scalar(f)

    @staticmethod
    def _default_scalar(f: Field) -> Any:
        nested = f.nested
        if nested is not None:
            return nested.record_type._make(
                nested, {g.name: nested.default_value(g) for g in nested.stored}
            )
        if f.is_rest:
            return b""
        assert isinstance(f.fmt, str)
        if f.fmt.endswith("s"):
            return bytes(_struct_for(f.fmt, "<").size)
        return 0

    def walk(self, prefix: str = "") -> Iterator[tuple[str, Field]]:
        """Every field with its dotted path, nested ones included (for the Lua export)."""
        for f in self.fields:
            yield prefix + f.name, f
            if f.nested is not None:
                yield from f.nested.walk(prefix + f.name + ".")


def aligned(name: str, fmt: str, meaning: str, align: int = 8) -> tuple[Field, ...]:
    """A member and the padding a C compiler puts after it (``pad_<name>``), so that the
    next member is aligned to `align`: corosync's exec and CPG structs, libqb's IPC
    headers and Pacemaker's message align every 32-bit member to 8 this way."""
    size = struct.calcsize("<" + fmt.lstrip("<>"))
    pad = -size % align
    member = Field(name, fmt, meaning)
    return (member, Field(f"pad_{name}", f"{pad}s", f"alignment to {align}")) if pad else (member,)


_STRUCTS: dict[tuple[str, str], struct.Struct] = {}


def _struct_for(fmt: str, prefix: str) -> struct.Struct:
    key = (fmt, prefix)
    codec = _STRUCTS.get(key)
    if codec is None:
        codec = struct.Struct(fmt if fmt[0] in "<>" else prefix + fmt)
        _STRUCTS[key] = codec
    return codec


def _freeze(value: Any) -> Any:
    """Lists become tuples so records stay hashable and compare by value."""
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


class Record:
    """Decoded values of one layout, read as attributes named after the C struct members.

    Records are immutable and compare by layout and values, so `decode(encode(m)) == m`
    is a meaningful check. Count fields and constants are not stored but can still be
    read as attributes (they follow from the arrays and the layout).
    """

    __slots__ = ("_layout", "_values")
    LAYOUT: ClassVar[Layout | None] = None

    _layout: Layout
    _values: dict[str, Any]

    def __init__(self, **values: Any) -> None:
        layout = type(self).LAYOUT
        if layout is None:
            raise TypeError("Record needs a layout: use a protocol's record class")
        self._init(layout, values)

    def _init(self, layout: Layout, values: Mapping[str, Any]) -> None:
        stored = {f.name for f in layout.stored}
        unknown = set(values) - stored
        if unknown:
            raise TypeError(f"{layout.name} has no field(s) {sorted(unknown)}")
        full = {
            f.name: _freeze(values[f.name]) if f.name in values else layout.default_value(f)
            for f in layout.stored
        }
        object.__setattr__(self, "_layout", layout)
        object.__setattr__(self, "_values", full)

    @classmethod
    def _make(cls, layout: Layout, values: dict[str, Any]) -> Record:
        """Wrap already-complete decoded values without re-checking them."""
        record = cls.__new__(cls)
        object.__setattr__(record, "_layout", layout)
        object.__setattr__(record, "_values", values)
        return record

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        values = self._values
        if name in values:
            return values[name]
        layout = self._layout
        counted = layout.counted_by.get(name)
        if counted is not None:
            return len(values[counted[0]])
        try:
            f = layout.field(name)
        except KeyError:
            raise AttributeError(f"{layout.name} has no field {name!r}") from None
        return f.const

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use replace()")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return self._layout is other._layout and self._values == other._values

    def __hash__(self) -> int:
        return hash((self._layout.name, tuple(self._values.items())))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"{type(self).__name__}[{self._layout.name}]({inner})"

    @property
    def layout(self) -> Layout:
        return self._layout

    def replace(self, **changes: Any) -> Record:
        """A copy with some fields changed (for injectors and tests)."""
        clone = type(self).__new__(type(self))
        merged = {**self._values, **changes}
        Record._init(clone, self._layout, merged)
        clone._after_replace(self)
        return clone

    def _after_replace(self, original: Record) -> None:
        """Hook for subclasses that carry state beyond the field values."""

    def to_dict(self) -> dict[str, Any]:
        """Every wire field in wire order, by the layout's names, ready for JSON.

        Counts and constants are included because a reader of the JSON sees the wire;
        bytes become lower-case hex strings.
        """
        out: dict[str, Any] = {}
        for f in self._layout.fields:
            out[f.name] = _jsonable(getattr(self, f.name))
        return out


def record_type(layout: Layout, name: str, doc: str) -> type[Record]:
    """Make the named record class for a layout (e.g. `RingId`) and bind it to the layout."""
    cls = type(name, (Record,), {"__slots__": (), "LAYOUT": layout, "__doc__": doc})
    layout.record_type = cls
    return cls


# ------------------------------------------------------------------ compiled readers
# A table is turned, once per byte order, into the source of one Python function that
# reads each run of adjacent scalar fields with a single precompiled ``struct`` call and
# builds the result in one expression: either the record (`compile_reader`, what
# `Layout.decode_from` runs) or the JSON text of its `to_dict()` (`compile_json`, what the
# dissector's hot path prints without building records). Both are generated from the same
# walk over the same table, so they cannot read a field differently.

#: struct codes whose byte order does not matter (they may join a run of either order).
_NEUTRAL = frozenset("Bbcx?s")


class _Bad(Exception):
    """A compiled reader met bytes the table does not describe exactly."""


class _Gen:
    """Writes the source of one reader for a table and a byte order.

    ``json`` mode renders each instance to a %-template and its arguments; record mode
    to an expression that builds the record (`Record._make`) from the values read.
    """

    def __init__(self, prefix: str, json_mode: bool) -> None:
        self.prefix = prefix
        self.json = json_mode
        self.lines: list[str] = []
        self.names: dict[str, Any] = {}
        self.counter = 0
        self.run: list[tuple[str, str]] = []  # pending (struct code, variable)
        self.run_order = ""
        self.consts: list[tuple[str, int]] = []

    def var(self, stem: str = "v") -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def bind(self, stem: str, value: Any) -> str:
        name = self.var(stem)
        self.names[name] = value
        return name

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
        """Read the queued run with one struct call, then check its constants."""
        if not self.run:
            return
        codec = struct.Struct((self.run_order or "<") + "".join(c for c, _ in self.run))
        unpack = self.bind("S", codec.unpack_from)
        targets = ", ".join(name for _, name in self.run)
        self.emit(f"{targets}, = {unpack}(data, off)", indent)
        self.emit(f"off += {codec.size}", indent)
        for name, value in self.consts:
            self.emit(f"if {name} != {value!r}: raise _Bad", indent)
        self.run, self.run_order, self.consts = [], "", []

    def layout(self, layout: Layout, indent: int, top: dict[str, str] | None = None
               ) -> tuple[str, list[str]]:
        """Reads for one instance. JSON mode: (template, argument expressions); record
        mode: (expression building the record, [])."""
        parts: list[str] = []
        args: list[str] = []
        values: list[str] = []  # record mode: "'name': expr" in stored order
        counts: dict[str, str] = {}
        for f in layout.fields:
            key = json.dumps(f.name).replace("%", "%%")
            nested = f.nested
            if f.is_rest:
                self.flush(indent)
                name = self.var("r")
                self.emit(f"{name} = data[off:].hex()" if self.json
                          else f"{name} = bytes(data[off:])", indent)
                self.emit("off = len(data)", indent)
                parts.append(f'{key}: "%s"')
                args.append(name)
                values.append(f"{f.name!r}: {name}")
                continue
            if f.is_array:
                count = str(f.count) if isinstance(f.count, int) else counts[f.count]
                self.flush(indent)
                least = (nested.min_size if nested is not None else f.scalar_size()) or 1
                self.emit(f"if {count} < 0 or {count} * {least} > len(data) - off: raise _Bad",
                          indent)
                items = self.var("a")
                self.emit(f"{items} = []", indent)
                self.emit(f"for _ in range({count}):", indent)
                if nested is not None:
                    tmpl, targs = self.layout(nested, indent + 1)
                else:
                    tmpl, targs = self._scalar(f.fmt, indent + 1)  # type: ignore[arg-type]
                self.flush(indent + 1)
                if self.json:
                    self.emit(f"{items}.append({tmpl!r} % ({', '.join(targs)},))", indent + 1)
                else:
                    self.emit(f"{items}.append({tmpl})", indent + 1)
                parts.append(f"{key}: [%s]")
                args.append(f"', '.join({items})")
                values.append(f"{f.name!r}: tuple({items})")
                continue
            if nested is not None:
                tmpl, targs = self.layout(nested, indent)
                parts.append(f"{key}: {tmpl}")
                args.extend(targs)
                values.append(f"{f.name!r}: {tmpl}")
                continue
            assert isinstance(f.fmt, str)
            tmpl, targs = self._scalar(f.fmt, indent)
            name = self.run[-1][1]
            if f.const is not None:
                self.consts.append((name, f.const))
            if f.name in layout.counted_by:
                counts[f.name] = name
            if top is not None:
                top[f.name] = name
            parts.append(f"{key}: {tmpl}")
            args.extend(targs)
            if f.const is None and f.name not in layout.counted_by:
                values.append(f"{f.name!r}: {name}")
        if self.json:
            return "{" + ", ".join(parts) + "}", args
        make = self.bind("M", layout.record_type._make)
        table = self.bind("L", layout)
        return f"{make}({table}, {{{', '.join(values)}}})", []

    def _scalar(self, fmt: str, indent: int) -> tuple[str, list[str]]:
        name = self.leaf(fmt, indent)
        if not self.json:
            return name, []
        if fmt.endswith("s"):
            return '"%s"', [f"{name}.hex()"]
        return "%d", [name]

    def build(self, entry: str) -> Any:
        namespace: dict[str, Any] = {"_Bad": _Bad, "StructError": struct.error, **self.names}
        exec("\n".join(self.lines), namespace)  # noqa: S102 - source generated from a table
        return namespace[entry]


def compile_reader(
    layout: Layout, endian: str
) -> Callable[[bytes | memoryview, int], tuple[Record, int]]:
    """``(data, offset) -> (record, offset after it)`` for one table and byte order.

    Raises `_Bad` or ``struct.error`` where the bytes do not fit (the caller then asks the
    field-by-field reader for the precise `LayoutError`).
    """
    gen = _Gen(ENDIAN_PREFIX[endian], json_mode=False)
    gen.emit("def read(data, off):", 0)
    expression, _ = gen.layout(layout, 1)
    gen.flush(1)
    gen.emit(f"return {expression}, off", 1)
    function: Callable[[bytes | memoryview, int], tuple[Record, int]] = gen.build("read")
    return function


def compile_json(
    layout: Layout, endian: str, lead: str = "", want: tuple[str, ...] = ()
) -> Callable[[bytes], tuple[Any, ...] | None]:
    """``data -> (JSON text of the record's to_dict(), *wanted top-level values)``.

    `lead` is JSON text put first inside the braces (e.g. ``"endian": "little", ``). The
    data must be exactly one instance; None for anything the table does not describe
    exactly (short data, a wrong constant, an impossible count, trailing bytes).
    """
    gen = _Gen(ENDIAN_PREFIX[endian], json_mode=True)
    top: dict[str, str] = {}
    gen.emit("def render(data):", 0)
    gen.emit("try:", 1)
    gen.emit("off = 0", 2)
    tmpl, args = gen.layout(layout, 2, top)
    gen.flush(2)
    gen.emit("if off != len(data): return None", 2)
    gen.emit("except (_Bad, StructError):", 1)
    gen.emit("return None", 2)
    tmpl = "{" + lead.replace("%", "%%") + tmpl[1:]
    returns = ", ".join([f"{tmpl!r} % ({', '.join(args)},)", *(top[w] for w in want)])
    gen.emit(f"return ({returns},)", 1)
    function: Callable[[bytes], tuple[Any, ...] | None] = gen.build("render")
    return function
