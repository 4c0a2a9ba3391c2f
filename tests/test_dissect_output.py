"""Writers, --filter and --stats on captures whose contents and timing the test chose."""

from __future__ import annotations

import csv
import io

import pytest
from scapy.all import IP, UDP, Ether, PcapWriter, Raw

from tests.dissect_vectors import (
    hb_netstring,
    hb_status,
    json_rows,
    run_cli,
    totem_mcast,
    totem_token,
)

T0 = 1_700_000_000.0


def _capture(path, items) -> None:
    """items: (time, src ip, sport, dport, payload)."""
    writer = PcapWriter(str(path), sync=True)
    for t, src, sport, dport, payload in items:
        frame = Ether() / IP(src=src, dst="198.18.0.255") / UDP(sport=sport, dport=dport) / Raw(
            payload)
        frame.time = t
        writer.write(frame)
    writer.close()


@pytest.fixture()
def cluster(tmp_path):
    """node1 beats every second with a 7 s silence and a lost seq; node2 restarts.

    deadtime 5000 ms (dt=1388), so warntime is 2500 ms.
    """
    items = []
    seq = 0
    t = T0
    for i in range(20):
        seq += 1
        if i == 10:
            t += 7.0  # silence: late and over deadtime
        elif i > 0:
            t += 1.0
        if i == 15:
            seq += 1  # seq 16 never sent: a gap of one
        items.append((t, "198.18.0.1", 40001, 694,
                      hb_status("node1", seq, st="active" if i else "up")))
    for i in range(6):
        hg = 0x100 if i < 3 else 0x101
        items.append((T0 + 0.5 + i, "198.18.0.2", 40002, 694,
                      hb_status("node2", i % 3 + 1, hg=hg)))
    items.append((T0 + 3.2, "198.18.0.2", 40002, 694, hb_netstring(
        [("t", "NS_rexmit"), ("src", "node2"), ("dest", "node1"), ("firstseq", "44"),
         ("lastseq", "45")])))
    for k in range(9):
        items.append((T0 + 0.1 * k, "198.18.1.1", 5405, 5405,
                      totem_token(1 + k % 3, 1, 13, 100 + k)))
    items.append((T0 + 0.05, "198.18.1.2", 41002, 5405, totem_mcast(2, 1, 13, 7)))
    items.sort(key=lambda item: item[0])
    path = tmp_path / "cluster.pcap"
    _capture(path, items)
    return path


def test_stats_heartbeat(cluster):
    code, out, err = run_cli("decode", "-f", "json", "--stats", str(cluster))
    assert code == 0, err
    rows = json_rows(out)
    assert len(rows) == 1  # --stats alone prints only the summary
    stats = rows[0]["stats"]
    nodes = {n["node"]: n for n in stats["heartbeat"]["nodes"]}
    n1 = nodes["node1"]
    assert n1["messages"] == 20 and n1["by_type"] == {"status": 20}
    iv = n1["heartbeat_interval_ms"]
    assert iv["count"] == 19
    assert iv["min"] == pytest.approx(1000.0) and iv["max"] == pytest.approx(7000.0)
    assert iv["median"] == pytest.approx(1000.0)
    assert n1["deadtime_ms"] == 5000
    assert n1["late_heartbeats"]["count"] == 1
    assert n1["late_heartbeats"]["events"][0]["warntime_ms"] == 2500
    assert n1["gaps_over_deadtime"]["count"] == 1
    assert n1["gaps_over_deadtime"]["events"][0]["interval_ms"] == pytest.approx(7000, abs=1)
    assert n1["seq_gaps"]["count"] == 1 and n1["missing_seqs"] == 1
    assert n1["seq_gaps"]["events"][0]["after"] == 15
    assert [e["new"] for e in n1["status_changes"]["events"]] == ["up", "active"]
    n2 = nodes["node2"]
    assert n2["generation_changes"]["count"] == 1
    assert n2["generation_changes"]["events"][0]["new"] == 0x101
    assert n2["seq_gaps"]["count"] == 0  # the restart counts from 1 again
    assert n2["rexmit_requests"]["count"] == 1
    assert n2["rexmit_requests"]["events"][0]["dest"] == "node1"


def test_stats_warntime_option(cluster):
    code, out, _ = run_cli("decode", "-f", "json", "--stats", "--warntime", "900", str(cluster))
    n1 = {n["node"]: n for n in json_rows(out)[0]["stats"]["heartbeat"]["nodes"]}["node1"]
    assert n1["late_heartbeats"]["count"] == 19


def test_stats_totem(cluster):
    code, out, _ = run_cli("decode", "-f", "json", "--stats", str(cluster))
    totem = json_rows(out)[0]["stats"]["totem"]
    assert [r["ring"] for r in totem["rings"]] == ["1.d"]
    ring = totem["rings"][0]
    assert ring["by_type"] == {"orf_token": 9, "mcast": 1}
    # each of nodes 1..3 sent a token every 0.3 s
    assert ring["token_rotation_ms"]["count"] == 6
    assert ring["token_rotation_ms"]["median"] == pytest.approx(300.0)
    assert {n["nodeid"] for n in totem["nodes"]} == {1, 2, 3}


def test_stats_table_and_rows(cluster):
    code, out, err = run_cli("decode", "--stats", "--rows", str(cluster))
    assert code == 0, err
    assert "Heartbeat nodes" in out and "Totem rings" in out
    assert "over deadtime" in out and "seq gap" in out and "restart" in out
    assert out.count("orf_token") >= 9  # the rows came first


def test_table_rows(cluster):
    code, out, err = run_cli("decode", str(cluster))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["frame", "time", "(UTC)", "source"]
    body = [line for line in lines[2:] if line.strip()]
    assert len(body) == 37
    first_hb = next(line for line in body if "heartbeat" in line)
    assert "198.18.0.1:40001" in first_hb and "node1" in first_hb and "status" in first_hb
    assert "2023-11-14 22:13:20" in body[0]


def test_table_stays_aligned_across_blocks(tmp_path):
    names = ["node1"] * 600 + ["a-longer-node-name"] * 600
    items = [(T0 + i, "198.18.0.1", 40001, 694, hb_status(name, i + 1))
             for i, name in enumerate(names)]
    path = tmp_path / "long.pcap"
    _capture(path, items)
    code, out, _ = run_cli("decode", str(path))
    lines = [line for line in out.splitlines()[2:] if line.strip()]
    assert len(lines) == 1200
    # the auth column starts at the same place in every row of the first block
    positions = {line.index("unchecked") for line in lines[:500]}
    assert len(positions) == 1


def test_csv(cluster):
    code, out, err = run_cli("decode", "-f", "csv", str(cluster))
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    # issue 14: one column per field (the row keys first, then heartbeat.NAME, totem.NAME...)
    assert list(rows[0])[:11] == ["frame", "time", "src", "dst", "sport", "dport", "proto",
                                  "type", "node", "auth", "error"]
    assert list(rows[0])[-2:] == ["signatures", "fields.other"]
    assert len(rows) == 37
    hb = next(r for r in rows if r["proto"] == "heartbeat")
    assert hb["heartbeat.t"] == "status"


@pytest.mark.parametrize("terms, expected", [
    (["type=status node=node1"], 20),
    (["proto=totem"], 10),
    (["type=orf_token", "node=2"], 3),
    (["type=status,NS_rexmit"], 27),
    (["type=status or type=NS_rexmit"], 27),
    (["proto!=heartbeat"], 10),
    (["st=up"], 1),
    (["seq=16"], 0),
    (["seq=18 node=node1"], 1),
    (["ring_id.seq=13"], 10),
    (["ip.src=198.18.0.2"], 7),
    (["port=5405 type=mcast"], 1),
    (["error=yes"], 0),
])
def test_filter(cluster, terms, expected):
    args = []
    for term in terms:
        args += ["--filter", term]
    code, out, err = run_cli("decode", "-f", "json", *args, str(cluster))
    assert code == 0, err
    assert len(json_rows(out)) == expected


def test_bad_filter_and_port_are_usage_errors(cluster):
    code, _out, err = run_cli("decode", "--filter", "nonsense", str(cluster))
    assert code == 2 and "NAME=VALUE" in err
    code, _out, err = run_cli("decode", "--port", "70000", str(cluster))
    assert code == 2


def test_bad_authkeys_is_one_line(cluster, tmp_path):
    keys = tmp_path / "authkeys"
    keys.write_text("auth 1\n1 rot13 secret\n")
    keys.chmod(0o600)
    code, _out, err = run_cli("decode", "--authkeys", str(keys), str(cluster))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "rot13" in err
