"""The plugin's totempg / CPG / Pacemaker layer against `hbtool decode`, on real captures.

tshark with ``wireshark/hbtools.lua`` shows the messages an mcast holds whole (Lua cannot
join a message cut across a sender's mcasts); `hbtool decode` shows every message, joined.
So for each mcast row the plugin's list must equal hbtool's, less the first message when
the mcast's totempg header says it continues an earlier one (hbtool shows it joined there).
On encrypted captures the plugin says "encrypted" and shows no Corosync layer at all.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hbtools.dissectors.pipeline import Options, decode_stream
from policy import CAPTURES

ROOT = CAPTURES.parent
PLUGIN = ROOT / "wireshark" / "hbtools.lua"
TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
KEYS = ("service", "function", "cpg_group", "daemon", "pcmk_op", "pcmk_t", "pcmk_from",
        "pcmk_to")
PCAPS = sorted(p.parent.name for p in CAPTURES.glob("*/capture.pcap")
               if (p.parent.name.startswith(("pcmk-", "totem-")))
               and not p.parent.name.startswith("."))


def _tshark(pcap: Path) -> dict[int, dict[str, list[str]]]:
    args = [TSHARK, "-n", "-X", f"lua_script:{PLUGIN}", "-r", str(pcap), "-T", "fields",
            "-E", "occurrence=a", "-E", "aggregator=\x1f", "-e", "frame.number",
            "-e", "kronosnet.encrypted"]
    for key in KEYS:
        args += ["-e", f"corosync.{key}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=300).stdout
    rows = {}
    for line in out.splitlines():
        cols = line.split("\t")
        frame, encrypted = int(cols[0]), cols[1]
        values = {k: (c.split("\x1f") if c else []) for k, c in zip(KEYS, cols[2:], strict=True)}
        values["encrypted"] = [encrypted] if encrypted else []
        rows[frame] = values
    return rows


def _expected(row) -> dict[str, list[str]] | None:
    fields = row.get_fields()
    totem_fields = fields.get("totem", fields)
    pg = totem_fields.get("totempg") if isinstance(totem_fields, dict) else None
    if not pg or "messages" not in pg:
        return None
    messages = pg["messages"][1:] if pg.get("continuation") else pg["messages"]
    out: dict[str, list[str]] = {k: [] for k in KEYS}
    for m in messages:
        out["service"].append(m["service"])
        out["function"].append(m["function"])
        if "group" in m and m["function"] in ("mcast", "procjoin", "procleave",
                                               "partial_mcast"):
            out["cpg_group"].append(m["group"])
        if "daemon" in m:
            out["daemon"].append(m["daemon"])
        p = m.get("pcmk")
        if p is not None:
            op = next((p[k] for k in ("cib_op", "st_op", "crm_task", "task", "subt", "t")
                       if p.get(k)), p["root"])
            out["pcmk_op"].append(op)
            if p.get("t"):
                out["pcmk_t"].append(p["t"])
            out["pcmk_from"].append(p["sender"]["uname"])
            out["pcmk_to"].append(p["host"]["uname"])
    return out


@pytest.mark.parametrize("name", PCAPS)
def test_plugin_corosync_layer_agrees_with_decode(name: str) -> None:
    folder = CAPTURES / name
    shown = _tshark(folder / "capture.pcap")
    meta = json.loads((folder / "meta.json").read_text())
    encrypted = meta.get("crypto", {}).get("cipher", "none") != "none"
    with open(folder / "capture.pcap", "rb") as stream:
        rows = [r for r in decode_stream(stream, name, Options()) if r.proto != "arp"]
    compared = 0
    for row in rows:
        got = shown[row.frame]
        if encrypted:
            assert got["encrypted"] and not got["service"], row.frame
            continue
        want = _expected(row)
        if want is None:
            assert not got["service"], row.frame
            continue
        # tshark prints one empty value as an empty column: compare without empty strings
        # ("" is "every node" in pcmk_to)
        assert ({k: [x for x in got[k] if x] for k in KEYS}
                == {k: [x for x in want[k] if x] for k in KEYS}), row.frame
        compared += 1
    assert encrypted or compared > 10
