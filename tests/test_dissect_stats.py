"""Sequence accounting: a reordered or retransmitted message fills its gap."""

from __future__ import annotations

from hbtools.dissectors.records import Record
from hbtools.dissectors.stats import HeartbeatNode


def _status(frame: int, seq: int) -> Record:
    return Record(frame=frame, time=float(frame), src="198.18.0.1", dst="198.18.0.255",
                  sport=1000, dport=694, proto="heartbeat", type="status", node="node1",
                  fields={"t": "status", "st": "active", "seq": seq, "hg": 1, "dt": 5000})


def test_reordered_seq_fills_the_gap_and_a_copy_is_a_repeat():
    node = HeartbeatNode("node1")
    for frame, seq in enumerate([1, 2, 4, 3, 3, 7], start=1):
        node.add(_status(frame, seq), warntime_ms=None)
    summary = node.to_dict()
    # 2 -> 4 opens a gap of one (3), which 3 then fills; 4 -> 7 opens 5 and 6, never filled.
    assert summary["seq_gaps"]["count"] == 2
    assert summary["missing_seqs"] == 2
    assert summary["late_seqs"] == 1
    assert summary["repeated_seqs"] == 1


def test_node_table_is_bounded(monkeypatch):
    from hbtools.dissectors import stats as stats_module

    monkeypatch.setattr(stats_module, "MAX_NODES", 3)
    summary = stats_module.Stats()
    for frame in range(1, 11):
        record = _status(frame, 1)
        record.node = f"made-up-{frame}"
        summary.add(record)
    out = summary.to_dict()
    assert len(out["heartbeat"]["nodes"]) == 3
    assert out["untracked_node_records"] == 7
