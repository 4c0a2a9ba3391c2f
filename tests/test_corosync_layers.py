"""totempg, CPG and Pacemaker decoding against an independent reading of the same bytes.

`Independent` below is a small struct-based reader written from PROTOCOL-NOTES §3/§6 and
the corosync/pacemaker struct definitions (offsets typed in by hand, nothing imported
from the code under test): knet header 6 + 8 bytes, Totem mcast payload at 45, totempg
header and lengths, group header, exec id, CPG group name at 16/24, CPG message at 184,
Pacemaker XML at 592. For every mcast of every committed Pacemaker capture, the CPG groups
and Pacemaker operations it finds must equal what `hbtool decode` reports for that row.
Corosync's own view saved with the captures (``corosync-cpgtool`` snapshots) must match
the members the joinlist / procjoin messages announce.
"""

from __future__ import annotations

import bz2
import hashlib
import hmac
import json
import re
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hbtools.dissectors.pipeline import Options, decode_stream
from policy import CAPTURES

from hbtools import knetcrypto

PACEMAKER = sorted(p.name for p in CAPTURES.glob("pcmk-*") if (p / "capture.pcap").exists())
OP_KEYS = ("cib_op", "st_op", "crm_task", "task", "subt", "t")


class Independent:
    """Reads knet -> Totem mcast -> totempg -> CPG -> Pacemaker by fixed offsets."""

    def __init__(self, authkey: bytes | None) -> None:
        self.authkey = authkey
        self.frags: dict[tuple[Any, ...], dict[int, bytes]] = {}
        self.partial: dict[int, bytes] = {}
        self.seen: set[tuple[int, ...]] = set()

    def open(self, payload: bytes) -> bytes:
        """aes256/sha256 as the committed crypto captures use: IV 16, AES-CBC, HMAC 32."""
        if self.authkey is None:
            return payload
        body, mac = payload[:-32], payload[-32:]
        assert hmac.compare_digest(hmac.new(self.authkey, body, hashlib.sha256).digest(), mac)
        dec = Cipher(algorithms.AES(self.authkey[:32]), modes.CBC(body[:16])).decryptor()
        plain = dec.update(body[16:]) + dec.finalize()
        return plain[:-plain[-1]]

    def totem(self, src: str, payload: bytes) -> bytes | None:
        """The Totem message in a knet data packet (fragments joined), else None."""
        pkt = self.open(payload)
        if pkt[1] != 0x00:
            return None
        seq_num, = struct.unpack_from(">H", pkt, 6)
        frag_num, frag_seq = pkt[11], pkt[12]
        if frag_num == 1:
            return pkt[14:]
        got = self.frags.setdefault((src, seq_num), {})
        got[frag_seq] = pkt[14:]
        if len(got) < frag_num:
            return None
        del self.frags[(src, seq_num)]
        return b"".join(got[i] for i in range(1, frag_num + 1))

    def mcast(self, msg: bytes) -> list[tuple[str, str]] | None:
        """(CPG group, Pacemaker operation) of each CPG mcast completed by this mcast."""
        if msg[:4] != b"\x70\xc0\x03\x01":
            return None
        nodeid, = struct.unpack_from("<I", msg, 5)
        seq, = struct.unpack_from("<I", msg, 17)
        ring_seq, = struct.unpack_from("<Q", msg, 29)
        payload = msg[45:]
        fragmented, continuation = payload[4], payload[5]
        count, = struct.unpack_from("<H", payload, 6)
        lens = struct.unpack_from(f"<{count}H", payload, 8)
        pos = 8 + 2 * count
        pieces = []
        for n in lens:
            pieces.append(payload[pos:pos + n])
            pos += n
        first_copy = (nodeid, ring_seq, seq) not in self.seen
        self.seen.add((nodeid, ring_seq, seq))
        whole = []
        for i, piece in enumerate(pieces):
            if i == 0 and continuation:
                if not first_copy or nodeid not in self.partial:
                    continue
                piece = self.partial.pop(nodeid) + piece
            if i == len(pieces) - 1 and fragmented:
                if first_copy:
                    self.partial[nodeid] = piece
                continue
            whole.append(piece)
        out = []
        for m in whole:
            ngroups, = struct.unpack_from("<H", m, 0)
            glens = struct.unpack_from(f"<{ngroups}H", m, 2)
            exec_ = m[2 + 2 * ngroups + sum(glens):]
            exec_id, = struct.unpack_from("<i", exec_, 0)
            if exec_id != (2 << 16 | 3):  # cpg mcast
                continue
            glen, = struct.unpack_from("<I", exec_, 16)
            group = exec_[24:24 + glen].rstrip(b"\0").decode()
            msglen, = struct.unpack_from("<I", exec_, 152)
            body = exec_[184:184 + msglen]
            out.append((group, self.pcmk_op(body)))
        return out

    @staticmethod
    def pcmk_op(body: bytes) -> str:
        is_compressed, = struct.unpack_from("<I", body, 28)
        size, csize = struct.unpack_from("<II", body, 584)
        data = body[592:]
        xml = bz2.decompress(data[:csize]) if is_compressed else data[:size]
        tag = re.match(rb"<([\w-]+)([^>]*)>", xml)
        assert tag is not None
        attrs = dict(re.findall(rb'([\w-]+)="([^"]*)"', tag.group(2)))
        for key in OP_KEYS:
            if attrs.get(key.encode()):
                return attrs[key.encode()].decode()
        return tag.group(1).decode()


def _rows(folder: Path) -> list[Any]:
    keys = None
    if (folder / "authkey").exists():
        keys = knetcrypto.load_keys([str(folder / "authkey")])
    with open(folder / "capture.pcap", "rb") as stream:
        return list(decode_stream(stream, folder.name, Options(corosync_keys=keys)))


def _frames(folder: Path) -> dict[int, tuple[str, bytes]]:
    from scapy.all import IP, UDP, PcapReader

    out = {}
    with PcapReader(str(folder / "capture.pcap")) as reader:
        for number, pkt in enumerate(reader, start=1):
            if UDP in pkt and 5405 <= pkt[UDP].dport < 5413:
                out[number] = (pkt[IP].src, bytes(pkt[UDP].payload))
    return out


@pytest.fixture(scope="module", params=PACEMAKER)
def capture(request: pytest.FixtureRequest) -> tuple[Path, list[Any]]:
    folder = CAPTURES / request.param
    return folder, _rows(folder)


def _decoded(row: Any) -> list[tuple[str, str]]:
    """(group, operation) of each CPG mcast the row reports; the operation is the
    first of OP_KEYS the decoded XML root carries (the same rule as the reader's)."""
    fields = row.get_fields()
    out = []
    for m in fields.get("totem", fields).get("totempg", {}).get("messages", []):
        if (m.get("service"), m.get("function")) != ("cpg", "mcast"):
            continue
        p = m.get("pcmk", {})
        op = next((p[k] for k in OP_KEYS if p.get(k)), p.get("root"))
        out.append((m["group"], op))
    return out


def test_every_mcast_agrees_with_the_independent_reading(capture) -> None:
    folder, rows = capture
    authkey = (folder / "authkey").read_bytes() if (folder / "authkey").exists() else None
    reader = Independent(authkey)
    by_frame = {r.frame: r for r in rows}
    mcasts = 0
    counts: Counter[tuple[str, str]] = Counter()
    for frame, (src, payload) in _frames(folder).items():
        msg = reader.totem(src, payload)
        if msg is None:
            continue
        expected = reader.mcast(msg)
        if expected is None:
            continue
        mcasts += 1
        row = by_frame[frame]
        assert _decoded(row) == expected, frame
        counts.update(expected)
    assert mcasts > 20
    assert {g for g, _op in counts} == {"cib", "crmd", "attrd", "stonith-ng"}


def test_members_announced_are_what_corosync_cpgtool_printed(capture) -> None:
    """joinlist/procjoin (pid, group) per node vs corosync-cpgtool's snapshot."""
    folder, rows = capture
    meta = json.loads((folder / "meta.json").read_text())
    announced: set[tuple[str, int, int]] = set()
    for row in rows:
        fields = row.get_fields()
        totem_fields = fields.get("totem", fields)
        for m in totem_fields.get("totempg", {}).get("messages", []):
            if m.get("function") == "joinlist":
                announced.update((e["group"], e["pid"], m["source_nodeid"])
                                 if "source_nodeid" in m else (e["group"], e["pid"], row.node)
                                 for e in m["entries"])
            if m.get("function") == "procjoin":
                announced.add((m["group"], m["pid"], row.node))
    snapshot = meta["snapshots"][0]
    for group, view in snapshot["cpg_groups"].items():
        for member in view["members"]:
            assert (group, member["pid"], member["nodeid"]) in announced


def test_rows_name_services_and_functions_corosync_has() -> None:
    rows = _rows(CAPTURES / "pcmk-2node")
    seen = Counter()
    for row in rows:
        s = row.get_fields().get("corosync", {})
        seen.update(zip(s.get("service", []), s.get("function", []), strict=True))
    for expected in (("cpg", "mcast"), ("cpg", "joinlist"), ("cpg", "downlist"),
                     ("votequorum", "nodeinfo"), ("cmap", "mcast"), ("sync", "barrier")):
        assert seen[expected] > 0


def test_filter_by_group_and_destination() -> None:
    from hbtools.dissectors.filters import parse_filter

    rows = _rows(CAPTURES / "pcmk-2node")
    flt = parse_filter(["corosync.cpg_group=crmd corosync.pcmk_to=node1"])
    kept = [r for r in rows if flt(r)]
    assert kept
    for row in kept:
        s = row.get_fields()["corosync"]
        assert "crmd" in s["cpg_group"] and "node1" in s["pcmk_to"]


_INITIATING = re.compile(r"Initiating \w+ operation (\S+) on (\S+) \| action (\d+)")
_SET_DC = re.compile(r"Set DC to (\S+)")


def test_stats_events_are_what_pacemaker_logged(capture) -> None:
    """Remote actions the DC logged as "Initiating ... on NODE | action N" are transition
    events, and the DC pacemaker named ("Set DC to X") is the DC the stats found."""
    from hbtools.dissectors.stats import Stats

    folder, rows = capture
    meta = json.loads((folder / "meta.json").read_text())
    stats = Stats()
    for row in rows:
        stats.add(row)
    events = stats.to_dict()["corosync"]["events"]
    actions = {(m.group(1), m.group(2), m.group(3))
               for e in meta["pacemaker_view"] if (m := _INITIATING.search(e["text"]))}
    found = set()
    for e in events:
        if e["event"] == "transition":
            m = re.search(r"action (\d+) (\S+) on (\S+)", e["detail"])
            assert m is not None
            found.add((m.group(2), m.group(3), m.group(1)))
    assert actions == found
    dcs = {m.group(1) for e in meta["pacemaker_view"] if (m := _SET_DC.search(e["text"]))}
    # A DC alone in its partition (after the crash) offers nobody a join: not on the wire.
    found_dcs = {e["node"] for e in events if e["event"] == "dc"}
    assert found_dcs and found_dcs <= dcs
    assert any(e["event"] == "membership" for e in events)


_LINK_LOG = re.compile(r"^(\w{3} \d+ [\d:.]+) .*\[KNET  \] \w+: host: (\d+) link: (\d+) is (up|down)")


def test_link_view_replays_knets_rule_as_corosync_logged() -> None:
    """pcmk-2link: link 0 cut then restored. Every "host: X link: L is down/up" line of
    each node's corosync.log is an event of the replayed rule on (that node -> X, L):
    down no earlier than 50 ms before the log and at most knet's 200 ms check period
    (plus 50 ms) before it; up within 50 ms (the logging node's receive of the pong)."""
    import datetime as dt

    from hbtools.dissectors.knet_links import LinkView

    folder = CAPTURES / "pcmk-2link"
    meta = json.loads((folder / "meta.json").read_text())
    year = int(meta["recorded_at"][:4])
    view = LinkView(token_ms=meta["token_ms"])
    for row in _rows(folder):
        view.add(row)
    summary = view.to_dict()
    events = {(i["pinger"], i["peer"], i["link"], e["event"]): e["time"]
              for i in summary["links"] for e in i["events"]}
    logged = 0
    downs: set[tuple[int, int, int, str]] = set()
    for node in meta["nodes"]:
        text = (folder / f"{node['name']}.corosync.log").read_text()
        for line in text.splitlines():
            m = _LINK_LOG.match(line)
            if m is None:
                continue
            when = dt.datetime.strptime(f"{year} {m.group(1)}", "%Y %b %d %H:%M:%S.%f")
            stamp = when.replace(tzinfo=dt.UTC).timestamp()
            key = (node["nodeid"], int(m.group(2)), int(m.group(3)), m.group(4))
            if key[3] == "up" and key[:3] + ("down",) not in downs:
                continue  # the start-up "up": knet had no link state to replay yet
            downs.add(key)
            assert key in events, key
            lead = stamp - events[key]
            if m.group(4) == "down":
                assert -0.05 <= lead <= 0.25, (key, lead)
            else:
                assert abs(lead) <= 0.05, (key, lead)
            logged += 1
    assert logged == 4
    assert len(events) == 4
    assert summary["data_by_link"][0] > 0 and summary["links"][0]["rtt_ms"]["max"] < 5
