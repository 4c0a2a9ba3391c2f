"""`hbtool inject --proto totem` against a REAL corosync 3.1.7 ring (transport udpu).

Two corosync nodes (node ids 1 and 2, udpu, no crypto, ``debug: on`` so that the state
changes are in the log) form a ring; the injector runs in the lab's client namespace
(198.18.0.250, not in the nodelist) and sends a bare ``memb_join`` claiming node id 9,
which no configuration lists, to node1's port 5405. What corosync itself reports is the
proof:

* from the client's own address the datagrams never reach Totem: udpu's
  ``block_unlisted_ips`` (default on) drops them, and node1 logs one
  ``[TOTEM ] Packet rejected from 198.18.0.250`` per datagram, while
  ``stats.srp.memb_join_rx`` (``corosync-cmapctl -m stats``) and the ring stay as they were;
* the same message with the source address of a listed node (``--spoof-src 198.18.0.2``)
  is taken for real: node1 logs ``[TOTEM ] entering GATHER state from 11(merge during
  join).``, ``stats.srp.memb_join_rx`` and ``gather_entered`` go up, both nodes' own
  ``memb_join`` messages on the wire list node 9 (first among the processors, then among
  the failed ones once node 9 never answers), and after the consensus timeout both nodes
  log ``[TOTEM ] A new membership (1.<seq>) was formed. Members`` for a ring with a higher
  seq and the same members 1 2 (nobody joined, nobody left), which
  ``corosync-quorumtool -s`` shows too.

The memb_join messages in the capture are parsed by hand below (header 13 bytes, then
system_from, proc_list_entries, failed_list_entries as u32, ring_seq as u64, then the
two lists of u32 node ids, little endian: PROTOCOL-NOTES section 3), not by hbtools.totem.
"""

from __future__ import annotations

import re
import struct
import time
from pathlib import Path

import pytest
from netns_helpers import corosync_conf_two_nodes, hbtool, lab_with, node_env

pytestmark = pytest.mark.netns

GHOST_ID = 9
CLIENT_IP = "198.18.0.250"
NODE2_IP = "198.18.0.2"

CONF = corosync_conf_two_nodes(transport="udpu", debug=True)

NEW_RING = re.compile(r"\[TOTEM \] A new membership \(([0-9a-f]+)\.([0-9a-f]+)\) was formed\. Members(.*)$")


def _log(node) -> list[str]:
    path = node.workdir / "var-log-corosync" / "corosync.log"
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def _srp(node) -> dict[str, int]:
    out = node.run(["corosync-cmapctl", "-m", "stats", "stats.srp."], check=False).stdout
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^stats\.srp\.(\w+) \(\w+\) = (\d+)$", out, re.M)}


def _ring(node) -> tuple[str | None, list[int]]:
    """Ring id and members as ``corosync-quorumtool -s`` prints them."""
    out = node.run(["corosync-quorumtool", "-s"], check=False).stdout
    ring = re.search(r"^Ring ID:\s+(\S+)", out, re.M)
    members = out.split("Membership information")[-1] if "Membership information" in out else ""
    return (ring.group(1) if ring else None,
            [int(x) for x in re.findall(r"^\s+(\d+)\s+\d+\s+\S+", members, re.M)])


def _memb_joins(path: Path) -> list[tuple[str, int, list[int], list[int]]]:
    """(IP source, system_from, proc_list, failed_list) of every memb_join on port 5405."""
    from scapy.layers.inet import IP, UDP
    from scapy.utils import rdpcap

    out = []
    for pkt in rdpcap(str(path)):
        if IP not in pkt or UDP not in pkt or pkt[UDP].dport != 5405:
            continue
        data = bytes(pkt[UDP].payload)
        if len(data) < 33 or data[:2] != b"\x70\xc0" or data[3] != 3:  # magic, type memb_join
            continue
        system_from, procs, failed = struct.unpack_from("<III", data, 13)
        ids = struct.unpack_from(f"<{procs + failed}I", data, 33)
        out.append((pkt[IP].src, system_from, list(ids[:procs]), list(ids[procs:])))
    return out


def test_memb_join_from_unknown_node_id_makes_corosync_run_a_membership_round(tmp_path: Path) -> None:
    labmod = lab_with("corosync", "corosync-cmapctl", "corosync-quorumtool", "tcpdump")
    pcap = tmp_path / "totem.pcap"
    join = ["inject", "--proto", "totem", "-t", "memb_join", "-f", f"nodeid={GHOST_ID}",
            "--to", "198.18.0.1", "--count", "3", "--interval", "0.1"]
    with labmod.Lab() as lab:
        nodes = [lab.add_corosync_node(f"node{i}", host=i) for i in (1, 2)]
        client = lab.add_client()
        for node in nodes:
            (node.workdir / "etc-corosync" / "corosync.conf").write_text(CONF)
            node.popen(["corosync", "-f"])
        node1, node2 = nodes

        def settled() -> bool:
            views = [_ring(n) for n in nodes]
            return views[0][0] is not None and views[0] == views[1] and views[0][1] == [1, 2]

        labmod.wait_until(settled, timeout=30, interval=0.25, what="a ring of nodes 1 and 2")
        time.sleep(1)  # let the start-up joins settle before the counters are read
        ring_before = _ring(node1)[0]
        srp_before = _srp(node1)
        lines_before = len(_log(node1))
        cap = lab.capture(pcap, "udp")

        # 1. From the client's own (unlisted) address: rejected before Totem sees it.
        plain = client.run(hbtool(*join), env=node_env(), check=False, timeout=20)
        assert plain.returncode == 0, plain.stderr
        labmod.wait_until(
            lambda: sum("Packet rejected from" in ln for ln in _log(node1)[lines_before:]) >= 3,
            timeout=5, interval=0.1, what="node1 to log the rejected packets")
        time.sleep(0.5)
        rejected_log = _log(node1)[lines_before:]
        srp_after_rejected = _srp(node1)
        ring_after_rejected = _ring(node1)[0]
        lines_mid = len(_log(node1))

        # 2. The same message from a listed address: corosync takes node 9's join.
        spoofed = client.run(hbtool(*join, "--spoof-src", NODE2_IP), env=node_env(), check=False,
                             timeout=20)
        assert spoofed.returncode == 0, spoofed.stderr

        def new_ring_formed() -> bool:
            ring, members = _ring(node1)
            return ring not in (None, ring_before) and members == [1, 2] and _ring(node2) == (ring, members)

        labmod.wait_until(new_ring_formed, timeout=20, interval=0.25,
                          what="a new ring after the injected memb_join")
        time.sleep(0.5)
        cap.stop()
        ring_after = _ring(node1)
        srp_after = _srp(node1)
        round_log = _log(node1)[lines_mid:]
        node2_log = _log(node2)

    # 1. rejected: exactly one log line per datagram, nothing counted, same ring.
    assert [ln.split("[TOTEM ] ", 1)[1] for ln in rejected_log if "Packet rejected" in ln] == [
        f"Packet rejected from {CLIENT_IP}"] * 3
    assert srp_after_rejected["memb_join_rx"] == srp_before["memb_join_rx"]
    assert srp_after_rejected["gather_entered"] == srp_before["gather_entered"]
    assert ring_after_rejected == ring_before
    assert not any("GATHER" in ln for ln in rejected_log)

    # 2. accepted: a merge-triggered gather, then a new ring with the same two members.
    totem_lines = [ln.split("[TOTEM ] ", 1)[1] for ln in round_log if "[TOTEM ] " in ln]
    assert "entering GATHER state from 11(merge during join)." in totem_lines
    formed = [m for m in (NEW_RING.search(ln) for ln in round_log) if m]
    assert len(formed) == 1 and formed[0].group(3) == "", formed  # no "joined:", no "left:"
    rep, seq = int(formed[0].group(1), 16), int(formed[0].group(2), 16)
    old_rep, old_seq = (int(x, 16) for x in ring_before.split("."))
    assert rep == old_rep and seq > old_seq
    assert ring_after == (f"{rep:x}.{seq:x}", [1, 2])
    assert any(NEW_RING.search(ln) and f"({rep:x}.{seq:x})" in ln for ln in node2_log)
    assert srp_after["memb_join_rx"] >= srp_after_rejected["memb_join_rx"] + 3
    assert srp_after["gather_entered"] > srp_after_rejected["gather_entered"]

    # On the wire: the injected joins, then node1's own joins naming node 9.
    joins = _memb_joins(pcap)
    assert [(j[0], j[1], j[2]) for j in joins if j[1] == GHOST_ID] == (
        [(CLIENT_IP, GHOST_ID, [GHOST_ID])] * 3 + [(NODE2_IP, GHOST_ID, [GHOST_ID])] * 3)
    for address, node_id in (("198.18.0.1", 1), (NODE2_IP, 2)):
        own = [(procs, failed) for src, sender, procs, failed in joins
               if src == address and sender == node_id]
        assert any(procs == [1, 2, GHOST_ID] and failed == [] for procs, failed in own), own
        assert any(failed == [GHOST_ID] for _, failed in own), own
