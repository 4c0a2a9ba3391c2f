"""The use cases a command calls, called from Python without a subprocess."""

from __future__ import annotations

import json

import pytest
from hbtools.dissectors.pipeline import Options
from policy import CAPTURES
from scapy.layers.inet import UDP
from scapy.utils import PcapReader

from hbtools import inject as inj
from hbtools.usecases import decode as uc
from hbtools.usecases.inject import InjectSession

CAPTURE = CAPTURES / "hb-bcast-crc" / "capture.pcap"


def test_decode_records_every_heartbeat_datagram_scapy_sees():
    with PcapReader(str(CAPTURE)) as reader:
        expected = sum(1 for pkt in reader if UDP in pkt and 694 in (pkt[UDP].sport,
                                                                      pkt[UDP].dport))
    rows = list(uc.records(str(CAPTURE)))
    assert len(rows) == expected > 10
    assert {r.proto for r in rows} == {"heartbeat"}


def test_the_hot_and_the_general_path_give_the_same_json():
    options = Options()
    assert uc.hot_path_applies("json", options, None)
    assert uc.hot_path_applies("table", options, None)  # issue 14: table and CSV too
    assert not uc.hot_path_applies("table", options, None, time_format="r")  # needs the row before
    assert not uc.hot_path_applies("json", Options(fast=False), None)
    hot = b"".join(uc.json_blocks(uc.open_source(str(CAPTURE)), options, jobs=1))
    general = "".join(r.to_json() + "\n" for r in uc.rows(uc.open_source(str(CAPTURE)),
                                                          Options(fast=False)))
    assert hot.decode() == general
    assert all(json.loads(line)["proto"] == "heartbeat" for line in general.splitlines())


def test_inject_session_remembers_generation_and_seq(tmp_path):
    path = tmp_path / "state.json"
    first = InjectSession(str(path))
    state = first.node_state("ghost", 1_700_000_000.0)
    assert (state.generation, state.next_seq) == (1_700_000_000, 1)
    first.sent("ghost", state, 5, sequenced=True)
    again = InjectSession(str(path)).node_state("ghost", 1_800_000_000.0)
    assert (again.generation, again.next_seq) == (1_700_000_000, 6)
    restarted = InjectSession(str(path)).node_state("ghost", 0.0, new_generation=True)
    assert (restarted.generation, restarted.next_seq) == (1_700_000_001, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left


def test_inject_session_reports_a_bad_state_file_in_one_line(tmp_path):
    bad = tmp_path / "state.json"
    bad.write_text("{not json")
    with pytest.raises(inj.InjectError, match="state.json"):
        InjectSession(str(bad))
    session = InjectSession(str(tmp_path / "missing-dir" / "state.json"))
    with pytest.raises(inj.InjectError, match="cannot write state file"):
        session.sent("ghost", session.node_state("ghost", 1.0), 1, sequenced=True)
