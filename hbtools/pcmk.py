"""Pacemaker's messages inside CPG (``pcmk__cpg_msg_t``, Pacemaker 2.1), sans-I/O.

Facts from Pacemaker 2.1.5 ``lib/cluster/cpg.c`` (packed struct, x86_64): a 24-byte
``qb_ipc_response_header``, then u32 ``id`` (per-sender counter), gboolean
``is_compressed``, ``host`` and ``sender`` (each ``pcmk__cpg_host_t``: id, pid, local,
type, size, ``uname[256]``; 276 bytes), u32 ``size``, u32 ``compressed_size``, and the data
at 592: a NUL-terminated XML text, bzip2-compressed when ``size`` reaches
CRM_BZ2_THRESHOLD (128 KiB). An empty ``host.uname`` means "every node of the group".

The ``type`` numbers (enum crm_ais_msg_types) changed between 2.1 and 3.0, so the daemon is
told by the CPG group (`DAEMONS`); the 2.1 names are shown as well. Only the root element of
the XML is read (its tag and the attributes in `ATTRIBUTES`), with a bounded scan, never an
XML parser on untrusted text.
"""

from __future__ import annotations

import bz2
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from hbtools.layout import REST, Field, Layout, aligned

__all__ = ["ATTRIBUTES", "DAEMONS", "MESSAGE", "DecodeError", "decode"]


class DecodeError(ValueError):
    """Bytes that are not a Pacemaker CPG message."""


#: CPG group -> the Pacemaker daemon that joins it (2.1 daemon names).
DAEMONS: Mapping[str, str] = MappingProxyType({
    "cib": "pacemaker-based",
    "crmd": "pacemaker-controld",
    "attrd": "pacemaker-attrd",
    "stonith-ng": "pacemaker-fenced",
    "pacemakerd": "pacemakerd",
})
#: enum crm_ais_msg_types as numbered in Pacemaker 2.1 (3.0 renumbers them).
TYPES_21: Mapping[int, str] = MappingProxyType({
    0: "none", 1: "ais", 2: "lrmd", 3: "cib", 4: "crmd", 5: "attrd", 6: "stonithd",
    7: "te", 8: "pe", 9: "stonith-ng",
})
#: Root-element attributes that say what a message is and whom it is for.
ATTRIBUTES = ("t", "subt", "crm_task", "crm_sys_from", "crm_sys_to", "crm_host_to", "src",
              "cib_op", "st_op", "task", "reference", "attr_name", "election-owner")
#: Which attribute names a message's operation, most specific first (`operation`).
OPERATION_KEYS = ("cib_op", "st_op", "crm_task", "task", "subt", "t")
#: CRM_BZ2_THRESHOLD, and a bound on what a compressed message may inflate to.
BZ2_THRESHOLD = 128 * 1024
MAX_XML = 16 << 20

HOST = Layout("pcmk__cpg_host", (
    Field("id", "I", "node id (0: not given)"),
    Field("pid", "I", "process id"),
    Field("local", "I", "gboolean: the sender's own node"),
    Field("type", "I", "daemon (enum crm_ais_msg_types; 2.1 numbering)", values=TYPES_21),
    Field("size", "I", "bytes of uname used"),
    Field("uname", "256s", "node name (MAX_NAME), NUL padded; empty: every node"),
), "one end of a Pacemaker CPG message")

MESSAGE = Layout("pcmk__cpg_msg", (
    *aligned("header_id", "i", "qb_ipc_response_header.id"),
    *aligned("header_size", "i", "qb_ipc_response_header.size"),
    *aligned("header_error", "i", "qb_ipc_response_header.error"),
    Field("id", "I", "per-sender message counter"),
    Field("is_compressed", "I", "gboolean: data is bzip2"),
    Field("host", HOST, "the destination"),
    Field("sender", HOST, "the sender"),
    Field("size", "I", "bytes of the XML text, its NUL included"),
    Field("compressed_size", "I", "bytes of the bzip2 data when compressed"),
    Field("data", REST, "the XML text (or its bzip2 compression)"),
), "pcmk__cpg_msg_t: what a Pacemaker daemon sends in its CPG group (2.1)")

_ROOT = re.compile(rb"\s*(?:<\?xml[^>]{0,200}\?>\s*)?<([A-Za-z_][\w.:-]{0,63})([^<>]{0,8192}?)/?>")
_ATTR = re.compile(rb'([A-Za-z_][\w.:-]{0,63})\s*=\s*"([^"]{0,1024})"')


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def _host(record: Any) -> dict[str, Any]:
    uname = record.uname.split(b"\0", 1)[0]
    return {"id": record.id, "pid": record.pid, "local": record.local,
            "type": record.type, "type_name": TYPES_21.get(record.type, str(record.type)),
            "uname": _text(uname)}


def root_element(xml: bytes) -> tuple[str | None, dict[str, str]]:
    """The root element's tag and the `ATTRIBUTES` it carries (&quot; etc. unescaped)."""
    m = _ROOT.match(xml)
    if m is None:
        return None, {}
    attrs: dict[str, str] = {}
    for name, value in _ATTR.findall(m.group(2)):
        key = name.decode("ascii")
        if key in ATTRIBUTES and key not in attrs:
            attrs[key] = _unescape(_text(value))
    return m.group(1).decode("ascii"), attrs


def _unescape(text: str) -> str:
    return (text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
            .replace("&apos;", "'").replace("&amp;", "&"))


def decode(data: bytes, endian: str = "little") -> dict[str, Any]:
    """A Pacemaker CPG message: both ends, sizes, and the XML's root element.

    ``xml`` is the whole (decompressed) XML text, NUL removed; ``root`` its tag and the
    attributes in `ATTRIBUTES` at the top level of the result.
    """
    record, _ = MESSAGE.read(data, endian, DecodeError, "pacemaker")
    out: dict[str, Any] = {"id": record.id, "is_compressed": record.is_compressed,
                           "host": _host(record.host), "sender": _host(record.sender),
                           "size": record.size, "compressed_size": record.compressed_size}
    raw = bytes(record.data)
    if record.is_compressed:
        if record.compressed_size > len(raw):
            raise DecodeError(f"pacemaker: compressed_size {record.compressed_size} > "
                              f"{len(raw)} bytes")
        decompressor = bz2.BZ2Decompressor()
        try:
            xml = decompressor.decompress(raw[:record.compressed_size],
                                          min(record.size, MAX_XML))
        except (OSError, ValueError) as exc:
            raise DecodeError(f"pacemaker: bzip2 data: {exc}") from None
    else:
        if record.size > len(raw):
            raise DecodeError(f"pacemaker: size {record.size} > {len(raw)} bytes")
        xml = raw[:record.size]
    xml = xml.split(b"\0", 1)[0]
    tag, attrs = root_element(xml)
    out["root"] = tag
    out.update(attrs)
    out["xml"] = _text(xml)
    return out


def operation(fields: Mapping[str, Any]) -> str:
    """One word for what a message asks: the most specific of its operation attributes."""
    for key in OPERATION_KEYS:
        value = fields.get(key)
        if value:
            return str(value)
    return str(fields.get("root") or "?")
