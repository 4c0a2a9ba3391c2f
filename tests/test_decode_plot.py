"""``hbtool decode --plot`` on every committed capture: a PNG of the expected size, lanes = nodes.

Independent sources: the nodes each recording's meta.json says took part (written by the
recorder from its own lab configuration, not by the decoder), tshark's own ARP dissector for
the gratuitous ARPs (``arp.isgratuitous``) and who sent them (``arp.src.hw_mac`` mapped
through the MAC addresses in meta.json), and plain payload matching in tshark for Heartbeat
retransmission requests. Sizes are hand-computed from the documented layout.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from hbtools.decodeplot import plot_captures

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = sorted(p.parent for p in (ROOT / "captures").glob("*/capture.pcap"))
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def encrypted(meta: dict) -> bool:
    crypto = meta.get("crypto") or {}
    return crypto.get("cipher", "none") != "none"


def lane_of(meta: dict, node: dict) -> str:
    """A node's lane name, from the recording's own node list."""
    if meta["scenario"].startswith("hb-"):
        return node["name"]
    if encrypted(meta):  # encrypted knet hides the nodeid: the (first link) address shows
        return f"{node.get('address') or node['addresses']['0']} (encrypted)"
    return f"nodeid {node['nodeid']}"


def expected_lanes(meta: dict) -> list[str]:
    nodes = meta["nodes"]
    if meta["scenario"].startswith("hb-") or encrypted(meta):
        return sorted(lane_of(meta, n) for n in nodes)
    return [lane_of(meta, n) for n in sorted(nodes, key=lambda n: n["nodeid"])]


def tshark(pcap: Path, *args: str) -> list[str]:
    out = subprocess.run([TSHARK, "-n", "-r", str(pcap), *args], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


@needs_tshark
@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_plot_every_capture(capture: Path, tmp_path: Path) -> None:
    meta = json.loads((capture / "meta.json").read_text())
    png = tmp_path / "plot.png"
    result = plot_captures([str(capture / "capture.pcap")], str(png))
    lanes = expected_lanes(meta)
    assert list(result.rendered.lanes) == lanes
    # Layout: 1400 px wide; 110 px title/legend + 70 px time axis + 56 px per lane, and a
    # 170 px token-rotation panel when the capture has decodable Corosync tokens.
    has_tokens = not meta["scenario"].startswith("hb-") and not encrypted(meta)
    assert png_size(png) == (1400, 110 + 70 + 56 * len(lanes) + (170 if has_tokens else 0))
    assert bool(result.rendered.series) == has_tokens

    # Gratuitous ARPs per lane, as tshark's ARP dissector sees them.
    macs = {n["mac"].lower(): lane_of(meta, n) for n in meta["nodes"]}
    want = Counter(macs[mac.lower()] for mac in tshark(capture / "capture.pcap", "-Y",
                   "arp.isgratuitous", "-T", "fields", "-e", "arp.src.hw_mac"))
    got = Counter(e.lane for e in result.timeline.events if e.kind == "garp")
    assert got == want
    if meta["scenario"].startswith("hb-"):
        rexmit = tshark(capture / "capture.pcap", "-Y",
                        'udp contains "t=NS_rexmit" || udp contains "t=NS_nak_rexmit"')
        assert result.rendered.kinds.get("rexmit", 0) == len(rexmit)


def test_failover_marks_the_death_and_the_takeover(tmp_path: Path) -> None:
    """hb-failover: node1 is SIGKILLed; the gap past deadtime is on node1 and falls between
    node1's last heartbeat and node2's first gratuitous ARP (the recorded takeover)."""
    capture = ROOT / "captures" / "hb-failover"
    meta = json.loads((capture / "meta.json").read_text())
    result = plot_captures([str(capture / "capture.pcap")], str(tmp_path / "f.png"))
    events = result.timeline.events
    gaps = [e for e in events if e.kind == "gap"]
    assert [e.lane for e in gaps] == ["node1"]
    last_beat = max(e.time for e in events if e.lane == "node1" and e.kind == "heartbeat")
    first_garp = min(e.time for e in events if e.lane == "node2" and e.kind == "garp")
    assert last_beat < gaps[0].time < first_garp
    kill = [e["t"] for e in meta["events"] if "SIGKILL" in e["what"]][0]
    assert kill - 1.0 < last_beat <= kill  # keepalive 1 s (ha.cf)
    assert gaps[0].time == pytest.approx(last_beat + 5.0)  # deadtime 5 s (ha.cf)


def test_cli_plot_and_bad_paths(tmp_path: Path) -> None:
    capture = ROOT / "captures" / "hb-rexmit" / "capture.pcap"
    png = tmp_path / "p.png"
    run = [sys.executable, "-c", "from hbtools.cli import main; main()", "decode"]
    done = subprocess.run([*run, str(capture), "--plot", str(png)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"plot written: {png} (1400x292 px")
    assert "lanes: node1, node2" in done.stdout
    done = subprocess.run([*run, str(capture), "--plot", str(tmp_path / "no" / "p.png")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "No such file or directory" in done.stderr
    not_pcap = tmp_path / "x.pcap"
    not_pcap.write_bytes(b"hello world")
    done = subprocess.run([*run, str(not_pcap), "--plot", str(png)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
