"""One number convention: decimal as decode shows it, everywhere (issue 14, item 8).

Heartbeat writes seq, hg, dt… in hex on the wire (PROTOCOL-NOTES §1: ``dt=1b58`` is
7000 ms, ``firstseq=44`` asked for ``seq=2c``). Whatever hbtools shows or takes is the
number itself, in decimal; the wire radix is the codec's business.
"""

from __future__ import annotations

import json

from dissect_vectors import hb_status, run_cli
from test_decode_live import PCAP_HEADER, _frame, _record

from hbtools import heartbeat


def test_message_build_takes_numbers_and_writes_the_wire_radix():
    msg = heartbeat.Message.build({"t": "status", "src": "n1", "seq": 44, "dt": 7000, "ttl": 3})
    wire = heartbeat.encode(msg)
    assert b"(0)seq=2c," in wire and b"(0)dt=1b58," in wire and b"(0)ttl=3," in wire
    assert msg.seq == 44
    rexmit = heartbeat.Message.build({"t": "NS_rexmit", "firstseq": 44, "lastseq": 45})
    assert b"(0)firstseq=44," in heartbeat.encode(rexmit)  # decimal on the wire (notes)


def test_inject_field_values_are_decimal_as_decode_shows_them():
    for value in ("7000", "0x1b58"):
        code, out, err = run_cli("inject", "-f", f"dt={value}", "--no-auth", "--dry-run",
                                 "--node", "g")
        assert code == 0, err
        assert "(0)dt=1b58," in out
    code, _, err = run_cli("inject", "-f", "dt=1b58", "--no-auth", "--dry-run")
    assert code == 2 and "decimal" in err
    code, out, _ = run_cli("inject", "-f", "dt=!1b58", "--no-auth", "--dry-run", "--node", "g")
    assert code == 0 and "(0)dt=1b58," in out  # raw wire text, on purpose


def test_stats_events_and_filter_speak_decimal(tmp_path):
    pcap = tmp_path / "gap.pcap"
    seqs = [30, 31, 33]  # wire 1e, 1f, 21: one missing after 31
    pcap.write_bytes(PCAP_HEADER + b"".join(
        _record(1_700_000_000 + i, _frame(hb_status("node1", s))) for i, s in enumerate(seqs)))
    code, out, err = run_cli("decode", "--stats", str(pcap))
    assert code == 0, err
    assert "1 missing after seq 31" in out
    code, out, _ = run_cli("decode", "-f", "json", "--filter", "seq=31", str(pcap))
    assert [json.loads(line)["fields"]["seq"] for line in out.splitlines()] == [31]
