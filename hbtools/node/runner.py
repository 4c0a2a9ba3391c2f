"""The thin I/O shell around `hbtools.node.core.Node`: sockets, clock, addresses, ARP, fencing.

One loop: wait on the sockets until the core's next timer (or a pending ARP round, or a running
fence command), feed what arrived to the core, carry out what it returns, in order. All protocol
decisions stay in the core; this module only knows how to talk to Linux.

* Media: one receiving socket on the UDP port (broadcast, unicast, and the multicast groups
  joined on their interfaces) and one sending socket per medium, bound to its interface, so
  several media work at once. A message that arrives on two media is the same seq twice; the
  core drops the second copy.
* Resources: ``ip addr add/del``; then gratuitous ARP from an AF_PACKET socket: an unsolicited
  ARP reply broadcast and an ARP request for the address itself, ``arp_count`` rounds
  ``arp_interval`` apart (the first round at once).
* Other resources (resource.d scripts, LSB init scripts, OCF agents) and the groups' service
  checks: `hbtools.node.agents`, polled from the same loop.
* Fencing: an external command (``{node}`` is replaced by the node name); the core takes over
  only after it exits 0.
* Ping nodes: ICMP echo from a raw socket.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import random
import selectors
import shlex
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import uuid as uuidlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hbtools import arp, host
from hbtools.node.agents import AgentExecutor, CheckScheduler
from hbtools.node.config import ClusterConfig, IPAddrResource, Medium
from hbtools.node.core import (
    DROP_WINDOW,
    Event,
    Fence,
    Node,
    Output,
    ReleaseResource,
    Restart,
    Send,
    SendPing,
    TakeResource,
    shown,
)

SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
ETH_P_ARP = arp.ETHERTYPE
RECV_SIZE = 65535
RECV_BUFFER = 4 * 1024 * 1024
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
MAX_BATCH = 256  # datagrams read per wake-up, so timers are never starved
STOP_DRAIN_TIMEOUT = 300.0  # at shutdown, the groups' stops may take this long in all


class RunnerError(RuntimeError):
    """Something the host would not let us do; one line naming the cause."""


# ----------------------------------------------------------------------------- persisted identity


def load_identity(state_dir: Path, now_wall: float) -> tuple[bytes, int]:
    """The node's uuid (stable) and generation (epoch seconds at first start, +1 per start).

    Same files as Heartbeat (``hb_uuid``: 16 raw bytes, ``hb_generation``: decimal text), written
    before the first message goes out so a crash right after start still counts as a start.
    We run as root and the directory may be under /tmp: a group- or world-writable directory is
    refused (anyone could swap the files), and files are created without following symlinks.
    """
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(state_dir)
    except OSError as exc:
        raise RunnerError(f"cannot create state directory {state_dir}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise RunnerError(f"state directory {state_dir} is not a directory (a symlink?)")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RunnerError(f"state directory {state_dir} is writable by group or others "
                          f"(mode {stat.S_IMODE(info.st_mode):o}); use a private directory (chmod 700)")
    if info.st_uid != os.geteuid():
        raise RunnerError(f"state directory {state_dir} belongs to uid {info.st_uid}, not to us "
                          f"(uid {os.geteuid()}): its owner could swap the files and the status socket")
    uuid_path, gen_path = state_dir / "hb_uuid", state_dir / "hb_generation"
    try:
        raw = _read_private(uuid_path)
        if raw is None or len(raw) != 16:
            raw = uuidlib.uuid4().bytes
            _atomic_write(uuid_path, raw)
        generation = int(now_wall)
        text_raw = _read_private(gen_path)
        if text_raw is not None:
            text = text_raw.decode("ascii", "replace").strip()
            if not (text.isascii() and text.isdigit()) or len(text) > 20:
                raise RunnerError(f"{gen_path}: not a generation number: {text[:20]!r}")
            generation = int(text) + 1
        _atomic_write(gen_path, f"{generation}\n".encode())
    except OSError as exc:
        raise RunnerError(f"state directory {state_dir}: {exc.strerror}") from None
    return raw, generation


def _read_private(path: Path) -> bytes | None:
    """A state file's bytes (None if absent), refusing symlinks and anything but a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RunnerError(f"{path} is a symlink; refusing to follow it") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RunnerError(f"{path} is not a regular file")
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` through a fresh temporary file: O_EXCL|O_NOFOLLOW, so a planted file or
    symlink at the temporary name is never written through (it is removed and creation retried
    once; a second planted one is an error)."""
    tmp = path.with_name(path.name + ".tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o600)
    except FileExistsError:
        os.unlink(tmp)  # unlink removes a symlink itself, never its target
        fd = os.open(tmp, flags, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "0.00 0.00 0.00 1/1 1"


# ----------------------------------------------------------------------------- event log


class EventLog:
    """JSON lines with monotonic and wall times, plus a human line on stderr.

    A log write never ends the daemon: a full disk, ``/dev/full`` or a closed stderr pipe only
    counts the lost lines (``lost``); a broken stderr is pointed at /dev/null so the interpreter
    does not fail flushing it at exit. The file is opened without following a symlink.
    """

    def __init__(self, node: str, path: Path | None, stderr: IO[str] | None, wall_offset: float) -> None:
        self.node = node
        self.stderr = stderr
        self.wall_offset = wall_offset
        self.fd: int | None = None
        self.lost = 0
        if path is not None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
            try:
                self.fd = os.open(path, flags, 0o640)
                if not stat.S_ISREG(os.fstat(self.fd).st_mode) and not _is_char_device(self.fd):
                    os.close(self.fd)
                    self.fd = None
                    raise RunnerError(f"cannot open event log {path}: not a regular file")
                os.set_blocking(self.fd, True)
            except OSError as exc:
                why = "is a symlink (not followed)" if exc.errno == errno.ELOOP else exc.strerror
                raise RunnerError(f"cannot open event log {path}: {why}") from None

    def write(self, event: Event) -> None:
        wall = event.at + self.wall_offset
        if self.fd is not None:
            record = {"mono": round(event.at, 6), "wall": round(wall, 6), "daemon": self.node,
                      "kind": event.kind, "text": event.text, **event.data}
            try:
                os.write(self.fd, (json.dumps(record, default=str) + "\n").encode())
            except OSError:
                self.lost += 1
        if self.stderr is not None:
            stamp = time.strftime("%H:%M:%S", time.localtime(wall)) + f".{int(wall * 1000) % 1000:03d}"
            try:
                self.stderr.write(f"{stamp} hbtool daemon[{self.node}]: {shown(event.text, 4000)}\n")
                self.stderr.flush()
            except (OSError, ValueError):
                self.lost += 1
                self._abandon_stderr()

    def _abandon_stderr(self) -> None:
        broken, self.stderr = self.stderr, None
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if broken is not None and broken.fileno() == 2:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 2)
                os.close(null)

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def _is_char_device(fd: int) -> bool:
    """/dev/null and /dev/full are fine targets for --events (tests, throw-away runs)."""
    return stat.S_ISCHR(os.fstat(fd).st_mode)


# ----------------------------------------------------------------------------- interfaces


def _ip_json(args: list[str]) -> Any:
    return host.ip_json(args, error=RunnerError)


@dataclass
class Interface:
    name: str
    address: str
    prefixlen: int
    broadcast: str


def interface_info(name: str) -> Interface:
    try:
        links = _ip_json(["-4", "addr", "show", "dev", name])
    except RunnerError:
        raise RunnerError(f"interface {name} does not exist") from None
    for link in links:
        for a in link.get("addr_info", []):
            if a.get("family") == "inet":
                net = ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}").network
                return Interface(name, a["local"], int(a["prefixlen"]),
                                 a.get("broadcast") or str(net.broadcast_address))
    raise RunnerError(f"interface {name} has no IPv4 address")


def missing_interfaces(config: ClusterConfig, source: str = "ha.cf") -> list[str]:
    """One ``file:line: problem`` per medium whose interface does not exist in this namespace
    (``daemon --check`` reports them; the runner refuses to start instead of failing later)."""
    problems: list[str] = []
    for medium in config.ha.media:
        try:
            socket.if_nametoindex(medium.interface)
        except OSError:
            where = f"{source}:{medium.line}" if medium.line else source
            problems.append(f"{where}: interface {medium.interface} does not exist")
    return problems


def own_addresses() -> set[str]:
    out: set[str] = set()
    for link in _ip_json(["-4", "addr", "show"]):
        for a in link.get("addr_info", []):
            out.add(a["local"])
    return out


def resolve_resource(res: IPAddrResource) -> tuple[str, int, str]:
    """Address, prefix length and interface; missing parts come from the interface whose
    network holds the address (what Heartbeat's IPaddr does)."""
    address = ipaddress.IPv4Address(res.address)
    for link in _ip_json(["-4", "addr", "show"]):
        for a in link.get("addr_info", []):
            if a.get("family") != "inet" or a["local"] == res.address:
                continue
            net = ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}").network
            if (res.interface is None or res.interface == link["ifname"]) and address in net:
                return res.address, res.prefixlen or int(a["prefixlen"]), res.interface or link["ifname"]
    if res.interface is not None:
        return res.address, res.prefixlen or 32, res.interface
    raise RunnerError(
        f"no interface has a network holding {res.address}; write IPaddr::{res.address}/LEN/IFACE"
    )


# ----------------------------------------------------------------------------- ARP


def arp_frames(mac: bytes, ip: str) -> tuple[bytes, bytes]:
    """(unsolicited ARP reply, ARP request for our own address), both broadcast, sender = target = ip
    (built by the project's one ARP codec, `hbtools.arp`)."""
    return arp.announcement_frames(mac, ip)


def gratuitous_arp(frame: bytes) -> tuple[str, str] | None:
    """(sender MAC, address) of an Ethernet frame that is a gratuitous ARP (sender IP = target
    IP, as :func:`arp_frames` builds and Heartbeat's ``send_arp`` sends), else None."""
    return arp.gratuitous(frame)


@dataclass(order=True)
class _ArpRound:
    due: float
    remaining: int = field(compare=False)
    interface: str = field(compare=False)
    address: str = field(compare=False)


# ----------------------------------------------------------------------------- the runner


@dataclass
class RunnerOptions:
    node_name: str
    state_dir: Path
    events: Path | None = None
    quiet: bool = False
    fence_command: str | None = None
    fence_timeout: float = 60.0
    arp_count: int = 10
    arp_interval: float = 0.25
    seed: int | None = None
    release_stale: bool = True
    config_dir: Path | None = None  # reread on SIGHUP (None: SIGHUP only logs)
    insecure_authkeys: bool = False


STATUS_SOCKET = "hbtool.sock"  # in the state directory: `hbtool daemon status` asks here
STATUS_CLIENTS = 8  # status requests answered per wake-up
STATUS_MAX = 4 * 1024 * 1024  # bytes of a status answer `ask_status` reads at most


def status_socket_path(state_dir: Path) -> Path:
    return state_dir / STATUS_SOCKET


def ask_status(state_dir: Path, timeout: float = 5.0) -> dict[str, Any]:
    """The running daemon's `Node.report`, read from its status socket (one JSON object).
    Bounded in size (STATUS_MAX) and in time (``timeout`` in all, not per read), so whatever
    answers on that path cannot hang or fill the asking process."""
    path = status_socket_path(state_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + timeout
    try:
        sock.settimeout(timeout)
        sock.connect(str(path))
        chunks = []
        total = 0
        while total <= STATUS_MAX:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(errno.ETIMEDOUT, "no complete answer in time")
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > STATUS_MAX:
            raise RunnerError(f"{path}: the answer is over {STATUS_MAX} bytes; not a status report")
    except OSError as exc:
        raise RunnerError(f"no daemon answers on {path}: {exc.strerror or exc}") from None
    finally:
        sock.close()
    try:
        report = json.loads(b"".join(chunks))
    except ValueError:
        raise RunnerError(f"{path}: the answer is not a status report") from None
    if not isinstance(report, dict):
        raise RunnerError(f"{path}: the answer is not a status report")
    return report


class Runner:
    def __init__(self, config: ClusterConfig, options: RunnerOptions) -> None:
        self.config = config
        self.options = options
        self.mono = time.monotonic
        self.wall_offset = time.time() - time.monotonic()
        self.log = EventLog(options.node_name, options.events, None if options.quiet else sys.stderr,
                            self.wall_offset)
        self.node = self._new_node()
        self.sel = selectors.DefaultSelector()
        self.recv_socks: dict[tuple[str, int], socket.socket] = {}
        self.send_socks: list[tuple[socket.socket, list[tuple[str, int]]]] = []
        self.ping_sock: socket.socket | None = None
        self.ping_seq = 0
        self.arp_socks: dict[str, tuple[socket.socket, bytes]] = {}
        self.arp_rounds: list[_ArpRound] = []
        self.fence_proc: tuple[subprocess.Popen[bytes], str, float] | None = None
        self.fence_queue: list[str] = []
        self.stopping = False
        self.exit_code = 0
        self.reload_requested = False
        self.status_sock: socket.socket | None = None
        self.internal_errors = 0
        self._errors_reported = 0
        self._error_logged_at: float | None = None
        self._wake_r, self._wake_w = os.pipe()
        self.agents = AgentExecutor(self._take, self._release, self._log_io, self.mono)
        self.checks = self._check_scheduler()

    def _check_scheduler(self) -> CheckScheduler:
        """Each group's `check` (issue 17), run by worker threads; results go to the core."""
        return CheckScheduler({i: (g.check.check, g.check.interval)
                               for i, g in enumerate(self.config.groups) if g.check is not None},
                              self.mono, self._wake)

    def _log_io(self, kind: str, text: str, data: dict[str, Any]) -> None:
        self.log.write(Event(self.mono(), kind, text, data))

    def _new_node(self) -> Node:
        """A fresh core; every start (and every restart) is a new generation on disk first."""
        uuid, generation = load_identity(self.options.state_dir, time.time())
        return Node(self.config, self.options.node_name, uuid=uuid, generation=generation,
                    wall_offset=self.wall_offset, rng=random.Random(self.options.seed),
                    loadavg=read_loadavg, fencing=self.options.fence_command is not None)

    def _restart(self) -> None:
        """The core asked to start again (a healed partition): as 3.0.6 re-executing itself."""
        try:
            self.node = self._new_node()
        except RunnerError as exc:
            self.log.write(Event(self.mono(), "restart_failed", f"cannot restart: {exc}", {}))
            self.stopping = True
            return
        self.execute(self.node.start(self.mono()))

    # -- set-up

    def open(self) -> None:
        ha = self.config.ha
        mine = own_addresses()
        for medium in ha.media:
            iface = interface_info(medium.interface)
            recv = self._recv_socket(medium.interface, medium.port)
            self.send_socks.append(self._medium_socket(medium, iface, mine, recv))
        if ha.ping_nodes:
            try:
                self.ping_sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            except PermissionError:
                raise RunnerError("ping nodes need root (CAP_NET_RAW) for ICMP") from None
            self.ping_sock.setblocking(False)
            self.sel.register(self.ping_sock, selectors.EVENT_READ, "icmp")
        if self.options.release_stale:
            self._release_stale()

    def _recv_socket(self, interface: str, port: int) -> socket.socket:
        """The receiving socket of one medium's interface and port, bound to that interface
        (SO_BINDTODEVICE, as 3.0.6 does): a datagram that arrives on another interface is never
        seen. Media on the same interface and port share one socket."""
        key = (interface, port)
        if key in self.recv_socks:
            return self.recv_socks[key]
        try:
            recv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            recv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            recv.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            recv.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode())
            recv.bind(("0.0.0.0", port))
            # Room for a burst: a flood must not push the peers' heartbeats out of the queue
            # before the core has had a chance to drop the flood cheaply (FORCE: above rmem_max).
            with contextlib.suppress(OSError):
                recv.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECV_BUFFER)
        except PermissionError:
            raise RunnerError(f"binding UDP port {port} on {interface} needs root "
                              "(CAP_NET_BIND_SERVICE, CAP_NET_RAW)") from None
        except OSError as exc:
            raise RunnerError(f"cannot bind UDP port {port} on {interface}: {exc.strerror}") from None
        recv.setblocking(False)
        self.recv_socks[key] = recv
        self.sel.register(recv, selectors.EVENT_READ, "udp")
        return recv

    def _medium_socket(self, medium: Medium, iface: Interface, mine: set[str], recv: socket.socket
                       ) -> tuple[socket.socket, list[tuple[str, int]]]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, medium.interface.encode())
        except PermissionError:
            raise RunnerError(f"binding a socket to {medium.interface} needs root (CAP_NET_RAW)") from None
        targets: list[tuple[str, int]]
        if medium.kind == "bcast":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            targets = [(iface.broadcast, medium.port)]
        elif medium.kind == "mcast":
            assert medium.address is not None
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(iface.address))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, medium.ttl)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(medium.loop))
            mreq = socket.inet_aton(medium.address) + socket.inet_aton(iface.address)
            with contextlib.suppress(OSError):  # already joined by an earlier medium
                recv.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            targets = [(medium.address, medium.port)]
        else:
            assert medium.address is not None
            # A shared ha.cf lists every node's address; Heartbeat skips its own.
            targets = [] if medium.address in mine else [(medium.address, medium.port)]
        sock.bind((iface.address if medium.kind == "ucast" else "0.0.0.0", 0))
        sock.setblocking(False)
        return sock, targets

    def _release_stale(self) -> None:
        """A crashed earlier run may have left our addresses behind: remove them before starting,
        so the cluster has one owner (the real 3.0.6 leaves them, see the notes)."""
        mine = own_addresses()
        for group in self.config.groups:
            for res in group.resources:
                if isinstance(res, IPAddrResource) and res.address in mine:
                    address, prefixlen, iface = resolve_resource(res)
                    self._ip(["addr", "del", f"{address}/{prefixlen}", "dev", iface], check=False)
                    self.log.write(Event(self.mono(), "stale_address",
                                         f"removed {address} left on {iface} by an earlier run",
                                         {"address": address, "interface": iface}))

    # -- main loop

    def request_stop(self, signum: int = signal.SIGTERM, *_: object) -> None:
        """SIGTERM exits 0, SIGINT 130 (the shell's convention); both stop cleanly."""
        self.stopping = True
        if signum == signal.SIGINT:
            self.exit_code = 130
        self._wake()

    def request_reload(self, *_: object) -> None:
        """SIGHUP: reread the configuration, as Heartbeat does (handled in the loop)."""
        self.reload_requested = True
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)
        os.set_blocking(self._wake_r, False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self.open()
        self._open_status_socket()
        self.execute(self.node.start(self.mono()))
        while not self.stopping:
            if self.reload_requested:
                self.reload_requested = False
                self._reload()
            now = self.mono()
            deadlines = [t for t in (self.node.next_timer(),) if t is not None]
            if self.arp_rounds:
                deadlines.append(min(self.arp_rounds).due)
            if self.fence_proc is not None:
                deadlines.append(now + 0.02)
            deadlines += [t for t in (self.agents.next_due(), self.checks.next_due()) if t is not None]
            timeout = max(0.0, min(deadlines) - now) if deadlines else 1.0
            for key, _ in self.sel.select(min(timeout, 1.0)):
                if key.data == "udp":
                    self._read_udp(key.fileobj)  # type: ignore[arg-type]
                elif key.data == "icmp":
                    self._read_icmp()
                elif key.data == "status":
                    self._answer_status()
                else:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 64)
            now = self.mono()
            self._poll_fence(now)
            self._arp_due(now)
            self._poll_services()
            nt = self.node.next_timer()
            if nt is not None and nt <= now:
                self.execute(self.node.tick(now))
        self.execute(self.node.shutdown(self.mono()))
        self.agents.drain(STOP_DRAIN_TIMEOUT)  # the groups' stops, before we exit
        self.close()
        return self.exit_code

    def _poll_services(self) -> None:
        """Agent steps that finished (a failed group start or stop goes to the core) and check
        results."""
        for index, operation, detail, _still_running in self.agents.poll():
            if index < len(self.node.groups):
                self.execute(self.node.resource_failed(index, operation, detail, self.mono()))
        for index, ok, reason in self.checks.poll():
            if index < len(self.node.groups):
                self.execute(self.node.check_result(index, ok, reason, self.mono()))

    # -- SIGHUP

    def _reload(self) -> None:
        """Reread ha.cf, authkeys, haresources. A bad new configuration is logged and the running
        one kept (3.0.6: "Config errors: ... NOT restarted"); new keys alone are swapped in
        ("Rereading authentication file."); a changed ha.cf or haresources restarts the node
        with it (a clean stop, then a new generation); nothing changed: "Configuration unchanged"."""
        from hbtools.node.config import ConfigError, load_config

        now = self.mono()
        if self.options.config_dir is None:
            self.log.write(Event(now, "reload", "SIGHUP: no configuration directory to reread", {}))
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                new = load_config(self.options.config_dir, insecure_authkeys=self.options.insecure_authkeys)
            if self.options.node_name not in new.ha.nodes:
                raise ConfigError(str(self.options.config_dir / "ha.cf"), None,
                                  f"node {self.options.node_name} is no longer a 'node'")
            problems = missing_interfaces(new, str(self.options.config_dir / "ha.cf"))
            if problems:
                raise RunnerError(problems[0])
        except (ConfigError, RunnerError) as exc:
            self.log.write(Event(now, "reload_failed", f"SIGHUP: configuration errors, keeping the "
                                 f"running one: {exc}", {"error": str(exc)}))
            return
        same_cf = (_comparable(new.ha) == _comparable(self.config.ha)
                   and [(g.home, g.resources) for g in new.groups]
                   == [(g.home, g.resources) for g in self.config.groups])
        if same_cf and new.keys.keys == self.config.keys.keys and new.keys.active == self.config.keys.active:
            self.log.write(Event(now, "reload", "SIGHUP: configuration unchanged", {}))
            return
        if same_cf:
            self.config.keys = new.keys  # the core signs and checks with config.keys
            self.log.write(Event(now, "reload", "SIGHUP: rereading authentication file", {}))
            return
        self.log.write(Event(now, "reload", "SIGHUP: configuration changed; restarting with it", {}))
        self.execute(self.node.shutdown(now))
        self._close_sockets()
        self.config = new
        self.checks = self._check_scheduler()
        self.open()
        self._restart()


    def _read_udp(self, sock: socket.socket) -> None:
        for _ in range(MAX_BATCH):
            try:
                data, addr = sock.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            self._receive_one(data, addr)

    def _receive_one(self, data: bytes, addr: tuple[str, int]) -> None:
        """Feed one datagram to the core. Nothing from the network may end the daemon: an
        unexpected error (a bug in the core) drops this datagram and is logged, at most once per
        DROP_WINDOW with the number of further errors, and the loop goes on."""
        now = self.mono()
        try:
            outputs = self.node.receive(data, addr, now)
        except Exception as exc:  # noqa: BLE001 - the rule: log, drop the datagram, go on
            self.internal_errors += 1
            if self._error_logged_at is None or now - self._error_logged_at >= DROP_WINDOW:
                more = self.internal_errors - self._errors_reported - 1
                self._error_logged_at, self._errors_reported = now, self.internal_errors
                self.log.write(Event(now, "internal_error",
                                     f"datagram from {shown(addr[0])} dropped: internal error "
                                     f"{type(exc).__name__}: {shown(str(exc))}"
                                     + (f" ({more} more since the last report)" if more > 0 else ""),
                                     {"addr": addr[0], "error": type(exc).__name__,
                                      "count": self.internal_errors}))
            return
        self.execute(outputs)

    def _read_icmp(self) -> None:
        assert self.ping_sock is not None
        for _ in range(MAX_BATCH):
            try:
                data, addr = self.ping_sock.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            ihl = (data[0] & 0x0F) * 4
            if len(data) >= ihl + 8 and data[ihl] == 0:  # echo reply
                ident = struct.unpack("!H", data[ihl + 4: ihl + 6])[0]
                if ident == os.getpid() & 0xFFFF:
                    self.execute(self.node.ping_reply(addr[0], self.mono()))

    # -- outputs

    def execute(self, outputs: list[Output]) -> None:
        for item in outputs:
            if isinstance(item, Send):
                self._send(item.data)
            elif isinstance(item, Event):
                self.log.write(item)
            elif isinstance(item, TakeResource | ReleaseResource):
                # in order, one agent at a time (hbtools.resources.GroupAction); addresses at once
                index = self.node.groups.index(item.group)
                self.agents.submit(index, item.group, "start" if isinstance(item, TakeResource) else "stop")
                self._poll_services()
            elif isinstance(item, Fence):
                self._start_fence(item.node)
            elif isinstance(item, SendPing):
                self._ping(item.address)
            elif isinstance(item, Restart):
                self._restart()

    def _send(self, data: bytes) -> None:
        for sock, targets in self.send_socks:
            for target in targets:
                try:
                    sock.sendto(data, target)
                except OSError as exc:
                    self.log.write(Event(self.mono(), "send_error", f"send to {target[0]} failed: {exc}",
                                         {"target": target[0]}))

    def _ip(self, args: list[str], check: bool = True) -> bool:
        try:
            res = host.run(["ip", *args], timeout=10, check=False, error=RunnerError)
        except RunnerError as exc:
            self.log.write(Event(self.mono(), "ip_error", str(exc), {"args": args}))
            return False
        if res.returncode != 0 and check:
            problem = f"`ip {' '.join(args)}` failed: {res.stderr.strip()}"
            self.log.write(Event(self.mono(), "ip_error", problem, {"args": args}))
        return res.returncode == 0

    def _take(self, res: IPAddrResource) -> bool:
        address, prefixlen, iface = resolve_resource(res)
        if not self._ip(["addr", "replace", f"{address}/{prefixlen}", "dev", iface]):
            return False
        if self.options.arp_count > 0:
            self._arp_round(iface, address)
            if self.options.arp_count > 1:
                self.arp_rounds.append(_ArpRound(self.mono() + self.options.arp_interval,
                                                 self.options.arp_count - 1, iface, address))
        return True

    def _release(self, res: IPAddrResource) -> bool:
        address, prefixlen, iface = resolve_resource(res)
        self.arp_rounds = [r for r in self.arp_rounds if r.address != address]
        self._ip(["addr", "del", f"{address}/{prefixlen}", "dev", iface], check=False)
        return address not in own_addresses()

    def _arp_round(self, iface: str, address: str) -> None:
        entry = self.arp_socks.get(iface)
        if entry is None:
            try:
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
                sock.bind((iface, ETH_P_ARP))
            except PermissionError:
                raise RunnerError("gratuitous ARP needs root (CAP_NET_RAW)") from None
            mac = sock.getsockname()[4][:6]
            entry = (sock, mac)
            self.arp_socks[iface] = entry
        sock, mac = entry
        for frame in arp_frames(mac, address):
            try:
                sock.send(frame)
            except OSError as exc:
                self.log.write(Event(self.mono(), "arp_error", f"ARP on {iface} failed: {exc}", {}))

    def _arp_due(self, now: float) -> None:
        for r in [r for r in self.arp_rounds if r.due <= now]:
            self._arp_round(r.interface, r.address)
            r.remaining -= 1
            r.due += self.options.arp_interval
            if r.remaining <= 0:
                self.arp_rounds.remove(r)

    def _ping(self, address: str) -> None:
        if self.ping_sock is None:
            return
        self.ping_seq = (self.ping_seq + 1) & 0xFFFF
        header = struct.pack("!BBHHH", 8, 0, 0, os.getpid() & 0xFFFF, self.ping_seq)
        payload = b"hbtools-ping"
        checksum = _icmp_checksum(header + payload)
        packet = struct.pack("!BBHHH", 8, 0, checksum, os.getpid() & 0xFFFF, self.ping_seq) + payload
        with contextlib.suppress(OSError):  # unreachable is exactly what ping nodes detect
            self.ping_sock.sendto(packet, (address, 0))

    def _start_fence(self, node: str) -> None:
        if self.fence_proc is not None:
            self.fence_queue.append(node)
            return
        assert self.options.fence_command is not None
        cmd = [part.replace("{node}", node) for part in shlex.split(self.options.fence_command)]
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
        except OSError as exc:
            detail = f"cannot run {cmd[0]}: {exc.strerror}"
            self.execute(self.node.fence_result(node, False, self.mono(), detail))
            return
        self.fence_proc = (proc, node, self.mono() + self.options.fence_timeout)

    def _poll_fence(self, now: float) -> None:
        if self.fence_proc is None:
            return
        proc, node, deadline = self.fence_proc
        code = proc.poll()
        if code is None and now < deadline:
            return
        if code is None:
            proc.kill()
            proc.wait(timeout=5)
            detail = f"timed out after {self.options.fence_timeout:g} s"
            ok = False
        else:
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            ok = code == 0
            detail = f"exit {code}" + (f": {err.splitlines()[-1]}" if err else "")
        if proc.stderr:
            proc.stderr.close()
        self.fence_proc = None
        self.execute(self.node.fence_result(node, ok, now, detail))
        if self.fence_queue:
            self._start_fence(self.fence_queue.pop(0))

    # -- status socket

    def _open_status_socket(self) -> None:
        """A unix socket in the (private, checked) state directory; a stale one from a crashed
        run is replaced, anything else at that name (a planted symlink, a file) is an error.
        Mode 600: root asks."""
        path = status_socket_path(self.options.state_dir)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISSOCK(info.st_mode):
                raise RunnerError(f"{path} exists and is not a socket; remove it")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.settimeout(1.0)
            try:
                probe.connect(str(path))
            except OSError:
                os.unlink(path)  # stale: nobody listens
            else:
                raise RunnerError(f"another daemon answers on {path}; is it already running?")
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket file is born 0600: no window with a wider mode
        try:
            sock.bind(str(path))
        except OSError as exc:
            sock.close()
            raise RunnerError(f"cannot create status socket {path}: {exc.strerror}") from None
        finally:
            os.umask(old)
        sock.listen(STATUS_CLIENTS)
        sock.setblocking(False)
        self.status_sock = sock
        self.sel.register(sock, selectors.EVENT_READ, "status")

    def _answer_status(self) -> None:
        assert self.status_sock is not None
        for _ in range(STATUS_CLIENTS):
            try:
                conn, _ = self.status_sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            with conn:
                conn.settimeout(0.5)  # a client that does not read cannot stall the node long
                with contextlib.suppress(OSError):
                    report = self.node.report(self.mono())
                    conn.sendall(json.dumps(report, default=str).encode())

    def _close_sockets(self) -> None:
        # ARP rounds still pending are dropped: the addresses are gone after shutdown.
        for sock in [*self.recv_socks.values(), self.ping_sock, *(s for s, _ in self.send_socks),
                     *(s for s, _ in self.arp_socks.values())]:
            if sock is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.unregister(sock)
                with contextlib.suppress(OSError):
                    sock.close()
        self.recv_socks, self.send_socks, self.arp_socks = {}, [], {}
        self.ping_sock = None
        self.arp_rounds = []

    def close(self) -> None:
        self._close_sockets()
        if self.status_sock is not None:
            with contextlib.suppress(OSError):
                self.status_sock.close()
            with contextlib.suppress(OSError):
                os.unlink(status_socket_path(self.options.state_dir))
        if self.fence_proc is not None:
            self.fence_proc[0].kill()
        with contextlib.suppress(OSError):
            os.close(self._wake_r)
            os.close(self._wake_w)
        self.log.close()


def _comparable(ha: Any) -> Any:
    """HaConfig without its warnings and line numbers: what a SIGHUP compares."""
    fields = dict(vars(ha))
    fields.pop("warnings", None)
    fields["media"] = [(m.kind, m.interface, m.address, m.port, m.ttl, m.loop) for m in ha.media]
    return fields


def _icmp_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF
