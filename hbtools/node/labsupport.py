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

from hbtools.lab import LabError, Node, wait_until

REPO = Path(__file__).resolve().parents[2]


class HbtoolsDaemon:
    """One ``hbtool daemon`` process on a lab node; stop/kill by its own pid."""

    def __init__(self, node: Node, *, extra_args: tuple[str, ...] = ()) -> None:
        self.node = node
        self.name = node.name
        self.conf_dir = node.workdir / "hbtools-ha.d"
        self.state_dir = node.workdir / "hbtools-state"
        self.events_path = node.workdir / "hbtools-events.jsonl"
        self.stderr_path = node.workdir / "hbtools-stderr.log"
        self.extra_args = extra_args
        self.proc: subprocess.Popen[str] | None = None
        self.conf_dir.mkdir(exist_ok=True)

    def write_config(self, ha_cf: str, authkeys: str, haresources: str = "") -> None:
        (self.conf_dir / "ha.cf").write_text(ha_cf)
        keys = self.conf_dir / "authkeys"
        keys.write_text(authkeys)
        keys.chmod(0o600)
        (self.conf_dir / "haresources").write_text(haresources)

    def start(self) -> int:
        cmd = [sys.executable, "-c", "from hbtools.cli import main; main()", "daemon",
               "--config", str(self.conf_dir), "--node-name", self.name,
               "--state-dir", str(self.state_dir), "--events", str(self.events_path),
               "--seed", "1", *self.extra_args]
        err = open(self.stderr_path, "a")  # noqa: SIM115 - handed to the child
        try:
            self.proc = self.node.popen(cmd, env={"PYTHONPATH": str(REPO)}, stderr=err.fileno())
        finally:
            err.close()
        wait_until(lambda: self.events("local_status") or self._exited(), timeout=10,
                   what=f"hbtool daemon on {self.name} to start")
        if self._exited():
            raise LabError(f"hbtool daemon on {self.name} exited: {self.stderr_tail()}")
        return self.proc.pid

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
        try:
            return " | ".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    """`wait_until` with a short interval, for address and ARP checks."""
    wait_until(predicate, timeout=timeout, interval=0.05, what=what)


def monotonic() -> float:
    return time.monotonic()
