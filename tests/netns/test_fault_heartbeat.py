"""`hbtool fault` against the REAL Heartbeat 3.0.6: what the daemon itself makes of the faults.

* Re-signed rewrite accepted, stale one rejected. A real node ``n1`` lists ``ghost1`` and
  ``ghost2``, which never run. The lab client injects correctly signed (sha1) status
  messages for ghost1 with ``hbtool inject``; a proxy on the client rewrites ``src`` to
  ghost2. Left stale, n1 rejects them (``authtoken does not match``, ``netstring
  authentication failed``) and ghost2 stays dead; re-signed with ``--authkeys``, n1 logs
  ``Status update for node ghost2: status active``.
* One-way partition. Two real nodes; a proxy on node2 cuts node1 → node2 only. node2
  declares node1 dead (``WARN: node node1: is dead``) while node1 keeps seeing node2
  active; once the proxy stops, node2 logs ``CRIT: Cluster node node1 returning after
  partition.`` and ``Status update for node node1: status active``.
"""

from __future__ import annotations

import contextlib
import selectors
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_helpers import hbtool, host_env, node_env, require_fault_proxy

pytestmark = pytest.mark.netns

AUTHKEYS = "auth 2\n1 crc\n2 sha1 hbtools-fault-test\n"
BCAST = "198.18.0.255"


def _lab_modules():
    require_fault_proxy("/usr/libexec/heartbeat/heartbeat", "cl_status", "iptables", "nft")
    from hbtools import lab as labmod

    return labmod


@contextlib.contextmanager
def fault_proxy(netns: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """`hbtool fault` in ``netns`` until the block ends (SIGTERM; SIGKILL + cleanup if stuck)."""
    proc = subprocess.Popen(hbtool("fault", "--netns", netns, "--status-interval", "0", *args),
                            env=host_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd="/")
    try:
        assert proc.stderr is not None
        seen = ""
        sel = selectors.DefaultSelector()
        sel.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 15
        for _ in range(20):  # warnings may come first; an error ends the output
            if not sel.select(max(0.0, deadline - time.monotonic())):
                break
            line = proc.stderr.readline()
            seen += line
            if not line or "ready:" in line:
                break
        sel.close()
        assert "ready:" in seen, seen
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=5)
            subprocess.run(hbtool("fault", "cleanup", "--netns", netns), env=host_env(),
                           capture_output=True, timeout=30, check=False)


def _status(hb, peer: str) -> str:
    return hb.cl_status("nodestatus", peer).stdout.strip()


def _wait_status(labmod, hb, peer: str, status: str, timeout: float) -> None:
    labmod.wait_until(lambda: _status(hb, peer) == status, timeout=timeout, interval=0.2,
                      what=f"{hb.name} to see {peer} {status}")


def _lines(log: str, *needles: str) -> list[str]:
    return [line for line in log.splitlines() if all(n in line for n in needles)]


def test_resigned_rewrite_is_accepted_and_stale_one_rejected(tmp_path: Path) -> None:
    labmod = _lab_modules()
    keyfile = tmp_path / "authkeys"
    keyfile.write_text(AUTHKEYS)
    keyfile.chmod(0o600)
    with labmod.Lab() as lab:
        hb = lab.add_heartbeat("n1")
        client = lab.add_client()
        hb.write_config(labmod.heartbeat_ha_cf(
            ["n1", "ghost1", "ghost2"], ["bcast eth0"],
            keepalive="500ms", warntime="1", deadtime="2", initdead="4"), AUTHKEYS)
        hb.start()
        hb.wait_nodestatus("n1", "active", timeout=30)
        assert _status(hb, "ghost2") == "dead"

        def inject(count: int) -> None:
            res = client.run(hbtool("inject", "--node", "ghost1", "-f", "st=active",
                                     "-f", "dt=2000", "--authkeys", str(keyfile), "--to", BCAST,
                                     "--new-generation",
                                     "--count", str(count), "--interval", "0.25"),
                             env=node_env(), check=False, timeout=30)
            assert res.returncode == 0, res.stderr

        with fault_proxy(client.netns, "--rule", "rewrite src:=ghost2 sign=stale t=status"):
            inject(8)
        time.sleep(0.5)
        stale_log = hb.log_text()
        assert _status(hb, "ghost2") == "dead" and _status(hb, "ghost1") == "dead"
        with fault_proxy(client.netns, "--rule", "rewrite src:=ghost2 sign=resign t=status",
                         "--authkeys", str(keyfile)):
            inject(12)
            _wait_status(labmod, hb, "ghost2", "active", timeout=6)
        log = hb.log_text()
    assert _lines(stale_log, "authtoken does not match"), stale_log[-3000:]
    # The daemon logs the rejected datagram itself, over several lines, after the message.
    rejected = stale_log.split("netstring authentication failed")[1:]
    assert len(rejected) >= 4, stale_log[-3000:]
    assert all("(0)src=ghost2" in chunk[:400] for chunk in rejected), rejected[0][:400]
    assert "Status update for node ghost2" not in stale_log
    assert _lines(log, "Status update for node ghost2: status active"), log[-3000:]
    print("\n".join(_lines(stale_log, "authtoken") + _lines(log, "ghost2: status active")))
    assert "Status update for node ghost1" not in log  # every ghost1 message was rewritten


def test_one_way_partition_makes_exactly_one_side_declare_the_other_dead(tmp_path: Path) -> None:
    labmod = _lab_modules()
    with labmod.Lab() as lab:
        hb1, hb2 = lab.add_heartbeat("node1"), lab.add_heartbeat("node2")
        conf = labmod.heartbeat_ha_cf(["node1", "node2"], ["bcast eth0"], keepalive="500ms",
                                      warntime="1", deadtime="2", initdead="4")
        for hb in (hb1, hb2):
            hb.write_config(conf, AUTHKEYS)
            hb.start()
        _wait_status(labmod, hb1, "node2", "active", timeout=30)
        _wait_status(labmod, hb2, "node1", "active", timeout=30)
        node2 = hb2.node
        with fault_proxy(node2.netns, "--rule", "partition node1>node2",
                         "--node", f"node1={hb1.node.address}",
                         "--node", f"node2={node2.address}"):
            cut_at = time.monotonic()
            _wait_status(labmod, hb2, "node1", "dead", timeout=10)
            # node1 still hears node2: well past node2's deadtime it has not declared it dead.
            time.sleep(max(0.0, cut_at + 4.0 - time.monotonic()))
            assert _status(hb1, "node2") == "active"
            partitioned_log1, partitioned_log2 = hb1.log_text(), hb2.log_text()
        _wait_status(labmod, hb2, "node1", "active", timeout=20)
        healed_log2 = hb2.log_text()[len(partitioned_log2):]
        log1 = hb1.log_text()
    assert _lines(partitioned_log2, "node node1: is dead"), partitioned_log2[-3000:]
    assert not _lines(partitioned_log1, "node node2: is dead"), partitioned_log1[-3000:]
    assert not _lines(log1, "is dead")
    # Healed, node2 says: "CRIT: Cluster node node1 returning after partition." then
    # "info: Status update for node node1: status active".
    assert _lines(healed_log2, "Cluster node node1 returning after partition"), healed_log2[-3000:]
    assert _lines(healed_log2, "Status update for node node1: status active"), healed_log2[-3000:]
    print("\n".join(_lines(partitioned_log2, "node1") + ["-- healed:"] + _lines(healed_log2, "node1")))
