"""`hbtool fault` on real traffic in a namespace lab: the proof that each fault happens.

Two kinds of traffic pass through the proxy:

* plain Heartbeat datagrams written out by hand (netstrings, seq 1..N) and sent with a UDP
  socket from node1 to node2, where a socket logs what arrives; the proxy runs in node1 on
  the way out, and tcpdump on the lab bridge (the wire into node2) records what really went
  over, read back with tshark, an independent reader;
* the real Heartbeat 3.0.6 daemon, whose verdicts (``cl_status``, its log lines) show that a
  re-signed rewrite is accepted, a stale one rejected, and a one-way partition makes exactly
  one side declare the other dead.

Every proxy is stopped (SIGTERM, else SIGKILL plus ``hbtool fault cleanup``) and the lab
tears its namespaces down whatever happens; no test leaves a rule behind.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_helpers import hbtool, host_env, require_fault_proxy

pytestmark = pytest.mark.netns

NODE1, NODE2 = "198.18.0.1", "198.18.0.2"

RECEIVER = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 694))
s.settimeout(float(sys.argv[1]))
with open(sys.argv[2], "w") as out:
    print("listening", flush=True)
    for _ in range(100000):
        try:
            data, addr = s.recvfrom(65535)
        except socket.timeout:
            break
        out.write(json.dumps({"t": time.time(), "data": data.hex()}) + "\n")
        out.flush()
"""

SENDER = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
count, gap = int(sys.argv[2]), float(sys.argv[3])
with open(sys.argv[4], "w") as log:
    for i in range(1, count + 1):
        item = b"(0)seq=%x" % i
        data = (b"###\n11:(0)t=status,12:(0)src=node1,"
                + b"%d:%s," % (len(item), item) + b"%%%\n")
        log.write(json.dumps({"t": time.time(), "seq": i}) + "\n")
        log.flush()
        s.sendto(data, (sys.argv[1], 694))
        time.sleep(gap)
"""


def _payload(seq: int) -> bytes:
    item = b"(0)seq=%x" % seq
    return b"###\n11:(0)t=status,12:(0)src=node1," + b"%d:%s," % (len(item), item) + b"%%%\n"


class Proxy:
    """A running `hbtool fault` (host process, entering the node's namespace itself)."""

    def __init__(self, netns: str, *args: str, timeout: float = 15.0) -> None:
        self.netns = netns
        self.proc = subprocess.Popen(hbtool("fault", "--netns", netns, *args), env=host_env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd="/")
        self.ready = self._wait_ready(timeout)
        self.stdout = ""
        self.stderr = ""

    def _wait_ready(self, timeout: float) -> str:
        assert self.proc.stderr is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        try:
            for _ in range(50):
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    break
                line = self.proc.stderr.readline()
                if not line:
                    break
                if "ready:" in line:
                    return line
        finally:
            sel.close()
        self.kill()
        raise AssertionError(f"proxy did not get ready: {self.stderr or self.proc.returncode}")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait: the proxy removes its rules and prints its table."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self.stdout += out or ""
        self.stderr += err or ""
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
            out, err = self.proc.communicate(timeout=5)
            self.stdout += out or ""
            self.stderr += err or ""
        subprocess.run(hbtool("fault", "cleanup", "--netns", self.netns), env=host_env(),
                       capture_output=True, timeout=30, check=False)


@contextlib.contextmanager
def proxy(netns: str, *args: str) -> Iterator[Proxy]:
    p = Proxy(netns, *args)
    try:
        yield p
    finally:
        if p.proc.poll() is None:
            try:
                p.stop()
            except subprocess.TimeoutExpired:
                p.kill()


def _ruleset(node) -> str:
    nft = node.run(["nft", "list", "ruleset"], check=False).stdout
    ipt = node.run(["iptables-save"], check=False).stdout
    ipt = "\n".join(line for line in ipt.splitlines() if not line.startswith("#"))
    return nft + "\n--\n" + ipt


def _wire(pcap: Path) -> list[tuple[float, str, bytes]]:
    """(time, source IP, UDP payload) of each datagram to port 694, as tshark reads them."""
    res = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", "udp.dstport == 694", "-T", "fields",
         "-e", "frame.time_epoch", "-e", "ip.src", "-e", "udp.payload"],
        capture_output=True, text=True, timeout=60, check=True)
    rows = []
    for line in res.stdout.splitlines():
        t, src, hexdata = line.split("\t")
        rows.append((float(t), src, bytes.fromhex(hexdata.replace(":", ""))))
    return rows


def _seq_of(payload: bytes) -> int | None:
    marker = b"(0)seq="
    at = payload.find(marker)
    if at < 0:
        return None
    end = payload.find(b",", at)
    return int(payload[at + len(marker):end], 16)


def _require() -> None:
    require_fault_proxy("tcpdump", "tshark", "iptables", "nft")


def _exchange(lab, tmp_path: Path, rule_args: list[str], *, count: int = 12, gap: float = 0.05
              ) -> tuple[list[dict], list[dict], list[tuple[float, str, bytes]], Proxy]:
    """node1 sends seq 1..count to node2 through a proxy in node1; returns what was sent,
    what node2's socket received, what the wire carried, and the stopped proxy."""
    n1, n2 = lab.add_node("node1"), lab.add_node("node2")
    for name, text in (("recv.py", RECEIVER), ("send.py", SENDER)):
        (tmp_path / name).write_text(text)
    recv_log, send_log, pcap = tmp_path / "recv.jsonl", tmp_path / "send.jsonl", tmp_path / "w.pcap"
    receiver = n2.popen(["python3", str(tmp_path / "recv.py"), "3", str(recv_log)],
                        stdout=subprocess.PIPE)
    assert receiver.stdout is not None and receiver.stdout.readline().strip() == "listening"
    cap = lab.capture(pcap, "udp port 694")
    with proxy(n1.netns, "--seed", "7", "--status-interval", "0", *rule_args) as p:
        n1.run(["python3", str(tmp_path / "send.py"), NODE2, str(count), str(gap),
                str(send_log)], timeout=30)
        time.sleep(1.0)  # let held packets out
        assert p.stop() == 0, p.stderr
    receiver.wait(timeout=15)
    time.sleep(1.2)  # tcpdump hands packets over in blocks with a 1 s timeout
    cap.stop()
    sent = [json.loads(line) for line in send_log.read_text().splitlines()]
    got = [json.loads(line) for line in recv_log.read_text().splitlines()]
    return sent, got, _wire(pcap), p


def test_drop_removes_exactly_the_matched_messages(lab, tmp_path: Path) -> None:
    _require()
    sent, got, wire, p = _exchange(lab, tmp_path, ["--rule", "drop seq=3,5,10"])
    assert len(sent) == 12
    assert [_seq_of(d) for _, _, d in wire] == [1, 2, 4, 6, 7, 8, 9, 11, 12]
    assert [_seq_of(bytes.fromhex(g["data"])) for g in got] == [1, 2, 4, 6, 7, 8, 9, 11, 12]
    assert "dropped" in p.stdout and "rules removed" in p.stdout


def test_delay_makes_every_message_late_by_at_least_the_delay(lab, tmp_path: Path) -> None:
    _require()
    sent, got, wire, _ = _exchange(lab, tmp_path, ["--rule", "delay 150ms jitter=30ms"])
    sent_at = {s["seq"]: s["t"] for s in sent}
    lateness = [t - sent_at[_seq_of(d)] for t, _, d in wire]
    assert len(lateness) == 12
    assert min(lateness) >= 0.120  # 150 ms - 30 ms of uniform jitter
    assert max(lateness) < 0.150 + 0.030 + 0.100  # and not wildly later
    received = [g["t"] - sent_at[_seq_of(bytes.fromhex(g["data"]))] for g in got]
    assert min(received) >= 0.120


def test_duplicate_puts_copies_on_the_wire(lab, tmp_path: Path) -> None:
    _require()
    _, got, wire, _ = _exchange(lab, tmp_path, ["--rule", "duplicate 2 seq=4"])
    seqs = [_seq_of(d) for _, _, d in wire]
    assert seqs.count(4) == 3 and all(seqs.count(s) == 1 for s in range(1, 13) if s != 4)
    assert [d for _, _, d in wire if _seq_of(d) == 4] == [_payload(4)] * 3
    assert sum(1 for g in got if _seq_of(bytes.fromhex(g["data"])) == 4) == 3


def test_reorder_releases_a_window_out_of_order(lab, tmp_path: Path) -> None:
    _require()
    _, _, wire, _ = _exchange(lab, tmp_path, ["--rule", "reorder window=4 timeout=1s"])
    seqs = [_seq_of(d) for _, _, d in wire]
    assert sorted(seqs) == list(range(1, 13))
    for k in range(3):  # three full windows, each a permutation of its four, never in order
        window = seqs[4 * k: 4 * k + 4]
        assert sorted(window) == list(range(4 * k + 1, 4 * k + 5)) and window != sorted(window)


def test_rewrite_and_corrupt_change_the_bytes_on_the_wire(lab, tmp_path: Path) -> None:
    _require()
    _, got, wire, _ = _exchange(lab, tmp_path, [
        "--rule", "rewrite st:=dead ttl:=1 seq:=+256 sign=stale seq=2",
        "--rule", "corrupt bytes=1 seq=6"])
    by_seq = {}
    for _, _, d in wire:
        by_seq.setdefault(_seq_of(d), d)
    assert by_seq[0x102] == (b"###\n11:(0)t=status,12:(0)src=node1,10:(0)seq=102,"
                             b"10:(0)st=dead,8:(0)ttl=1,%%%\n")
    assert 2 not in by_seq
    corrupted = [d for _, _, d in wire if d != _payload(_seq_of(d) or 0)]
    corrupted = [d for d in corrupted if b"st=dead" not in d]
    assert len(corrupted) == 1
    assert sum(a != b for a, b in zip(corrupted[0], _payload(6), strict=True)) == 1
    # The kernel of node2 delivered the corrupted datagram: its UDP checksum was made right.
    assert corrupted[0].hex() in [g["data"] for g in got]
    assert len(got) == 12


def test_ratelimit_lets_through_only_the_rate(lab, tmp_path: Path) -> None:
    _require()
    # 20 messages 50 ms apart (about 1 s) through a 4/s bucket of burst 1: the first passes,
    # then one every 250 ms: 4 or 5 in all, spread at least ~250 ms apart on the wire.
    _, got, wire, p = _exchange(lab, tmp_path, ["--rule", "ratelimit 4/s burst=1 t=status"],
                                count=20, gap=0.05)
    times = [t for t, _, _ in wire]
    assert 4 <= len(wire) <= 6, [_seq_of(d) for _, _, d in wire]
    assert _seq_of(wire[0][2]) == 1
    assert all(b - a >= 0.2 for a, b in zip(times, times[1:], strict=False))
    assert len(got) == len(wire)


def test_sigkill_leaves_traffic_flowing_and_cleanup_removes_every_rule(lab, tmp_path: Path) -> None:
    _require()
    n1, n2 = lab.add_node("node1"), lab.add_node("node2")
    before = _ruleset(n1)
    p = Proxy(n1.netns, "--rule", "drop t=NS_ackmsg", "--status-interval", "0")
    during = _ruleset(n1)
    assert "HBTFAULT" in during or "hbtools_fault" in during
    p.proc.kill()
    p.proc.wait(timeout=10)
    assert "HBTFAULT" in _ruleset(n1) or "hbtools_fault" in _ruleset(n1)  # left behind
    (tmp_path / "recv.py").write_text(RECEIVER)
    (tmp_path / "send.py").write_text(SENDER)
    receiver = n2.popen(["python3", str(tmp_path / "recv.py"), "2", str(tmp_path / "r.jsonl")],
                        stdout=subprocess.PIPE)
    assert receiver.stdout is not None and receiver.stdout.readline().strip() == "listening"
    n1.run(["python3", str(tmp_path / "send.py"), NODE2, "10", "0.02", str(tmp_path / "s.jsonl")])
    receiver.wait(timeout=15)
    got = (tmp_path / "r.jsonl").read_text().splitlines()
    assert len(got) == 10  # queue-bypass: nobody listens on the queue, packets pass
    res = subprocess.run(hbtool("fault", "cleanup", "--netns", n1.netns), env=host_env(),
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert "removed" in res.stdout
    assert _ruleset(n1) == before
    again = subprocess.run(hbtool("fault", "cleanup", "--netns", n1.netns), env=host_env(),
                           capture_output=True, text=True, timeout=30)
    assert "nothing to remove" in again.stdout


def test_scenario_runs_its_timeline_and_exits(lab, tmp_path: Path) -> None:
    _require()
    scenario = tmp_path / "window.toml"
    scenario.write_text(
        'name = "drop window"\n\n[[step]]\nat = "1s"\nfor = "1s"\nrules = ["drop t=status"]\n'
        '\n[[step]]\nat = "2.5s"\nfor = "0.2s"\nrules = ["delay 10ms"]\n')
    n1, n2 = lab.add_node("node1"), lab.add_node("node2")
    before = _ruleset(n1)
    (tmp_path / "recv.py").write_text(RECEIVER)
    (tmp_path / "send.py").write_text(SENDER)
    receiver = n2.popen(["python3", str(tmp_path / "recv.py"), "2", str(tmp_path / "r.jsonl")],
                        stdout=subprocess.PIPE)
    assert receiver.stdout is not None and receiver.stdout.readline().strip() == "listening"
    stats = tmp_path / "stats.json"
    p = Proxy(n1.netns, "--scenario", str(scenario), "--stats-json", str(stats),
              "--status-interval", "500ms")
    start = time.time()
    n1.run(["python3", str(tmp_path / "send.py"), NODE2, "30", "0.1", str(tmp_path / "s.jsonl")])
    assert p.wait(timeout=20) == 0, p.stderr  # the scenario ended by itself
    receiver.wait(timeout=15)
    sent = {json.loads(x)["seq"]: json.loads(x)["t"] - start
            for x in (tmp_path / "s.jsonl").read_text().splitlines()}
    got = {_seq_of(bytes.fromhex(json.loads(x)["data"]))
           for x in (tmp_path / "r.jsonl").read_text().splitlines()}
    lost = sorted(set(sent) - got)
    assert 7 <= len(lost) <= 12  # about one second of 10/s
    assert all(0.8 <= sent[s] <= 2.3 for s in lost), f"{lost} {[round(sent[s], 2) for s in lost]}"
    doc = json.loads(stats.read_text())
    assert doc["scenario"] == "drop window" and doc["stopped_by"] == "end of run"
    assert doc["rules"][0]["dropped"] == len(lost)
    assert "#1 matched" in p.stderr  # the live line
    assert _ruleset(n1) == before


def test_clear_errors(lab, tmp_path: Path) -> None:
    _require()
    n1 = lab.add_node("node1")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[step]]\nat = "1s"\nfor = "1s"\nrules = ["drop colour=red"]\n')
    res = subprocess.run(hbtool("fault", "--scenario", str(bad)), env=host_env(),
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert res.stderr.strip().startswith(f"hbtool fault: {bad}:4: step 1, rule 'drop colour=red'")
    assert "Traceback" not in res.stderr
    # root, but without any capability (what a container without CAP_NET_ADMIN gives)
    nobody = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--",
                             *hbtool("fault", "--rule", "drop all")],
                            env=host_env(), capture_output=True, text=True, timeout=30)
    assert nobody.returncode == 2
    assert "needs CAP_NET_ADMIN" in nobody.stderr
    missing = subprocess.run(hbtool("fault", "--netns", "hbtools-no-such-ns", "--rule", "drop all"),
                             env=host_env(), capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2 and "no network namespace" in missing.stderr
    # Two proxies on one queue in one namespace: the second one says so and leaves the
    # first one's rules alone.
    with proxy(n1.netns, "--rule", "drop t=x", "--status-interval", "0"):
        second = subprocess.run(hbtool("fault", "--netns", n1.netns, "--rule", "drop all"),
                                env=host_env(), capture_output=True, text=True, timeout=30)
        assert second.returncode == 2 and "another fault proxy uses queue" in second.stderr
        assert "HBTFAULT" in _ruleset(n1)
        # cleanup is for crashes: a running proxy's rules stay.
        kept = subprocess.run(hbtool("fault", "cleanup", "--netns", n1.netns), env=host_env(),
                              capture_output=True, text=True, timeout=30)
        assert "kept the rules of queue 6940" in kept.stdout and "removed" not in kept.stdout
        assert "HBTFAULT" in _ruleset(n1)
