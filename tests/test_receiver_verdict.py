"""The ``auth`` column is what a real 3.0.6 receiver does (issue 14, item 2).

PROTOCOL-NOTES §1: a netstring datagram is judged by its trailer only (a wrong in-body
``auth`` is ignored, a missing trailer rejected); a classic one by its ``auth=`` line.
Each signature's own result stays visible in JSON ``signatures``. The netns test
(tests/netns/test_real_receiver_live.py) shows a real node doing exactly this.
"""

from __future__ import annotations

import json

import pytest
from dissect_vectors import run_cli
from receiver_vectors import AUTHKEYS, classic_datagram, netstring_datagram, status_fields
from test_decode_live import PCAP_HEADER, _frame, _record

UUID = bytes(range(16))


def _decode(tmp_path, payloads: list[bytes]) -> list[dict]:
    pcap = tmp_path / "c.pcap"
    pcap.write_bytes(PCAP_HEADER + b"".join(_record(1_700_000_000 + i, _frame(p))
                                            for i, p in enumerate(payloads)))
    keys = tmp_path / "authkeys"
    keys.write_text(AUTHKEYS)
    keys.chmod(0o600)
    code, out, err = run_cli("decode", str(pcap), "-a", str(keys), "-f", "json")
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


CASES = [
    # (datagram, receiver's verdict, trailer, body)
    (netstring_datagram(status_fields("g1", 1, UUID, 100, 99), body_right=False, trailer="right"),
     "ok", "ok", "bad"),
    (netstring_datagram(status_fields("g1", 2, UUID, 100, 99), body_right=True, trailer="none"),
     "bad", "absent", "ok"),
    (netstring_datagram(status_fields("g1", 3, UUID, 100, 99), body_right=True, trailer="wrong"),
     "bad", "bad", "ok"),
    (netstring_datagram(status_fields("g1", 4, UUID, 100, 99), body_right=True, trailer="right"),
     "ok", "ok", "ok"),
    (classic_datagram(status_fields("g1", 5, UUID, 100, 99), body_right=True), "ok", "absent", "ok"),
    (classic_datagram(status_fields("g1", 6, UUID, 100, 99), body_right=False), "bad", "absent", "bad"),
]


def test_auth_is_the_receivers_verdict_and_each_signature_is_shown(tmp_path) -> None:
    rows = _decode(tmp_path, [c[0] for c in CASES])
    assert [r["fields"]["seq"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for row, (_, verdict, trailer, body) in zip(rows, CASES, strict=True):
        assert row["auth"] == verdict, row
        sig = row["signatures"]
        assert (sig["trailer"], sig["body"]) == (trailer, body), row
        assert sig["receiver_checks"] == ("trailer" if row["frame"] <= 4 else "body")
        assert (sig["why"] is None) == (verdict == "ok")
    assert "no trailer" in rows[1]["signatures"]["why"]


def test_without_keys_signatures_is_null(tmp_path) -> None:
    pcap = tmp_path / "c.pcap"
    pcap.write_bytes(PCAP_HEADER + _record(1, _frame(CASES[0][0])))
    for args in ((), ("-j", "1")):
        code, out, _ = run_cli("decode", str(pcap), "-f", "json", *args)
        row = json.loads(out)
        assert code == 0 and row["auth"] == "unchecked" and row["signatures"] is None


@pytest.mark.parametrize("index", range(len(CASES)))
def test_the_reference_node_agrees(index: int) -> None:
    """hbtools' own daemon takes what a real node takes (one rule, in hbtools.auth)."""
    from hbtools import heartbeat
    from hbtools.auth import AuthKeys

    data, verdict, *_ = CASES[index]
    keys = AuthKeys.parse(AUTHKEYS)
    msg = heartbeat.decode(data)
    assert keys.accepts(msg, data) == (verdict == "ok")
    assert keys.check_message(msg, data).accepted == (verdict == "ok")
