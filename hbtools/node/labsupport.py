"""Run ``hbtool daemon`` on a `hbtools.lab` node: shared by the interop tests and the benchmark.

The daemon needs no anchor (``--node-name`` replaces ``uname -n`` and ``--state-dir`` replaces
/var/lib/heartbeat), so it runs in the node's network namespace only, with its config, state,
event log and stderr under the node's work directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hbtools.lab import LabError, Node, log_tail, wait_until, write_ha_config

REPO = Path(__file__).resolve().parents[2]


class HbtoolsDaemon:
    """One ``hbtool daemon`` process on a lab node; stop/kill by its own pid."""

    def __init__(self, node: Node, *, extra_args: tuple[str, ...] = (), events: Path | None = None,
                 stderr_fd: int | None = None) -> None:
        self.node = node
        self.name = node.name
        self.conf_dir = node.workdir / "hbtools-ha.d"
        self.state_dir = node.workdir / "hbtools-state"
        self.events_path = events or node.workdir / "hbtools-events.jsonl"
        self.stderr_path = node.workdir / "hbtools-stderr.log"
        self.stderr_fd = stderr_fd  # e.g. a pipe whose reader is closed (default: stderr_path)
        self.extra_args = extra_args
        self.proc: subprocess.Popen[str] | None = None
        self.conf_dir.mkdir(exist_ok=True)

    def write_config(self, ha_cf: str, authkeys: str, haresources: str = "") -> None:
        write_ha_config(self.conf_dir, ha_cf, authkeys, haresources)

    def start(self) -> int:
        cmd = [sys.executable, "-c", "from hbtools.cli import main; main()", "daemon",
               "--config", str(self.conf_dir), "--node-name", self.name,
               "--state-dir", str(self.state_dir), "--events", str(self.events_path),
               "--seed", "1", *self.extra_args]
        err = open(self.stderr_path, "a")  # noqa: SIM115 - handed to the child
        try:
            fd = err.fileno() if self.stderr_fd is None else self.stderr_fd
            self.proc = self.node.popen(cmd, env={"PYTHONPATH": str(REPO)}, stderr=fd)
        finally:
            err.close()
        wait_until(lambda: self.events("local_status") or self._answers() or self._exited(), timeout=10,
                   what=f"hbtool daemon on {self.name} to start")
        if self._exited():
            raise LabError(f"hbtool daemon on {self.name} exited: {self.stderr_tail()}")
        return self.proc.pid

    def status(self) -> dict[str, Any]:
        """The running daemon's own report over its status socket (`hbtool daemon status`)."""
        from hbtools.node.runner import ask_status

        return ask_status(self.state_dir)

    def _answers(self) -> bool:
        from hbtools.node.runner import RunnerError

        try:
            return self.status().get("status") not in (None, "init")
        except RunnerError:
            return False

    def signal(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float = 10.0) -> int:
        """The exit code; a daemon still running after ``timeout`` is killed and an error."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise LabError(f"hbtool daemon on {self.name} did not exit within {timeout:g} s") from None

    def rss_kib(self) -> int:
        """Resident memory of the daemon process (VmRSS), for the flood figures."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def _exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: the daemon hands its resources over and sends shutdone."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise LabError(f"hbtool daemon on {self.name} did not stop within {timeout:g} s") from None

    def kill(self) -> None:
        """SIGKILL, like a crash: no shutdone, addresses stay on the interface."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        if not self.events_path.is_file():  # e.g. /dev/full: nothing to read back
            return []
        try:
            lines = self.events_path.read_text().splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if kind is None or record.get("kind") == kind:
                    out.append(record)
        return out

    def peer_status(self, peer: str) -> str | None:
        status = None
        for e in self.events():
            if e.get("node") == peer and e.get("kind") in ("peer_status", "dead"):
                status = e.get("status", "dead")
        return status

    def wait_peer_status(self, peer: str, status: str, timeout: float = 30.0) -> None:
        wait_until(lambda: self.peer_status(peer) == status, timeout=timeout, interval=0.1,
                   what=f"hbtools {self.name} to see {peer} {status} (stderr: {self.stderr_tail(3)})")

    def stderr_tail(self, lines: int = 10) -> str:
        return log_tail(self.stderr_path, lines, " | ") or ""


FLOOD_SCRIPT = r"""
import os, socket, sys, time
from hbtools import heartbeat
from hbtools.auth import AuthKeys
from hbtools.heartbeat import Message
target, port, kind, rate, seconds, keys_text, src = sys.argv[1:8]
rate, seconds = int(rate), float(seconds)
keys = AuthKeys.parse(keys_text.replace("|", "\n"))
wrong = AuthKeys.parse("auth 1\n1 sha1 not-the-key\n")
def status(seq, gen, signer):
    msg = Message.build([("t", "status"), ("st", "active"), ("dt", "3e8"), ("protocol", "1"),
                         ("src", src), ("seq", format(seq, "x")), ("hg", format(gen, "x")),
                         ("ts", "6b05fb98"), ("ttl", "3")])
    return heartbeat.encode(msg, signer)
if kind == "garbage":
    pool = [os.urandom(40 + i % 400) for i in range(512)]
elif kind == "badsig":
    pool = [status(i + 1, 1000000 + i, wrong) for i in range(512)]
elif kind == "replay":
    pool = [status(i + 1, 1, keys) for i in range(512)]  # generation 1: older than any live one
else:
    sys.exit("unknown kind " + kind)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
start = time.monotonic(); sent = 0; limit = int(rate * seconds) + 1
while sent < limit:
    due = start + sent / rate
    now = time.monotonic()
    if now - start > seconds + 5:
        break
    if due > now:
        time.sleep(min(due - now, 0.01))
        continue
    for _ in range(min(50, limit - sent)):
        try:
            sock.sendto(pool[sent % len(pool)], (target, int(port)))
        except OSError:
            pass
        sent += 1
print(sent, round(time.monotonic() - start, 3))
"""


def flood(node: Node, target: str, kind: str, *, rate: int, seconds: float, authkeys: str,
          src: str = "node1", port: int = 694) -> subprocess.Popen[str]:
    """Start a bounded flood of one bad kind from ``node`` (garbage, badsig, replay)."""
    cmd = [sys.executable, "-c", FLOOD_SCRIPT, target, str(port), kind, str(rate), str(seconds),
           authkeys.replace("\n", "|"), src]
    return node.popen(cmd, env={"PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE)


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    """`wait_until` with a short interval, for address and ARP checks."""
    wait_until(predicate, timeout=timeout, interval=0.05, what=what)


def monotonic() -> float:
    return time.monotonic()
