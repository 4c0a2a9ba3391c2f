"""Host helpers every runner needs, written once: run a command, a process's start time,
this namespace's addresses.

The lab (`hbtools.lab`), the fault proxy (`faults.nfq`) and the daemon's runner
(`hbtools.node.runner`) each had their own copy, with slightly different timeouts and
messages. Each keeps its own error type (LabError, FaultError, RunnerError) by passing
it as `error`, so its callers see no change; the behaviour is this module's.

Commands are argument lists, never shell text: nothing from the wire or a config reaches
a shell.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["HostError", "ip_json", "local_addresses", "process_start_time", "run"]


class HostError(Exception):
    """A host command failed, timed out or does not exist."""


def run(
    cmd: Sequence[str],
    *,
    timeout: float = 30.0,
    check: bool = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    error: type[Exception] = HostError,
) -> subprocess.CompletedProcess[str]:
    """Run a host command, bounded in time; a failure is `error` carrying the command's
    own complaint (its stderr, or stdout, on one line)."""
    try:
        res = subprocess.run(
            list(cmd),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            stdin=None if input is not None else subprocess.DEVNULL,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        raise error(f"command timed out after {timeout:g} s: {shlex.join(cmd)}") from None
    except FileNotFoundError:
        raise error(f"program not found: {cmd[0]}") from None
    if check and res.returncode != 0:
        msg = (res.stderr or res.stdout).strip().replace("\n", " | ")
        raise error(f"`{shlex.join(cmd)}` failed ({res.returncode}): {msg}")
    return res


def process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot), or None if gone.

    With the pid it names one process for good: a state file that records both can tell a
    crashed owner from a running one even after the pid is reused.
    """
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def ip_json(args: Sequence[str], *, timeout: float = 10.0,
            error: type[Exception] = HostError) -> Any:
    """``ip -j ARGS`` parsed (iproute2's JSON output)."""
    res = run(["ip", "-j", *args], timeout=timeout, error=error)
    try:
        return json.loads(res.stdout or "[]")
    except ValueError:
        raise error(f"`ip -j {shlex.join(args)}` printed no JSON") from None


def local_addresses() -> list[str]:
    """IPv4 addresses of this network namespace, in interface order ([] if ip fails)."""
    try:
        links = ip_json(["-4", "addr", "show"])
    except HostError:
        return []
    return [a["local"] for link in links for a in link.get("addr_info", []) if "local" in a]
