"""``--stats`` in every format (issue 14, items 6 and 7).

The text tables fit 100 columns on every bundled capture (Heartbeat and Corosync);
``-f csv`` gives CSV tables, ``-f json`` the same units as the tables (ms), checked
against the intervals tshark reads from the same capture.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
import subprocess

import pytest
from dissect_vectors import ROOT, run_cli
from policy import CAPTURES

PCAPS = sorted(CAPTURES.glob("*/capture.pcap*"))
HB = CAPTURES / "hb-bcast-crc" / "capture.pcap"


@pytest.mark.parametrize("pcap", PCAPS, ids=[p.parent.name for p in PCAPS])
def test_stats_tables_fit_100_columns(pcap):
    code, out, err = run_cli("decode", "--stats", str(pcap))
    assert code in (0, 1), err
    wide = [line for line in out.splitlines() if len(line) > 100]
    assert not wide, wide[:3]


def test_stats_csv_is_csv_with_the_tables_numbers():
    code, out, err = run_cli("decode", "--stats", "-f", "csv", str(HB))
    assert code == 0, err
    _, *sections = out.strip().split("\n\n")
    tables = {}
    for section in sections:
        title, _, body = section.partition("\n")
        tables[title.strip()] = list(csv.DictReader(io.StringIO(body)))
    nodes = next(rows for title, rows in tables.items() if title.startswith("Heartbeat nodes"))
    code, out, _ = run_cli("decode", "--stats", "-f", "json", str(HB))
    stats = json.loads(out)["stats"]
    for row in nodes:
        node = next(n for n in stats["heartbeat"]["nodes"] if n["node"] == row["node"])
        assert float(row["median"]) == pytest.approx(node["heartbeat_interval_ms"]["median"], abs=0.05)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
def test_stats_json_intervals_are_ms_like_the_table():
    out = subprocess.run(["tshark", "-n", "-r", str(HB), "-Y",
                          'udp contains "(0)t=status," && udp contains "(0)src=node1,"',
                          "-T", "fields", "-e", "frame.time_epoch"], capture_output=True,
                         text=True, timeout=120, cwd=ROOT, check=True).stdout.split()
    times = [float(t) for t in out]
    gaps_ms = [(b - a) * 1000 for a, b in zip(times, times[1:], strict=False)]
    code, text, _ = run_cli("decode", "--stats", "-f", "json", str(HB))
    node1 = next(n for n in json.loads(text)["stats"]["heartbeat"]["nodes"] if n["node"] == "node1")
    iv = node1["heartbeat_interval_ms"]
    assert iv["count"] == len(gaps_ms)
    assert iv["max"] == pytest.approx(max(gaps_ms), abs=0.01)
    assert iv["median"] == pytest.approx(statistics.median(gaps_ms), rel=0.02)
