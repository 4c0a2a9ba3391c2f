"""Real pyshark (driving the real tshark with the generated plugin) reads every Heartbeat, Totem
and knet field of every committed capture by the names and values ``hbtool decode`` gives.

The expected rows are ``hbtool decode --format json``'s; pyshark's field texts are typed with
tshark's own field registry (``tshark -G fields``, via test_wireshark's helpers), not with the
plugin generator's tables, and hbtools.pyshark.fields must type them the same way.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

pytest.importorskip("pyshark")

from test_wireshark import (  # noqa: E402
    CAPTURES,
    HB_SHOWN,
    PROTOS,
    _normal,
    decode_records,
    expected,
    needs_tshark,
    registry,
)

from hbtools.pyshark import fields, file_capture  # noqa: E402

SKIP = {"totem": {"totem.endian"}, "kronosnet": {"kronosnet.ciphertext"}}


def shown(layer) -> dict[str, list]:
    """pyshark's fields of one layer, typed by tshark's registry, as test_wireshark compares."""
    proto = layer.layer_name
    out: dict[str, list] = {}
    for name, container in layer._all_fields.items():
        if name not in registry() or registry()[name][0] == "FT_NONE":
            continue
        if (proto == "heartbeat" and name not in HB_SHOWN) or name in SKIP.get(proto, ()):
            continue
        out[name] = [_normal(name, f.show) for f in container.all_fields]
    return out


def grouped(leaves: list[tuple[str, object]]) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for name, value in leaves:
        out[name].append(value)
    return dict(out)


@needs_tshark
@pytest.mark.parametrize("pcap", CAPTURES, ids=lambda p: p.parent.name)
def test_pyshark_fields_match_hbtool_decode(pcap: Path) -> None:
    authkeys = pcap.parent / "authkeys"
    keys = str(authkeys) if authkeys.exists() else None
    records = {r["frame"]: r for r in decode_records(pcap, *(("-a", keys) if keys else ()))}
    seen = set()
    with file_capture(str(pcap), authkeys=keys,
                      display_filter="(heartbeat || totem || kronosnet) && !icmp") as cap:
        for packet in cap:
            frame = int(packet.number)
            seen.add(frame)
            record = records[frame]
            problem = record["error"] or (record["fields"] or {}).get("totem_error")
            if problem:
                continue  # malformed rows are test_wireshark's (experts), not field values
            want = expected(record)
            for proto in PROTOS:
                if not want[proto]:
                    assert proto not in packet, (frame, proto)
                    continue
                layer = packet[proto]
                got = shown(layer)
                assert got == grouped(want[proto]), f"{pcap.parent.name} frame {frame} {proto}"
                mine = {f"{proto}.{k}": v for k, v in fields(layer).items()
                        if f"{proto}.{k}" in got}
                assert mine == got, f"hbtools.pyshark.fields types frame {frame} {proto} differently"
            if record["proto"] == "heartbeat" and keys:
                assert fields(packet.heartbeat).get("auth.valid") == [record["auth"] == "ok"], frame
    assert seen == set(records)
