"""Issue 14 item 5: ARP rows and failovers in ``--stats``, on a real Heartbeat 3.0.6 capture.

captures/hb-failover was recorded once with the namespace lab (captures/record.py): node1's
heartbeat is SIGKILLed, node2 declares it dead and takes the VIP 198.18.0.100 over. Every
expected value below is tshark 4.0's reading of the same file:

    tshark -r capture.pcap -Y arp -T fields -e frame.number -e frame.time_epoch -e eth.src \
        -e arp.opcode -e arp.src.proto_ipv4 -e arp.dst.proto_ipv4 -e arp.isgratuitous
    tshark -r capture.pcap -Y 'ip.src==198.18.0.1 && udp'     # node1's last: frame 81
    tshark -r capture.pcap -Y 'frame.number==102' -x          # t=stonith node=node1 result=n_stnth
"""

from __future__ import annotations

from pathlib import Path

from hbtools.dissectors.filters import parse_filter
from hbtools.dissectors.output import render_stats
from hbtools.dissectors.pipeline import Options
from hbtools.dissectors.stats import Stats

from hbtools.usecases.decode import records

CAPTURE = Path(__file__).resolve().parent.parent / "captures" / "hb-failover" / "capture.pcap"

LAST_HEARTBEAT = 1795554653.857738  # frame 81, node1's last status
DECLARED_DEAD = 1795554659.368164  # frame 102, node2: t=stonith node=node1 result=n_stnth
FIRST_GARP = 1795554659.513424  # frame 104, ARP request 198.18.0.100 from 02:68:62:00:00:02


def _rows() -> list:
    return list(records(str(CAPTURE), Options()))


def test_arp_rows_are_tsharks_arp_frames() -> None:
    rows = [r for r in _rows() if r.proto == "arp"]
    assert len(rows) == 46  # tshark -Y arp
    assert sum(r.fields["gratuitous"] for r in rows) == 40  # tshark -Y arp.isgratuitous==1
    by_frame = {r.frame: r for r in rows}
    reply = by_frame[63]  # node1 answers the client: a reply, not an announcement
    assert (reply.type, reply.src, reply.dst, reply.sport) == ("reply", "198.18.0.100",
                                                               "198.18.0.250", None)
    assert reply.fields == {"opcode": 2, "sender_mac": "02:68:62:00:00:01",
                            "sender_ip": "198.18.0.100", "target_mac": "02:68:62:00:00:fa",
                            "target_ip": "198.18.0.250", "gratuitous": False}
    garp = by_frame[104]
    assert (garp.time, garp.type, garp.fields["sender_mac"], garp.fields["gratuitous"]) == (
        FIRST_GARP, "request", "02:68:62:00:00:02", True)
    assert '"sport": null' in garp.to_json()


def test_filters_name_arp() -> None:
    rows = _rows()
    for expr, count in (("proto=arp", 46), ("arp.gratuitous=true", 40),  # tshark's counts
                        ("arp.sender_mac=02:68:62:00:00:02 and arp.opcode=1", 11)):
        flt = parse_filter([expr])
        assert sum(1 for r in rows if flt(r)) == count, expr


def test_stats_show_the_failover_with_its_times() -> None:
    stats = Stats()
    for record in _rows():
        stats.add(record)
    summary = stats.to_dict()
    assert summary["heartbeat"]["failovers"] == [{
        "node": "node1", "last_heartbeat": LAST_HEARTBEAT,
        "declared_dead": DECLARED_DEAD, "declared_by": "node2", "how": "stonith n_stnth",
        "garp": FIRST_GARP, "new_owner": "node2", "new_owner_mac": "02:68:62:00:00:02",
        "address": "198.18.0.100",
        # hand-computed from tshark's times: 659.368164 - 653.857738, ...
        "dead_after_ms": 5510.4, "garp_after_dead_ms": 145.3, "takeover_ms": 5655.7,
    }]
    text = render_stats(summary, "table")
    assert max(len(line) for line in text.splitlines()) <= 100
    words = " ".join(text.split())  # the detail column wraps to fit 100 columns
    assert "2026-11-24 21:10:53.857738 node1 last heartbeat" in words
    assert "21:10:59.368164 node1 declared dead by node2 (stonith n_stnth), 5510.4 ms" in words
    assert "198.18.0.100 from node2 (02:68:62:00:00:02), 145.3 ms after declared dead" in words
