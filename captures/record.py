#!/usr/bin/env python3
"""Record real Heartbeat 3.0.6 traffic into ``captures/<scenario>/``.

The codec tests are only as good as the packets they are checked against, so every capture
here comes from the real daemon (Debian package) running in a namespace lab
(:mod:`hbtools.lab`), recorded with tcpdump on the lab bridge. Each folder holds
``capture.pcap``, the exact ``ha.cf``, ``authkeys`` and ``haresources`` the nodes used (all
nodes of a scenario share them), each node's ``ha-log``, and ``meta.json`` with what the
recorder did and when (epoch seconds, and seconds since the capture started).

Usage (as root)::

    python captures/record.py --list
    python captures/record.py                 # every scenario
    python captures/record.py hb-failover     # just one

A scenario that fails leaves the committed folder untouched (it records into a temporary
folder and swaps it in only on success).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import recording  # noqa: E402  (captures/recording.py: the shared recorder parts; puts the repo on sys.path)
from recording import package_version, scratch_folder  # noqa: E402

from hbtools.lab import (  # noqa: E402
    HEARTBEAT_BIN,
    Capture,
    Heartbeat,
    Lab,
    LabError,
    Node,
    dropped_udp,
    heartbeat_ha_cf,
    wait_until,
)

VIP = "198.18.0.100"
MCAST_GROUP = "239.18.0.1"


@dataclass
class Recording:
    """What one scenario run has: its lab, its daemons, its capture and its event log."""

    lab: Lab
    hbs: list[Heartbeat]
    capture: Capture
    client: Node | None = None
    events: list[dict[str, object]] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)

    def event(self, what: str, **details: object) -> float:
        """Note an action or an observation at the time it happened."""
        now = time.time()
        entry: dict[str, object] = {
            "t": round(now, 6),
            "t_rel": round(now - self.capture.started, 3),
            "what": what,
        }
        entry.update(details)
        self.events.append(entry)
        print(f"  {entry['t_rel']:7.2f}s  {what}", flush=True)
        return now


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    nodes: tuple[str, ...]
    media: Callable[[list[str]], list[str]]
    authkeys: str
    actions: Callable[[Recording], None]
    haresources: str = ""
    extra: tuple[str, ...] = ()
    client: bool = False


# --------------------------------------------------------------------------- building blocks


def start_all(rec: Recording, gap: float = 1.5) -> None:
    """Start the nodes one after another, so the capture shows a lone node's init/up first."""
    for i, hb in enumerate(rec.hbs):
        if i:
            time.sleep(gap)
        rec.event(f"start heartbeat on {hb.name}")
        pid = hb.start()
        rec.event(f"heartbeat on {hb.name} daemonized", host_pid=pid)


def wait_all_active(rec: Recording, timeout: float = 40.0) -> None:
    for hb in rec.hbs:
        for peer in rec.hbs:
            if peer is not hb:
                hb.wait_nodestatus(peer.name, "active", timeout=timeout)
    rec.event("cl_status nodestatus: every node sees every other node active")


def wait_log(rec: Recording, hb: Heartbeat, needle: str, timeout: float = 40.0) -> None:
    """Wait for a line in a node's own log; the daemon tells us more than polling can."""
    wait_until(lambda: needle in hb.log_text(), timeout=timeout, interval=0.25,
               what=f"'{needle}' in the log of {hb.name}")
    rec.event(f"{hb.name} logged '{needle}'")


def wait_initial_resources(rec: Recording) -> None:
    # `heartbeat -k` waits for this anyway; waiting here keeps the event times honest.
    for hb in rec.hbs:
        wait_log(rec, hb, "Initial resource acquisition complete")


STOP_TIMEOUT = 12.0


def stop_all(rec: Recording) -> None:
    """Clean stops, last node last; a stop the daemon never finishes ends in SIGKILL.

    With `msgfmt netstring` the last node never finishes `heartbeat -k` (it logs "Shutdown
    delayed until current resource activity finishes"), so a bounded wait is needed and the
    capture says what happened instead of hanging.
    """
    for hb in reversed(rec.hbs):
        rec.event(f"heartbeat -k on {hb.name}")
        seen = len(hb.log_text().splitlines())
        try:
            hb.stop(timeout=STOP_TIMEOUT)
        except LabError:
            since = hb.log_text().splitlines()[seen:]
            rec.event(f"heartbeat -k on {hb.name} had not finished after {STOP_TIMEOUT:g} s; "
                      "SIGSTOP then SIGKILL of its processes",
                      log_warnings_since_stop=[ln for ln in since if "WARN" in ln or "ERROR" in ln])
            hb.kill()
        rec.event(f"heartbeat on {hb.name} has exited")


def standard(rec: Recording, steady: float = 5.0) -> None:
    """Start-up, steady state (status + NS_ackmsg), then clean stops (shutdone)."""
    start_all(rec)
    wait_all_active(rec)
    wait_initial_resources(rec)
    time.sleep(steady)
    rec.event(f"steady state for {steady:g} s")
    stop_all(rec)


def failover(rec: Recording) -> None:
    """node1 owns the VIP, gets SIGKILLed, node2 takes over and announces it by ARP."""
    node1, node2 = rec.hbs
    assert rec.client is not None
    start_all(rec)
    wait_all_active(rec)
    wait_until(lambda: node1.node.has_address(VIP), timeout=40, interval=0.25,
               what=f"{VIP} on node1")
    rec.event(f"{VIP} is on node1 eth0")
    wait_initial_resources(rec)
    ok = rec.client.ping(VIP, count=2)
    rec.event(f"client pinged {VIP} twice", replied=ok,
              client_arp_entry=rec.client.neighbour(VIP))
    if not ok:
        raise LabError(f"the client could not ping {VIP} before the failover")
    time.sleep(2)
    t_kill = rec.event("SIGSTOP then SIGKILL of every heartbeat process on node1")
    killed = node1.kill()
    rec.event("node1 heartbeat processes gone", host_pids=killed)
    wait_until(lambda: node2.node.has_address(VIP), timeout=30, interval=0.05,
               what=f"{VIP} on node2")
    t_vip = rec.event(f"{VIP} is on node2 eth0")
    rec.facts["kill_to_vip_on_survivor_s"] = round(t_vip - t_kill, 3)
    rec.facts["vip_still_on_killed_node1"] = node1.node.has_address(VIP)
    wait_log(rec, node2, "mach_down takeover complete")
    time.sleep(6)  # heartbeat's send_arp: 20 ARPs 250 ms apart, about 5 s
    rec.event("waited 6 s for node2's gratuitous ARPs",
              client_arp_entry=rec.client.neighbour(VIP))
    ok = rec.client.ping(VIP, count=2)
    rec.event(f"client pinged {VIP} twice", replied=ok,
              client_arp_entry=rec.client.neighbour(VIP))


def rexmit(rec: Recording) -> None:
    """node2 misses node1's messages for a while, then asks for them again (NS_rexmit)."""
    _, node2 = rec.hbs
    start_all(rec)
    wait_all_active(rec)
    wait_initial_resources(rec)
    time.sleep(2)
    rec.event("node2: nft drops incoming UDP 694 (table inet hbtlab_drop_input)")
    with dropped_udp(node2.node, 694):
        time.sleep(2.5)
    rec.event("node2: drop rule removed")
    time.sleep(5)
    rec.event("waited 5 s for retransmissions")
    stop_all(rec)


# --------------------------------------------------------------------------- scenarios


def bcast(_: list[str]) -> list[str]:
    return ["bcast eth0"]


def mcast(_: list[str]) -> list[str]:
    return [f"mcast eth0 {MCAST_GROUP} 694 1 0"]


def ucast(addresses: list[str]) -> list[str]:
    # One shared file lists every node. Heartbeat does not skip its own address: it opens a
    # medium to it too (log: 'ucast: started on port 694 interface eth0 to 198.18.0.1'), but
    # those copies are delivered locally and never reach the bridge.
    return [f"ucast eth0 {a}" for a in addresses]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "hb-bcast-crc",
            "2 nodes, bcast on eth0, crc auth; start-up, steady state, clean stop of both",
            ("node1", "node2"), bcast, "auth 1\n1 crc\n", standard,
        ),
        Scenario(
            "hb-mcast-sha1",
            f"2 nodes, mcast {MCAST_GROUP} ttl 1 loop 0, sha1 auth; start-up, steady state, "
            "clean stop of both",
            ("node1", "node2"), mcast, "auth 1\n1 sha1 hbtools-mcast-key\n", standard,
        ),
        Scenario(
            "hb-ucast-md5",
            "3 nodes, ucast to every node address, md5 auth; start-up, steady state, "
            "clean stop of all",
            ("node1", "node2", "node3"), ucast, "auth 1\n1 md5 hbtools-ucast-key\n", standard,
        ),
        Scenario(
            "hb-netstring",
            "2 nodes, bcast, `msgfmt netstring`, authkeys with three keys and `auth 2` (sha1); "
            "start-up, steady state, clean stop of both",
            ("node1", "node2"), bcast,
            "auth 2\n1 crc\n2 sha1 hbtools-netstring-key\n3 md5 hbtools-other-key\n", standard,
            extra=("msgfmt netstring",),
        ),
        Scenario(
            "hb-failover",
            f"2 nodes, bcast, md5 auth, VIP {VIP}/24 owned by node1; a client pings the VIP, "
            "node1's heartbeat is SIGKILLed, node2 takes the VIP over and sends gratuitous ARP",
            ("node1", "node2"), bcast, "auth 1\n1 md5 hbtools-failover-key\n", failover,
            haresources=f"node1 IPaddr::{VIP}/24/eth0\n", client=True,
        ),
        Scenario(
            "hb-rexmit",
            "2 nodes, bcast, md5 auth; node2 drops incoming UDP 694 for 2.5 s, then asks node1 "
            "to retransmit what it missed (NS_rexmit); clean stop of both",
            ("node1", "node2"), bcast, "auth 1\n1 md5 hbtools-rexmit-key\n", rexmit,
        ),
    )
}


# --------------------------------------------------------------------------- pcap summary


def summarize(pcap: Path) -> dict[str, object]:
    """Counts straight from the pcap, so meta.json states what the file really holds.

    A deliberately small reader (classic pcap, Ethernet, IPv4, UDP, ARP); message types come
    from a regex on each datagram's first fragment, not from the hbtools codec under test.
    """
    data = pcap.read_bytes()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    link = struct.unpack(endian + "I", data[20:24])[0]
    frames = udp694 = fragments = arp = garp = other = 0
    types: Counter[str] = Counter()
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8 : off + 12])[0]
        frame = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        frames += 1
        if link != 1 or len(frame) < 14:
            other += 1
            continue
        ethertype = struct.unpack("!H", frame[12:14])[0]
        if ethertype == 0x0806:
            arp += 1
            if len(frame) >= 42 and frame[28:32] == frame[38:42]:
                garp += 1
            continue
        if ethertype != 0x0800:
            other += 1
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        frag = struct.unpack("!H", ip[6:8])[0]
        if frag & 0x1FFF:
            fragments += 1
            continue
        if ip[9] != 17:
            other += 1
            continue
        sport, dport = struct.unpack("!HH", ip[ihl : ihl + 4])
        if 694 not in (sport, dport):
            other += 1
            continue
        udp694 += 1
        payload = ip[ihl + 8 :]
        m = re.search(rb"(?:\(0\)|\n|>>>\n)t=([^,\n]+)", payload)
        types[m.group(1).decode("ascii", "replace") if m else "(not plain: compressed?)"] += 1
    return {
        "frames": frames,
        "heartbeat_datagrams": udp694,
        "ip_fragments_after_first": fragments,
        "arp": arp,
        "gratuitous_arp": garp,
        "other": other,
        "message_types": dict(sorted(types.items())),
        "note": "counted by record.py's own small pcap reader; types from a regex on t=",
    }


# --------------------------------------------------------------------------- driver


def record(scenario: Scenario, out_root: Path) -> Path:
    """Run one scenario and return its finished folder."""
    with scratch_folder(out_root, scenario.name) as tmp, Lab() as lab:
        hbs = [lab.add_heartbeat(name) for name in scenario.nodes]
        client = lab.add_client() if scenario.client else None
        ha_cf = heartbeat_ha_cf(list(scenario.nodes),
                                scenario.media([hb.node.address for hb in hbs]),
                                extra=scenario.extra)
        for hb in hbs:
            hb.write_config(ha_cf, scenario.authkeys, scenario.haresources)
        (tmp / "ha.cf").write_text(ha_cf)
        (tmp / "authkeys").write_text(scenario.authkeys)
        (tmp / "authkeys").chmod(0o600)
        (tmp / "haresources").write_text(scenario.haresources)
        capture = lab.capture(tmp / "capture.pcap")
        rec = Recording(lab, hbs, capture, client)
        rec.event(f"tcpdump listening on the lab bridge ({capture.interface})")
        scenario.actions(rec)
        packets = capture.stop()
        rec.event("tcpdump stopped", packets=packets)
        nodes = []
        for hb in hbs:
            uuid = hb.var_lib_dir / "hb_uuid"
            gen = hb.var_lib_dir / "hb_generation"
            nodes.append({
                "name": hb.name,
                "address": hb.node.address,
                "mac": hb.node.mac,
                "hb_uuid": uuid.read_bytes().hex() if uuid.exists() else None,
                "hb_generation": gen.read_text().strip() if gen.exists() else None,
                "log": f"{hb.name}.ha-log",
            })
            shutil.copyfile(hb.log_path, tmp / f"{hb.name}.ha-log")
        meta: dict[str, object] = {
            "scenario": scenario.name,
            "description": scenario.description,
            "recorded_at": dt.datetime.fromtimestamp(capture.started, dt.UTC).isoformat(),
            "recorder": "captures/record.py (hbtools.lab namespace lab)",
            "software": {
                "heartbeat": package_version("heartbeat"),
                "cluster-glue": package_version("cluster-glue"),
                "tcpdump": package_version("tcpdump"),
                "daemon": HEARTBEAT_BIN,
            },
            "capture": {
                "file": "capture.pcap",
                "where": "tcpdump -i br0 -s 0 -U on the lab bridge, no filter",
                "start": round(capture.started, 6),
                "end": round(capture.stopped or time.time(), 6),
                "packets": packets,
            },
            "network": "198.18.0.0/24 on one bridge; IPv6 disabled; no default route",
            "config": {"ha.cf": "ha.cf", "authkeys": "authkeys",
                       "haresources": "haresources", "shared_by_all_nodes": True},
            "nodes": nodes,
        }
        if client is not None:
            meta["client"] = {"name": client.name, "address": client.address,
                              "mac": client.mac}
        if scenario.haresources:
            meta["vip"] = f"{VIP}/24"
        meta["events"] = rec.events
        if rec.facts:
            meta["facts"] = rec.facts
        meta["summary"] = summarize(tmp / "capture.pcap")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out_root / scenario.name


def _describe(summary: dict[str, object]) -> str:
    return f"{summary['heartbeat_datagrams']} Heartbeat datagrams, types {summary['message_types']}"


def main(argv: list[str] | None = None) -> int:
    return recording.main("record.py", __doc__.split("\n\n")[0], SCENARIOS, record, _describe, argv)


if __name__ == "__main__":
    sys.exit(main())
