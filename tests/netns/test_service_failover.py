"""A service group moves when its check fails: two `hbtool daemon` nodes, a real nginx in each.

node1 and node2 each run nginx (Debian's, single process) on port 80 serving a page that names
the node; haresources gives node1 the VIP; ha.cf's ``check`` asks the node's own nginx every
500 ms. Killing node1's nginx (SIGKILL by its PID) leaves node1 alive but its service dead: after
``failures`` failed checks (or timed-out ones, when nginx is stopped with SIGSTOP and hangs)
node1 offers the group, node2 (whose check passes) takes the VIP, and
a client in its own namespace gets node2's page from the VIP. The client's probe (curl-free:
Python's urllib in the client namespace, a GET every 50 ms) timestamps every answer with the
system-wide monotonic clock, so the failover time is measured from the kill to the first right
page, as a user would see it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from hbtools.lab import Lab, heartbeat_ha_cf, servers
from hbtools.node.labsupport import HbtoolsDaemon, wait_for

pytestmark = pytest.mark.netns

VIP = "198.18.0.100"
INTERVAL, FAILURES = 0.5, 2
CHECK = (f"check {VIP} http://127.0.0.1/ expect=served.by.node[12] interval={INTERVAL} "
         f"timeout=400ms failures={FAILURES}")

PROBE = r"""
import sys, time, urllib.request
url, want, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
end = time.monotonic() + limit
while time.monotonic() < end:
    try:
        body = urllib.request.urlopen(url, timeout=0.3).read().decode()
    except Exception as exc:
        body = "error " + type(exc).__name__
    print(f"{time.monotonic():.4f} {body.strip()}", flush=True)
    if want in body:
        break
    time.sleep(0.05)
"""


def start_nginx(node, page: str) -> subprocess.Popen:
    spec = servers.nginx(node.workdir / "nginx", "0.0.0.0", pages={"index.html": page + "\n"},
                         port=80, single_process=True)
    proc = node.popen(spec.argv)
    wait_for(lambda: node.run(["curl", "-s", "-m", "1", "http://127.0.0.1/"], check=False).stdout
             .strip() == page, timeout=15, what=f"nginx on {node.name}")
    return proc


def fetch(client, url: str) -> str:
    return client.run(["curl", "-s", "-m", "2", url], check=False).stdout.strip()


@pytest.mark.parametrize(("how", "sig", "reason"), [
    ("dies", signal.SIGKILL, "connection refused"),
    # SIGSTOP: the socket still listens and the kernel completes connects, nobody answers
    ("hangs", signal.SIGSTOP, "no answer within 0.4 s"),
])
def test_failing_check_moves_http_group_and_client_gets_peer_page(lab: Lab, how: str, sig: int,
                                                                  reason: str) -> None:
    ha_cf = heartbeat_ha_cf(["node1", "node2"], ["bcast eth0"], keepalive="200ms",
                            warntime="600ms", deadtime="1", initdead="2") + CHECK + "\n"
    haresources = f"node1 IPaddr::{VIP}/24/eth0\n"
    nodes = [HbtoolsDaemon(lab.add_node(name)) for name in ("node1", "node2")]
    client = lab.add_client()
    nginx = {d.name: start_nginx(d.node, f"served by {d.name}") for d in nodes}
    for d in nodes:
        d.write_config(ha_cf, "auth 1\n1 crc\n", haresources)
        d.start()
    node1, node2 = nodes
    wait_for(lambda: node1.node.has_address(VIP), timeout=20, what="node1 to take the VIP")
    wait_for(lambda: fetch(client, f"http://{VIP}/") == "served by node1", timeout=10,
             what="the client to get node1's page from the VIP")

    probe = client.popen([sys.executable, "-c", PROBE, f"http://{VIP}/", "served by node2", "30"],
                         stdout=subprocess.PIPE)
    time.sleep(0.3)
    killed_at = time.monotonic()
    os.kill(nginx["node1"].pid, sig)  # the service dies or hangs; the node lives
    out, _ = probe.communicate(timeout=40)
    lines = [line.split(" ", 1) for line in out.splitlines() if " " in line]
    served = [float(t) for t, body in lines if body == "served by node2"]
    assert served, f"node2's page never came from the VIP: {lines[-5:]}"
    failover = served[0] - killed_at
    print(f"\nfailover ({how}): service failure -> node2's page from the VIP after {failover:.3f} s "
          f"(check every {INTERVAL} s, {FAILURES} failures)")

    # who did what, from the daemons' own event logs
    assert node2.node.has_address(VIP) and not node1.node.has_address(VIP)
    failed = node1.events("check_failed")
    assert failed and reason in failed[0]["text"], failed
    assert any(e.get("reason") == "service failed here" for e in node1.events("resource_released"))
    assert node2.events("resource_taken")
    # both nodes still alive and seeing each other: a service failure, not a node failure
    assert node1.peer_status("node2") == "active" and node2.peer_status("node1") == "active"
    # the bound, generously: failures x interval (+ one interval of phase) + hand-over;
    # a refused or lost hand-over would only be retried after 10 s and miss it
    assert failover < FAILURES * INTERVAL + INTERVAL + 8.0, failover
    taken = node2.events("resource_taken")[-1]["mono"]
    print(f"  failure -> check_failed {failed[0]['mono'] - killed_at:.3f} s, -> node2 took the VIP "
          f"{taken - killed_at:.3f} s")
    for d in nodes:
        d.stop()
    with contextlib.suppress(ProcessLookupError):
        os.kill(nginx["node1"].pid, signal.SIGKILL)  # by its PID; the lab reaps the rest
