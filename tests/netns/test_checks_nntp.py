"""The NNTP check against a real server: Debian's leafnode, in a lab node of its own.

leafnode reads fixed paths (/etc/news/leafnode/config, /var/spool/news), so it runs in a node
with an anchor whose bind mounts put this test's directories there; socat listens and hands
each connection to leafnode (inetd style). The check runs inside the node too (``hbtool check``,
the command a script would run), so the exit status is tested with it. Expected strings are
leafnode's own: its greeting (200) names it, an unknown group is its ``411``.
"""

from __future__ import annotations

import os
import signal
import sys

import pytest
from policy import ROOT, require_tools

from hbtools.lab import AnchorSpec, Lab, servers
from hbtools.node.labsupport import wait_for

pytestmark = pytest.mark.netns


def hbtool_check(node, *args: str):
    return node.run([sys.executable, "-c", "from hbtools.cli import main; main()", "check", *args],
                    check=False, timeout=60, env={"PYTHONPATH": str(ROOT)})


def test_nntp_leafnode(lab: Lab) -> None:
    require_tools("/usr/sbin/leafnode", "socat")
    spec, binds = servers.leafnode(lab.workdir / "leafnode")
    node = lab.add_node("news", anchor=AnchorSpec(hostname="news", binds=binds))
    proc = node.popen(spec.argv)
    url = "nntp://127.0.0.1:119"
    # leafnode spends a few seconds on name lookups that cannot succeed here: timeout 10
    wait_for(lambda: hbtool_check(node, url, "-t", "10").returncode == 0, timeout=60,
             what="leafnode to greet")
    ok = hbtool_check(node, url, "-t", "10", "--expect", "^200 Leafnode")
    assert ok.returncode == 0 and ok.stdout.startswith("ok nntp://"), ok.stdout + ok.stderr
    wrong = hbtool_check(node, url, "-t", "10", "--expect", "INN")
    assert wrong.returncode == 1 and "banner does not match" in wrong.stdout, wrong.stdout
    group = hbtool_check(node, f"{url}/alt.hbtools.nothere", "-t", "10")
    assert group.returncode == 1 and "411" in group.stdout, group.stdout
    # stopped by PID: socat (the listener) is the nsenter child in the node
    for pid in node.pids_named(["socat"]):
        os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=10)
    stopped = hbtool_check(node, url, "-t", "10")
    assert stopped.returncode == 1 and "connection refused" in stopped.stdout, stopped.stdout
