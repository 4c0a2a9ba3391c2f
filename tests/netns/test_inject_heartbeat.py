"""`hbtool inject` / `hbtool replay` against the REAL Heartbeat 3.0.6 in a namespace lab.

One real node, ``n1``, whose ha.cf lists two nodes that never run (``ghost1``, ``ghost2``).
The injector runs in the lab's client namespace and broadcasts on the lab segment. What
the real daemon does with the messages is the proof: ``cl_status nodestatus`` and the
lines it writes to its log (quoted below, as Heartbeat 3.0.6 prints them):

* accepted status:   ``Status update for node ghost1: status active``
* wrong signature:   ``ERROR: authtoken does not match, authtoken=…``
                     ``ERROR: netstring authentication failed, s=###…src=ghost2…``
* forged source IP (raw socket, correct signature): accepted, ghost2 becomes active
* older generation:  ``ERROR: should_drop_message: attempted replay attack [ghost1]?
                     [gen = G, curgen = G+1]``

Timers are short (keepalive 500 ms, deadtime 2 s, and the ghosts' own dt=7d0 or bb8, 2 or
3 s: the receiver uses the sender's dt) so that each test stays well under a minute.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from netns_helpers import hbtool, lab_with, node_env

from hbtools import heartbeat
from hbtools.auth import AuthKeys

pytestmark = pytest.mark.netns

AUTHKEYS = "auth 2\n1 crc\n2 sha1 hbtools-inject-test\n"
BCAST = "198.18.0.255"
CLIENT_IP = "198.18.0.250"
TOOLS = ("/usr/libexec/heartbeat/heartbeat", "cl_status", "tcpdump")
SPOOFED_IP = "198.18.0.77"  # no node has it
HB_FIELDS = ["t", "st", "dt", "protocol", "src", "srcuuid", "seq", "hg", "ts", "ld", "ttl", "auth"]


def _start_cluster(lab, labmod, workdir: Path):
    hb = lab.add_heartbeat("n1")
    client = lab.add_client()
    conf = labmod.heartbeat_ha_cf(
        ["n1", "ghost1", "ghost2"], ["bcast eth0"],
        keepalive="500ms", warntime="1", deadtime="2", initdead="4",
    )
    hb.write_config(conf, AUTHKEYS)
    keyfile = workdir / "authkeys"
    keyfile.write_text(AUTHKEYS)
    keyfile.chmod(0o600)
    hb.start()
    # cl_status answers once the node's API is up (after initdead); ghost2 is then dead.
    hb.wait_nodestatus("n1", "active", timeout=30)
    return hb, client, keyfile


def _status(hb, peer: str) -> str:
    """cl_status's answer even for a dead node (it exits 1 then, which lab.nodestatus hides)."""
    return hb.cl_status("nodestatus", peer).stdout.strip()


def _wait_status(labmod, hb, peer: str, status: str, timeout: float) -> None:
    labmod.wait_until(lambda: _status(hb, peer) == status, timeout=timeout, interval=0.2,
                      what=f"n1 to see {peer} {status}")


def _stop_capture(cap) -> None:
    """tcpdump (without --immediate-mode) hands packets over in blocks with a 1 s timeout:
    frames younger than that are lost when it is stopped, so let the last block out first."""
    time.sleep(1.5)
    cap.stop()


def _heartbeat_datagrams(path: Path) -> list[tuple[str, bytes]]:
    """(source IP, payload) of every Heartbeat datagram, read with scapy: an independent reader."""
    from scapy.layers.inet import IP, UDP
    from scapy.utils import rdpcap

    out = []
    for pkt in rdpcap(str(path)):
        if IP in pkt and UDP in pkt and pkt[UDP].dport == 694:
            out.append((pkt[IP].src, bytes(pkt[UDP].payload)))
    return out


def test_signed_status_makes_ghost_active_and_bad_signature_is_ignored(tmp_path: Path) -> None:
    labmod = lab_with(*TOOLS)
    keys = AuthKeys.parse(AUTHKEYS)
    state = tmp_path / "state.json"
    pcap = tmp_path / "inject.pcap"
    with labmod.Lab() as lab:
        hb, client, keyfile = _start_cluster(lab, labmod, tmp_path)
        assert _status(hb, "ghost1") == "dead"
        cap = lab.capture(pcap, "udp port 694")
        good = client.popen(
            hbtool("inject", "--node", "ghost1", "-f", "st=active", "-f", "dt=2000",
                    "--authkeys", str(keyfile), "--state", str(state),
                    "--to", BCAST, "--count", "16", "--interval", "0.25"),
            env=node_env(), stderr=subprocess.PIPE,
        )
        try:
            _wait_status(labmod, hb, "ghost1", "active", timeout=6)
        finally:
            _, err = good.communicate(timeout=15)
        assert good.returncode == 0, err
        bad = client.run(
            hbtool("inject", "--node", "ghost2", "-f", "st=active", "-f", "dt=2000", "--bad-auth",
                    "--authkeys", str(keyfile), "--to", BCAST, "--count", "6", "--interval", "0.2"),
            env=node_env(), check=False, timeout=20,
        )
        assert bad.returncode == 0, bad.stderr
        time.sleep(0.5)
        assert _status(hb, "ghost2") == "dead"
        log = hb.log_text()
        # The same ghost2, now correctly signed and sent from a forged source address through
        # a raw socket: the daemon does not check the source IP, so ghost2 comes alive.
        spoofed = client.run(
            hbtool("inject", "--node", "ghost2", "-f", "st=active", "-f", "dt=2000",
                    "--authkeys", str(keyfile), "--to", BCAST, "--iface", "eth0", "--new-generation",
                    "--spoof-src", SPOOFED_IP, "--count", "8", "--interval", "0.25"),
            env=node_env(), check=False, timeout=20,
        )
        assert spoofed.returncode == 0, spoofed.stderr
        _wait_status(labmod, hb, "ghost2", "active", timeout=3)
        _stop_capture(cap)

    assert "Status update for node ghost1: status active" in log
    assert "Status update for node ghost2" not in log
    assert "authtoken does not match" in log
    rejected = [line for line in log.splitlines() if "netstring authentication failed" in line]
    assert rejected, log[-2000:]
    assert any("(0)src=ghost2" in chunk for chunk in log.split("netstring authentication failed")[1:])

    # What went on the wire is exactly what was asked for, and the signatures are what the
    # daemon said they were.
    saved = json.loads(state.read_text())["nodes"]["ghost1"]
    injected = [(src, p) for src, p in _heartbeat_datagrams(pcap) if src == CLIENT_IP]
    ghost1 = [heartbeat.decode(p) for _, p in injected if heartbeat.decode(p).src == "ghost1"]
    ghost2 = [p for _, p in injected if heartbeat.decode(p).src == "ghost2"]
    assert len(ghost1) == 16 and len(ghost2) == 6
    for n, msg in enumerate(ghost1, start=1):
        assert msg.names() == HB_FIELDS
        assert (msg["t"], msg["st"], msg["dt"], msg["protocol"], msg["ttl"]) == (
            "status", "active", "7d0", "1", "3")
        assert msg["seq"] == format(n, "x")
        assert msg["hg"] == format(saved["generation"], "x")
        assert msg["srcuuid"] == uuid.UUID(saved["uuid"]).bytes
    assert saved["next_seq"] == 17
    for _, p in injected:
        check = keys.check(p)
        expected = heartbeat.decode(p).src == "ghost1"
        assert (check.trailer, check.inline) == (expected, expected)
    forged = [p for src, p in _heartbeat_datagrams(pcap) if src == SPOOFED_IP]
    assert len(forged) == 8
    assert all(heartbeat.decode(p).src == "ghost2" and keys.verify(p) for p in forged)
    _decode_cli_agrees(pcap, keyfile, saved)


def _decode_cli_agrees(pcap: Path, keyfile: Path, saved: dict) -> None:
    """`hbtool decode --authkeys --format json` shows exactly the fields that were asked for."""
    res = subprocess.run(hbtool("decode", str(pcap), "--authkeys", str(keyfile), "--format", "json",
                                 "--filter", f"ip.src={CLIENT_IP}"),
                         capture_output=True, text=True, timeout=60, env=node_env(), cwd="/")
    assert res.returncode in (0, 1), res.stderr  # 1: it found the bad signatures
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    ghost1 = [r for r in rows if r["node"] == "ghost1"]
    ghost2 = [r for r in rows if r["node"] == "ghost2"]
    assert len(ghost1) == 16 and len(ghost2) == 6
    for n, row in enumerate(ghost1, start=1):
        fields = row["fields"]
        assert list(fields) == HB_FIELDS
        asked = ("t", "st", "dt", "protocol", "src", "srcuuid", "seq", "hg", "ttl")
        assert {k: fields[k] for k in asked} == {
            "t": "status", "st": "active", "dt": 2000, "protocol": 1, "src": "ghost1",
            "srcuuid": saved["uuid"], "seq": n, "hg": saved["generation"], "ttl": 3}
        assert row["auth"] == "ok"
    assert all(r["auth"] == "bad" and r["fields"]["st"] == "active" for r in ghost2)


def test_replayed_older_generation_is_dropped_and_refresh_makes_it_fresh(tmp_path: Path) -> None:
    labmod = lab_with(*TOOLS)
    state = tmp_path / "state.json"
    first_life = tmp_path / "first-life.pcap"
    with labmod.Lab() as lab:
        hb, client, keyfile = _start_cluster(lab, labmod, tmp_path)
        # dt=bb8: ghost1 announces a 3 s deadtime, enough to cover stopping the capture.
        common = ["--node", "ghost1", "-f", "dt=3000", "--authkeys", str(keyfile),
                  "--state", str(state), "--to", BCAST, "--interval", "0.25"]
        # First life of ghost1 (generation G), recorded: 6 s of status messages.
        cap = lab.capture(first_life, "udp port 694")
        client.run(hbtool("inject", *common, "--count", "24"), env=node_env(), timeout=20)
        assert _status(hb, "ghost1") == "active"
        _stop_capture(cap)
        generation = json.loads(state.read_text())["nodes"]["ghost1"]["generation"]
        # ghost1 "restarts": generation G+1 is now what n1 holds for it.
        client.run(hbtool("inject", *common, "--new-generation", "--count", "4"), env=node_env(),
                   timeout=20)
        assert _status(hb, "ghost1") == "active"
        assert json.loads(state.read_text())["nodes"]["ghost1"]["generation"] == generation + 1
        # Replaying the first life (6 s of correctly signed status messages) must not keep
        # ghost1 alive: n1 drops them, so ghost1 dies 3 s (its dt) after the last fresh one.
        replay = client.popen(
            hbtool("replay", str(first_life), "--src", "ghost1", "--to", BCAST),
            env=node_env(), stderr=subprocess.PIPE,
        )
        try:
            _wait_status(labmod, hb, "ghost1", "dead", timeout=10)
            died_during_replay = replay.poll() is None
        finally:
            _, err = replay.communicate(timeout=15)
        assert replay.returncode == 0, err
        assert died_during_replay
        log_after_replay = hb.log_text()
        # The same recording, refreshed (generation G+1, seq after the 4 sent) and re-signed,
        # is accepted again: what made the difference is the generation, not the bytes' origin.
        client.run(hbtool("replay", str(first_life), "--src", "ghost1", "--to", BCAST, "--refresh",
                           "--authkeys", str(keyfile), "--state", str(state), "--speed", "2"),
                   env=node_env(), timeout=20)
        _wait_status(labmod, hb, "ghost1", "active", timeout=5)
        saved = json.loads(state.read_text())["nodes"]["ghost1"]

    expected = (f"should_drop_message: attempted replay attack [ghost1]? "
                f"[gen = {generation}, curgen = {generation + 1}]")
    assert expected in log_after_replay
    assert "WARN: node ghost1: is dead" in log_after_replay
    assert saved["generation"] == generation + 1 and saved["next_seq"] == 5 + 24
