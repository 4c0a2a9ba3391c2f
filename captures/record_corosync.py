#!/usr/bin/env python3
"""Record real Corosync 3.1.7 clusters into ``captures/<scenario>/``.

The Totem and kronosnet codecs are checked against these recordings, so each one comes from
the real daemon (Debian package) running in a namespace lab (:mod:`hbtools.lab`), recorded
with tcpdump on the lab bridge. Each folder holds ``capture.pcap``, the ``corosync.conf``
every node used (and the ``authkey`` when crypto is on), each node's ``corosync.log``, and
``meta.json`` with corosync's OWN view of the run, recorded while it ran:

* ``corosync_view.memberships``: every "A new membership (rep.seq) was formed" line of every
  node's log, with the members from the "Sync members" line before it;
* ``corosync_view.snapshots``: at each steady point, per node, the parsed output of
  ``corosync-quorumtool -s`` (ring id, node id, members), ``runtime.members.*`` from
  ``corosync-cmapctl`` and the ``stats.srp.*`` counters from ``corosync-cmapctl -m stats``.

Ring ids are written as corosync prints them, ``rep.seq`` both in hex (``1.d`` is rep 1, ring
seq 13), and also split into integers. The tests compare the ring ids in the captured tokens
with these, so the check does not rest on the decoder's own word.

Usage (as root)::

    python captures/record_corosync.py --list
    python captures/record_corosync.py                    # every scenario
    python captures/record_corosync.py totem-udpu-3node   # just one

A scenario that fails leaves the committed folder untouched (it records into a temporary
folder and swaps it in only on success). Every node starts with an empty /var/lib/corosync,
so ring sequence numbers start afresh and runs are comparable.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import recording  # noqa: E402  (captures/recording.py: the shared recorder parts; puts the repo on sys.path)
from recording import package_version, scratch_folder  # noqa: E402

from hbtools import knet, totem  # noqa: E402
from hbtools.lab import COROSYNC_LAB_SECTIONS, Capture, Lab, Node, wait_until  # noqa: E402

MCAST_GROUP = "239.18.0.2"
TOTEM_PORTS = (5404, 5405)


# --------------------------------------------------------------------------- configuration

def corosync_conf(scenario: Scenario) -> str:
    """A corosync.conf for the lab: one link on eth0, default timers, log to a file."""
    interface = ""
    if scenario.transport == "udp":
        interface = (
            "    interface {\n"
            "        linknumber: 0\n"
            f"        mcastaddr: {MCAST_GROUP}\n"
            "        mcastport: 5405\n"
            "    }\n"
        )
    nodes = "".join(
        "    node {\n"
        f"        name: node{i}\n"
        f"        nodeid: {i}\n"
        f"        ring0_addr: 198.18.0.{i}\n"
        "    }\n"
        for i in range(1, scenario.nodes + 1)
    )
    return (
        "# written by captures/record_corosync.py for a namespace lab\n"
        "totem {\n"
        "    version: 2\n"
        "    cluster_name: hbtools\n"
        f"    transport: {scenario.transport}\n"
        f"    crypto_cipher: {scenario.crypto_cipher}\n"
        f"    crypto_hash: {scenario.crypto_hash}\n"
        f"{interface}"
        "}\n"
        f"{COROSYNC_LAB_SECTIONS}"
        "nodelist {\n"
        f"{nodes}"
        "}\n"
    )


# --------------------------------------------------------------------------- corosync's view

def parse_ring_id(text: str) -> dict[str, object]:
    """``1.d`` as corosync prints it (rep and seq in hex) into the string and both integers."""
    rep, seq = text.split(".")
    return {"ring_id": text, "rep": int(rep, 16), "seq": int(seq, 16)}


def parse_quorumtool(out: str) -> dict[str, object]:
    """The parts of ``corosync-quorumtool -s`` the tests need."""
    view: dict[str, object] = {}
    m = re.search(r"^Ring ID:\s+(\S+)", out, re.M)
    if m:
        view.update(parse_ring_id(m.group(1)))
    m = re.search(r"^Node ID:\s+(\d+)", out, re.M)
    if m:
        view["node_id"] = int(m.group(1))
    m = re.search(r"^Nodes:\s+(\d+)", out, re.M)
    if m:
        view["nodes"] = int(m.group(1))
    m = re.search(r"^Quorate:\s+(\w+)", out, re.M)
    if m:
        view["quorate"] = m.group(1) == "Yes"
    members = re.findall(r"^\s+(\d+)\s+\d+\s+\S+", out.split("Membership information")[-1],
                         re.M) if "Membership information" in out else []
    view["members"] = [int(x) for x in members]
    return view


def parse_cmap(out: str, prefix: str) -> dict[str, str]:
    """``key (type) = value`` lines under ``prefix``, values kept as corosync prints them."""
    keys: dict[str, str] = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+) \(\w+\) = (.*)$", line)
        if m and m.group(1).startswith(prefix):
            keys[m.group(1)] = m.group(2).strip()
    return keys


MEMBERSHIP = re.compile(
    r"^(?P<stamp>\w{3} +\d+ [\d:.]+) .*\[TOTEM \] A new membership \((?P<ring>[0-9a-f]+\.[0-9a-f]+)\)"
    r" was formed\. Members(?: joined: (?P<joined>[\d ]+?))?(?: left: (?P<left>[\d ]+?))?$")
SYNC_MEMBERS = re.compile(r"\[QUORUM\] Sync members\[\d+\]: (?P<members>[\d ]+)$")


def memberships_from_log(node: str, log: str) -> list[dict[str, object]]:
    """Every ring this node's corosync said it formed, with its members and log time."""
    out: list[dict[str, object]] = []
    members: list[int] | None = None
    for line in log.splitlines():
        sync = SYNC_MEMBERS.search(line)
        if sync:
            members = [int(x) for x in sync.group("members").split()]
            continue
        m = MEMBERSHIP.match(line)
        if m:
            entry: dict[str, object] = {"node": node, "log_time": m.group("stamp"),
                                        **parse_ring_id(m.group("ring"))}
            entry["members"] = members
            entry["joined"] = [int(x) for x in (m.group("joined") or "").split()]
            entry["left"] = [int(x) for x in (m.group("left") or "").split()]
            entry["line"] = line
            out.append(entry)
            members = None
    return out


# --------------------------------------------------------------------------- recording


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    transport: str
    nodes: int
    actions: Callable[[Recording], None]
    crypto_cipher: str = "none"
    crypto_hash: str = "none"

    @property
    def crypto(self) -> bool:
        return self.crypto_cipher != "none"


@dataclass
class Recording:
    lab: Lab
    scenario: Scenario
    nodes: list[Node]
    capture: Capture
    events: list[dict[str, object]] = field(default_factory=list)
    snapshots: list[dict[str, object]] = field(default_factory=list)

    def event(self, what: str, **details: object) -> float:
        now = time.time()
        entry: dict[str, object] = {"t": round(now, 6),
                                    "t_rel": round(now - self.capture.started, 3), "what": what}
        entry.update(details)
        self.events.append(entry)
        print(f"  {entry['t_rel']:7.2f}s  {what}", flush=True)
        return now

    # -- daemon control

    def corosync_pids(self, node: Node) -> list[int]:
        """Host pids of the corosync daemon running in this node."""
        return node.pids_named({"corosync"})

    def start(self, node: Node) -> None:
        node.popen(["corosync", "-f"])
        pid = wait_until(lambda: self.corosync_pids(node), timeout=10,
                         what=f"corosync to start on {node.name}")
        self.event(f"corosync -f started on {node.name}", host_pids=pid)

    def kill(self, node: Node) -> None:
        pids = self.corosync_pids(node)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not self.corosync_pids(node), timeout=10,
                   what=f"corosync on {node.name} to die")
        self.event(f"corosync on {node.name} killed (SIGKILL)", host_pids=pids)

    def stop(self, node: Node) -> None:
        for pid in self.corosync_pids(node):
            os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not self.corosync_pids(node), timeout=20,
                   what=f"corosync on {node.name} to exit")

    # -- corosync's own view

    def quorum(self, node: Node) -> dict[str, object]:
        res = node.run(["corosync-quorumtool", "-s"], check=False, timeout=10)
        return parse_quorumtool(res.stdout)

    def wait_members(self, nodes: list[Node], members: list[int], timeout: float = 40.0) -> None:
        """Until every node in ``nodes`` reports exactly ``members`` on one and the same ring."""
        def settled() -> bool:
            views = [self.quorum(n) for n in nodes]
            rings = {v.get("ring_id") for v in views}
            return len(rings) == 1 and all(v.get("members") == members for v in views)

        wait_until(settled, timeout=timeout, interval=0.25,
                   what=f"{', '.join(n.name for n in nodes)} to agree on members {members}")
        self.event(f"{', '.join(n.name for n in nodes)} report members {members}")

    def snapshot(self, phase: str, nodes: list[Node]) -> None:
        """Corosync's view on every running node, as its own tools print it."""
        now = time.time()
        for node in nodes:
            quorum = node.run(["corosync-quorumtool", "-s"], check=False, timeout=10).stdout
            cmap = node.run(["corosync-cmapctl", "runtime.members"], check=False,
                            timeout=10).stdout
            stats = node.run(["corosync-cmapctl", "-m", "stats", "stats.srp"], check=False,
                             timeout=10).stdout
            self.snapshots.append({
                "phase": phase,
                "node": node.name,
                "t": round(now, 6),
                "t_rel": round(now - self.capture.started, 3),
                "quorumtool": parse_quorumtool(quorum),
                "quorumtool_output": quorum,
                "cmap_runtime_members": parse_cmap(cmap, "runtime.members."),
                "cmap_stats_srp": parse_cmap(stats, "stats.srp."),
            })
        rings = sorted({str(s["quorumtool"].get("ring_id"))  # type: ignore[union-attr]
                        for s in self.snapshots[-len(nodes):]})
        self.event(f"snapshot '{phase}': ring {', '.join(rings)}")

    def app_traffic(self, rounds: int = 6, gap: float = 0.4) -> None:
        """Make corosync send application messages while the ring idles.

        `corosync-cfgtool -R` (reload the configuration) multicasts a cfg message to every
        node. Sent while the token is being held on an idle ring, it makes the holder send
        `token_hold_cancel`, the one message type an idle ring never shows.
        """
        for i in range(rounds):
            node = self.nodes[i % len(self.nodes)]
            node.run(["corosync-cfgtool", "-R"], check=False, timeout=10)
            time.sleep(gap)
        self.event(f"corosync-cfgtool -R run {rounds} times, spread over the nodes")


def steady_two_nodes(rec: Recording) -> None:
    for node in rec.nodes:
        rec.start(node)
    ids = list(range(1, len(rec.nodes) + 1))
    rec.wait_members(rec.nodes, ids)
    time.sleep(3)
    rec.app_traffic(rounds=4)
    time.sleep(2)
    rec.snapshot("steady", rec.nodes)


def kill_and_restart(rec: Recording) -> None:
    """Three nodes form a ring; the last is SIGKILLed (token loss, joins, commit token, new
    ring of two) and restarted (merge, joins, new ring of three)."""
    for node in rec.nodes:
        rec.start(node)
    everyone = list(range(1, len(rec.nodes) + 1))
    rec.wait_members(rec.nodes, everyone)
    time.sleep(2)
    rec.app_traffic()
    rec.snapshot("all three", rec.nodes)
    victim, survivors = rec.nodes[-1], rec.nodes[:-1]
    rec.kill(victim)
    rec.wait_members(survivors, everyone[:-1])
    time.sleep(1)
    rec.snapshot("after kill", survivors)
    rec.start(victim)
    rec.wait_members(rec.nodes, everyone)
    time.sleep(2)
    rec.app_traffic()
    rec.snapshot("after restart", rec.nodes)


SCENARIOS = {s.name: s for s in (
    Scenario("totem-udpu-3node",
             "3 nodes, transport udpu; node3 killed (SIGKILL) and restarted",
             "udpu", 3, kill_and_restart),
    Scenario("totem-udp-mcast",
             f"2 nodes, transport udp, multicast group {MCAST_GROUP}",
             "udp", 2, steady_two_nodes),
    Scenario("totem-knet",
             "2 nodes, transport knet, no crypto",
             "knet", 2, steady_two_nodes),
    Scenario("totem-knet-crypto",
             "2 nodes, transport knet, crypto_cipher aes256, crypto_hash sha256",
             "knet", 2, steady_two_nodes, crypto_cipher="aes256", crypto_hash="sha256"),
)}


# --------------------------------------------------------------------------- summary


def summarize(pcap: Path, scenario: Scenario,
              ports: tuple[int, ...] = TOTEM_PORTS) -> dict[str, object]:
    """Counts from the pcap, for people reading meta.json (the tests count for themselves);
    ``ports`` are the UDP destination ports that carry Totem (knet link L uses 5405 + L)."""
    from scapy.all import UDP, PcapReader

    totem_types: Counter[str] = Counter()
    knet_types: Counter[str] = Counter()
    frames = udp = 0
    reassembler = knet.Reassembler()
    with PcapReader(str(pcap)) as reader:
        for pkt in reader:
            frames += 1
            if UDP not in pkt or pkt[UDP].dport not in ports:
                continue
            udp += 1
            payload = bytes(pkt[UDP].payload)
            if scenario.transport != "knet":
                totem_types[totem.decode(payload).type_name] += 1
                continue
            packet = knet.decode(payload, crypto=scenario.crypto)
            knet_types[packet.type_name] += 1
            if packet.type_name == "data":
                whole = reassembler.add(packet, pkt.src)
                if whole is not None:
                    totem_types[totem.decode(whole).type_name] += 1
    summary: dict[str, object] = {"frames": frames, "totem_udp_datagrams": udp,
                                  "totem_messages": dict(sorted(totem_types.items()))}
    if scenario.transport == "knet":
        summary["knet_packets"] = dict(sorted(knet_types.items()))
    return summary


def record(scenario: Scenario, out_root: Path) -> Path:
    """Run one scenario and return its finished folder."""
    with scratch_folder(out_root, scenario.name) as tmp, Lab() as lab:
        nodes = [lab.add_corosync_node(f"node{i}", host=i)
                 for i in range(1, scenario.nodes + 1)]
        conf = corosync_conf(scenario)
        (tmp / "corosync.conf").write_text(conf)
        if scenario.crypto:
            # A lab-only key, committed so the capture can be decrypted later.
            (tmp / "authkey").write_bytes(os.urandom(256))
        for node in nodes:
            etc = node.workdir / "etc-corosync"
            (etc / "corosync.conf").write_text(conf)
            if scenario.crypto:
                shutil.copyfile(tmp / "authkey", etc / "authkey")
                (etc / "authkey").chmod(0o400)
            assert not any((node.workdir / "var-lib-corosync").iterdir())
        capture = lab.capture(tmp / "capture.pcap", "udp")
        rec = Recording(lab, scenario, nodes, capture)
        rec.event("tcpdump listening on the lab bridge (br0), filter udp")
        scenario.actions(rec)
        packets = capture.stop()
        rec.event("tcpdump stopped", packets=packets)
        memberships = []
        for node in nodes:
            log = node.workdir / "var-log-corosync" / "corosync.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            (tmp / f"{node.name}.corosync.log").write_text(text)
            memberships += memberships_from_log(node.name, text)
        for node in nodes:
            if rec.corosync_pids(node):
                rec.stop(node)
        meta: dict[str, object] = {
            "scenario": scenario.name,
            "description": scenario.description,
            "recorded_at": dt.datetime.fromtimestamp(capture.started, dt.UTC).isoformat(),
            "recorder": "captures/record_corosync.py (hbtools.lab namespace lab)",
            "software": {"corosync": package_version("corosync"), "libknet1": package_version("libknet1"),
                         "tcpdump": package_version("tcpdump")},
            "transport": scenario.transport,
            "crypto": {"cipher": scenario.crypto_cipher, "hash": scenario.crypto_hash},
            "capture": {
                "file": "capture.pcap",
                "where": "tcpdump -i br0 -s 0 -U on the lab bridge, filter 'udp'",
                "start": round(capture.started, 6),
                "end": round(capture.stopped or time.time(), 6),
                "packets": packets,
            },
            "network": "198.18.0.0/24 on one bridge; IPv6 disabled; no default route",
            "config": {"corosync.conf": "corosync.conf", "shared_by_all_nodes": True,
                       **({"authkey": "authkey"} if scenario.crypto else {})},
            "nodes": [{"name": n.name, "nodeid": i, "address": n.address, "mac": n.mac,
                       "log": f"{n.name}.corosync.log"}
                      for i, n in enumerate(nodes, start=1)],
            "configured_nodeids": list(range(1, scenario.nodes + 1)),
            "ring_id_format": "rep.seq as corosync prints them, both hex",
            "corosync_view": {"memberships": memberships, "snapshots": rec.snapshots},
            "events": rec.events,
        }
        meta["summary"] = summarize(tmp / "capture.pcap", scenario)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out_root / scenario.name


def main(argv: list[str] | None = None) -> int:
    return recording.main("record_corosync.py", __doc__.split("\n\n")[0], SCENARIOS, record,
                          str, argv)


if __name__ == "__main__":
    sys.exit(main())
