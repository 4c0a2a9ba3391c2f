"""Issue 14 items 6 and 7: table and CSV through the hot path; CSV one column per field; one
type for ``node``.

Expected values: tshark's reading of captures/hb-failover (frame 81 is node1's status from
198.18.0.1:52935 with ``seq=1d`` and ``dt=1388`` on the wire: 29 and 5000 in decimal, by hand),
and corosync.conf of captures/totem-udpu-3node (198.18.0.1 is nodeid 1). The hot path's
table and CSV must be the general path's text exactly (``--filter`` sends rows there).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hbtools.commands.decode import decode

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
HB = CAPTURES / "hb-failover" / "capture.pcap"
TOTEM = CAPTURES / "totem-udpu-3node" / "capture.pcap"
KNET = CAPTURES / "totem-knet" / "capture.pcap"


def _run(*args: str) -> str:
    res = CliRunner().invoke(decode, ["--no-progress", *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_hot_path_text_is_the_general_paths(fmt: str) -> None:
    for capture in (HB, KNET):
        general = _run("-f", fmt, "--filter", "frame>0", str(capture))
        assert _run("-f", fmt, "-j", "1", str(capture)) == general
        assert _run("-f", fmt, "-j", "2", str(capture)) == general


def test_csv_has_a_column_per_field() -> None:
    rows = list(csv.DictReader(io.StringIO(_run("-f", "csv", str(HB)))))
    row = next(r for r in rows if r["frame"] == "81")
    assert (row["src"], row["sport"], row["proto"], row["type"]) == (
        "198.18.0.1", "52935", "heartbeat", "status")
    assert (row["heartbeat.src"], row["heartbeat.seq"], row["heartbeat.dt"],
            row["heartbeat.st"]) == ("node1", "29", "5000", "active")
    assert row["node"] == "node1"
    assert row["fields.other"] == ""
    garp = next(r for r in rows if r["frame"] == "104")
    assert (garp["proto"], garp["arp.sender_mac"], garp["arp.gratuitous"], garp["sport"]) == (
        "arp", "02:68:62:00:00:02", "true", "")


def test_node_is_text_for_every_protocol() -> None:
    totem = json.loads(_run("-f", "json", "-c", "1", str(TOTEM)))
    assert (totem["src"], totem["node"], totem["fields"]["nodeid"]) == ("198.18.0.1", "1", 1)
    rows = list(csv.DictReader(io.StringIO(_run("-f", "csv", "-c", "1", str(TOTEM)))))
    assert (rows[0]["node"], rows[0]["totem.nodeid"]) == ("1", "1")
