"""Generate the Wireshark Lua plugin `hbtools.lua` from the codecs' field tables.

Wireshark 4.0 has no Heartbeat dissector, rejects every Corosync 3 Totem frame and takes
kronosnet for a game protocol (shared/PROTOCOL-NOTES.md). The plugin fills that gap, and
because it is an output of the same tables the Python codecs read (`hbtools.fields` for
Heartbeat, the `Layout`s of `hbtools.totem` and `hbtools.knet`), a field can never mean
one thing in `hbtool decode` and another in Wireshark: add a field in Python, regenerate,
and both know it.

Only data crosses from Python to Lua: field names, wire types, radixes, sizes, counts,
constants and value names become Lua tables. The Lua code that walks those tables (the
netstring/classic parser, the generic struct walker, CRC-32/MD5/SHA-1/HMAC for the
signature check) is fixed text kept here, written for Lua 5.2 (Wireshark <= 4.2) and
5.3/5.4 alike: no `//`, no bitwise operator syntax, bit operations through whichever of
`bit32`, `bit` or native operators the running Lua has.

Pure: `generate()` returns text; writing files is the CLI's business.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from hbtools import __version__, heartbeat, knet, totem
from hbtools.fields import (
    FIELDS,
    MAX_WIRE_MESSAGE,
    STRING_NEWLINE_SUBSTITUTE,
    STRUCT_NEWLINE_SUBSTITUTES,
    FieldSpec,
    Kind,
    WireType,
)
from hbtools.layout import REST, Field, Layout

__all__ = [
    "HEARTBEAT_PORT",
    "TOTEM_PORTS",
    "GeneratorError",
    "generate",
    "totem_field_paths",
    "tshark_command",
]

#: The ports the plugin registers: declared by the codecs, as `hbtools.recognition` uses.
HEARTBEAT_PORT = heartbeat.PORT
#: udp (5404 -> 5405), udpu and knet (5405 -> 5405).
TOTEM_PORTS = totem.PORTS


class GeneratorError(ValueError):
    """The field tables cannot be expressed as Wireshark fields (e.g. one path, two types)."""


# --------------------------------------------------------------------------- Lua literals

def _lua_str(text: str) -> str:
    """A Lua string literal that survives any byte (decimal escapes, no long brackets)."""
    out = []
    for byte in text.encode("utf-8"):
        if byte in (0x22, 0x5C) or byte < 0x20 or byte > 0x7E:
            out.append(f"\\{byte:03d}")
        else:
            out.append(chr(byte))
    return '"' + "".join(out) + '"'


def _lua_value(value: object) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _lua_str(value)
    raise GeneratorError(f"no Lua literal for {value!r}")


def _valuestring(values: Mapping[int, str] | None) -> str:
    if not values:
        return "nil"
    return "{" + ", ".join(f"[{k}] = {_lua_str(v)}" for k, v in sorted(values.items())) + "}"


# --------------------------------------------------------------------------- Heartbeat

#: How each Kind shows in Wireshark: ProtoField constructor and its display argument.
_HB_PROTOFIELD = {
    Kind.TEXT: ("string", None),
    Kind.WORDS: ("string", None),
    Kind.SIGNATURE: ("string", None),
    Kind.HEX_INT: ("uint64", "base.DEC"),  # the number, in decimal as decode shows it
    Kind.DEC_INT: ("int64", "base.DEC"),
    Kind.UUID: ("guid", None),
    Kind.BYTES: ("bytes", None),
    Kind.STRUCT: ("none", None),
    Kind.LIST: ("string", None),
}


def _hb_field_decl(spec: FieldSpec) -> str:
    ctor, display = _HB_PROTOFIELD[spec.kind]
    abbr = _lua_str(f"heartbeat.{spec.name}")
    label = _lua_str(spec.name)
    blurb = spec.meaning + (f" (known values: {', '.join(spec.values)})" if spec.values else "")
    desc = _lua_str(blurb)
    if ctor in ("uint64", "int64"):
        return f"ProtoField.{ctor}({abbr}, {label}, {display}, nil, nil, {desc})"
    if ctor in ("string", "bytes"):
        return f"ProtoField.{ctor}({abbr}, {label}, nil, {desc})"
    return f"ProtoField.{ctor}({abbr}, {label}, {desc})"


def _heartbeat_tables() -> str:
    lines = ["local HB_SPECS = {"]
    for spec in FIELDS.values():
        by_type = "{" + ", ".join(
            f"[{_lua_str(t)}] = {_lua_str(k.value)}" for t, k in spec.kind_by_type.items()
        ) + "}"
        lines.append(
            f"  [{_lua_str(spec.name)}] = {{kind = {_lua_str(spec.kind.value)}, "
            f"wire_type = {int(spec.wire_type)}, kind_by_type = {by_type}, "
            f"pf = {_hb_field_decl(spec)}}},"
        )
    lines.append("}")
    lines.append("local HB_ORDER = {" + ", ".join(_lua_str(n) for n in FIELDS) + "}")
    lines.append("local HB_WIRE_TYPES = {" + ", ".join(
        f"[{t.value}] = {_lua_str(t.name.lower())}" for t in WireType
        if t is not WireType.UNCOMPRESSED) + "}")
    lines.append(f"local HB_STRING_NEWLINE = {STRING_NEWLINE_SUBSTITUTE}")
    lines.append("local HB_STRUCT_NEWLINES = {" + ", ".join(
        str(b) for b in STRUCT_NEWLINE_SUBSTITUTES) + "}")
    lines.append(f"local HB_MAX_DEPTH = {len(STRUCT_NEWLINE_SUBSTITUTES)}")
    lines.append(f"local HB_MAX_WIRE = {MAX_WIRE_MESSAGE}")
    lines.append(f"local HB_PORT = {HEARTBEAT_PORT}")
    lines.append("local HB_OPENINGS = {" + ", ".join(
        f"[{_lua_str(o.decode())}] = true" for o in heartbeat.OPENINGS) + "}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- layouts

#: struct-module code -> (ProtoField constructor, size, signed)
_SCALARS = {
    "B": ("uint8", 1, False), "b": ("int8", 1, True),
    "H": ("uint16", 2, False), "h": ("int16", 2, True),
    "I": ("uint32", 4, False), "i": ("int32", 4, True),
    "Q": ("uint64", 8, False), "q": ("int64", 8, True),
}


def _split_fmt(fmt: str) -> tuple[str | None, str]:
    """('<' / '>' / None, bare code)."""
    if fmt and fmt[0] in "<>":
        return fmt[0], fmt[1:]
    return None, fmt


def _field_kind(f: Field) -> str:
    """Stable description of what a path holds, to catch one path with two meanings."""
    if f.nested is not None:
        return "struct"
    assert isinstance(f.fmt, str)
    if f.fmt == REST:
        return "bytes"
    _, code = _split_fmt(f.fmt)
    if code.endswith("s"):
        return "bytes"
    if code not in _SCALARS:
        raise GeneratorError(f"{f.name}: no Wireshark type for struct format {f.fmt!r}")
    return _SCALARS[code][0]


def _protofield(abbr: str, f: Field, kind: str) -> str:
    label = _lua_str(f.name)
    desc = _lua_str(f.meaning)
    if kind == "struct":
        return f"ProtoField.none({_lua_str(abbr)}, {label}, {desc})"
    if kind == "bytes":
        return f"ProtoField.bytes({_lua_str(abbr)}, {label}, nil, {desc})"
    base = "base.HEX" if f.base == "hex" and kind.startswith("uint") else "base.DEC"
    return (f"ProtoField.{kind}({_lua_str(abbr)}, {label}, {base}, "
            f"{_valuestring(f.values)}, nil, {desc})")


_WIDER = {"int8": "int16", "uint8": "int16", "int16": "int32", "uint16": "int32",
          "int32": "int64", "uint32": "int64"}


def _merge_kinds(path: str, a: str, b: str) -> str:
    """One Wireshark type for a path whose C type differs by signedness between messages.

    Corosync itself does this (orf_token's `int retrans_flg`, memb_commit_token's
    `unsigned int retrans_flg`): the next wider signed type holds every value of both.
    """
    if a == b:
        return a
    for x, y in ((a, b), (b, a)):
        if _WIDER.get(x) is not None and y in (x.lstrip("u"), "u" + x.lstrip("u")):
            return _WIDER[x]
        if _WIDER.get(x) == y:
            return y
    raise GeneratorError(f"{path}: declared as {a} and as {b}")


def _collect_paths(proto: str, layouts: Iterable[Layout]) -> dict[str, tuple[Field, str]]:
    """Every dotted path once, with the Wireshark type that holds all its declarations."""
    paths: dict[str, tuple[Field, str]] = {}
    for layout in layouts:
        for path, f in layout.walk():
            seen = paths.get(path)
            if seen is None:
                paths[path] = (f, _field_kind(f))
                continue
            first, kind = seen
            if first.values != f.values or first.base != f.base:
                raise GeneratorError(f"{proto}.{path}: value names or radix differ between "
                                     "messages")
            paths[path] = (first, _merge_kinds(f"{proto}.{path}", kind, _field_kind(f)))
    return paths


def totem_field_paths() -> dict[str, list[str]]:
    """Filter names the plugin declares, per protocol (for docs and tests)."""
    return {
        "totem": [f"totem.{p}" for p in _collect_paths("totem", totem.LAYOUTS.values())],
        "kronosnet": [f"kronosnet.{p}" for p in _collect_paths(
            "kronosnet", (v for k, v in knet.LAYOUTS.items() if k != knet.ENCRYPTED))],
    }


class _LayoutEmitter:
    """Writes layouts as Lua tables, each nested layout once, fields pointing at ProtoFields."""

    def __init__(self, proto: str, var: str, kinds: Mapping[str, str]) -> None:
        self.proto = proto
        self.kinds = kinds
        self.var = var  # Lua table holding the ProtoFields by path
        self.emitted: dict[tuple[int, str], str] = {}
        self.lines: list[str] = []

    def layout(self, layout: Layout, prefix: str = "") -> str:
        key = (id(layout), prefix)
        name = self.emitted.get(key)
        if name is not None:
            return name
        fields = []
        for f in layout.fields:
            path = prefix + f.name
            entry: dict[str, str] = {"name": _lua_str(f.name), "pf": f"{self.var}[{_lua_str(path)}]"}
            if f.nested is not None:
                entry["nested"] = self.layout(f.nested, path + ".")
                min_size = f.nested.min_size
                entry["min"] = str(min_size)
            else:
                assert isinstance(f.fmt, str)
                order, code = _split_fmt(f.fmt)
                if f.fmt == REST:
                    entry["code"] = _lua_str("*")
                elif code.endswith("s"):
                    entry["code"] = _lua_str("s")
                    entry["size"] = str(int(code[:-1] or "1"))
                else:
                    ctor, size, signed = _SCALARS[code]
                    entry["code"] = _lua_str("u64" if ctor == "uint64" else
                                             "i64" if ctor == "int64" else
                                             "i" if signed else "u")
                    entry["size"] = str(size)
                    if self.kinds[path] != ctor:
                        entry["wide"] = "true"
                if order is not None:
                    entry["order"] = _lua_str("little" if order == "<" else "big")
                entry["min"] = entry.get("size", "0")
            if isinstance(f.count, str):
                entry["count"] = _lua_str(f.count)
            elif isinstance(f.count, int):
                entry["count"] = str(f.count)
            if f.const is not None:
                entry["const"] = str(f.const)
            if f.values:
                entry["values"] = _valuestring(f.values)
            fields.append("{" + ", ".join(f"{k} = {v}" for k, v in entry.items()) + "}")
        var = f"L_{self.proto}_{len(self.emitted)}"
        self.emitted[key] = var
        body = ",\n  ".join(fields)
        self.lines.append(
            f"local {var} = {{name = {_lua_str(layout.name)}, min = {layout.min_size}, "
            f"fields = {{\n  {body}\n}}}}")
        return var


def _layout_tables() -> str:
    out: list[str] = []
    totem_paths = _collect_paths("totem", totem.LAYOUTS.values())
    knet_layouts = {k: v for k, v in knet.LAYOUTS.items() if k != knet.ENCRYPTED}
    knet_paths = _collect_paths("kronosnet", knet_layouts.values())
    for proto, var, paths in (("totem", "TOTEM_PF", totem_paths),
                              ("kronosnet", "KNET_PF", knet_paths)):
        out.append(f"local {var} = {{")
        for path, (f, kind) in paths.items():
            out.append(f"  [{_lua_str(path)}] = {_protofield(proto + '.' + path, f, kind)},")
        out.append("}")

    emitter = _LayoutEmitter("totem", "TOTEM_PF", {p: k for p, (_, k) in totem_paths.items()})
    by_code = {}
    for name, layout in totem.LAYOUTS.items():
        by_code[totem.TYPE_CODES[name]] = emitter.layout(layout)
    out.extend(emitter.lines)
    out.append("local TOTEM_LAYOUTS = {" + ", ".join(
        f"[{code}] = {var}" for code, var in sorted(by_code.items())) + "}")

    kemitter = _LayoutEmitter("knet", "KNET_PF", {p: k for p, (_, k) in knet_paths.items()})
    kby_code = {}
    for name, layout in knet_layouts.items():
        kby_code[knet.TYPE_CODES[name]] = kemitter.layout(layout)
    out.extend(kemitter.lines)
    out.append("local KNET_LAYOUTS = {" + ", ".join(
        f"[{code}] = {var}" for code, var in sorted(kby_code.items())) + "}")

    out.append(f"local TOTEM_MAGIC = {totem.MAGIC}")
    out.append(f"local TOTEM_VERSION = {totem.VERSION}")
    out.append(f"local TOTEM_ENDIAN_DETECTOR = {totem.ENDIAN_DETECTOR}")
    out.append(f"local TOTEM_TYPES = {_valuestring(totem.TYPES)}")
    out.append(f"local KNET_VERSION = {knet.VERSION}")
    out.append(f"local KNET_TYPES = {_valuestring(knet.TYPES)}")
    out.append(f"local KNET_COMPRESS_MAX = {knet.COMPRESS_MAX}")
    out.append(f"local KNET_MIN_ENCRYPTED_SIZE = {knet.MIN_ENCRYPTED_SIZE}")
    ping = knet.LAYOUTS["ping"]
    out.append(f"local KNET_PING_SIZE = {ping.fixed_size}")
    out.append(f"local KNET_HEADER_SIZE = {knet.HEADER_SIZE}")
    for name in ("COMPRESS_AT", "PAD_AT", "BCAST_AT", "FRAG_NUM_AT", "FRAG_SEQ_AT",
                 "USERDATA_AT", "TIMED_AT"):
        out.append(f"local KNET_{name} = {getattr(knet, name)}")
    out.append("local TOTEM_PORTS = {" + ", ".join(str(p) for p in TOTEM_PORTS) + "}")
    extra = [p for p in knet.LINK_PORTS if p not in TOTEM_PORTS]
    out.append("local KNET_LINK_PORTS = {" + ", ".join(str(p) for p in extra) + "}")
    return "\n".join(out)


def _md5_tables() -> str:
    k = [int(abs(math.sin(i + 1)) * 2**32) & 0xFFFFFFFF for i in range(64)]
    s = [7, 12, 17, 22] * 4 + [5, 9, 14, 20] * 4 + [4, 11, 16, 23] * 4 + [6, 10, 15, 21] * 4
    return ("local MD5_K = {" + ", ".join(str(x) for x in k) + "}\n"
            "local MD5_S = {" + ", ".join(str(x) for x in s) + "}")


def field_kinds() -> dict[str, str]:
    """abbrev -> "int", "bytes", "guid", "text" or "none" for every field the plugin declares
    from the tables, so a reader of tshark output (hbtools.pyshark) can type values the way
    ``hbtool decode`` does without a table of its own."""
    out: dict[str, str] = {}
    for spec in FIELDS.values():
        ctor = _HB_PROTOFIELD[spec.kind][0]
        out[f"heartbeat.{spec.name}"] = ("int" if ctor in ("uint64", "int64") else
                                         "text" if ctor == "string" else ctor)
    protos = {"totem": totem.LAYOUTS.values(), "kronosnet": (
        v for k, v in knet.LAYOUTS.items() if k != knet.ENCRYPTED)}
    for proto, layouts in protos.items():
        for path, (_f, kind) in _collect_paths(proto, layouts).items():
            out[f"{proto}.{path}"] = ("none" if kind == "struct" else
                                      "bytes" if kind == "bytes" else "int")
    # The plugin's own flags (signature verdicts, knet's encrypted) are declared in its Lua text.
    for match in re.finditer(r'ProtoField\.bool\("([^"]+)"', generate()):
        out[match[1]] = "bool"
    return out


# --------------------------------------------------------------------------- benchmark hook

def tshark_command(capture: str, plugin: str = "wireshark/hbtools.lua",
                   tshark: str = "tshark") -> list[str]:
    """The tshark run that decodes a capture with the plugin, as the decode benchmark times it.

    Every packet is fully dissected and its fields written (-T fields of the main keys),
    so the figure compares like with like against `hbtool decode --format json`.
    """
    return [tshark, "-n", "-X", f"lua_script:{plugin}", "-r", capture,
            "-Y", "heartbeat || totem || kronosnet", "-T", "fields",
            "-e", "frame.number", "-e", "heartbeat.t", "-e", "heartbeat.src",
            "-e", "totem.type", "-e", "totem.nodeid", "-e", "kronosnet.type"]


# --------------------------------------------------------------------------- above Totem

def _corosync_tables() -> str:
    """Service, function, daemon and operation tables, and one field per summary key."""
    from hbtools import cpg, pcmk
    from hbtools.corosync import SUMMARY_KEYS

    out = ["local COROSYNC_PF = {"]
    for key, meaning in SUMMARY_KEYS.items():
        out.append(f"  [{_lua_str(key)}] = ProtoField.string({_lua_str('corosync.' + key)}, "
                   f"{_lua_str(key)}, nil, {_lua_str(meaning)}),")
    out.append("}")
    out.append(f"local COROSYNC_SERVICES = {_valuestring(cpg.SERVICES)}")
    out.append("local COROSYNC_FUNCTIONS = {" + ", ".join(
        f"[{_lua_str(name)}] = {_valuestring(funcs) if funcs else '{}'}"
        for name, funcs in cpg.FUNCTIONS.items()) + "}")
    out.append("local PCMK_DAEMONS = {" + ", ".join(
        f"[{_lua_str(g)}] = {_lua_str(d)}" for g, d in pcmk.DAEMONS.items()) + "}")
    out.append("local PCMK_OP_KEYS = {" + ", ".join(_lua_str(k) for k in pcmk.OPERATION_KEYS)
               + "}")
    return "\n".join(out)


_ABOVE_TOTEM = r"""
---------------------------------------------------------------------------- above Totem
-- totempg, the corosync exec header, CPG and Pacemaker, for the messages an mcast holds
-- WHOLE (one cut across mcasts needs the sender's other mcasts: hbtool decode joins them).
-- Offsets: hbtools.totempg / hbtools.cpg / hbtools.pcmk (x86_64, sender's byte order).
local p_coro = Proto("corosync", "Corosync messages (totempg, CPG, Pacemaker)")
p_coro.fields = {}
do
  local list = {}
  for _, pf in pairs(COROSYNC_PF) do list[#list + 1] = pf end
  p_coro.fields = list
end

local function rd(tvb, off, size, endian)
  if endian == "little" then return tvb(off, size):le_uint() end
  return tvb(off, size):uint()
end

local function cstr(tvb, off, len)
  if len <= 0 then return "" end
  local s = tvb(off, len):raw()
  local z = s:find("\0", 1, true)
  if z then s = s:sub(1, z - 1) end
  return s
end

-- The operation of a Pacemaker XML text: first of PCMK_OP_KEYS on the root element.
local function pcmk_op(xml)
  local root, attrs = xml:match("^%s*<([%w_%.:%-]+)([^<>]*)>")
  if root == nil then return nil end
  for _, key in ipairs(PCMK_OP_KEYS) do
    local v = attrs:match("[%s]" .. key:gsub("%-", "%%-") .. '%s*=%s*"([^"]*)"')
    if v and v ~= "" then return v, attrs end
  end
  return root, attrs
end

local function corosync_message(tvb, tree, off, len, endian, info)
  local stop = off + len
  local ngroups = rd(tvb, off, 2, endian)
  local pos = off + 2 + 2 * ngroups
  local names = {}
  for i = 1, ngroups do
    local glen = rd(tvb, off + 2 * i, 2, endian)
    names[i] = tvb(pos, glen):raw()
    pos = pos + glen
  end
  if pos + 16 > stop then return end
  local id = rd(tvb, pos, 4, endian)
  local sid, fid = floor(id / 65536) % 65536, id % 65536
  local service = names[1] == "sync" and "sync" or (COROSYNC_SERVICES[sid] or ("service" .. sid))
  local funcs = COROSYNC_FUNCTIONS[service] or {}
  local func = funcs[fid] or ("function" .. fid)
  local msg = tree:add(p_coro, tvb(off, len), service .. " " .. func)
  msg:add(COROSYNC_PF.service, tvb(pos, 4), service)
  msg:add(COROSYNC_PF["function"], tvb(pos, 4), func)
  info[#info + 1] = service .. " " .. func
  if service ~= "cpg" or pos + 152 > stop then return end
  if func ~= "mcast" and func ~= "procjoin" and func ~= "procleave" and func ~= "partial_mcast" then return end
  local glen = rd(tvb, pos + 16, 4, endian)
  local group = cstr(tvb, pos + 24, math.min(glen, 128))
  msg:add(COROSYNC_PF.cpg_group, tvb(pos + 24, 128), group)
  if func ~= "mcast" or PCMK_DAEMONS[group] == nil or pos + 184 + 592 > stop then return end
  msg:add(COROSYNC_PF.daemon, tvb(pos + 16, 136), PCMK_DAEMONS[group])
  local p = pos + 184
  local compressed = rd(tvb, p + 28, 4, endian)
  local host = cstr(tvb, p + 32 + 20, 256)
  local sender = cstr(tvb, p + 308 + 20, 256)
  local size = rd(tvb, p + 584, 4, endian)
  if compressed ~= 0 then
    msg:append_text(" (bzip2-compressed XML: not shown here)")
  elseif p + 592 + size <= stop then
    local op, attrs = pcmk_op(cstr(tvb, p + 592, size))
    if op then
      msg:add(COROSYNC_PF.pcmk_op, tvb(p + 592, size), op)
      local t = attrs and attrs:match('[%s]t%s*=%s*"([^"]*)"')
      if t then msg:add(COROSYNC_PF.pcmk_t, tvb(p + 592, size), t) end
      info[#info] = group .. " " .. op .. " " .. sender .. "->" .. (host ~= "" and host or "*")
    end
  end
  msg:add(COROSYNC_PF.pcmk_from, tvb(p + 308 + 20, 256), sender)
  msg:add(COROSYNC_PF.pcmk_to, tvb(p + 32 + 20, 256), host)
end

-- The whole messages of one mcast payload (Totem header 13 + mcast fields 32 = 45).
local function corosync_dissect(tvb, tree, endian)
  local base = 45
  if tvb:len() < base + 8 then return nil end
  local fragmented, continuation = tvb(base + 4, 1):uint(), tvb(base + 5, 1):uint()
  local count = rd(tvb, base + 6, 2, endian)
  local off = base + 8 + 2 * count
  local info = {}
  for i = 1, count do
    local len = rd(tvb, base + 8 + 2 * (i - 1), 2, endian)
    if off + len > tvb:len() then return nil end
    local whole = not (i == 1 and continuation ~= 0) and not (i == count and fragmented ~= 0)
    if whole then corosync_message(tvb, tree, off, len, endian, info) end
    off = off + len
  end
  if #info == 0 then return nil end
  return table.concat(info, ", ")
end
"""  # noqa: E501  (Lua text)


# --------------------------------------------------------------------------- output

def generate() -> str:
    """The whole plugin, deterministic for a given set of tables (it is committed)."""
    parts = [
        _HEADER.replace("@VERSION@", __version__),
        _GUARD,
        _COMPAT,
        _md5_tables(),
        _HASHES,
        _heartbeat_tables(),
        _HEARTBEAT,
        _layout_tables(),
        _LAYOUT_WALKER,
        _corosync_tables(),
        _ABOVE_TOTEM,
        _CORO,
    ]
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"


#: Loaded twice (installed in the personal plugin folder AND given with -X lua_script:),
#: the second copy would register the same protocols again and tshark prints a Lua
#: error: the second load is skipped instead (issue 14).
_GUARD = r"""
if Dissector ~= nil and type(Dissector.list) == "function" then
  for _, name in ipairs(Dissector.list()) do
    if name == "heartbeat" then return end  -- this plugin is loaded already
  end
end
"""

_HEADER = r"""
-- hbtools.lua: Wireshark dissectors for Linux-HA Heartbeat, Corosync 3 Totem and kronosnet.
--
-- GENERATED by `hbtool wireshark export` (hbtools @VERSION@) from the codecs' field tables
-- (hbtools/fields.py, hbtools/totem.py, hbtools/knet.py). Do not edit: change the tables
-- and regenerate, so that this plugin and `hbtool decode` cannot disagree.
--
-- Install: copy into ~/.local/lib/wireshark/plugins/ (or `hbtool wireshark export --install`),
-- or run `tshark -X lua_script:hbtools.lua ...`.
-- Protocols: heartbeat (UDP 694 + heuristic), totem (Corosync 3 on UDP 5404/5405),
-- kronosnet (knet header on UDP 5405, hands its data to totem).
-- Preferences: heartbeat.authkeys (path of an authkeys file), heartbeat.keys (inline
-- "N method [secret]" entries separated by ';') to check md5/sha1 signatures; crc is
-- always checked.
-- Runs on Lua 5.2 (Wireshark <= 4.2) and 5.3/5.4.
"""  # noqa: E501  (Lua text)

_COMPAT = r"""
local unpack = table.unpack or unpack
local floor = math.floor
local TWO32 = 4294967296

-- 32-bit unsigned bit operations from whatever this Lua offers. Native operators are only
-- compiled through load() so that a Lua 5.2 parser never sees them.
local band, bor, bxor, lshift, rshift, rol
if bit32 then
  band, bor, bxor, lshift, rshift, rol = bit32.band, bit32.bor, bit32.bxor, bit32.lshift,
    bit32.rshift, bit32.lrotate
elseif bit then
  local function u(x) return x % TWO32 end
  band = function(a, b) return u(bit.band(a, b)) end
  bor = function(a, b) return u(bit.bor(a, b)) end
  bxor = function(a, b) return u(bit.bxor(a, b)) end
  lshift = function(a, n) return u(bit.lshift(a, n)) end
  rshift = function(a, n) return u(bit.rshift(a, n)) end
  rol = function(a, n) return u(bit.rol(a, n)) end
else
  local ops = load([[
    local M = 0xffffffff
    return function(a, b) return (a & b) & M end,
           function(a, b) return (a | b) & M end,
           function(a, b) return (a ~ b) & M end,
           function(a, n) return (a << n) & M end,
           function(a, n) return (a & M) >> n end,
           function(a, n) a = a & M; return ((a << n) | (a >> (32 - n))) & M end
  ]])
  band, bor, bxor, lshift, rshift, rol = ops()
end
local function bnot(a) return bxor(a, 0xffffffff) end
local function add32(a, b) return (a + b) % TWO32 end
"""  # noqa: E501  (Lua text)

_HASHES = r"""
-- Heartbeat's crc method: CRC-32, polynomial 0x04C11DB7, MSB-first, init 0, final NOT.
local CRC_TABLE = {}
for i = 0, 255 do
  local c = lshift(i, 24)
  for _ = 1, 8 do
    if band(c, 0x80000000) ~= 0 then c = bxor(lshift(c, 1), 0x04C11DB7) else c = lshift(c, 1) end
  end
  CRC_TABLE[i] = c
end

local function crc32_heartbeat(s)
  local crc = 0
  for i = 1, #s do
    crc = bxor(lshift(crc, 8), CRC_TABLE[bxor(rshift(crc, 24), s:byte(i))])
  end
  return bnot(crc)
end

local function be32(x)
  return string.char(floor(x / 16777216) % 256, floor(x / 65536) % 256, floor(x / 256) % 256, x % 256)
end
local function le32(x)
  return string.char(x % 256, floor(x / 256) % 256, floor(x / 65536) % 256, floor(x / 16777216) % 256)
end

local function md_pad(s, little)
  local bits = #s * 8
  local lo, hi = bits % TWO32, floor(bits / TWO32)
  local pad = "\128" .. string.rep("\0", (55 - #s) % 64)
  if little then return s .. pad .. le32(lo) .. le32(hi) end
  return s .. pad .. be32(hi) .. be32(lo)
end

local function md5(s)
  local a0, b0, c0, d0 = 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476
  s = md_pad(s, true)
  local M = {}
  for chunk = 1, #s, 64 do
    for j = 0, 15 do
      local p = chunk + j * 4
      local b1, b2, b3, b4 = s:byte(p, p + 3)
      M[j] = b1 + b2 * 256 + b3 * 65536 + b4 * 16777216
    end
    local a, b, c, d = a0, b0, c0, d0
    for i = 0, 63 do
      local f, g
      if i < 16 then f = bor(band(b, c), band(bnot(b), d)); g = i
      elseif i < 32 then f = bor(band(d, b), band(bnot(d), c)); g = (5 * i + 1) % 16
      elseif i < 48 then f = bxor(bxor(b, c), d); g = (3 * i + 5) % 16
      else f = bxor(c, bor(b, bnot(d))); g = (7 * i) % 16 end
      local t = d
      d = c
      c = b
      b = add32(b, rol((a + f + MD5_K[i + 1] + M[g]) % TWO32, MD5_S[i + 1]))
      a = t
    end
    a0, b0, c0, d0 = add32(a0, a), add32(b0, b), add32(c0, c), add32(d0, d)
  end
  return le32(a0) .. le32(b0) .. le32(c0) .. le32(d0)
end

local function sha1(s)
  local h0, h1, h2, h3, h4 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0
  s = md_pad(s, false)
  local W = {}
  for chunk = 1, #s, 64 do
    for j = 0, 15 do
      local p = chunk + j * 4
      local b1, b2, b3, b4 = s:byte(p, p + 3)
      W[j] = b1 * 16777216 + b2 * 65536 + b3 * 256 + b4
    end
    for j = 16, 79 do
      W[j] = rol(bxor(bxor(W[j - 3], W[j - 8]), bxor(W[j - 14], W[j - 16])), 1)
    end
    local a, b, c, d, e = h0, h1, h2, h3, h4
    for j = 0, 79 do
      local f, k
      if j < 20 then f = bor(band(b, c), band(bnot(b), d)); k = 0x5A827999
      elseif j < 40 then f = bxor(bxor(b, c), d); k = 0x6ED9EBA1
      elseif j < 60 then f = bor(bor(band(b, c), band(b, d)), band(c, d)); k = 0x8F1BBCDC
      else f = bxor(bxor(b, c), d); k = 0xCA62C1D6 end
      local t = (rol(a, 5) + f + e + k + W[j]) % TWO32
      e = d
      d = c
      c = rol(b, 30)
      b = a
      a = t
    end
    h0, h1, h2, h3, h4 = add32(h0, a), add32(h1, b), add32(h2, c), add32(h3, d), add32(h4, e)
  end
  return be32(h0) .. be32(h1) .. be32(h2) .. be32(h3) .. be32(h4)
end

local function tohex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- HMAC (RFC 2104) over a 64-byte block hash.
local function hmac(hash, key, msg)
  if #key > 64 then key = hash(key) end
  key = key .. string.rep("\0", 64 - #key)
  local ipad, opad = {}, {}
  for i = 1, 64 do
    local k = key:byte(i)
    ipad[i] = string.char(bxor(k, 0x36))
    opad[i] = string.char(bxor(k, 0x5c))
  end
  return hash(table.concat(opad) .. hash(table.concat(ipad) .. msg))
end

-- The digest Heartbeat writes for a method: crc as %lx (no padding), HMACs in lower hex.
local function hb_digest(method, secret, data)
  if method == "crc" then return string.format("%x", crc32_heartbeat(data)) end
  if method == "md5" then return tohex(hmac(md5, secret, data)) end
  if method == "sha1" then return tohex(hmac(sha1, secret, data)) end
  return nil
end

-- Lets the test suite run the digests on a plain Lua interpreter (nil inside Wireshark).
if HBTOOLS_TEST then HBTOOLS_TEST(hb_digest) end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64_INDEX = {}
for i = 1, 64 do B64_INDEX[B64:byte(i)] = i - 1 end

local function b64encode(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local q = {floor(n / 262144) % 64, floor(n / 4096) % 64, floor(n / 64) % 64, n % 64}
    out[#out + 1] = B64:sub(q[1] + 1, q[1] + 1) .. B64:sub(q[2] + 1, q[2] + 1)
      .. (b and B64:sub(q[3] + 1, q[3] + 1) or "=") .. (c and B64:sub(q[4] + 1, q[4] + 1) or "=")
  end
  return table.concat(out)
end

-- Strict standard base64 (padded); nil when not canonical, as Heartbeat's decoder requires.
local function b64decode(s)
  if #s % 4 ~= 0 then return nil end
  local body, pad = s:match("^([A-Za-z0-9+/]*)(=?=?)$")
  if body == nil then return nil end
  local out = {}
  for i = 1, #body, 4 do
    local chunk = body:sub(i, i + 3)
    local n = 0
    for j = 1, 4 do n = n * 64 + (B64_INDEX[chunk:byte(j) or 65] or 0) end
    local bytes = string.char(floor(n / 65536) % 256, floor(n / 256) % 256, n % 256)
    out[#out + 1] = bytes:sub(1, math.max(0, #chunk - 1))
  end
  local raw = table.concat(out)
  if b64encode(raw) ~= s then return nil end
  return raw
end
"""  # noqa: E501  (Lua text)

_HEARTBEAT = r"""
---------------------------------------------------------------------------- heartbeat
local p_hb = Proto("heartbeat", "Linux-HA Heartbeat")

local HB_PF = {
  format = ProtoField.string("heartbeat.format", "Wire format", nil, "netstring (###) or classic (>>>)"),
  field = ProtoField.string("heartbeat.field", "Field", nil,
    "name=value of a field not in hbtools' table, or whose value does not fit its declared type"),
  list_item = ProtoField.string("heartbeat.list_item", "List item", nil, "one item of a list (type 3) field"),
  trailer = ProtoField.string("heartbeat.trailer", "Auth trailer", nil, "trailing netstring: key number and digest"),
  auth_method = ProtoField.string("heartbeat.auth.method", "Auth method", nil,
    "crc, md5 or sha1: from the authkeys preference, else guessed from the digest length"),
  auth_key = ProtoField.uint32("heartbeat.auth.key", "Auth key number", base.DEC, nil, nil, "key number N of the signature"),
  auth_valid = ProtoField.bool("heartbeat.auth.valid", "Signatures valid", nil, nil, nil,
    "every signature the packet carries is right (only when it could be checked)"),
  auth_trailer_valid = ProtoField.bool("heartbeat.auth.trailer_valid", "Trailer signature valid"),
  auth_inline_valid = ProtoField.bool("heartbeat.auth.inline_valid", "In-body auth field valid"),
  inner = ProtoField.none("heartbeat.compressed_message", "Compressed message", "the message inside a compression envelope"),
  nul = ProtoField.bool("heartbeat.nul_terminated", "NUL terminated"),
}
local hb_fields = {}
for _, pf in pairs(HB_PF) do hb_fields[#hb_fields + 1] = pf end
for _, name in ipairs(HB_ORDER) do hb_fields[#hb_fields + 1] = HB_SPECS[name].pf end
p_hb.fields = hb_fields

local HB_EX = {
  malformed = ProtoExpert.new("heartbeat.malformed", "Malformed Heartbeat message",
    expert.group.MALFORMED, expert.severity.ERROR),
  number = ProtoExpert.new("heartbeat.bad_number", "Field value is not a number in its radix",
    expert.group.MALFORMED, expert.severity.WARN),
  auth_bad = ProtoExpert.new("heartbeat.auth.bad", "Signature does not match",
    expert.group.SECURITY, expert.severity.WARN),
  auth_unchecked = ProtoExpert.new("heartbeat.auth.unchecked", "Signature not checked",
    expert.group.SECURITY, expert.severity.NOTE),
  lua = ProtoExpert.new("heartbeat.dissector_error", "hbtools.lua could not dissect this packet",
    expert.group.MALFORMED, expert.severity.ERROR),
}
p_hb.experts = {HB_EX.malformed, HB_EX.number, HB_EX.auth_bad, HB_EX.auth_unchecked, HB_EX.lua}

p_hb.prefs.authkeys = Pref.string("authkeys file", "",
  "Path of a Heartbeat authkeys file; its md5/sha1 secrets let the dissector check signatures")
p_hb.prefs.keys = Pref.string("Keys", "",
  "Inline authkeys entries 'N method [secret]', separated by ';' (e.g. 1 sha1 s3cret)")

local hb_keys = {}
local function hb_parse_keys(text, into)
  for line in (text .. "\n"):gmatch("([^\n;]*)[\n;]") do
    local n, method, secret = line:match("^%s*(%d+)%s+(%w+)%s*(.-)%s*$")
    if n then into[tonumber(n)] = {method = method:lower(), secret = secret} end
  end
end
local function hb_load_keys()
  local keys = {}
  local path = p_hb.prefs.authkeys
  if path and path ~= "" then
    local fh = io.open(path, "rb")
    if fh then
      hb_parse_keys(fh:read("*a") or "", keys)
      fh:close()
    end
  end
  hb_parse_keys(p_hb.prefs.keys or "", keys)
  hb_keys = keys
end
function p_hb.prefs_changed() hb_load_keys() end
function p_hb.init() hb_load_keys() end

-- Parsing: a port of hbtools.heartbeat.decode. Offsets are 0-based into the string `s`;
-- problems are raised as {off=, msg=} and caught by the caller, which keeps what was
-- parsed before the problem (the message tables are filled as we go).
local function fail(off, msg) error({off = off, msg = msg}, 0) end

local function is_digits(d) return d ~= "" and not d:find("[^0-9]") end

local function read_netstring(s, pos, stop)
  local limit = math.min(stop, pos + 11)
  local colon = s:find(":", pos + 1, true)
  if colon == nil or colon - 1 >= limit or colon - 1 <= pos then
    fail(pos, "expected a netstring length followed by ':'")
  end
  colon = colon - 1
  local digits = s:sub(pos + 1, colon)
  if not is_digits(digits) or (#digits > 1 and digits:sub(1, 1) == "0") then
    fail(pos, "expected a decimal netstring length, got '" .. digits .. "'")
  end
  local length = tonumber(digits)
  local start = colon + 1
  local last = start + length
  if last >= stop then fail(start, "netstring of length " .. length .. " runs past the end") end
  if s:byte(last + 1) ~= 44 then fail(last, "expected ',' after netstring of length " .. length) end
  return start, length, last + 1
end

local function split_typed_name(s, start, len, require_type)
  local wtype, name_start = 0, start
  if s:sub(start + 1, start + 1) == "(" then
    if len < 3 or s:byte(start + 3) ~= 41 then
      fail(start, "expected '(T)' with a one-digit type before the name")
    end
    local code = s:byte(start + 2) - 48
    if HB_WIRE_TYPES[code] == nil then fail(start + 1, "unknown field type " .. s:sub(start + 2, start + 2)) end
    wtype, name_start = code, start + 3
  elseif require_type then
    fail(start, "expected '(T)' type prefix on a netstring field")
  end
  local eq = s:find("=", name_start + 1, true)
  if eq == nil or eq - 1 >= start + len then fail(start, "expected '=' between field name and value") end
  eq = eq - 1
  if eq == name_start then fail(name_start, "empty field name") end
  return wtype, s:sub(name_start + 1, eq), eq + 1
end

local function parse_list(s, start, stop)
  local items, pos = {}, start
  while pos < stop do
    local colon = s:find(":", pos + 1, true)
    if colon == nil or colon - 1 >= math.min(stop, pos + 11) or colon - 1 <= pos then
      fail(pos, "expected a list item length followed by ':'")
    end
    colon = colon - 1
    local digits = s:sub(pos + 1, colon)
    if not is_digits(digits) or (#digits > 1 and digits:sub(1, 1) == "0") or digits == "0" then
      fail(pos, "expected a positive list item length, got '" .. digits .. "'")
    end
    local last = colon + 1 + tonumber(digits)
    if last >= stop or s:byte(last + 1) ~= 44 then fail(math.min(last, stop), "expected ',' after a list item") end
    items[#items + 1] = {off = colon + 1, len = last - colon - 1, text = s:sub(colon + 2, last)}
    pos = last + 1
  end
  return items
end

local parse_netstring, parse_classic

-- A field: {name, wtype, off, len (whole item), voff, vlen (value bytes), value, items, child}
parse_netstring = function(s, start, stop, depth, top, msg)
  msg.format = "netstring"
  local pos = start + 4
  while true do
    if s:sub(pos + 1, pos + 4) == "%%%\n" then pos = pos + 4 break end
    if pos >= stop then fail(pos, "expected '%%%\\n' to end the message") end
    local istart, ilen, nextpos = read_netstring(s, pos, stop)
    local wtype, name, voff = split_typed_name(s, istart, ilen, true)
    local f = {name = name, wtype = wtype, off = pos, len = nextpos - pos, voff = voff,
               vlen = istart + ilen - voff}
    f.value = s:sub(voff + 1, voff + f.vlen)
    if wtype == 2 then
      if depth + 1 >= HB_MAX_DEPTH then fail(voff, "structs nested deeper than " .. HB_MAX_DEPTH) end
      if f.value:sub(1, 4) ~= "###\n" then fail(voff, "expected '###\\n' at the start of a struct field") end
      f.child = {fields = {}}
      msg.fields[#msg.fields + 1] = f
      parse_netstring(s, voff, voff + f.vlen, depth + 1, false, f.child)
    else
      if wtype == 3 then f.items = parse_list(s, voff, voff + f.vlen) end
      msg.fields[#msg.fields + 1] = f
    end
    pos = nextpos
  end
  msg.body_end = pos
  if not top then
    if pos ~= stop then fail(pos, "unexpected bytes after a nested message") end
    return
  end
  if pos < stop then
    if pos + 1 == stop and s:byte(pos + 1) == 0 then msg.nul = true return end
    local tstart, tlen, after = read_netstring(s, pos, stop)
    msg.trailer = {off = pos, len = after - pos, text = s:sub(tstart + 1, tstart + tlen)}
    if after + 1 == stop and s:byte(after + 1) == 0 then msg.nul = true
    elseif after < stop then fail(after, "unexpected bytes after the auth netstring") end
  end
end

parse_classic = function(s, start, stop, depth, top, msg)
  msg.format = "classic"
  local body_end = stop
  if top and s:byte(stop) == 0 then msg.nul = true body_end = stop - 1 end
  if body_end - start < 8 or s:sub(body_end - 3, body_end) ~= "<<<\n" then
    fail(body_end, "expected '<<<\\n' to end the message")
  end
  local pos, last = start + 4, body_end - 4
  while pos < last do
    local nl = s:find("\n", pos + 1, true)
    if nl == nil or nl - 1 >= last then fail(last, "expected '\\n' at the end of a field line") end
    nl = nl - 1
    local line = s:sub(pos + 1, nl)
    if line == "<<<" or line == ">>>" then fail(pos, "unexpected '" .. line .. "' line inside a message") end
    local wtype, name, voff = split_typed_name(s, pos, nl - pos, false)
    if line:sub(1, 1) == "(" and wtype == 0 then fail(pos + 1, "a string field must not carry a '(0)' prefix") end
    local f = {name = name, wtype = wtype, off = pos, len = nl + 1 - pos, voff = voff, vlen = nl - voff}
    local raw = s:sub(voff + 1, nl)
    if wtype == 0 then
      f.value = raw:gsub(string.char(HB_STRING_NEWLINE), "\n")
    elseif wtype == 1 or wtype == 4 then
      f.value = b64decode(raw)
      f.decoded = true
      if f.value == nil then fail(voff, "expected canonical padded base64 for a binary field") end
    elseif wtype == 3 then
      f.value = raw
      f.items = parse_list(s, voff, nl)
    else
      if depth + 1 >= HB_MAX_DEPTH then fail(voff, "structs nested deeper than " .. HB_MAX_DEPTH) end
      local child = raw:gsub(string.char(HB_STRUCT_NEWLINES[depth + 1]), "\n")
      if child:sub(1, 4) ~= ">>>\n" then fail(voff, "expected '>>>' at the start of a struct field") end
      f.value = raw
      f.child = {fields = {}}
      msg.fields[#msg.fields + 1] = f
      -- Same length after substitution, so offsets into `child` are offsets into `raw`.
      local shifted = string.rep("\0", voff) .. child
      parse_classic(shifted, voff, voff + #child, depth + 1, false, f.child)
      f = nil
    end
    if f then msg.fields[#msg.fields + 1] = f end
    pos = nl + 1
  end
end

local function hb_parse(s)
  local msg = {fields = {}}
  local ok, err = pcall(function()
    if #s > HB_MAX_WIRE then fail(HB_MAX_WIRE, "message of " .. #s .. " bytes exceeds 256 KiB") end
    if s:sub(1, 4) == "###\n" then parse_netstring(s, 0, #s, 0, true, msg)
    elseif s:sub(1, 4) == ">>>\n" then parse_classic(s, 0, #s, 0, true, msg)
    else fail(0, "expected '###\\n' (netstring) or '>>>\\n' (classic) at the start") end
  end)
  if not ok then
    if type(err) ~= "table" then err = {off = 0, msg = tostring(err)} end
    return msg, err
  end
  return msg, nil
end

local function field_value(msg, name)
  for _, f in ipairs(msg.fields) do
    if f.name == name then return f end
  end
  return nil
end

-- The classic "no head" text the in-body auth field signs (hbtools.heartbeat._classic_lines).
local function classic_lines(fields, depth, skip_auth)
  local out = {}
  for _, f in ipairs(fields) do
    if not (skip_auth and f.name == "auth") then
      if f.wtype == 0 then
        if f.value:find(string.char(HB_STRING_NEWLINE), 1, true) then return nil end
        out[#out + 1] = f.name .. "=" .. f.value:gsub("\n", string.char(HB_STRING_NEWLINE)) .. "\n"
      elseif f.wtype == 2 then
        local inner = classic_lines(f.child.fields, depth + 1, false)
        if inner == nil or depth + 1 > #HB_STRUCT_NEWLINES then return nil end
        local text = ">>>\n" .. inner .. "<<<\n"
        local sub = string.char(HB_STRUCT_NEWLINES[depth + 1])
        if text:find(sub, 1, true) then return nil end
        out[#out + 1] = "(2)" .. f.name .. "=" .. text:gsub("\n", sub) .. "\n"
      elseif f.wtype == 3 then
        local parts = {}
        for _, it in ipairs(f.items or {}) do parts[#parts + 1] = #it.text .. ":" .. it.text .. "," end
        out[#out + 1] = "(3)" .. f.name .. "=" .. table.concat(parts) .. "\n"
      else
        out[#out + 1] = "(" .. f.wtype .. ")" .. f.name .. "=" .. b64encode(f.value) .. "\n"
      end
    end
  end
  return table.concat(out)
end

local function guess_method(digest)
  if #digest <= 8 then return "crc" elseif #digest == 32 then return "md5"
  elseif #digest == 40 then return "sha1" end
  return nil
end

-- Check one "N digest" signature over `data`: returns true/false, or nil and why not.
local function check_signature(signature, data)
  local n, digest = signature:match("^(%d+) (%x+)$")
  if n == nil then return false, nil, nil, "signature is not 'N hexdigest'" end
  n = tonumber(n)
  local key = hb_keys[n]
  local method = key and key.method or guess_method(digest)
  if method == nil then return nil, n, nil, "unknown method for key " .. n end
  if method ~= "crc" and key == nil then
    return nil, n, method, method .. " needs the secret of key " .. n .. " (heartbeat.authkeys preference)"
  end
  local expect = hb_digest(method, key and key.secret or "", data)
  if expect == nil then return nil, n, method, "unknown method " .. method end
  return expect == digest, n, method, nil
end

-- The number in the radix the table gives for this message type, as the object the
-- field's declared type takes (UInt64 for hex fields, Int64 for decimal ones).
local function parse_number(text, kind, signed)
  local negative = text:sub(1, 1) == "-"
  local body = negative and text:sub(2) or text
  if body == "" or (negative and not signed) then return nil end
  local n
  if kind == "hex" then
    if body:find("[^0-9a-fA-F]") or #body > 16 or (negative and #body > 13) then return nil end
    if #body > 13 then return signed and Int64.fromhex(body) or UInt64.fromhex(body) end
    n = tonumber(body, 16)
  elseif kind == "decimal" then
    if body:find("[^0-9]") or #body > 15 then return nil end
    n = tonumber(body)
  else
    return nil
  end
  if negative then n = -n end
  return signed and Int64(n) or UInt64(n)
end

local function add_generic(tree, tvb, f, text)
  return tree:add(HB_PF.field, tvb(f.off, f.len), f.name .. "=" .. text)
end

local function hex_of(s) return tohex(s) end

local add_fields
add_fields = function(tree, tvb, msg, mtype)
  for _, f in ipairs(msg.fields) do
    local spec = HB_SPECS[f.name]
    local vrange = f.vlen > 0 and tvb(f.voff, f.vlen) or tvb(f.off, f.len)
    if f.wtype == 2 then
      local sub
      if spec and spec.kind == "struct" then sub = tree:add(spec.pf, tvb(f.off, f.len))
      else sub = add_generic(tree, tvb, f, "(struct)") end
      add_fields(sub, tvb, f.child, mtype)
    elseif f.wtype == 3 then
      local sub = add_generic(tree, tvb, f, "(list)")
      for _, it in ipairs(f.items) do sub:add(HB_PF.list_item, tvb(it.off, it.len), it.text) end
    elseif f.wtype == 1 or f.wtype == 4 then
      local kind = spec and spec.kind
      local bytes_tvb = vrange
      if f.decoded and #f.value > 0 then
        bytes_tvb = ByteArray.new(f.value, true):tvb(f.name .. " (base64-decoded)")()
      end
      if kind == "uuid" and #f.value == 16 then
        tree:add(spec.pf, bytes_tvb)
      elseif (kind == "bytes" or kind == "uuid") and #f.value > 0 then
        if kind == "bytes" then tree:add(spec.pf, bytes_tvb)
        else add_generic(tree, tvb, f, hex_of(f.value)) end
      else
        add_generic(tree, tvb, f, hex_of(f.value))
      end
    else
      local kind = spec and (spec.kind_by_type[mtype or ""] or spec.kind)
      if kind == "hex" or kind == "decimal" then
        local n = parse_number(f.value, kind, spec.kind == "decimal")
        if n ~= nil then
          tree:add(spec.pf, vrange, n)
        else
          local item = add_generic(tree, tvb, f, f.value)
          item:add_proto_expert_info(HB_EX.number, f.name .. "=" .. f.value .. " is not a " .. kind .. " number")
        end
      elseif spec and (spec.kind == "text" or spec.kind == "words" or spec.kind == "signature"
                       or spec.kind == "hex" or spec.kind == "decimal") then
        tree:add(spec.pf, vrange, f.value)
      else
        add_generic(tree, tvb, f, f.value)
      end
    end
  end
end

local function hb_summary(msg)
  local parts = {}
  local function get(name)
    local f = field_value(msg, name)
    if f and f.wtype == 0 then return f.value end
    return nil
  end
  parts[#parts + 1] = get("t") or "?"
  for _, name in ipairs({"src", "dest", "seq", "st", "ackseq", "firstseq", "lastseq", "rsc_hold", "info", "node", "result"}) do
    local v = get(name)
    if v then parts[#parts + 1] = name .. "=" .. v end
  end
  return table.concat(parts, " ")
end

-- Signatures: trailer over bytes[0, body_end), in-body auth over the classic lines.
local function add_auth(tree, tvb, s, msg)
  local results = {}
  local shown_method = false
  local function one(label, signature, data, range, pf_valid)
    local ok, n, method, why = check_signature(signature, data)
    if not shown_method then
      if n then tree:add(HB_PF.auth_key, range, n) end
      if method then tree:add(HB_PF.auth_method, range, method) end
      shown_method = true
    end
    if ok == nil then
      tree:add_proto_expert_info(HB_EX.auth_unchecked, label .. " not checked: " .. (why or "?"))
      results[#results + 1] = "unchecked"
    else
      local item = tree:add(pf_valid, range, ok)
      if not ok then
        item:add_proto_expert_info(HB_EX.auth_bad, label .. " signature '" .. signature .. "' does not match")
      end
      results[#results + 1] = ok
    end
  end
  if msg.trailer then
    tree:add(HB_PF.trailer, tvb(msg.trailer.off, msg.trailer.len), msg.trailer.text)
    one("trailer", msg.trailer.text, s:sub(1, msg.body_end), tvb(msg.trailer.off, msg.trailer.len),
        HB_PF.auth_trailer_valid)
  end
  local auth = field_value(msg, "auth")
  if auth and auth.wtype == 0 then
    local text = classic_lines(msg.fields, 0, true)
    if text then
      one("in-body auth", auth.value, text, tvb(auth.off, auth.len), HB_PF.auth_inline_valid)
    else
      tree:add_proto_expert_info(HB_EX.auth_unchecked, "in-body auth not checked: fields cannot be written in classic form")
      results[#results + 1] = "unchecked"
    end
  end
  return results
end

-- hbtools.auth.AuthCheck.valid: every signature carried is right, and there is one.
local function auth_verdict(results)
  local verdict = nil
  for _, r in ipairs(results) do
    if r == false then return false end
    if r == "unchecked" then verdict = "unchecked" end
    if r == true and verdict == nil then verdict = true end
  end
  if verdict == "unchecked" then return nil end
  return verdict
end

local function hb_dissect_string(tvb, tree, s, label)
  local msg, err = hb_parse(s)
  local mtype_f = field_value(msg, "t")
  local mtype = mtype_f and mtype_f.wtype == 0 and mtype_f.value or nil
  local sub = tree:add(p_hb, tvb(), label or "Linux-HA Heartbeat")
  if msg.format then sub:add(HB_PF.format, tvb(0, 4), msg.format) end
  add_fields(sub, tvb, msg, mtype)
  if msg.nul then sub:add(HB_PF.nul, tvb(tvb:len() - 1, 1), true) end
  local results = {}
  if err then
    local off = math.max(0, math.min(err.off or 0, tvb:len() - 1))
    sub:add_tvb_expert_info(HB_EX.malformed, tvb(off, tvb:len() - off), "offset " .. (err.off or 0) .. ": " .. err.msg)
  else
    results = add_auth(sub, tvb, s, msg)
  end
  local inner_msg = nil
  local payload = field_value(msg, "_compressed_payload")
  if payload and not err and (payload.wtype == 1 or payload.wtype == 4) then
    local algo = field_value(msg, "_compression_algorithm")
    if algo == nil or algo.value == "zlib" then
      local ok, inner = pcall(function()
        local range = tvb(payload.voff, payload.vlen)
        if payload.decoded then range = ByteArray.new(payload.value, true):tvb("compressed payload")() end
        return range:uncompress("decompressed message")
      end)
      if ok and inner then
        local inner_tree = sub:add(HB_PF.inner, inner())
        local inner_results
        inner_msg, _, inner_results = hb_dissect_string(inner, inner_tree, inner:raw(), "Compressed message")
        for _, r in ipairs(inner_results) do results[#results + 1] = r end
      else
        sub:add_proto_expert_info(HB_EX.malformed, "zlib stream does not decompress")
      end
    elseif algo.value == "bz2" then
      sub:add_proto_expert_info(HB_EX.auth_unchecked, "bz2 payload not decompressed (Wireshark Lua has zlib only)")
    else
      sub:add_proto_expert_info(HB_EX.malformed, "unknown compression algorithm " .. algo.value)
    end
  end
  -- The envelope's verdict covers the message inside it too (hbtools.auth.AuthCheck).
  local verdict = auth_verdict(results)
  if verdict ~= nil then sub:add(HB_PF.auth_valid, verdict) end
  return inner_msg or msg, err, results
end

local function hb_dissect(tvb, pinfo, tree)
  pinfo.cols.protocol = "Heartbeat"
  local ok, err = pcall(function()
    local s = tvb:raw()
    local msg, perr = hb_dissect_string(tvb, tree, s, nil)
    local info = hb_summary(msg)
    if perr then info = info .. " [malformed: " .. perr.msg .. "]" end
    pinfo.cols.info = info
  end)
  if not ok then
    tree:add_proto_expert_info(HB_EX.lua, tostring(err))
    pinfo.cols.info = "Heartbeat [dissector error]"
  end
  return tvb:len()
end

function p_hb.dissector(tvb, pinfo, tree) return hb_dissect(tvb, pinfo, tree) end

local function hb_heuristic(tvb, pinfo, tree)
  if tvb:len() < 8 then return false end
  local head = tvb(0, 4):raw()
  if not HB_OPENINGS[head] then return false end
  hb_dissect(tvb, pinfo, tree)
  return true
end

DissectorTable.get("udp.port"):add(HB_PORT, p_hb)
p_hb:register_heuristic("udp", hb_heuristic)
"""  # noqa: E501  (Lua text)

_LAYOUT_WALKER = r"""
---------------------------------------------------------------------------- layouts
-- A generic walker over the layout tables above (a port of hbtools.layout.decode_from):
-- every read is length-checked first; a problem is raised as {off=, msg=} and shown as
-- expert info by the caller, with everything read before it still in the tree.
local function lfail(off, msg) error({off = off, msg = msg}, 0) end

local function read_scalar(tvb, off, fd, endian)
  local order = fd.order or endian
  local r = tvb(off, fd.size)
  if fd.code == "u64" then return order == "little" and r:le_uint64() or r:uint64() end
  if fd.code == "i64" then return order == "little" and r:le_int64() or r:int64() end
  if fd.code == "i" then return order == "little" and r:le_int() or r:int() end
  return order == "little" and r:le_uint() or r:uint()
end

local walk_layout
local function walk_one(tvb, tree, off, fd, endian, path)
  if fd.nested then
    local sub = tree:add(fd.pf, tvb(off, math.min(fd.min, tvb:len() - off)))
    local values, stop = walk_layout(tvb, sub, off, fd.nested, endian, path .. ".")
    sub:set_len(stop - off)
    return values, stop
  end
  if off + fd.size > tvb:len() then
    lfail(off, path .. ": needs " .. fd.size .. " bytes at offset " .. off .. ", only " .. (tvb:len() - off) .. " left")
  end
  local range = tvb(off, fd.size)
  if fd.code == "s" then
    tree:add(fd.pf, range)
    return range:bytes(), off + fd.size
  end
  local v = read_scalar(tvb, off, fd, endian)
  if fd.wide then tree:add(fd.pf, range, Int64(v))
  elseif (fd.order or endian) == "little" then tree:add_le(fd.pf, range) else tree:add(fd.pf, range) end
  return v, off + fd.size
end

-- Returns the values by field name (arrays as Lua lists) and the offset past the struct.
walk_layout = function(tvb, tree, off, layout, endian, path)
  local values = {}
  path = path or ""
  for _, fd in ipairs(layout.fields) do
    local where = path .. fd.name
    if fd.code == "*" then
      local n = tvb:len() - off
      if n > 0 then tree:add(fd.pf, tvb(off, n)) end
      values[fd.name] = n
      off = tvb:len()
    elseif fd.count ~= nil then
      local n = type(fd.count) == "number" and fd.count or values[fd.count]
      if type(n) ~= "number" then n = tonumber(tostring(n)) end
      if n < 0 then lfail(off, where .. ": negative element count " .. n) end
      if n * math.max(fd.min, 1) > tvb:len() - off then
        lfail(off, where .. ": " .. n .. " elements do not fit in the " .. (tvb:len() - off) .. " bytes left at offset " .. off)
      end
      local items = {}
      for i = 1, n do
        items[i], off = walk_one(tvb, tree, off, fd, endian, where .. "[" .. (i - 1) .. "]")
      end
      values[fd.name] = items
    else
      local v
      v, off = walk_one(tvb, tree, off, fd, endian, where)
      if fd.const ~= nil and tonumber(tostring(v)) ~= fd.const then
        lfail(off - fd.size, string.format("%s: expected 0x%x, found 0x%x", where, fd.const, tonumber(tostring(v))))
      end
      values[fd.name] = v
    end
  end
  return values, off
end
"""  # noqa: E501  (Lua text)

_CORO = r"""
---------------------------------------------------------------------------- totem, kronosnet
local p_totem = Proto("totem", "Corosync Totem SRP (Corosync 3)")
local p_knet = Proto("kronosnet", "kronosnet (knet)")

local TOTEM_EXTRA = {
  endian = ProtoField.string("totem.endian", "Byte order", nil, "sender's byte order, told by the magic"),
}
local KNET_EXTRA = {
  encrypted = ProtoField.bool("kronosnet.encrypted", "Encrypted", nil, nil, nil,
    "not a plausible cleartext knet packet: crypto is on (16-byte IV, AES-CBC, 32-byte HMAC)"),
  ciphertext = ProtoField.bytes("kronosnet.ciphertext", "Ciphertext", nil, "IV, encrypted packet and HMAC"),
}
local function field_list(...)
  local out = {}
  for _, t in ipairs({...}) do for _, pf in pairs(t) do out[#out + 1] = pf end end
  return out
end
p_totem.fields = field_list(TOTEM_PF, TOTEM_EXTRA)
p_knet.fields = field_list(KNET_PF, KNET_EXTRA)

local TOTEM_EX = {
  malformed = ProtoExpert.new("totem.malformed", "Malformed Totem message", expert.group.MALFORMED, expert.severity.ERROR),
  lua = ProtoExpert.new("totem.dissector_error", "hbtools.lua could not dissect this packet", expert.group.MALFORMED, expert.severity.ERROR),
}
local KNET_EX = {
  malformed = ProtoExpert.new("kronosnet.malformed", "Malformed kronosnet packet", expert.group.MALFORMED, expert.severity.ERROR),
  fragment = ProtoExpert.new("kronosnet.fragment", "Fragment or compressed data: not dissected as Totem", expert.group.REASSEMBLE, expert.severity.NOTE),
}
p_totem.experts = {TOTEM_EX.malformed, TOTEM_EX.lua}
p_knet.experts = {KNET_EX.malformed, KNET_EX.fragment}

local function num(v) return tonumber(tostring(v)) end

local function ring_text(r)
  if type(r) ~= "table" or r.rep == nil or r.seq == nil then return "?" end
  return tostring(r.rep) .. "." .. UInt64(r.seq):tohex():gsub("^0+(.)", "%1"):lower()
end

local function totem_summary(layout, v)
  local parts = {layout.name, "nodeid=" .. tostring(v.nodeid)}
  if v.ring_id then parts[#parts + 1] = "ring=" .. ring_text(v.ring_id) end
  local header = {magic = true, version = true, type = true, encapsulated = true, nodeid = true, target_nodeid = true}
  for _, fd in ipairs(layout.fields) do
    if not header[fd.name] and not fd.nested and fd.count == nil and fd.code ~= "*" and fd.code ~= "s" then
      local x = v[fd.name]
      if x ~= nil then parts[#parts + 1] = fd.name .. "=" .. tostring(x) end
    elseif fd.count ~= nil and type(v[fd.name]) == "table" and not fd.nested then
      local items = {}
      for i, x in ipairs(v[fd.name]) do items[i] = tostring(x) end
      parts[#parts + 1] = fd.name .. "=[" .. table.concat(items, ",") .. "]"
    end
  end
  return table.concat(parts, " ")
end

-- Returns the summary text, or nil when the bytes are not Corosync 3 Totem.
local function totem_dissect(tvb, pinfo, tree)
  if tvb:len() < 4 then return nil end
  local m = tvb(0, 2):uint()
  local endian
  if m == TOTEM_MAGIC then endian = "big"
  elseif m == (TOTEM_MAGIC % 256) * 256 + floor(TOTEM_MAGIC / 256) then endian = "little"
  else return nil end
  -- Magic with another version is not Corosync 3 (as hbtool decode judges: knet ciphertext).
  if tvb(2, 1):uint() ~= TOTEM_VERSION then return nil end
  local sub = tree:add(p_totem, tvb())
  sub:add(TOTEM_EXTRA.endian, tvb(0, 2), endian)
  local code = tvb(3, 1):uint()
  local layout = TOTEM_LAYOUTS[code]
  if tvb(2, 1):uint() ~= TOTEM_VERSION then
    sub:add_proto_expert_info(TOTEM_EX.malformed, "unsupported Totem header version " .. tvb(2, 1):uint())
    return "Totem version " .. tvb(2, 1):uint() .. " [malformed]"
  end
  if layout == nil then
    sub:add_proto_expert_info(TOTEM_EX.malformed, "unknown Totem message type " .. code)
    return "Totem type " .. code .. " [malformed]"
  end
  sub:append_text(", " .. layout.name)
  local ok, res, stop = pcall(walk_layout, tvb, sub, 0, layout, endian)
  if not ok then
    local e = type(res) == "table" and res or {off = 0, msg = tostring(res)}
    local off = math.max(0, math.min(e.off or 0, tvb:len() - 1))
    sub:add_tvb_expert_info(TOTEM_EX.malformed, tvb(off, tvb:len() - off), layout.name .. ": " .. e.msg)
    return layout.name .. " [malformed: " .. e.msg .. "]"
  end
  if stop ~= tvb:len() then
    sub:add_tvb_expert_info(TOTEM_EX.malformed, tvb(stop, tvb:len() - stop),
      layout.name .. ": " .. (tvb:len() - stop) .. " bytes after the end of the message")
    return totem_summary(layout, res) .. " [malformed: trailing bytes]"
  end
  if layout.name == "mcast" and num(res.encapsulated) == 2 then
    local ok2, above = pcall(corosync_dissect, tvb, tree, endian)
    if ok2 and above then return totem_summary(layout, res) .. " | " .. above end
  end
  return totem_summary(layout, res)
end

-- Would a cleartext knet sender have produced these bytes? (hbtools.knet.looks_clear)
local function knet_looks_clear(tvb)
  local n = tvb:len()
  if n < KNET_HEADER_SIZE then return false end
  if tvb(0, 1):uint() ~= KNET_VERSION or tvb(4, 1):uint() ~= 0 or tvb(5, 1):uint() ~= 0 then return false end
  local name = KNET_TYPES[tvb(1, 1):uint()]
  if name == nil then return false end
  if name == "data" or name == "host_info" then
    if n < KNET_USERDATA_AT then return false end
    local compress, pad = tvb(KNET_COMPRESS_AT, 1):uint(), tvb(KNET_PAD_AT, 1):uint()
    local bcast = tvb(KNET_BCAST_AT, 1):uint()
    local frag_num, frag_seq = tvb(KNET_FRAG_NUM_AT, 1):uint(), tvb(KNET_FRAG_SEQ_AT, 1):uint()
    return compress <= KNET_COMPRESS_MAX and pad == 0 and bcast <= 1 and frag_num >= 1 and frag_seq <= frag_num
  end
  if name == "ping" or name == "pong" then return n == KNET_PING_SIZE and tvb(KNET_TIMED_AT, 1):uint() <= 1 end
  return n >= KNET_HEADER_SIZE + 3
end

-- Fragments of knet data packets, joined as libknet does (hbtools.knet.Reassembler): by
-- sender address and port, node, channel and seq_num. On the first pass the whole user
-- data is stored under the frame that completed it, so a re-dissection (the GUI) finds it.
local KNET_MAX_PENDING = 64
local knet_pending, knet_pending_order, knet_whole = {}, {}, {}
local function knet_reset()
  knet_pending, knet_pending_order, knet_whole = {}, {}, {}
end
p_knet.init = knet_reset

local function knet_reassemble(pinfo, res, data)
  local frame = pinfo.number
  if pinfo.visited then return knet_whole[frame] end
  local frag_num, frag_seq = num(res.frag_num), num(res.frag_seq)
  if frag_seq < 1 or frag_seq > frag_num then return nil end
  local key = table.concat({tostring(pinfo.src), tostring(pinfo.src_port), tostring(res.node),
                            tostring(res.channel), tostring(res.seq_num)}, "|")
  local entry = knet_pending[key]
  if entry == nil or entry.frag_num ~= frag_num then
    entry = {frag_num = frag_num, parts = {}, count = 0}
    knet_pending_order[#knet_pending_order + 1] = key
  end
  if entry.parts[frag_seq] == nil then entry.count = entry.count + 1 end
  entry.parts[frag_seq] = data
  knet_pending[key] = entry
  if entry.count == frag_num then
    knet_pending[key] = nil
    local whole = table.concat(entry.parts, "", 1, frag_num)
    knet_whole[frame] = whole
    return whole
  end
  while #knet_pending_order > KNET_MAX_PENDING do
    knet_pending[table.remove(knet_pending_order, 1)] = nil
  end
  return nil
end

local function knet_dissect(tvb, pinfo, tree)
  local sub = tree:add(p_knet, tvb())
  if not knet_looks_clear(tvb) then
    if tvb:len() < KNET_MIN_ENCRYPTED_SIZE then
      sub:add_tvb_expert_info(KNET_EX.malformed, tvb(),
        tvb:len() .. " bytes: too short for a knet packet, clear or encrypted")
      return "knet [malformed: too short]", false
    end
    sub:add(KNET_EXTRA.encrypted, true)
    sub:add(KNET_EXTRA.ciphertext, tvb())
    return "knet encrypted len=" .. tvb:len(), false
  end
  local layout = KNET_LAYOUTS[tvb(1, 1):uint()]
  sub:append_text(", " .. layout.name)
  local ok, res, stop = pcall(walk_layout, tvb, sub, 0, layout, "big")
  if not ok then
    local e = type(res) == "table" and res or {off = 0, msg = tostring(res)}
    local off = math.max(0, math.min(e.off or 0, tvb:len() - 1))
    sub:add_tvb_expert_info(KNET_EX.malformed, tvb(off, tvb:len() - off), layout.name .. ": " .. e.msg)
    return "knet " .. layout.name .. " [malformed: " .. e.msg .. "]", false
  end
  local info = "knet " .. layout.name .. " node=" .. tostring(res.node)
  if res.seq_num ~= nil then info = info .. " seq_num=" .. tostring(res.seq_num) end
  if layout.name == "data" then
    local userdata_off = stop - res.userdata
    if num(res.frag_num) == 1 and num(res.compress) == 0 then
      if res.userdata > 0 then
        local t = totem_dissect(tvb(userdata_off):tvb(), pinfo, tree)
        if t then return info .. ": " .. t, true end
        sub:add_proto_expert_info(KNET_EX.malformed, "user data is not a Corosync 3 Totem message")
      end
    elseif num(res.frag_num) > 1 then
      info = info .. " frag " .. tostring(res.frag_seq) .. "/" .. tostring(res.frag_num)
      local whole = knet_reassemble(pinfo, res, tvb(userdata_off, res.userdata):raw())
      if whole then
        local joined = ByteArray.new(whole, true):tvb("Reassembled knet data")
        local t = totem_dissect(joined, pinfo, tree)
        if t then return info .. " reassembled: " .. t, true end
        sub:add_proto_expert_info(KNET_EX.malformed, "reassembled user data is not a Corosync 3 Totem message")
      else
        sub:add_proto_expert_info(KNET_EX.fragment, "fragment " .. tostring(res.frag_seq) .. "/"
          .. tostring(res.frag_num) .. " of seq_num " .. tostring(res.seq_num))
      end
    else
      sub:add_proto_expert_info(KNET_EX.fragment, "compressed user data (compress "
        .. tostring(res.compress) .. ") is not dissected")
    end
  elseif layout.name == "pmtud" or layout.name == "pmtud_reply" then
    info = info .. " size=" .. tostring(res.size)
  end
  return info, false
end

-- What is on the Corosync ports: Corosync 3 Totem (magic), else 1.x/2.x Totem (Wireshark's
-- own corosync_totemnet dissector, kept for it), else kronosnet (clear or encrypted).
local udp_table = DissectorTable.get("udp.port")
local legacy = udp_table:get_dissector(TOTEM_PORTS[#TOTEM_PORTS])

local function coro_dissect(tvb, pinfo, tree)
  local ok, err = pcall(function()
    local info = totem_dissect(tvb, pinfo, tree)
    if info then
      pinfo.cols.protocol = "Totem"
      pinfo.cols.info = info
      return
    end
    if legacy and tvb:len() >= 4 then
      local d = tvb(2, 2):uint()
      if d == TOTEM_ENDIAN_DETECTOR or d == (TOTEM_ENDIAN_DETECTOR % 256) * 256 + floor(TOTEM_ENDIAN_DETECTOR / 256) then
        legacy:call(tvb, pinfo, tree)
        return
      end
    end
    local kinfo, has_totem = knet_dissect(tvb, pinfo, tree)
    pinfo.cols.protocol = has_totem and "Totem" or "kronosnet"
    pinfo.cols.info = kinfo
  end)
  if not ok then
    tree:add_proto_expert_info(TOTEM_EX.lua, tostring(err))
    pinfo.cols.info = "Corosync [dissector error]"
  end
  return tvb:len()
end

function p_totem.dissector(tvb, pinfo, tree) return coro_dissect(tvb, pinfo, tree) end
function p_knet.dissector(tvb, pinfo, tree)
  local ok, err = pcall(function()
    local info = knet_dissect(tvb, pinfo, tree)
    pinfo.cols.protocol = "kronosnet"
    pinfo.cols.info = info
  end)
  if not ok then tree:add_proto_expert_info(TOTEM_EX.lua, tostring(err)) end
  return tvb:len()
end

for _, port in ipairs(TOTEM_PORTS) do udp_table:add(port, p_totem) end
-- knet links 1..7 use the next ports by default (5406, ...)
for _, port in ipairs(KNET_LINK_PORTS) do udp_table:add(port, p_totem) end
"""  # noqa: E501  (Lua text)
