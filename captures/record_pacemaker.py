#!/usr/bin/env python3
"""Record real Corosync 3.1.7 + Pacemaker 2.1.5 clusters into ``captures/pcmk-<name>/``.

The CPG and Pacemaker decoders (issue 15) are checked against these recordings, so each comes
from the real stack (Debian packages) run by the lab's ``pacemaker`` cluster kind
(:class:`hbtools.lab.pacemaker.PacemakerCluster`), recorded with tcpdump on the lab bridge
(every frame: knet over UDP and the VIP's gratuitous ARPs). Each folder holds
``capture.pcap``, the ``corosync.conf`` and ``cib.xml`` every node started from (and the
lab-only ``authkey`` when crypto is on), per node the whole ``corosync.log`` and the
``pacemaker.log`` trimmed to notice level and above, and ``meta.json`` with the stack's OWN
view, recorded while it ran:

* ``corosync_view.memberships``: every membership each node's corosync formed (log lines);
* ``snapshots``: at each steady point, per running node, the raw output of
  ``corosync-cpgtool``, ``corosync-cfgtool -s`` and ``-n``, ``corosync-quorumtool -s``,
  ``corosync-cmapctl -m stats`` (``stats.knet``, ``stats.srp``, ``stats.pg``) and
  ``runtime.members``, ``crm_mon -1`` and ``cibadmin -Q``, with the CPG groups, links and
  quorum parsed;
* ``pacemaker_view``: per node the log lines of DC elections, membership, transitions and
  resource operations (time, daemon, text);
* ``links``: which addresses form which knet link.

Usage (as root)::

    python captures/record_pacemaker.py --list
    python captures/record_pacemaker.py              # every scenario
    python captures/record_pacemaker.py pcmk-crash   # just one
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import recording  # noqa: E402  (captures/recording.py: the shared recorder parts; puts the repo on sys.path)
from record_corosync import (  # noqa: E402
    memberships_from_log,
    parse_cmap,
    parse_quorumtool,
    summarize,
)
from recording import capture_meta, log_event, package_version, scratch_folder  # noqa: E402

from hbtools.lab import Capture, Lab, wait_until  # noqa: E402
from hbtools.lab.cluster import Timing  # noqa: E402
from hbtools.lab.pacemaker import (  # noqa: E402
    CRYPTO_CIPHER,
    CRYPTO_HASH,
    PacemakerCluster,
    knet_port,
    link_address,
)

TIMING = Timing(deadtime_ms=3000)
"""Corosync's default token (3000 ms), so the captures show a stock cluster's timing."""

CUT_TABLE = "hbtlab_cut_link"


# --------------------------------------------------------------------------- tool output

def parse_cpgtool(out: str) -> dict[str, dict[str, object]]:
    """``corosync-cpgtool`` output: group name -> the name as printed and the members.

    The tool prints a name with its length as sent, so Pacemaker's groups show as
    ``crmd\\x00``: their CPG name length counts the terminating NUL. The key drops it.
    """
    groups: dict[str, dict[str, object]] = {}
    members: list[dict[str, object]] = []
    for line in out.splitlines():
        if not line.strip() or line.startswith("Group Name"):
            continue
        if not line[0].isspace():
            printed = line.strip()
            members = []
            groups[printed.removesuffix("\\x00")] = {"printed": printed, "members": members}
            continue
        m = re.match(r"^\s+(\d+)\s+(\d+)", line)
        if m and groups:
            members.append({"pid": int(m.group(1)), "nodeid": int(m.group(2))})
    return groups


def parse_cfgtool_links(out: str) -> list[dict[str, object]]:
    """``corosync-cfgtool -n``: per peer node id, each link's addresses and state."""
    links: list[dict[str, object]] = []
    peer: int | None = None
    for line in out.splitlines():
        m = re.match(r"^nodeid:\s+(\d+)\s+(\w+)", line.strip())
        if m:
            peer = int(m.group(1))
            continue
        m = re.match(r"^LINK:\s+(\d+)\s+(\w+)\s+\((\S+)->(\S+)\)\s+(.*)$", line.strip())
        if m and peer is not None:
            links.append({"peer": peer, "link": int(m.group(1)), "transport": m.group(2),
                          "local": m.group(3), "remote": m.group(4),
                          "state": m.group(5).strip()})
    return links


PCMK_LINE = re.compile(
    r"^(?P<stamp>\w{3} \d+ [\d:.]+) (?P<host>\S+) (?P<daemon>\S+)\s+\[(?P<pid>\d+)\] "
    r"\((?P<fn>[^)]*)\) \t(?P<level>\w+): (?P<text>.*)$")
PCMK_KEEP_LEVELS = {"notice", "warning", "error", "crit"}
PCMK_VIEW = re.compile(
    r"State transition|Set DC to|Taking over DC|election|Election|"
    r"Calculated transition|Transition \d+ \(|Initiating \w+ operation|Result of \w+ operation|"
    r"Node \S+ state is now|is now a peer|was terminated|Node \S+ is now|cluster layer|"
    r"Updating quorum|Quorum (acquired|lost)|Scheduling|Moving|Recover|Stop  |Start  |Move  ")


def pacemaker_events(node: str, log: str) -> list[dict[str, str]]:
    """The log lines that tell the DC election, membership and transition story."""
    events = []
    for line in log.splitlines():
        m = PCMK_LINE.match(line)
        if m and m.group("level") in PCMK_KEEP_LEVELS | {"info"} and PCMK_VIEW.search(
                m.group("text")):
            events.append({"node": node, "log_time": m.group("stamp"),
                           "daemon": m.group("daemon"), "level": m.group("level"),
                           "text": m.group("text")})
    return events


def trim_pacemaker_log(log: str) -> str:
    """Notice and above (and resource agents' own lines): the info level is ~100× larger."""
    keep = []
    for line in log.splitlines():
        m = PCMK_LINE.match(line)
        if m is None or m.group("level") in PCMK_KEEP_LEVELS:
            keep.append(line)
    return "\n".join(keep) + "\n"


# --------------------------------------------------------------------------- recording


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    nodes: int
    actions: Callable[[Recording], None]
    crypto: bool = False
    links: int = 1
    transport = "knet"  # what record_corosync.summarize asks


@dataclass
class Recording:
    cluster: PacemakerCluster
    capture: Capture
    events: list[dict[str, object]] = field(default_factory=list)
    snapshots: list[dict[str, object]] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)

    def event(self, what: str, **details: object) -> float:
        return log_event(self.events, self.capture.started, what, **details)

    def start(self) -> None:
        t0 = time.monotonic()
        self.event("starting corosync on every node, then pacemakerd")
        self.cluster.start(timeout=120)
        self.figures["start_to_one_vip_owner_s"] = round(time.monotonic() - t0, 3)
        self.event("one node holds the VIP", owners=self.cluster.vip_owners())

    def owner(self) -> tuple[str, str]:
        (owner,) = self.cluster.vip_owners()
        other = next(n for n in self.cluster.nodes if n != owner)
        return owner, other

    def wait_online(self, names: list[str], timeout: float = 60.0) -> None:
        """Until crm_mon on each running node lists exactly ``names`` online."""
        want = f"Online: [ {' '.join(names)} ]"
        wait_until(lambda: all(want in self.cluster.tool(n, ["crm_mon", "-1"]) for n in names),
                   timeout=timeout, interval=0.5, what=f"crm_mon to show {want}")
        self.event(f"crm_mon: {want}")

    def snapshot(self, phase: str) -> None:
        """The stack's own view on every running node, as its tools print it."""
        now = time.time()
        c = self.cluster
        running = [n for n in c.nodes if c.running(n)]
        for name in running:
            outputs = {
                "corosync-cpgtool": c.tool(name, ["corosync-cpgtool"]),
                "corosync-cfgtool -s": c.tool(name, ["corosync-cfgtool", "-s"]),
                "corosync-cfgtool -n": c.tool(name, ["corosync-cfgtool", "-n"]),
                "corosync-quorumtool -s": c.tool(name, ["corosync-quorumtool", "-s"]),
                "corosync-cmapctl -m stats": c.tool(name, ["corosync-cmapctl", "-m", "stats"]),
                "corosync-cmapctl runtime.members": c.tool(
                    name, ["corosync-cmapctl", "runtime.members"]),
                "crm_mon -1": c.tool(name, ["crm_mon", "-1"]),
                "cibadmin -Q": c.tool(name, ["cibadmin", "-Q"]),
            }
            stats = outputs["corosync-cmapctl -m stats"]
            self.snapshots.append({
                "phase": phase,
                "node": name,
                "t": round(now, 6),
                "t_rel": round(now - self.capture.started, 3),
                "cpg_groups": parse_cpgtool(outputs["corosync-cpgtool"]),
                "links": parse_cfgtool_links(outputs["corosync-cfgtool -n"]),
                "quorumtool": parse_quorumtool(outputs["corosync-quorumtool -s"]),
                "cmap_stats": {k: v for prefix in ("stats.knet.", "stats.srp.", "stats.pg.")
                               for k, v in parse_cmap(stats, prefix).items()},
                "cmap_runtime_members": parse_cmap(outputs["corosync-cmapctl runtime.members"],
                                                   "runtime.members."),
                "vip_owners": c.vip_owners(),
                "outputs": {k: v for k, v in outputs.items() if k != "corosync-cmapctl -m stats"},
            })
        groups = sorted({g for s in self.snapshots[-len(running):]
                         for g in s["cpg_groups"]})  # type: ignore[union-attr]
        self.event(f"snapshot '{phase}' on {', '.join(running)}: CPG groups {', '.join(groups)}")

    def idle(self, seconds: float) -> None:
        time.sleep(seconds)

    def settle(self, phase: str, pause: float = 3.0) -> None:
        """Start the cluster, wait for every node online, pause, record the view."""
        self.start()
        self.wait_online(self.cluster.nodes)
        self.idle(pause)
        self.snapshot(phase)


def steady(rec: Recording, after: float = 7.0) -> None:
    """Start, let the cluster settle with the VIP placed, record its view, idle a little."""
    rec.settle("steady", pause=4)
    rec.idle(after)


def steady_short(rec: Recording) -> None:
    """As :func:`steady`, shorter: three nodes send twice the packets of two."""
    steady(rec, after=1.0)


def crash_holder(rec: Recording) -> None:
    """SIGKILL corosync on the VIP holder: the survivor's Pacemaker takes the VIP; without
    fencing the victim's interface keeps it too (two owners, a fact of the real stack)."""
    rec.settle("before crash")
    victim, survivor = rec.owner()
    t0 = time.monotonic()
    pids = rec.cluster.kill_corosync(victim)
    rec.event(f"corosync on {victim} (the VIP holder) killed with SIGKILL", host_pids=pids)
    seen = rec.cluster.wait_owners([victim, survivor], timeout=60)
    rec.figures["corosync_sigkill_to_survivor_vip_s"] = round(seen - t0, 3)
    rec.event(f"{survivor} holds the VIP; {victim}'s interface still has it",
              owners=rec.cluster.vip_owners())
    rec.idle(3)
    rec.snapshot("after crash")
    rec.idle(2)


def move_vip(rec: Recording) -> None:
    """``crm_resource --move`` the VIP to the other node (a planned switch-over)."""
    rec.settle("before move")
    owner, other = rec.owner()
    t0 = time.monotonic()
    out = rec.cluster.move_vip(other)
    rec.event(f"crm_resource --resource vip --move --node {other}", output=out.strip())
    seen = rec.cluster.wait_owners([other], timeout=30)
    rec.figures["move_to_new_owner_s"] = round(seen - t0, 3)
    rec.event(f"{other} alone holds the VIP", owners=rec.cluster.vip_owners())
    rec.idle(3)
    rec.snapshot("after move")
    rec.idle(2)


def _link_state(rec: Recording, node: str, peer: int, link: int) -> str | None:
    out = rec.cluster.tool(node, ["corosync-cfgtool", "-n"])
    for entry in parse_cfgtool_links(out):
        if entry["peer"] == peer and entry["link"] == link:
            return str(entry["state"])
    return None


def cut_one_link(rec: Recording) -> None:
    """Two knet links; link 0 (the one carrying data in passive mode) of node2 is cut with a
    drop rule in node2 for a while, then restored. The ring survives on link 1."""
    rec.settle("both links")
    node2 = rec.cluster.node("node2")
    link0 = ".".join(link_address(0, 0).split(".")[:3]) + ".0/24"
    script = (
        f"add table inet {CUT_TABLE}\n"
        f"add chain inet {CUT_TABLE} in {{ type filter hook input priority 0; }}\n"
        f"add chain inet {CUT_TABLE} out {{ type filter hook output priority 0; }}\n"
        f"add rule inet {CUT_TABLE} in ip saddr {link0} udp dport 5405 drop\n"
        f"add rule inet {CUT_TABLE} out ip daddr {link0} udp dport 5405 drop\n"
    )
    node2.run(["nft", "-f", "-"], input=script, timeout=10)
    t0 = time.monotonic()
    rec.event(f"link 0 cut in node2: nft drops UDP 5405 from and to {link0} (in and out)",
              rule=script)
    try:
        # corosync-cfgtool -n drops the word "connected" from a link that is down
        # ("enabled mtu: 1446"); -s says "disconnected".
        wait_until(lambda: "connected" not in (_link_state(rec, "node1", 2, 0) or "").split(),
                   timeout=30, interval=0.1, what="node1 to see link 0 to node2 down")
        rec.figures["cut_to_link_down_on_node1_s"] = round(time.monotonic() - t0, 3)
        rec.event("corosync-cfgtool -n on node1: link 0 to node2 disconnected")
        rec.idle(3)
        rec.snapshot("link 0 cut")
    finally:
        node2.run(["nft", "delete", "table", "inet", CUT_TABLE], check=False, timeout=10)
    t1 = time.monotonic()
    rec.event("link 0 restored in node2 (nft table deleted)")
    wait_until(lambda: "connected" in (_link_state(rec, "node1", 2, 0) or "").split(),
               timeout=30, interval=0.1, what="node1 to see link 0 to node2 up again")
    rec.figures["restore_to_link_up_on_node1_s"] = round(time.monotonic() - t1, 3)
    rec.event("corosync-cfgtool -n on node1: link 0 to node2 connected again")
    rec.idle(2)
    rec.snapshot("link 0 restored")


SCENARIOS = {s.name: s for s in (
    Scenario("pcmk-2node", "2 nodes, knet clear, IPaddr2 VIP; start-up and idle", 2, steady),
    Scenario("pcmk-2node-crypto",
             f"2 nodes, knet crypto_cipher {CRYPTO_CIPHER} crypto_hash {CRYPTO_HASH}, VIP; "
             "start-up and idle", 2, steady, crypto=True),
    Scenario("pcmk-3node", "3 nodes, knet clear, VIP; start-up and idle", 3, steady_short),
    Scenario("pcmk-crash", "2 nodes, knet clear; SIGKILL of the VIP holder's corosync", 2,
             crash_holder),
    Scenario("pcmk-move", "2 nodes, knet clear; crm_resource --move of the VIP", 2, move_vip),
    Scenario("pcmk-2link", "2 nodes, two knet links; link 0 of node2 cut, then restored", 2,
             cut_one_link, links=2),
)}


# --------------------------------------------------------------------------- summary


def frame_counts(pcap: Path, vip: str) -> dict[str, int]:
    """ARP frames and gratuitous ARPs for the VIP (who announced it, when, is in the pcap)."""
    from scapy.all import ARP, PcapReader

    counts: Counter[str] = Counter()
    with PcapReader(str(pcap)) as reader:
        for pkt in reader:
            if ARP in pkt:
                counts["arp"] += 1
                if pkt[ARP].psrc == vip and pkt[ARP].pdst == vip:
                    counts["gratuitous_arp_vip"] += 1
    return dict(counts)


def record(scenario: Scenario, out_root: Path) -> Path:
    """Run one scenario and return its finished folder."""
    with scratch_folder(out_root, scenario.name) as tmp, Lab() as lab:
        cluster = PacemakerCluster(lab, scenario.nodes, TIMING, crypto=scenario.crypto,
                                   links=scenario.links)
        try:
            (tmp / "corosync.conf").write_text(cluster.corosync_conf)
            (tmp / "cib.xml").write_text(cluster.cib_xml)
            if cluster.authkey is not None:
                # A lab-only key, committed so the capture can be decrypted later.
                (tmp / "authkey").write_bytes(cluster.authkey)
            capture = lab.capture(tmp / "capture.pcap")
            rec = Recording(cluster, capture)
            rec.event("tcpdump listening on the lab bridge (br0), no filter")
            scenario.actions(rec)
            packets = capture.stop()
            rec.event("tcpdump stopped", packets=packets)
            memberships: list[dict[str, object]] = []
            pcmk_events: list[dict[str, str]] = []
            for name in cluster.nodes:
                corolog = cluster.corosync_logs()[name]
                text = corolog.read_text(errors="replace") if corolog.exists() else ""
                (tmp / f"{name}.corosync.log").write_text(text)
                memberships += memberships_from_log(name, text)
                pcmklog = cluster.logs()[name]
                text = pcmklog.read_text(errors="replace") if pcmklog.exists() else ""
                (tmp / f"{name}.pacemaker.log").write_text(trim_pacemaker_log(text))
                pcmk_events += pacemaker_events(name, text)
        finally:
            cluster.close()
        hosts = range(1, scenario.nodes + 1)
        meta: dict[str, object] = {
            "scenario": scenario.name,
            "description": scenario.description,
            "recorded_at": dt.datetime.fromtimestamp(capture.started, dt.UTC).isoformat(),
            "recorder": "captures/record_pacemaker.py (hbtools.lab.pacemaker.PacemakerCluster)",
            "software": {p: package_version(p) for p in (
                "corosync", "libknet1", "pacemaker", "pacemaker-cli-utils", "resource-agents",
                "tcpdump")},
            "transport": "knet",
            "crypto": {"cipher": CRYPTO_CIPHER if scenario.crypto else "none",
                       "hash": CRYPTO_HASH if scenario.crypto else "none"},
            "token_ms": cluster.token_ms,
            "capture": capture_meta(capture, packets,
                                    "tcpdump -i br0 -s 0 -U on the lab bridge, no filter"),
            "network": "198.18.0.0/24 (and 198.18.1.0/24 for link 1) on one bridge; "
                       "IPv6 disabled; no default route",
            "config": {"corosync.conf": "corosync.conf", "cib.xml": "cib.xml",
                       "shared_by_all_nodes": True,
                       **({"authkey": "authkey"} if scenario.crypto else {})},
            "vip": {"address": cluster.vip, "resource": "vip (ocf:heartbeat:IPaddr2)"},
            "nodes": [{"name": f"node{i}", "nodeid": i, "mac": f"02:68:62:00:00:{i:02x}",
                       "addresses": {str(link): link_address(link, i)
                                     for link in range(scenario.links)},
                       "logs": {"corosync": f"node{i}.corosync.log",
                                "pacemaker": f"node{i}.pacemaker.log (notice and above)"}}
                      for i in hosts],
            "links": {str(link): {"udp_port": knet_port(link),
                                  **{f"node{i}": link_address(link, i) for i in hosts}}
                      for link in range(scenario.links)},
            "figures": rec.figures,
            "corosync_view": {"memberships": memberships},
            "pacemaker_view": pcmk_events,
            "snapshots": rec.snapshots,
            "events": rec.events,
        }
        summary = summarize(tmp / "capture.pcap", scenario,  # type: ignore[arg-type]
                            ports=tuple(knet_port(link) for link in range(scenario.links)))
        summary.update(frame_counts(tmp / "capture.pcap", cluster.vip))
        summary["bytes"] = meta["capture"]["bytes"]  # type: ignore[index]
        meta["summary"] = summary
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out_root / scenario.name


def main(argv: list[str] | None = None) -> int:
    return recording.main("record_pacemaker.py", __doc__.split("\n\n")[0], SCENARIOS, record,
                          str, argv)


if __name__ == "__main__":
    sys.exit(main())
