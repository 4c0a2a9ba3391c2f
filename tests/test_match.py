"""One match language for ``decode --filter`` and ``fault --rule`` (issue 14, item 3).

Expected rows come from tshark with the project's plugin and an equivalent Wireshark
display filter, i.e. from a second, independent reading of the same captures.
"""

from __future__ import annotations

import pytest
from dissect_vectors import run_cli
from hbtools.faults.rules import RuleError, parse_rule
from policy import CAPTURES
from test_wireshark import needs_tshark, tshark_frames

from hbtools import match

HB = CAPTURES / "hb-bcast-crc" / "capture.pcap"
KNET = CAPTURES / "totem-knet" / "capture.pcap"


def _frames(pcap, *filters: str) -> list[int]:
    args = []
    for f in filters:
        args += ["--filter", f]
    code, out, err = run_cli("decode", "-f", "csv", *args, str(pcap))
    assert code == 0, err
    return [int(line.split(",", 1)[0]) for line in out.splitlines()[1:]]


@needs_tshark
@pytest.mark.parametrize("ours, wireshark", [
    ("type==status", 'heartbeat.t == "status"'),
    ("st=up,active", 'heartbeat.st == "up" || heartbeat.st == "active"'),
    ("ip.src=198.18.0.0/24", "heartbeat && ip.src == 198.18.0.0/24"),
    ("ip.src=198.18.0.2/32", "heartbeat && ip.src == 198.18.0.2"),
    ("udp.port=694", "heartbeat && udp.port == 694"),
    ("seq>10 and node=node1", 'heartbeat.seq > 10 && heartbeat.src == "node1"'),
    ("seq<=3 or type=NS_ackmsg", 'heartbeat.seq <= 3 || heartbeat.t == "NS_ackmsg"'),
    ("not type=status", 'heartbeat && !(heartbeat.t == "status")'),
    ("type!=status,NS_ackmsg", 'heartbeat && heartbeat.t != "status" && heartbeat.t != "NS_ackmsg"'),
    ("(type=status and st=active) or dt>7000", '(heartbeat.t == "status" && heartbeat.st == "active")'
     " || heartbeat.dt > 7000"),
])
def test_filter_agrees_with_a_wireshark_display_filter(ours, wireshark):
    want = tshark_frames(HB, wireshark)
    assert want, "the case must select something"
    assert _frames(HB, ours) == want


@needs_tshark
@pytest.mark.parametrize("ours, wireshark", [
    ("type=orf_token", "totem.type == 0"),
    ("proto=totem", "totem"),
    ("totem.type=orf_token", "totem.type == 0"),
    ("totem.ring_id.rep=1 and type=mcast", "totem.ring_id.rep == 1 && totem.type == 1"),
])
def test_totem_inside_knet_is_reachable(ours, wireshark):
    want = tshark_frames(KNET, wireshark)
    assert want
    assert _frames(KNET, ours) == want


@pytest.mark.parametrize("bad", ["nosuch=1", "totem.nosuch=1", "type", "seq>x", "(type=status",
                                 "dir=in", "ip.src=node1"])
def test_unknown_or_malformed_is_exit_2(bad):
    code, out, err = run_cli("decode", "--filter", bad, str(HB))
    assert code == 2 and out == ""
    assert "Error" in err and "Traceback" not in err


def test_several_filter_options_must_all_hold():
    assert _frames(HB, "type=status", "node=node2") == _frames(HB, "type=status and node=node2")


def test_fault_rules_use_the_same_parser_and_names():
    rule = parse_rule("drop in (type=status or seq>10) and ip.src=198.18.0.0/24 udp.port=694")
    assert rule.directions == ("in",)
    assert {c.key for c in match.conditions(rule.match.expr)} == {"dir", "type", "seq", "ip.src",
                                                                  "port"}
    for bad in ("drop nosuch=1", "drop auth=ok", "drop seq>x"):
        with pytest.raises(RuleError):
            parse_rule(bad)
    # the decode-only names are refused in a rule, the fault-only ones in a filter
    with pytest.raises(match.MatchError, match="only in fault"):
        match.parse("dir=in", match.DECODE)
