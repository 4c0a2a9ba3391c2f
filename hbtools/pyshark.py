"""pyshark with the generated Lua plugin: Heartbeat, Totem and knet fields by hbtool decode's names.

Import on demand (pyshark and tshark stay optional for the rest of hbtools)::

    from hbtools.pyshark import file_capture, fields

    with file_capture("captures/hb-failover/capture.pcap") as cap:
        for packet in cap:
            if "heartbeat" in packet:
                hb = fields(packet.heartbeat)       # {"t": ["status"], "seq": [1], ...}
            if "totem" in packet:
                print(fields(packet.totem)["ring_id.rep"])

The plugin is generated from the field tables (``hbtools.wireshark.generate``) into a private
temporary directory on first use, so it always matches the installed hbtools; pass ``plugin=``
to use an installed copy instead. Field names are the dotted paths ``hbtool decode`` uses
(``seq``, ``ring_id.rep``, ``memb_list.aru``), and ``fields`` types each value the way the
plugin declares it (integers as int, flags as bool, byte fields as lower-case hex, text as text). Every
occurrence of a repeated field (array members) is kept, in packet order.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any

__all__ = ["PROTOCOLS", "fields", "file_capture", "plugin_file"]

PROTOCOLS = ("heartbeat", "totem", "kronosnet")
_PLUGIN: str | None = None
_KINDS: dict[str, str] | None = None


def plugin_file() -> str:
    """Path of a freshly generated plugin, written once per process in a 0700 directory."""
    global _PLUGIN
    if _PLUGIN is None:
        from hbtools.wireshark import generate

        directory = tempfile.mkdtemp(prefix="hbtools-lua-")
        atexit.register(shutil.rmtree, directory, True)
        path = os.path.join(directory, "hbtools.lua")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(generate())
        _PLUGIN = path
    return _PLUGIN


def file_capture(path: str, *, authkeys: str | None = None, plugin: str | None = None,
                 display_filter: str = "heartbeat || totem || kronosnet", **kwargs: Any) -> Any:
    """A ``pyshark.FileCapture`` of ``path`` with the plugin loaded (and Heartbeat signatures
    checked with ``authkeys``). Use it as a context manager or close it: it runs tshark."""
    import pyshark

    params = ["-X", f"lua_script:{plugin or plugin_file()}"]
    if authkeys:
        params += ["-o", f"heartbeat.authkeys:{authkeys}"]
    extra = list(kwargs.pop("custom_parameters", []) or [])
    return pyshark.FileCapture(path, display_filter=display_filter,
                               custom_parameters=params + extra, **kwargs)


def _kinds() -> dict[str, str]:
    global _KINDS
    if _KINDS is None:
        from hbtools.wireshark import field_kinds

        _KINDS = field_kinds()
    return _KINDS


def _typed(kind: str, show: str) -> Any:
    if kind == "int":
        try:
            return int(show, 0)
        except ValueError:
            return show
    if kind == "bool":
        return show not in ("0", "False", "false")
    if kind == "bytes":
        return show.replace(":", "").lower()
    return show


def fields(layer: Any) -> dict[str, list[Any]]:
    """Every field of one pyshark layer by hbtool decode's dotted name, all occurrences, typed.

    Struct headings (which carry no value) are left out; fields the plugin adds beyond the
    tables (Heartbeat's ``format``, ``auth.valid``, ...) are kept as text.
    """
    kinds = _kinds()
    prefix = layer.layer_name + "."
    out: dict[str, list[Any]] = {}
    for name, container in layer._all_fields.items():  # noqa: SLF001 - pyshark's own field map
        if not name.startswith(prefix):
            continue
        kind = kinds.get(name, "text")
        if kind == "none":
            continue
        out[name[len(prefix):]] = [_typed(kind, f.show) for f in container.all_fields]
    return out
