"""docs/JSON.md documents every row key and is current (issue 14, item 7)."""

from __future__ import annotations

import json
from pathlib import Path

from dissect_vectors import run_cli
from hbtools.dissectors import schema
from hbtools.dissectors.records import JSON_KEYS
from policy import CAPTURES

DOC = Path(__file__).resolve().parent.parent / "docs" / "JSON.md"


def test_json_doc_is_current():
    assert DOC.read_text() == schema.render(), (
        "docs/JSON.md is stale: run `python -m hbtools.dissectors.schema > docs/JSON.md`")


def test_every_key_a_row_can_have_is_documented():
    assert list(schema.ROW_KEYS) == list(JSON_KEYS)
    documented = set(schema.ROW_KEYS) | set(schema.EXTRA_KEYS)
    pcaps = [CAPTURES / "hb-bcast-crc" / "capture.pcap", CAPTURES / "totem-knet" / "capture.pcap"]
    code, out, _ = run_cli("decode", "-f", "json", "-c", "50", *map(str, pcaps))
    assert code == 0
    for line in out.splitlines():
        assert set(json.loads(line)) <= documented
