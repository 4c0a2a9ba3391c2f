"""A network-namespace lab for running real cluster daemons and watching their wire traffic.

The codecs in hbtools are only trustworthy if they agree with the real daemons, so the capture
recorder, the interop tests, the injector tests and the fault proxy all need the same thing: a
few isolated "machines" on one private Ethernet segment, a tap that sees every frame, and a
cleanup that never leaves processes, namespaces or addresses behind. This module is that lab.

Layout of one lab (every name starts with the lab's unique ``prefix``)::

    netns <prefix>-br            bridge "br0" (no address; tcpdump listens here)
      ├─ veth p1 ── eth0  netns <prefix>-node1   198.18.0.1/24
      ├─ veth p2 ── eth0  netns <prefix>-node2   198.18.0.2/24
      └─ veth pN ── eth0  netns <prefix>-client  198.18.0.250/24

Addresses come from 198.18.0.0/15 (RFC 2544 benchmarking space), nothing has a default route,
and IPv6 is switched off in every namespace, so no packet can leave the lab and the captures
hold only what the daemons sent. MAC addresses are fixed (``02:68:62:00:00:<host byte>``) so
captures from different runs are comparable.

Daemons such as Heartbeat and Corosync use fixed paths (``/run``, ``/etc/ha.d``,
``/var/lib/heartbeat``, ``/etc/corosync``…) and ``uname -n``. A node can therefore have an
*anchor*: a long-lived process in new mount, UTS and PID namespaces (inside the node's network
namespace) that mounts private tmpfs and bind mounts over those paths, sets the host name, then
acts as the PID-namespace init that reaps orphans. Every later command for that node enters the
anchor's namespaces with ``nsenter``. Because the anchor is the init of its PID namespace,
killing it makes the kernel kill every process of that node, daemonized or not, which is what
makes cleanup dependable (this container's PID 1 does not reap orphans, so without our own init
a daemon's exited children would linger as zombies).

Typical use (as root)::

    with Lab() as lab:
        hb1, hb2 = lab.add_heartbeat("node1"), lab.add_heartbeat("node2")
        conf = heartbeat_ha_cf(["node1", "node2"], ["bcast eth0"])
        for hb in (hb1, hb2):
            hb.write_config(conf, "auth 1\\n1 crc\\n")
        with lab.capture(Path("out.pcap")):
            hb1.start(); hb2.start()
            hb1.wait_nodestatus("node2", "active", timeout=30)

Corosync nodes use the same mechanism through :meth:`Lab.add_corosync_node`, which gives the node
private ``/run`` and ``/dev/shm`` and its own ``/etc/corosync``, ``/var/lib/corosync`` and
``/var/log/corosync`` (host directories under :attr:`Node.workdir`); write ``corosync.conf``
into ``node.workdir / "etc-corosync"``, then ``node.popen(["corosync", "-f"])`` and run
``corosync-quorumtool`` with ``node.run``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, TypeVar

from hbtools import host

log = logging.getLogger(__name__)

HEARTBEAT_BIN = "/usr/libexec/heartbeat/heartbeat"
"""Where the Debian package puts the daemon (it is not on PATH)."""

LAB_SUBNET = "198.18.0"
"""The first three octets of every lab address; /24 on eth0 in each node."""

LAB_PREFIXLEN = 24
CLIENT_HOST = 250
"""Host byte of the client namespace, away from node numbers and a typical VIP (.100)."""

NAME_ROOT = "hbt"
"""Every lab prefix starts with this, so :func:`cleanup_stale` can find leftovers."""

LAB_BASE_DIR = Path(os.environ.get("HBTOOLS_LAB_DIR", "/tmp/hbtools-lab"))
"""Lab working directories and owner records live below this directory."""

BRIDGE = "br0"
NODE_IF = "eth0"
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

COROSYNC_LAB_SECTIONS = (
    "logging {\n"
    "    to_stderr: no\n"
    "    to_logfile: yes\n"
    "    logfile: /var/log/corosync/corosync.log\n"
    "    to_syslog: no\n"
    "    timestamp: hires\n"
    "    debug: off\n"
    "}\n"
    "quorum {\n"
    "    provider: corosync_votequorum\n"
    "}\n"
)
"""The ``logging`` and ``quorum`` sections of every lab corosync.conf: the log goes to the
node's own /var/log/corosync (a bind mount, readable from the host), nothing to syslog."""

_T = TypeVar("_T")


class LabError(RuntimeError):
    """Anything the lab could not do; the message is one line that names the cause."""


# --------------------------------------------------------------------------- preconditions


_PACKAGES = {
    "ip": "iproute2",
    "tcpdump": "tcpdump",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "mount": "mount",
    "nft": "nftables",
    "ping": "iputils-ping",
    "cl_status": "heartbeat",
    "corosync": "corosync",
    "pacemakerd": "pacemaker",
    "crm_mon": "pacemaker-cli-utils",
    "crm_resource": "pacemaker-cli-utils",
    "cibadmin": "pacemaker-cli-utils",
    "fence_dummy": "fence-agents",
    "/usr/lib/ocf/resource.d/heartbeat/IPaddr2": "resource-agents",
    HEARTBEAT_BIN: "heartbeat",
}


def require_root() -> None:
    """Fail early with a readable message instead of a cryptic `ip` error halfway through."""
    if os.geteuid() != 0:
        raise LabError(
            "hbtools.lab needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces"
        )


def require_binary(name: str) -> str:
    """Return the path of a needed program or raise a one-line error naming its package."""
    path = name if os.path.isabs(name) else shutil.which(name, path=CLEAN_PATH)
    if path is None or not os.access(path, os.X_OK):
        package = _PACKAGES.get(name)
        hint = f" (Debian package {package})" if package else ""
        raise LabError(f"hbtools.lab needs the program {name}{hint}, which is not installed")
    return path


def wait_until(
    predicate: Callable[[], _T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
) -> _T:
    """Poll until ``predicate`` returns something truthy; bounded both in time and in tries.

    The count bound protects against a clock that does not move (or a predicate that is slower
    than ``interval``) turning a wait into a hang; the error says what we were waiting for.
    """
    deadline = time.monotonic() + timeout
    tries = max(1, int(timeout / interval) + 1)
    for _ in range(tries):
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise LabError(f"timed out after {timeout:g} s waiting for {what}")


def _run(
    cmd: Sequence[str],
    *,
    timeout: float = 30.0,
    check: bool = True,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a host command in the lab's clean environment (`hbtools.host.run`); a failure
    becomes a LabError carrying the command's own complaint."""
    return host.run(cmd, timeout=timeout, check=check, input=input,
                    env=env if env is not None else _clean_env(), cwd="/", error=LabError)


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A small fixed environment, so daemons behave the same whoever starts the lab."""
    env = {"PATH": CLEAN_PATH, "LANG": "C", "LC_ALL": "C", "HOME": "/root", "TERM": "dumb"}
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------- /proc helpers

_PR_SET_PDEATHSIG = 1
_libc: ctypes.CDLL | None = None


def _die_with_parent() -> None:
    """preexec_fn: if the lab's process dies (even by SIGKILL), its anchors die with it.

    Note the kernel sends the signal when the *thread* that started the child exits, so
    create labs from a thread that outlives them (the main thread in practice).
    """
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _load_libc() -> None:
    global _libc
    if _libc is None:
        with contextlib.suppress(OSError):
            _libc = ctypes.CDLL(None, use_errno=True)


def _all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _ns_id(pid: int, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, int] | None:
    """(comm, ppid) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            data = fh.read()
    except OSError:
        return None
    lpar, rpar = data.find("("), data.rfind(")")
    rest = data[rpar + 2 :].split()
    return data[lpar + 1 : rpar], int(rest[1])


def _alive(pid: int) -> bool:
    """True for a running process; a zombie counts as gone (it only waits to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _innermost_pid(pid: int) -> int | None:
    """The pid a process has inside its own PID namespace (what its pid files contain)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    if pid in (0, 1, os.getpid()):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _netns_pids(netns: str) -> list[int]:
    res = _run(["ip", "netns", "pids", netns], check=False, timeout=10)
    return [int(x) for x in res.stdout.split() if x.isdigit()]


def _netns_names() -> list[str]:
    res = _run(["ip", "netns", "list"], check=False, timeout=10)
    return [line.split()[0] for line in res.stdout.splitlines() if line.strip()]


_proc_start_time = host.process_start_time


# --------------------------------------------------------------------------- anchors


@dataclass(frozen=True)
class DirSpec:
    """A directory the anchor creates inside the node's view (after its tmpfs mounts)."""

    path: str
    owner: str = "root"
    group: str = "root"
    mode: int = 0o755


@dataclass(frozen=True)
class AnchorSpec:
    """What a node's private filesystem view looks like.

    ``tmpfs`` paths get a fresh tmpfs, ``dirs`` are then created in them, and each
    ``(host_source, target)`` in ``binds`` is bind-mounted over an existing ``target``.
    ``hostname`` is what ``uname -n`` returns in the node (Heartbeat's node name).
    """

    hostname: str | None = None
    tmpfs: tuple[str, ...] = ()
    dirs: tuple[DirSpec, ...] = ()
    binds: tuple[tuple[Path, str], ...] = ()

    def script(self, reaper: str) -> str:
        """The sh script the anchor runs as PID 1 of its namespace before becoming the reaper."""
        q = shlex.quote
        lines = ["set -e"]
        for path in self.tmpfs:
            lines.append(f"mount -t tmpfs -o mode=0755,size=64m hbtlab {q(path)}")
        for d in self.dirs:
            lines.append(f"mkdir -p {q(d.path)}")
            lines.append(f"chown {q(d.owner)}:{q(d.group)} {q(d.path)}")
            lines.append(f"chmod {d.mode:o} {q(d.path)}")
        for source, target in self.binds:
            lines.append(f"mount --bind {q(str(source))} {q(target)}")
        if self.hostname:
            lines.append(f"hostname {q(self.hostname)}")
        lines.append("echo ready")
        lines.append(f"exec {q(sys.executable)} -c {q(reaper)} </dev/null >/dev/null 2>&1")
        return "\n".join(lines) + "\n"


# The anchor's final form: PID 1 of the node's PID namespace, reaping every orphan (daemonized
# processes and their exited children) so none of them lingers as a zombie.
_REAPER = """
import os, signal, time
signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.2)
    except InterruptedError:
        pass
"""


class Anchor:
    """The running anchor of one node: ``unshare`` (our child) and the init it forked."""

    def __init__(self, proc: subprocess.Popen[str], init_pid: int) -> None:
        self.proc = proc
        self.init_pid = init_pid
        self.pidns = _ns_id(init_pid, "pid")

    def processes(self) -> list[int]:
        """Host pids of every process in the anchor's PID namespace except its init."""
        if self.pidns is None:
            return []
        return [
            p for p in _all_pids() if p != self.init_pid and _ns_id(p, "pid") == self.pidns
        ]

    def host_pid(self, inner_pid: int) -> int | None:
        """Translate a pid read from a file inside the node into the host's numbering."""
        for p in self.processes():
            if _innermost_pid(p) == inner_pid:
                return p
        return None

    def kill(self, *, timeout: float = 10.0) -> None:
        """Kill the init, so the kernel kills and reaps the whole PID namespace.

        ``unshare`` exits only once its child (the init) is fully gone, and the init is gone
        only after every process of its namespace has been reaped, so waiting for ``unshare``
        means nothing of this node is left, not even a zombie.
        """
        _kill(self.init_pid)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(self.proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)


# --------------------------------------------------------------------------- nodes


@dataclass
class Node:
    """One machine of the lab: a network namespace with ``eth0`` on the lab bridge.

    Commands run in the node's network namespace; once :meth:`start_anchor` has run they also
    run in its mount, UTS and PID namespaces (through ``nsenter`` on the anchor's init).
    """

    lab: Lab
    name: str
    netns: str
    address: str
    mac: str
    workdir: Path
    prefixlen: int = LAB_PREFIXLEN
    ifname: str = NODE_IF
    anchor: Anchor | None = field(default=None, repr=False)
    anchor_spec: AnchorSpec | None = field(default=None, repr=False)

    def command(self, cmd: Sequence[str]) -> list[str]:
        """The host command line that runs ``cmd`` inside this node."""
        if self.anchor is not None:
            return ["nsenter", "-t", str(self.anchor.init_pid), "-n", "-m", "-u", "-p", "--", *cmd]
        return ["ip", "netns", "exec", self.netns, *cmd]

    def run(
        self,
        cmd: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 30.0,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the node and wait for it (text output captured)."""
        return _run(self.command(cmd), check=check, timeout=timeout, input=input,
                    env=_clean_env(env))

    def popen(
        self,
        cmd: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        stdout: int | None = subprocess.DEVNULL,
        stderr: int | None = subprocess.DEVNULL,
        stdin: int | None = subprocess.DEVNULL,
        text: bool = True,
    ) -> subprocess.Popen[str]:
        """Start a long-running command in the node; the lab kills it at cleanup."""
        return self.lab._popen(self.command(cmd), env=_clean_env(env), stdout=stdout,
                               stderr=stderr, stdin=stdin, text=text)

    def path(self, inner: str) -> Path:
        """A host path that reaches ``inner`` as the node sees it (its tmpfs, its binds)."""
        if self.anchor is None:
            return Path(inner)
        return Path(f"/proc/{self.anchor.init_pid}/root") / inner.lstrip("/")

    def start_anchor(self, spec: AnchorSpec, *, timeout: float = 10.0) -> Anchor:
        """Give the node its own mount/UTS/PID namespaces as described by ``spec``."""
        if self.anchor is not None:
            raise LabError(f"node {self.name} already has an anchor")
        reaper = _REAPER
        cmd = [
            "ip", "netns", "exec", self.netns,
            "unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc",
            "--propagation", "private",
            "sh", "-c", spec.script(reaper),
        ]
        proc = self.lab._popen(cmd, env=_clean_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        line = _read_line(proc.stdout, timeout)
        if line.strip() != "ready":
            proc.kill()
            err = ""
            with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
                err = proc.communicate(timeout=2)[1]
            msg = (err or line).strip().replace("\n", " | ")
            raise LabError(f"anchor for node {self.name} did not start: {msg}")

        def init_child() -> int | None:
            for p in _all_pids():
                st = _stat(p)
                if st is not None and st[1] == proc.pid:
                    return p
            return None

        init_pid = wait_until(init_child, timeout=5, what=f"the anchor init of {self.name}")
        self.anchor = Anchor(proc, init_pid)
        self.anchor_spec = spec
        return self.anchor

    def pids_named(self, names: Collection[str]) -> list[int]:
        """Host pids of the live processes of this node's PID namespace whose name
        (``/proc/PID/comm``) is one of ``names`` (empty when the node has no running anchor)."""
        if self.anchor is None or not _alive(self.anchor.init_pid):
            return []
        pids = []
        for pid in self.anchor.processes():
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if comm in names and _alive(pid):
                pids.append(pid)
        return pids

    def anchor_alive(self) -> bool:
        """True while the node's PID-namespace init runs (False after a crash)."""
        return self.anchor is not None and _alive(self.anchor.init_pid)

    def reboot_anchor(self, *, timeout: float = 10.0) -> Anchor:
        """Kill the node's anchor if it still runs and start a new one from the same spec.

        This is a reboot of the node's "machine": the PID namespace and every tmpfs
        (``/run``, ``/dev/shm``) start empty, while the bind-mounted host directories (a
        daemon's state and logs) persist, as disks do across a reboot.
        """
        if self.anchor_spec is None:
            raise LabError(f"node {self.name} has no anchor to restart")
        if self.anchor is not None:
            self.anchor.kill()
            self.anchor = None
        return self.start_anchor(self.anchor_spec, timeout=timeout)

    def processes(self) -> list[int]:
        """Host pids of every process in this node's network namespace."""
        return _netns_pids(self.netns)

    def ipv4_addresses(self) -> list[str]:
        """Addresses on ``eth0`` as ``a.b.c.d/len`` (e.g. to see who holds a VIP)."""
        res = _run(["ip", "-n", self.netns, "-j", "addr", "show", "dev", self.ifname],
                   timeout=10)
        out: list[str] = []
        for link in json.loads(res.stdout or "[]"):
            for a in link.get("addr_info", []):
                if a.get("family") == "inet":
                    out.append(f"{a['local']}/{a['prefixlen']}")
        return out

    def has_address(self, ip: str) -> bool:
        return any(a.split("/")[0] == ip for a in self.ipv4_addresses())

    def ping(self, ip: str, *, count: int = 1, timeout: float = 1.0) -> bool:
        """One ICMP echo to a lab address; only ever used for 198.18.0.0/15 targets."""
        _check_lab_target(ip)
        res = _run(["ip", "netns", "exec", self.netns, "ping", "-n", "-q", "-c", str(count),
                    "-W", f"{timeout:g}", ip], check=False, timeout=timeout * count + 5)
        return res.returncode == 0

    def neighbour(self, ip: str) -> str | None:
        """The MAC this node's ARP cache holds for ``ip`` (None if absent or failed)."""
        res = _run(["ip", "-n", self.netns, "-j", "neigh", "show", "to", ip], timeout=10)
        for entry in json.loads(res.stdout or "[]"):
            mac = entry.get("lladdr")
            if mac and "FAILED" not in entry.get("state", []):
                return str(mac)
        return None

    def drop_udp(self, port: int, *, direction: str = "input") -> None:
        """Drop UDP to ``port`` in this node only (an nft table in the node's namespace)."""
        if direction not in ("input", "output"):
            raise ValueError("direction must be 'input' or 'output'")
        table = f"hbtlab_drop_{direction}"
        script = (
            f"add table inet {table}\n"
            f"add chain inet {table} c {{ type filter hook {direction} priority 0; }}\n"
            f"add rule inet {table} c udp dport {port} drop\n"
        )
        _run(["ip", "netns", "exec", self.netns, "nft", "-f", "-"], input=script, timeout=10)

    def undrop_udp(self, *, direction: str = "input") -> None:
        _run(["ip", "netns", "exec", self.netns, "nft", "delete", "table", "inet",
              f"hbtlab_drop_{direction}"], check=False, timeout=10)


class Freezable:
    """``freeze``/``thaw`` for a cluster of anchored nodes, shared by every cluster kind.

    A frozen node is a machine that stopped running (SIGSTOP to every process of its PID
    namespace, resource agents included); the pids are remembered so that ``thaw`` resumes
    exactly those and a process started after the freeze is left alone.
    """

    _frozen: dict[str, list[int]]

    def node(self, name: str) -> Node:  # provided by the cluster kind
        raise NotImplementedError

    def freeze(self, node: str) -> None:
        """SIGSTOP every process of the node (agents too), remembering which."""
        n = self.node(node)
        if not n.anchor_alive():
            return
        assert n.anchor is not None
        pids = self._frozen.setdefault(node, [])
        for pid in n.anchor.processes():
            if pid not in pids:
                _kill(pid, signal.SIGSTOP)
                pids.append(pid)

    def thaw(self, node: str) -> None:
        """SIGCONT what :meth:`freeze` stopped on ``node``."""
        for pid in self._frozen.pop(node, []):
            _kill(pid, signal.SIGCONT)


def _check_lab_target(ip: str) -> None:
    """Refuse to send anything outside the lab's own address block (or loopback)."""
    octets = ip.split(".")
    ok = len(octets) == 4 and (
        (octets[0] == "198" and octets[1] in ("18", "19")) or octets[0] == "127"
    )
    if not ok:
        raise LabError(f"refusing to send to {ip}: lab traffic stays inside 198.18.0.0/15")


def _read_line(stream: IO[str] | None, timeout: float) -> str:
    """One line of a child's pipe (its stdout or stderr), without blocking past ``timeout``."""
    assert stream is not None
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return ""
        return stream.readline()
    finally:
        sel.close()


# --------------------------------------------------------------------------- capture


class Capture:
    """A tcpdump writing a pcap; stopping it returns how many packets it saw."""

    def __init__(self, proc: subprocess.Popen[str], path: Path, bpf_filter: str | None,
                 interface: str) -> None:
        self.proc = proc
        self.path = path
        self.filter = bpf_filter
        self.interface = interface
        self.started = time.time()
        self.stopped: float | None = None
        self.packets: int | None = None

    def stop(self, *, timeout: float = 5.0) -> int | None:
        """SIGINT (so the pcap is flushed), then SIGKILL if tcpdump does not finish."""
        if self.stopped is not None:
            return self.packets
        time.sleep(0.2)  # let the last frames reach the file (-U writes per packet anyway)
        self.stopped = time.time()
        _kill(self.proc.pid, signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=timeout)
        m = re.search(r"(\d+) packets? captured", err or "")
        self.packets = int(m.group(1)) if m else None
        return self.packets

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- the lab


class Lab:
    """A bridge namespace plus nodes; a context manager that always tears everything down.

    ``prefix`` must be unique among live labs; by default it is ``hbt<pid%10000>x<n>``,
    claimed atomically by creating the lab directory ``LAB_BASE_DIR/<prefix>``, which also
    records the owner pid for :func:`cleanup_stale`.
    """

    def __init__(self, prefix: str | None = None, *, keep_workdir: bool = False) -> None:
        self._requested_prefix = prefix
        self.prefix = prefix or ""
        self.keep_workdir = keep_workdir
        self.workdir = Path()
        self.bridge_ns = ""
        self.nodes: dict[str, Node] = {}
        self.heartbeats: dict[str, Heartbeat] = {}
        self._captures: list[Capture] = []
        self._procs: list[subprocess.Popen[str]] = []
        self._namespaces: list[str] = []
        self._started = False
        self._closed = False
        self._next_port = 1

    # -- life cycle

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.close()
        except LabError as err:
            if exc is None:
                raise
            log.error("lab cleanup failed while handling another error: %s", err)

    def start(self) -> None:
        """Create the bridge namespace; nodes are added afterwards."""
        if self._started:
            return
        require_root()
        for tool in ("ip", "unshare", "nsenter", "mount"):
            require_binary(tool)
        _load_libc()
        self._claim_prefix()
        self._started = True
        try:
            self.bridge_ns = self._add_netns("br")
            _run(["ip", "-n", self.bridge_ns, "link", "add", BRIDGE, "type", "bridge",
                  "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"])
            _run(["ip", "-n", self.bridge_ns, "link", "set", BRIDGE, "up"])
        except BaseException:
            self.close()
            raise

    def _claim_prefix(self) -> None:
        LAB_BASE_DIR.mkdir(parents=True, exist_ok=True)
        candidates = (
            [self._requested_prefix]
            if self._requested_prefix
            else [f"{NAME_ROOT}{os.getpid() % 10000}x{n}" for n in range(100)]
        )
        existing = set(_netns_names())
        for cand in candidates:
            assert cand is not None
            if any(ns.startswith(cand + "-") for ns in existing):
                continue
            try:
                (LAB_BASE_DIR / cand).mkdir()
            except FileExistsError:
                continue
            self.prefix = cand
            self.workdir = LAB_BASE_DIR / cand
            owner = {"pid": os.getpid(), "start": _proc_start_time(os.getpid())}
            (self.workdir / "owner.json").write_text(json.dumps(owner))
            return
        raise LabError(f"no free lab prefix (tried {candidates[0]}…); run cleanup_stale()")

    def _add_netns(self, suffix: str) -> str:
        name = f"{self.prefix}-{suffix}"
        _run(["ip", "netns", "add", name])
        self._namespaces.append(name)
        # IPv6 off before any interface exists, so no RS/MLD/DAD noise reaches the captures.
        _run(["ip", "netns", "exec", name, "sysctl", "-q", "-w",
              "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
             check=False)
        _run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def _popen(self, cmd: list[str], *, env: dict[str, str], stdout: int | None,
               stderr: int | None, stdin: int | None, text: bool) -> subprocess.Popen[str]:
        """Every long-lived lab process dies with us, even if we are SIGKILLed (no cleanup)."""
        if not self._started or self._closed:
            raise LabError("the lab is not running")
        try:
            proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=stderr, stdin=stdin,
                                    text=text, cwd="/", preexec_fn=_die_with_parent)
        except FileNotFoundError as exc:
            raise LabError(f"program not found: {cmd[0]}") from exc
        self._procs.append(proc)
        return proc

    # -- nodes

    def add_node(self, name: str, *, host: int | None = None, anchor: AnchorSpec | None = None,
                 ) -> Node:
        """A namespace with ``eth0`` = 198.18.0.<host>/24 on the bridge (host defaults to 1, 2…).

        With ``anchor`` the node also gets private mount/UTS/PID namespaces (see AnchorSpec).
        """
        if not self._started or self._closed:
            raise LabError("the lab is not running")
        if name in self.nodes or not re.fullmatch(r"[a-z][a-z0-9-]{0,30}", name):
            raise LabError(f"bad or duplicate node name {name!r}")
        used = {int(n.address.rsplit(".", 1)[1]) for n in self.nodes.values()}
        if host is None:
            host = next(h for h in range(1, 250) if h not in used)
        if host in used or not 1 <= host <= 254:
            raise LabError(f"host number {host} is taken or out of range")
        address = f"{LAB_SUBNET}.{host}"
        mac = f"02:68:62:00:00:{host:02x}"
        netns = self._add_netns(name)
        port = f"p{self._next_port}"
        self._next_port += 1
        _run(["ip", "-n", netns, "link", "add", NODE_IF, "address", mac, "type", "veth",
              "peer", "name", port, "netns", self.bridge_ns])
        _run(["ip", "-n", self.bridge_ns, "link", "set", port, "master", BRIDGE, "up"])
        _run(["ip", "-n", netns, "addr", "add", f"{address}/{LAB_PREFIXLEN}", "brd", "+",
              "dev", NODE_IF])
        _run(["ip", "-n", netns, "link", "set", NODE_IF, "up"])
        # Multicast media (Heartbeat mcast, corosync udp) need a route for 224/4; there is no
        # default route, so nothing else is reachable.
        _run(["ip", "-n", netns, "route", "add", "224.0.0.0/4", "dev", NODE_IF])
        workdir = self.workdir / name
        workdir.mkdir()
        node = Node(self, name, netns, address, mac, workdir)
        self.nodes[name] = node
        if anchor is not None:
            node.start_anchor(anchor)
        return node

    def add_client(self, name: str = "client", *, host: int = CLIENT_HOST) -> Node:
        """A plain node (no anchor) for pinging VIPs and watching ARP from outside."""
        return self.add_node(name, host=host)

    def add_heartbeat(self, name: str, *, host: int | None = None) -> Heartbeat:
        """A node prepared for the real Heartbeat daemon (its own /etc/ha.d, /var/lib/heartbeat,
        /run, /var/log and host name = ``name``); write its config, then ``start()`` it."""
        require_binary(HEARTBEAT_BIN)
        require_binary("cl_status")
        node = self.add_node(name, host=host)
        hb = Heartbeat(node)
        node.start_anchor(hb.anchor_spec())
        self.heartbeats[name] = hb
        return hb

    def add_corosync_node(self, name: str, *, host: int | None = None,
                          pacemaker: bool = False) -> Node:
        """A node prepared for ``corosync -f``: private /run and /dev/shm, and its own
        /etc/corosync, /var/lib/corosync, /var/log/corosync from ``workdir/etc-corosync``,
        ``workdir/var-lib-corosync`` and ``workdir/var-log-corosync`` (created empty, so ring
        ids start afresh; write corosync.conf and any authkey before starting corosync).

        With ``pacemaker`` the node also gets its own ``/var/lib/pacemaker`` (``cib``,
        ``pengine``, ``blackbox``, ``cores``) and ``/var/log/pacemaker`` from
        ``workdir/var-lib-pacemaker`` and ``workdir/var-log-pacemaker``, owned by hacluster
        as the daemons require, plus ``/run/crm``, ``/run/resource-agents``, ``/run/lock``
        and a world-writable ``/dev/shm`` (the daemons run as hacluster and keep their libqb
        IPC buffers there).
        """
        node = self.add_node(name, host=host)
        mounts = [("etc-corosync", "/etc/corosync"), ("var-lib-corosync", "/var/lib/corosync"),
                  ("var-log-corosync", "/var/log/corosync")]
        if pacemaker:
            mounts += [("var-lib-pacemaker", "/var/lib/pacemaker"),
                       ("var-log-pacemaker", "/var/log/pacemaker")]
        binds = []
        for sub, target in mounts:
            src = node.workdir / sub
            src.mkdir()
            if not Path(target).is_dir():
                package = "corosync" if "corosync" in target else "pacemaker"
                raise LabError(f"{target} does not exist (Debian package {package})")
            binds.append((src, target))
        dirs: tuple[DirSpec, ...] = ()
        if pacemaker:
            owned = [node.workdir / "var-lib-pacemaker", node.workdir / "var-log-pacemaker"]
            for sub in ("cib", "pengine", "blackbox", "cores"):
                (owned[0] / sub).mkdir(mode=0o750)
                owned.append(owned[0] / sub)
            try:
                for d in owned:
                    shutil.chown(d, "hacluster", "haclient")
            except LookupError as exc:
                raise LabError("no hacluster user or haclient group (Debian package "
                               "pacemaker)") from exc
            (node.workdir / "var-log-pacemaker").chmod(0o770)
            dirs = (DirSpec("/dev/shm", mode=0o1777),
                    DirSpec("/run/crm", "hacluster", "haclient", 0o750),
                    DirSpec("/run/resource-agents"), DirSpec("/run/lock"))
        node.start_anchor(AnchorSpec(hostname=name, tmpfs=("/run", "/dev/shm"), dirs=dirs,
                                     binds=tuple(binds)))
        return node

    def node(self, name: str) -> Node:
        return self.nodes[name]

    # -- capture

    def capture(self, path: Path, bpf_filter: str | None = None, *,
                timeout: float = 5.0) -> Capture:
        """Start tcpdump on the bridge (sees every frame between nodes); returns once it listens.

        Without a filter everything is kept: the lab carries only IPv4 and ARP from our own
        daemons, and a port filter would drop IP fragments of big messages.
        """
        require_binary("tcpdump")
        path = Path(path).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["ip", "netns", "exec", self.bridge_ns, "tcpdump", "-i", BRIDGE, "-n", "-U", "--immediate-mode",
               "-s", "0", "-Z", "root", "-w", str(path)]
        if bpf_filter:
            cmd.append(bpf_filter)
        proc = self._popen(cmd, env=_clean_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        assert proc.stderr is not None
        deadline = time.monotonic() + timeout
        seen = ""
        for _ in range(50):
            line = _read_line(proc.stderr, max(0.0, deadline - time.monotonic()))
            seen += line
            if "listening on" in line:
                break
            if not line or time.monotonic() >= deadline:
                proc.kill()
                raise LabError(f"tcpdump did not start: {seen.strip() or 'no output'}")
        cap = Capture(proc, path, bpf_filter, BRIDGE)
        self._captures.append(cap)
        return cap

    # -- teardown

    def close(self) -> None:
        """Kill every process of the lab, delete its namespaces and its directory.

        Safe to call twice and after a failed start. Raises LabError only if something is
        still left afterwards (and says what).
        """
        if self._closed or not self._started:
            self._closed = True
            return
        self._closed = True
        problems: list[str] = []
        for cap in self._captures:
            try:
                cap.stop()
            except Exception as err:  # keep tearing down whatever happens
                problems.append(f"capture {cap.path}: {err}")
        for node in self.nodes.values():
            if node.anchor is not None:
                node.anchor.kill()
        namespaces = [ns for ns in self._namespaces if ns != self.bridge_ns] + (
            [self.bridge_ns] if self.bridge_ns else []
        )
        for ns in namespaces:
            try:
                wait_until(lambda ns=ns: _reap_netns(ns), timeout=10, interval=0.1,
                           what=f"the processes of {ns} to exit")
            except LabError as err:
                problems.append(str(err))
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.communicate(timeout=5)
            except (subprocess.TimeoutExpired, ValueError):
                problems.append(f"pid {proc.pid} did not exit")
        for ns in namespaces:
            res = _run(["ip", "netns", "del", ns], check=False, timeout=10)
            if res.returncode != 0 and ns in _netns_names():
                problems.append(f"could not delete netns {ns}: {res.stderr.strip()}")
        if self.workdir != Path() and self.workdir.exists():
            if self.keep_workdir:
                with contextlib.suppress(OSError):
                    (self.workdir / "owner.json").unlink()
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)
        if problems:
            raise LabError("lab cleanup incomplete: " + "; ".join(problems))


def write_ha_config(directory: Path, ha_cf: str, authkeys: str, haresources: str) -> None:
    """A Heartbeat configuration directory, as the real daemon and ``hbtool daemon`` both
    read it: ha.cf, authkeys (mode 600, or either refuses it) and haresources."""
    (directory / "ha.cf").write_text(ha_cf)
    keys = directory / "authkeys"
    keys.write_text(authkeys)
    keys.chmod(0o600)
    (directory / "haresources").write_text(haresources)


def log_tail(path: Path, lines: int, sep: str = "\n") -> str | None:
    """The last ``lines`` lines of a daemon's log or stderr file joined by ``sep`` (for an
    error message that says why the daemon died); None when it cannot be read (not written
    yet, or gone with its node)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    return sep.join(text.splitlines()[-lines:])


def _reap_netns(netns: str) -> bool:
    """SIGKILL whatever still runs in ``netns``; True once nothing does."""
    pids = [p for p in _netns_pids(netns) if p != os.getpid()]
    for p in pids:
        _kill(p)
    return not any(_alive(p) for p in pids)


def cleanup_stale(prefix: str = NAME_ROOT) -> list[str]:
    """Remove labs left behind by processes that died; returns the namespaces deleted.

    A lab counts as stale when its owner record is missing or names a process that is gone
    (pid and start time both checked, so a reused pid does not protect a dead lab). Labs of
    live processes, including parallel test runs, are left alone.
    """
    require_root()
    require_binary("ip")
    me = os.getpid()
    groups: dict[str, list[str]] = {}
    for ns in _netns_names():
        m = re.match(rf"({re.escape(NAME_ROOT)}\d+x\d+)-", ns)
        if m and m.group(1).startswith(prefix):
            groups.setdefault(m.group(1), []).append(ns)
    if LAB_BASE_DIR.is_dir():
        for d in LAB_BASE_DIR.iterdir():
            if d.name.startswith(prefix) and d.name.startswith(NAME_ROOT):
                groups.setdefault(d.name, [])
    removed: list[str] = []
    for lab_prefix, namespaces in groups.items():
        owner_file = LAB_BASE_DIR / lab_prefix / "owner.json"
        with contextlib.suppress(OSError, ValueError):
            owner = json.loads(owner_file.read_text())
            pid = int(owner["pid"])
            if pid == me or (_alive(pid) and _proc_start_time(pid) == owner.get("start")):
                continue
        for ns in sorted(namespaces, key=lambda n: n.endswith("-br")):
            with contextlib.suppress(LabError):
                wait_until(lambda ns=ns: _reap_netns(ns), timeout=10, what=f"{ns} to empty")
            _run(["ip", "netns", "del", ns], check=False, timeout=10)
            removed.append(ns)
        shutil.rmtree(LAB_BASE_DIR / lab_prefix, ignore_errors=True)
    return removed


# --------------------------------------------------------------------------- Heartbeat


def heartbeat_ha_cf(
    nodes: Sequence[str],
    media: Sequence[str],
    *,
    keepalive: str = "1",
    warntime: str = "3",
    deadtime: str = "5",
    initdead: str = "10",
    auto_failback: str = "off",
    extra: Sequence[str] = (),
) -> str:
    """An ``ha.cf`` that suits the lab: no logd, no syslog, no CRM, short timers.

    ``media`` are whole directives (``bcast eth0``, ``mcast eth0 239.18.0.1 694 1 0``,
    ``ucast eth0 198.18.0.2``); ``extra`` lines go before them (e.g. ``msgfmt netstring``),
    because Heartbeat reads the file in order and options must precede the media.
    """
    lines = [
        "# written by hbtools.lab for a namespace lab",
        "use_logd no",
        "logfile /var/log/ha-log",
        "logfacility none",
        "realtime off",
        "coredumps false",
        "crm off",
        "autojoin none",
        f"keepalive {keepalive}",
        f"warntime {warntime}",
        f"deadtime {deadtime}",
        f"initdead {initdead}",
        f"auto_failback {auto_failback}",
        "udpport 694",
        *extra,
        *media,
        "node " + " ".join(nodes),
    ]
    return "\n".join(lines) + "\n"


class Heartbeat:
    """The real Heartbeat 3.0.6 daemon on one lab node.

    Its fixed paths are made per-node by the anchor: ``/etc/ha.d`` and ``/var/lib/heartbeat``
    are bind mounts of copies of the package's directories (without ``hb_uuid`` and
    ``hb_generation``, so every node gets its own identity), ``/run`` is a private tmpfs with
    the directories Heartbeat expects, and ``/var/log`` is the node's own (``ha-log`` there).
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self.name = node.name
        self.etc_dir = node.workdir / "etc-ha.d"
        self.var_lib_dir = node.workdir / "var-lib-heartbeat"
        self.log_dir = node.workdir / "var-log"
        self._prepare_dirs()

    @property
    def log_path(self) -> Path:
        """Host path of the daemon's log file (``logfile /var/log/ha-log`` in ha.cf)."""
        return self.log_dir / "ha-log"

    def _prepare_dirs(self) -> None:
        for src, dst in (("/etc/ha.d", self.etc_dir), ("/var/lib/heartbeat", self.var_lib_dir)):
            if not Path(src).is_dir():
                raise LabError(f"{src} does not exist (Debian package heartbeat)")
            # cp -a keeps the hacluster ownership of ccm/ and crm/ that the daemon checks.
            _run(["cp", "-a", src, str(dst)])
        for stale in ("hb_uuid", "hb_generation", "fifo", "hostcache", "delhostcache"):
            with contextlib.suppress(FileNotFoundError):
                (self.var_lib_dir / stale).unlink()
        self.log_dir.mkdir()

    def anchor_spec(self) -> AnchorSpec:
        run_dirs = tuple(
            DirSpec(p, "hacluster", "haclient", 0o750)
            for p in ("/run/heartbeat", "/run/heartbeat/ccm", "/run/heartbeat/crm",
                      "/run/heartbeat/dopd")
        ) + (DirSpec("/run/resource-agents"), DirSpec("/run/lock"))
        return AnchorSpec(
            hostname=self.name,
            tmpfs=("/run",),
            dirs=run_dirs,
            binds=((self.etc_dir, "/etc/ha.d"), (self.var_lib_dir, "/var/lib/heartbeat"),
                   (self.log_dir, "/var/log")),
        )

    def write_config(self, ha_cf: str, authkeys: str, haresources: str = "") -> None:
        """Write ha.cf, authkeys (mode 600, or the daemon refuses it) and haresources."""
        write_ha_config(self.etc_dir, ha_cf, authkeys, haresources)

    # -- daemon control

    def start(self, *, timeout: float = 15.0) -> int:
        """Start the daemon (it daemonizes) and return the host pid of its master process."""
        res = self.node.run([HEARTBEAT_BIN], check=False, timeout=timeout)
        if res.returncode != 0:
            tail = self.log_tail(5).replace("\n", " | ")
            raise LabError(f"heartbeat on {self.name} failed to start ({res.returncode}): "
                           f"{(res.stderr or '').strip()} {tail}".strip())
        return wait_until(self.master_pid, timeout=timeout,
                          what=f"heartbeat on {self.name} to write its pid file")

    def master_pid(self) -> int | None:
        """Host pid of the running master control process, from /run/heartbeat.pid."""
        anchor = self.node.anchor
        if anchor is None:
            return None
        try:
            inner = int(self.node.path("/run/heartbeat.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        pid = anchor.host_pid(inner)
        return pid if pid is not None and _alive(pid) else None

    def processes(self) -> list[int]:
        """Host pids of the daemon and all its descendants (resource scripts included)."""
        anchor = self.node.anchor
        if anchor is None:
            return []
        procs = {p: _stat(p) for p in anchor.processes()}
        info = {p: st for p, st in procs.items() if st is not None}
        members = {p for p, (comm, _) in info.items() if comm == "heartbeat"}
        changed = True
        while changed:
            changed = False
            for p, (_, ppid) in info.items():
                if p not in members and ppid in members:
                    members.add(p)
                    changed = True
        return sorted(p for p in members if _alive(p))

    def running(self) -> bool:
        return bool(self.processes())

    def stop(self, *, timeout: float = 30.0) -> None:
        """Clean stop with ``heartbeat -k`` (the peer sees shutdone and takes over at once)."""
        self.node.run([HEARTBEAT_BIN, "-k"], check=False, timeout=timeout)
        wait_until(lambda: not self.running(), timeout=timeout,
                   what=f"heartbeat on {self.name} to stop")

    def kill(self, *, timeout: float = 10.0) -> list[int]:
        """Crash the node's Heartbeat: SIGSTOP every process of it, then SIGKILL them all.

        Stopping first means no process notices a sibling's death and reacts (a real power
        loss gives no warning either). Returns the host pids killed.
        """
        pids = self.processes()
        for p in pids:
            _kill(p, signal.SIGSTOP)
        for p in pids:
            _kill(p, signal.SIGKILL)
        wait_until(lambda: not any(_alive(p) for p in pids), timeout=timeout,
                   what=f"heartbeat processes on {self.name} to die")
        return pids

    def cl_status(self, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        """Run ``cl_status`` against this node's daemon (its API lives in the node's /run)."""
        return self.node.run(["cl_status", *args], check=False, timeout=timeout)

    def nodestatus(self, peer: str) -> str | None:
        """What this node thinks of ``peer`` (``active``, ``up``, ``init``, ``dead``…).

        cl_status exits non-zero for a dead node but still prints ``dead``, so its output is
        the answer; None means it gave none (API not up yet, unknown node).
        """
        res = self.cl_status("nodestatus", peer)
        out = res.stdout.strip()
        return out or None

    def wait_nodestatus(self, peer: str, status: str, *, timeout: float = 30.0) -> None:
        wait_until(lambda: self.nodestatus(peer) == status, timeout=timeout, interval=0.25,
                   what=f"{self.name} to see {peer} {status}")

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines) or ""

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@contextlib.contextmanager
def dropped_udp(node: Node, port: int, *, direction: str = "input") -> Iterator[None]:
    """Drop a node's UDP traffic on ``port`` for the duration of a ``with`` block."""
    node.drop_udp(port, direction=direction)
    try:
        yield
    finally:
        node.undrop_udp(direction=direction)
