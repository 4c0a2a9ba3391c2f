"""Issue 12, item 4: a proxy that is alive but not reading (SIGSTOP) must not black-hole the
cluster. A real `hbtool fault` in node1 is stopped; node1 keeps sending Heartbeat datagrams
to a socket in node2; what node2 receives shows that traffic flows again within the
watchdog's bound, and the ruleset ends exactly as it was found.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hbtools.faults.nfq import WATCHDOG_BOUND
from test_fault_proxy import NODE2, RECEIVER, SENDER, Proxy, _require, _ruleset

pytestmark = pytest.mark.netns


def _seq(hexdata: str) -> int:
    data = bytes.fromhex(hexdata)
    at = data.index(b"(0)seq=") + len(b"(0)seq=")
    return int(data[at:data.index(b",", at)], 16)


def test_sigstop_of_the_proxy_lets_traffic_flow_within_the_bound(lab, tmp_path: Path) -> None:
    _require()
    n1, n2 = lab.add_node("node1"), lab.add_node("node2")
    before = _ruleset(n1)
    (tmp_path / "recv.py").write_text(RECEIVER)
    (tmp_path / "send.py").write_text(SENDER)
    recv_log, send_log = tmp_path / "r.jsonl", tmp_path / "s.jsonl"
    p = Proxy(n1.netns, "--rule", "drop t=NS_ackmsg", "--status-interval", "0")
    receiver = n2.popen(["python3", str(tmp_path / "recv.py"), "3", str(recv_log)],
                        stdout=subprocess.PIPE)
    try:
        assert receiver.stdout is not None and receiver.stdout.readline().strip() == "listening"
        os.kill(p.proc.pid, signal.SIGSTOP)
        stopped_at = time.time()
        # 40 messages over 4 s while the proxy is stopped
        n1.run(["python3", str(tmp_path / "send.py"), NODE2, "40", "0.1", str(send_log)],
               timeout=60)
        receiver.wait(timeout=30)
        sent = {json.loads(line)["seq"]: json.loads(line)["t"]
                for line in send_log.read_text().splitlines()}
        got = {_seq(json.loads(line)["data"]): json.loads(line)["t"]
               for line in recv_log.read_text().splitlines()}
        # Everything sent once the bound (plus 0.5 s for the watchdog's own step and the
        # rule change on a loaded host) has passed since the stop arrived, and promptly.
        after = [seq for seq, t in sent.items() if t > stopped_at + WATCHDOG_BOUND + 0.5]
        assert len(after) >= 20
        missing = [seq for seq in after if seq not in got]
        assert not missing, f"sent after the bound but never received: {missing}"
        assert all(got[seq] - sent[seq] < 0.5 for seq in after)
        os.kill(p.proc.pid, signal.SIGCONT)
        assert p.wait(timeout=30) == 0, p.stderr
        assert "watchdog" in p.stdout + p.stderr
        assert _ruleset(n1) == before  # and nothing of the proxy is left
    finally:
        if p.proc.poll() is None:
            os.kill(p.proc.pid, signal.SIGCONT)
            p.kill()
        if receiver.poll() is None:
            receiver.kill()
