"""The thin I/O shell of the fault proxy: netfilter rules, the NFQUEUE loop, raw copies.

Everything that decides lives in `faults.engine`; this module only moves packets between the
kernel and the engine, keeps time, and puts the host back the way it found it.

Rules live in a table (nftables) or chains (iptables) of their own, named after the queue
number, so that removing them can never touch anything else and ``hbtool fault cleanup``
finds leftovers of a crashed proxy by name alone. Every queue rule has ``bypass``: when no
process listens on the queue, the kernel lets the packets through, so a dead proxy never
black-holes the cluster. Copies made by ``duplicate`` leave through a raw socket whose
packets carry `BYPASS_MARK`, which the rules let pass without queueing them again.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import mmap
import os
import random
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from hbtools.faults.engine import COUNTERS, Copy, Engine, Output, Verdict

from hbtools import host

TABLE_PREFIX = "hbtools_fault"
CHAIN_PREFIX = "HBTFAULT"
BYPASS_MARK = 0x4842  # "HB": our own copies, never queued again
DEFAULT_QUEUE = 6940
DEFAULT_PORTS = (694, 5404, 5405)
NF_INET_LOCAL_IN = 1
NF_INET_LOCAL_OUT = 3
CAP_NET_ADMIN = 12
CLONE_NEWNET = 0x40000000
SO_MARK = 36


class FaultError(RuntimeError):
    """Something the proxy cannot do here; one line that names the cause and the fix."""


# ----------------------------------------------------------------------------- preconditions


def has_cap_net_admin() -> bool:
    """Whether this process holds CAP_NET_ADMIN (root usually does; a container may not)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except OSError:
        pass
    return os.geteuid() == 0


def require_privilege() -> None:
    if not has_cap_net_admin():
        raise FaultError("hbtool fault needs CAP_NET_ADMIN (run it as root) to install "
                         "netfilter rules and bind an NFQUEUE")


def enter_netns(name: str) -> None:
    """Move this process into the named network namespace (``ip netns`` style)."""
    path = Path("/run/netns") / name
    if not path.exists():
        raise FaultError(f"no network namespace {name!r} (not in /run/netns; see `ip netns list`)")
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise FaultError(f"cannot enter network namespace {name!r}: {os.strerror(err)} "
                             "(needs CAP_SYS_ADMIN)")
    finally:
        os.close(fd)


def _run(cmd: Sequence[str], *, input: str | None = None, check: bool = True,
         ) -> subprocess.CompletedProcess[str]:
    return host.run(cmd, input=input, check=check, timeout=20, error=FaultError)


def set_realtime(priority: int) -> None:
    """SCHED_FIFO for the proxy, so a busy neighbour on the same core cannot make every
    queued packet wait for the end of its time slice (milliseconds, on a loaded host)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, ValueError) as exc:
        raise FaultError(f"cannot switch to SCHED_FIFO priority {priority}: {exc} "
                         "(needs CAP_SYS_NICE; priorities are 1-99)") from None


local_addresses = host.local_addresses


# ----------------------------------------------------------------------------- rule installers


class Backend:
    """Installs and removes exactly our own rules."""

    name = ""

    def install(self, queue: int, ports: Sequence[int], directions: Iterable[str]) -> str:
        raise NotImplementedError

    def stop_queueing(self, queue: int) -> None:
        """Stop sending packets to the queue but keep the hooks registered.

        Unregistering a netfilter hook makes the kernel drop every packet still queued
        from it, so the proxy first stops new packets, drains the queue, and only then
        calls `remove`.
        """
        raise NotImplementedError

    def remove(self, queue: int) -> None:
        raise NotImplementedError

    def cleanup(self, force: bool = False) -> list[str]:
        raise NotImplementedError


class NftBackend(Backend):
    name = "nft"

    @staticmethod
    def table(queue: int) -> str:
        return f"{TABLE_PREFIX}_q{queue}"

    def _tables(self) -> list[str]:
        res = _run(["nft", "list", "tables"])
        return [line.split()[2] for line in res.stdout.splitlines()
                if line.startswith("table inet ") and line.split()[2].startswith(TABLE_PREFIX)]

    def install(self, queue: int, ports: Sequence[int], directions: Iterable[str]) -> str:
        table = self.table(queue)
        if table in self._tables():
            raise FaultError(f"table inet {table} exists: another fault proxy uses queue {queue} "
                             "here (use --queue, or `hbtool fault cleanup` after a crash)")
        port_set = ", ".join(str(p) for p in sorted(set(ports)))
        lines = [f"add table inet {table}"]
        for direction in directions:
            hook = "input" if direction == "in" else "output"
            lines += [
                f"add chain inet {table} {hook} {{ type filter hook {hook} priority -150; "
                "policy accept; }",
                f"add rule inet {table} {hook} meta mark {BYPASS_MARK:#x} return",
                f"add rule inet {table} {hook} meta l4proto udp udp dport {{ {port_set} }} "
                f"queue num {queue} bypass",
            ]
        res = _run(["nft", "-f", "-"], input="\n".join(lines) + "\n", check=False)
        if res.returncode != 0:
            with contextlib.suppress(FaultError):
                _run(["nft", "delete", "table", "inet", table], check=False)
            err = res.stderr.strip().replace("\n", " | ")
            if "queue" in err.lower() or "No such file" in err or "not supported" in err.lower():
                raise FaultError("the kernel refused the NFQUEUE rule (no nft_queue / "
                                 f"nfnetlink_queue support?): {err}")
            raise FaultError(f"nft could not install table inet {table}: {err}")
        _write_state(queue, {"backend": self.name})
        return f"nft table inet {table}"

    def stop_queueing(self, queue: int) -> None:
        table = self.table(queue)
        if table in self._tables():
            for hook in ("input", "output"):
                _run(["nft", "flush", "chain", "inet", table, hook], check=False)

    def remove(self, queue: int) -> None:
        table = self.table(queue)
        if table in self._tables():
            _run(["nft", "delete", "table", "inet", table])
        _remove_state(queue)

    def cleanup(self, force: bool = False) -> list[str]:
        removed = []
        for table in self._tables():
            queue = int(table.rsplit("_q", 1)[1]) if table.rsplit("_q", 1)[-1].isdigit() else -1
            if not force and live_owner(queue) is not None:
                continue
            _run(["nft", "delete", "table", "inet", table])
            _remove_state(queue)
            removed.append(f"nft table inet {table}")
        return removed


class IptablesBackend(Backend):
    """A chain per hook, jumped to from INPUT/OUTPUT of the filter table.

    Used when nft's own ``queue`` expression is missing (kernels without CONFIG_NFT_QUEUE,
    like this project's CI, still have the xtables NFQUEUE target that iptables-nft uses).
    iptables-nft creates ``table ip filter`` on first use; when it was our doing (recorded in
    a state file, so that ``cleanup`` after a crash knows too) and nothing else has put a
    rule in it, it is deleted again, so the ruleset ends exactly as it was.
    """

    name = "iptables"

    def __init__(self, binary: str = "iptables") -> None:
        self.binary = binary

    @staticmethod
    def chain(queue: int, hook: str) -> str:
        return f"{CHAIN_PREFIX}-{hook[:3].upper()}-{queue}"

    def _ipt(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([self.binary, "-w", "5", *args], check=check)

    def _save(self) -> str:
        return _run([f"{self.binary}-save", "-t", "filter"], check=False).stdout

    def _chains(self) -> list[str]:
        return [line[1:].split()[0] for line in self._save().splitlines()
                if line.startswith(f":{CHAIN_PREFIX}-")]

    def _filter_table_exists(self) -> bool:
        if shutil.which("nft"):
            res = _run(["nft", "list", "tables"], check=False)
            return "table ip filter" in res.stdout.splitlines()
        return bool(self._save().strip())

    def _base_chains(self) -> set[str]:
        """The base chains of ``table ip filter`` as nft sees them (empty: no table or no nft)."""
        if not shutil.which("nft"):
            return set()
        res = _run(["nft", "list", "table", "ip", "filter"], check=False)
        return {line.split()[1] for line in res.stdout.splitlines()
                if line.strip().startswith("chain ")} if res.returncode == 0 else set()

    def install(self, queue: int, ports: Sequence[int], directions: Iterable[str]) -> str:
        directions = list(directions)
        created = not self._filter_table_exists() and not _state_queues()
        existing = self._chains()
        made: list[str] = []
        for direction in directions:
            chain = self.chain(queue, "INPUT" if direction == "in" else "OUTPUT")
            if chain in existing:
                raise FaultError(f"iptables chain {chain} exists: another fault proxy uses "
                                 f"queue {queue} here (`hbtool fault cleanup` after a crash)")
        others = sorted({int(c.rsplit("-", 1)[1]) for c in existing
                         if c.rsplit("-", 1)[-1].isdigit()} - {queue})
        if others:
            # An NFQUEUE verdict ends the traversal of the table: the proxy whose jump comes
            # first in INPUT/OUTPUT would be the only one to see the packets (issue 12).
            raise FaultError(f"another fault proxy (queue {others[0]}) has its rules in this "
                             "network namespace; with the iptables backend a second one would "
                             "shadow it: put all the rules in one proxy (`hbtool fault cleanup` "
                             "after a crash)")
        base_before = self._base_chains()
        hooks = ["INPUT" if d == "in" else "OUTPUT" for d in directions]
        _write_state(queue, {"backend": self.name, "created_filter_table": created,
                             "created_base_chains": [h for h in hooks if h not in base_before]
                             if base_before else []})
        try:
            for direction in directions:
                hook = "INPUT" if direction == "in" else "OUTPUT"
                chain = self.chain(queue, hook)
                self._ipt("-N", chain)
                made.append(chain)
                self._ipt("-A", chain, "-m", "mark", "--mark", str(BYPASS_MARK), "-j", "RETURN")
                plist = ",".join(str(p) for p in sorted(set(ports)))
                res = self._ipt("-A", chain, "-p", "udp", "-m", "multiport", "--dports", plist,
                                "-j", "NFQUEUE", "--queue-num", str(queue), "--queue-bypass",
                                check=False)
                if res.returncode != 0:
                    raise FaultError("iptables refused the NFQUEUE rule (no NFQUEUE target in "
                                     f"this kernel?): {res.stderr.strip()}")
                self._ipt("-I", hook, "1", "-j", chain)
        except FaultError:
            self.remove(queue, only=made)
            raise
        return "iptables chains " + ", ".join(made)

    def _drop_chain(self, chain: str) -> None:
        hook = "INPUT" if "-INP-" in chain else "OUTPUT"
        for _ in range(10):
            if self._ipt("-D", hook, "-j", chain, check=False).returncode != 0:
                break
        self._ipt("-F", chain, check=False)
        self._ipt("-X", chain, check=False)

    def _drop_filter_table_if_ours(self, queue: int) -> None:
        state = _read_state(queue)
        _remove_state(queue)
        for hook in state.get("created_base_chains", []):
            # iptables-nft made this base chain in a table that existed before: take it out
            # again if nothing else has put a rule in it.
            if hook in ("INPUT", "OUTPUT") and not any(
                    line.startswith(f"-A {hook} ") for line in self._save().splitlines()):
                _run(["nft", "delete", "chain", "ip", "filter", hook], check=False)
        if not state.get("created_filter_table") or not shutil.which("nft"):
            return
        others = _state_queues()
        if others:
            # Another proxy here still uses the table: the duty to remove it passes on.
            heir = _read_state(others[0])
            heir["created_filter_table"] = True
            _state_path(others[0]).write_text(json.dumps(heir))
            return
        saved = self._save().splitlines()
        chains = [line[1:].split() for line in saved if line.startswith(":")]
        untouched = (
            not any(line.startswith("-A ") for line in saved)
            and all(c[0] in ("INPUT", "FORWARD", "OUTPUT") and c[1] == "ACCEPT" for c in chains)
        )
        if untouched:
            _run(["nft", "delete", "table", "ip", "filter"], check=False)

    def stop_queueing(self, queue: int) -> None:
        for chain in self._chains():
            if chain.endswith(f"-{queue}"):
                hook = "INPUT" if "-INP-" in chain else "OUTPUT"
                for _ in range(10):
                    if self._ipt("-D", hook, "-j", chain, check=False).returncode != 0:
                        break

    def remove(self, queue: int, only: Sequence[str] | None = None) -> None:
        for chain in self._chains():
            if (only is None and chain.endswith(f"-{queue}")) or (only and chain in only):
                self._drop_chain(chain)
        self._drop_filter_table_if_ours(queue)

    def cleanup(self, force: bool = False) -> list[str]:
        removed = []
        queues = set()
        for chain in self._chains():
            if not force and live_owner(int(chain.rsplit("-", 1)[1])) is not None:
                continue
            self._drop_chain(chain)
            removed.append(f"iptables chain {chain}")
            queues.add(int(chain.rsplit("-", 1)[1]))
        for queue in sorted(queues | set(_state_queues())):
            if force or live_owner(queue) is None:
                self._drop_filter_table_if_ours(queue)
        return removed


#: Where the iptables backend remembers what it created, per network namespace and queue.
STATE_DIR = Path("/run/hbtools-fault")


def _state_path(queue: int) -> Path:
    return STATE_DIR / f"net{os.stat('/proc/self/ns/net').st_ino}-q{queue}.json"


_start_time = host.process_start_time


def _write_state(queue: int, state: dict[str, Any]) -> None:
    """Record what we installed and who we are, so `cleanup` can tell a crash from a run."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    owner = {"pid": os.getpid(), "start": _start_time(os.getpid())}
    _state_path(queue).write_text(json.dumps({**state, **owner}))


def live_owner(queue: int) -> int | None:
    """The pid of the running proxy that installed ``queue``'s rules here, if it still runs
    (pid and start time both checked, so a reused pid does not count)."""
    state = _read_state(queue)
    pid = state.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return None
    start = _start_time(pid)
    return pid if start is not None and start == state.get("start") else None


def _read_state(queue: int) -> dict[str, Any]:
    try:
        return dict(json.loads(_state_path(queue).read_text()))
    except (OSError, ValueError):
        return {}


def _remove_state(queue: int) -> None:
    with contextlib.suppress(OSError):
        _state_path(queue).unlink()


def recorded_queues() -> list[int]:
    """Queues with a state record in this network namespace (live or crashed proxies)."""
    return _state_queues()


def _state_queues() -> list[int]:
    """Queues of proxies in this network namespace that have recorded state."""
    prefix = f"net{os.stat('/proc/self/ns/net').st_ino}-q"
    if not STATE_DIR.is_dir():
        return []
    return [int(p.stem[len(prefix):]) for p in STATE_DIR.glob(f"{prefix}*.json")
            if p.stem[len(prefix):].isdigit()]


class AutoBackend(Backend):
    """nft's own queue expression where the kernel has it, else iptables' NFQUEUE target."""

    name = "auto"

    def __init__(self) -> None:
        self.chosen: Backend | None = None

    def install(self, queue: int, ports: Sequence[int], directions: Iterable[str]) -> str:
        directions = list(directions)
        first_error: FaultError | None = None
        if shutil.which("nft"):
            try:
                self.chosen = NftBackend()
                return self.chosen.install(queue, ports, directions)
            except FaultError as exc:
                if "exists" in str(exc):
                    raise
                first_error = exc
        if shutil.which("iptables"):
            self.chosen = IptablesBackend()
            return self.chosen.install(queue, ports, directions)
        raise first_error or FaultError("neither nft nor iptables is installed "
                                        "(Debian packages nftables, iptables)")

    def stop_queueing(self, queue: int) -> None:
        if self.chosen is not None:
            self.chosen.stop_queueing(queue)

    def remove(self, queue: int) -> None:
        if self.chosen is not None:
            self.chosen.remove(queue)

    def cleanup(self, force: bool = False) -> list[str]:
        return cleanup(force=force)


def choose_backend(name: str = "auto") -> Backend:
    """``auto``: nft's queue if the kernel has it, else iptables (-nft or legacy)."""
    if name == "nft":
        if not shutil.which("nft"):
            raise FaultError("the nft program is not installed (Debian package nftables)")
        return NftBackend()
    if name == "auto":
        return AutoBackend()
    if shutil.which("iptables"):
        return IptablesBackend()
    raise FaultError("iptables is not installed (Debian package iptables)")


def cleanup(backend: Backend | None = None, *, force: bool = False) -> list[str]:
    """Remove the rules fault proxies left behind here (found by our names only); rules of
    a proxy that is still running are kept unless ``force``."""
    if backend is not None:
        return backend.cleanup(force)
    removed: list[str] = []
    if shutil.which("nft"):
        removed += NftBackend().cleanup(force)
    if shutil.which("iptables-save"):
        with contextlib.suppress(FaultError):
            removed += IptablesBackend().cleanup(force)
    return removed


# ----------------------------------------------------------------------------- the watchdog

#: Seconds without a verdict (or a turn of the loop) before the watchdog takes the queue rules
#: out: well under any Heartbeat deadtime/warntime (>= 2 s in practice), well over the loop's
#: longest wait (0.25 s).
WATCHDOG_BOUND = 1.0


class Watchdog:
    """A child process that takes the queue rules out when the proxy stops giving verdicts.

    Why a process: a stopped proxy (SIGSTOP, a debugger) or one stuck in a callback runs no
    thread of its own, yet the kernel keeps queueing packets for it: ``--queue-bypass`` only
    helps when nobody is bound. The child shares one page with the proxy: the time of the last
    beat and a state byte. When beats stall past ``bound`` it runs ``on_stall`` (stop queueing:
    traffic flows unfaulted) and marks the page, so the proxy, once it runs again, ends its run
    and removes its rules. It exits when the proxy closes it or is gone; it never reads the queue.
    """

    RUNNING, CLOSING, TRIPPED = 0, 1, 2

    def __init__(self, bound: float, on_stall: Callable[[], None]) -> None:
        self.bound = bound
        self.on_stall = on_stall
        self._page = mmap.mmap(-1, 16)  # anonymous and shared with the child across fork
        self.pid: int | None = None

    def start(self) -> None:
        """Fork the watcher (before the queue is bound, so the child holds no queue socket)."""
        self.beat()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the proxy's code
            code = 0
            # Drop every inherited descriptor first. Forked from one thread of a process that
            # runs other work (e.g. a chaos step's second session, mid `subprocess.run`), the
            # child would otherwise hold the write end of a sibling's pipe, and the sibling's
            # `nft`/`iptables` call would wait for EOF until this child exits (the whole fault
            # window): sessions of one step then became ready ~8 s apart.
            os.closerange(3, 1 << 16)
            try:
                for sig in (signal.SIGINT, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                self._watch(parent)
            except BaseException:  # noqa: BLE001 - a child must not unwind into the parent's code
                code = 1
            os._exit(code)
        self.pid = pid

    def beat(self) -> None:
        struct.pack_into("d", self._page, 0, time.monotonic())

    @property
    def tripped(self) -> bool:
        return self._page[8] == self.TRIPPED

    def close(self) -> None:
        """Tell the child to go and reap it (idempotent)."""
        if self.pid is None:
            return
        if self._page[8] != self.TRIPPED:
            self._page[8] = self.CLOSING
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self.pid = None

    def _watch(self, parent: int) -> None:
        step = min(0.05, self.bound / 10)
        for _ in range(1 << 62):  # bounded in count; ends by close, trip or the parent's exit
            time.sleep(step)
            if os.getppid() != parent or self._page[8] != self.RUNNING:
                return
            last = struct.unpack_from("d", self._page, 0)[0]
            if time.monotonic() - last > self.bound:
                self._page[8] = self.TRIPPED
                self.on_stall()
                return


# ----------------------------------------------------------------------------- the loop


@dataclass
class RunResult:
    total: int
    elapsed: float
    reason: str


class Proxy:
    """Binds the queue and runs the engine until the deadline or a signal."""

    def __init__(self, engine: Engine, queue: int, *, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.engine = engine
        self.queue = queue
        self.clock = clock
        self._pending: dict[int, Any] = {}
        self._raw: socket.socket | None = None
        self._stop: str | None = None
        self._passthrough = False
        self.copy_errors = 0
        #: Packets the engine raised on (a bug): accepted as they came, never the end of the run.
        self.engine_errors = 0
        self.watchdog: Watchdog | None = None
        #: Time from a packet's arrival in the callback to its verdict, for packets judged
        #: at once (held ones are not counted): the proxy's own cost per packet. A bounded
        #: sample, not every time (8 B a packet was ~6.9 GB a day at 10k/s).
        self.verdict_ns = LatencySample()

    def _on_packet(self, pkt: Any) -> None:
        if self._passthrough:
            pkt.accept()
            return
        began = time.perf_counter_ns()
        direction = "in" if pkt.hook == NF_INET_LOCAL_IN else "out"
        try:
            outputs = self.engine.receive(pkt.id, pkt.get_payload(), direction, self.clock())
        except Exception:  # noqa: BLE001 - fail open: a packet the engine cannot judge passes
            self.engine_errors += 1
            pkt.accept()
            return
        finally:
            if self.watchdog is not None:
                self.watchdog.beat()
        first = outputs[0] if outputs else None
        if len(outputs) == 1 and type(first) is Verdict and first.packet_id == pkt.id:
            # The common case (a verdict now, nothing else) without the bookkeeping.
            if not first.accept:
                pkt.drop()
            else:
                if first.payload is not None:
                    pkt.set_payload(first.payload)
                pkt.accept()
            self.verdict_ns.append(time.perf_counter_ns() - began)
            return
        if not any(isinstance(o, Verdict) and o.packet_id == pkt.id for o in outputs):
            pkt.retain()
        self._pending[pkt.id] = pkt
        self._apply(outputs)

    def _apply(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, Verdict):
                pkt = self._pending.pop(out.packet_id, None)
                if pkt is None:
                    continue
                if not out.accept:
                    pkt.drop()
                    continue
                if out.payload is not None:
                    pkt.set_payload(out.payload)
                pkt.accept()
            elif isinstance(out, Copy):
                self._send_copy(out.payload)

    def _send_copy(self, datagram: bytes) -> None:
        if self._raw is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            s.setsockopt(socket.SOL_SOCKET, SO_MARK, BYPASS_MARK)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            self._raw = s
        dst = socket.inet_ntoa(datagram[16:20])
        try:
            self._raw.sendto(datagram, (dst, 0))
        except OSError:
            self.copy_errors += 1

    def stop(self, reason: str) -> None:
        self._stop = reason

    def run(self, *, duration: float | None, stop_queueing: Callable[[], None],
            remove_rules: Callable[[], None],
            status: Callable[[float], None] | None = None, status_interval: float = 1.0,
            on_ready: Callable[[], None] | None = None,
            watchdog: float | None = WATCHDOG_BOUND) -> RunResult:
        """Serve the queue until ``duration`` ends or `stop`; then stop queueing, pass what
        is still in flight, release what is held, remove the rules and unbind (in that
        order: no packet is ever left in a queue nobody reads, or in a hook being removed).

        With ``watchdog`` (seconds), a `Watchdog` stops the queueing when no verdict or turn
        of the loop happens for that long, and the run then ends (reason ``watchdog``)."""
        from netfilterqueue import NetfilterQueue

        if watchdog is not None:
            self.watchdog = Watchdog(watchdog, stop_queueing)
            self.watchdog.start()
        nfq = NetfilterQueue()
        try:
            nfq.bind(self.queue, self._on_packet, max_len=8192)
        except OSError as exc:
            if self.watchdog is not None:
                self.watchdog.close()
            remove_rules()
            raise FaultError(f"cannot bind NFQUEUE {self.queue} ({exc}): is another process "
                             "bound to it, or is nfnetlink_queue missing from the kernel?"
                             ) from None
        # Everything allocated so far lives for the whole run: keep the collector from
        # walking it again and again (full collections were the proxy's latency tail).
        gc.collect()
        gc.freeze()
        start = self.clock()
        self.engine.start = start
        deadline = start + duration if duration is not None else None
        next_status = start + status_interval if status and status_interval > 0 else None
        sel = selectors.DefaultSelector()
        sel.register(nfq.get_fd(), selectors.EVENT_READ)
        reason = "interrupted"
        try:
            if on_ready:
                on_ready()
            while self._stop is None:
                if self.watchdog is not None:
                    if self.watchdog.tripped:
                        reason = (f"watchdog: no verdict for over {self.watchdog.bound:g} s, "
                                  "queueing was stopped and traffic passed unfaulted")
                        break
                    self.watchdog.beat()
                now = self.clock()
                if deadline is not None and now >= deadline:
                    reason = "end of run"
                    break
                wake = [t for t in (self.engine.next_timer(), next_status, deadline)
                        if t is not None]
                timeout = min(0.25, max(0.0, min(wake) - now)) if wake else 0.25
                self._serve(nfq, sel, timeout)
                now = self.clock()
                if next_status is not None and now >= next_status:
                    status(now - start)  # type: ignore[misc]
                    next_status = now + status_interval
            else:
                reason = self._stop
        finally:
            elapsed = self.clock() - start
            if self.watchdog is not None:
                self.watchdog.close()  # the shutdown below may take longer than the bound
            try:
                stop_queueing()
            finally:
                try:
                    self._shutdown(nfq, sel, remove_rules)
                finally:
                    nfq.unbind()
        return RunResult(self.engine.total, elapsed, reason)

    def _serve(self, nfq: Any, sel: selectors.BaseSelector, timeout: float) -> bool:
        """Wait up to ``timeout`` for queued packets, handle them, release what is due."""
        got = False
        try:
            if sel.select(timeout):
                nfq.run(block=False)
                got = True
        except InterruptedError:
            pass
        self._apply(self.engine.tick(self.clock()))
        return got

    def _shutdown(self, nfq: Any, sel: selectors.BaseSelector,
                  remove_rules: Callable[[], None]) -> None:
        """Nothing new is queued: pass late arrivals untouched until the queue is quiet (at
        most a second), release everything held, then remove the rules."""
        self._passthrough = True
        try:
            for _ in range(20):
                if not self._serve(nfq, sel, 0.05):
                    break
            self._apply(self.engine.flush())
        finally:
            for pkt in list(self._pending.values()):
                with contextlib.suppress(RuntimeError):
                    pkt.accept()
            self._pending.clear()
            try:
                remove_rules()
            finally:
                with contextlib.suppress(OSError):
                    nfq.run(block=False)  # anything queued in the last instant
                sel.close()
                if self._raw is not None:
                    self._raw.close()


def install_signal_handlers(proxy: Proxy) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        proxy.stop(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


# ----------------------------------------------------------------------------- reporting


def status_line(engine: Engine, elapsed: float) -> str:
    parts = [f"{elapsed:6.1f}s pkts {engine.total} held {engine.held}"]
    for index, st in enumerate(engine.stats, start=1):
        acted = {k: getattr(st, k) for k in COUNTERS[2:] if getattr(st, k)}
        what = " ".join(f"{k} {v}" for k, v in acted.items())
        parts.append(f"#{index} matched {st.matched}" + (f" {what}" if what else ""))
    return " | ".join(parts)


def final_table(engine: Engine) -> str:
    from tabulate import tabulate

    rows = [[i, st.rule, *(getattr(st, k) for k in COUNTERS)]
            for i, st in enumerate(engine.stats, start=1)]
    return tabulate(rows, headers=["#", "rule", *COUNTERS], tablefmt="simple")


class LatencySample:
    """A uniform random sample of at most ``capacity`` values (Vitter's algorithm R), with
    the exact count and maximum: percentiles of a run of any length in fixed memory."""

    def __init__(self, capacity: int = 65536, seed: int | None = 0) -> None:
        self.capacity = capacity
        self.samples: array[int] = array("Q")
        self.count = 0
        self.max = 0
        self._rng = random.Random(seed)

    def append(self, value: int) -> None:
        self.count += 1
        if value > self.max:
            self.max = value
        if len(self.samples) < self.capacity:
            self.samples.append(value)
            return
        slot = self._rng.randrange(self.count)
        if slot < self.capacity:
            self.samples[slot] = value

    def __len__(self) -> int:
        return self.count


def verdict_percentiles(samples: LatencySample | Sequence[int]) -> dict[str, float] | None:
    """p50/p99 (from the sample) and max (exact) of the per-packet verdict time, in us."""
    if isinstance(samples, LatencySample):
        values, count, peak = samples.samples, samples.count, samples.max
    else:
        values, count, peak = samples, len(samples), max(samples, default=0)
    if not count:
        return None
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))] / 1000, 1)

    return {"p50_us": at(0.5), "p99_us": at(0.99), "max_us": round(peak / 1000, 3),
            "samples": count}


def stats_document(engine: Engine, result: RunResult, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "packets": engine.total,
        "passed_untouched": engine.passed,
        "passed_undelayed_over_max_held": engine.overflowed,
        "knet_undecryptable": engine.undecryptable,
        "elapsed_s": round(result.elapsed, 3),
        "stopped_by": result.reason,
        **extra,
        "rules": [st.as_dict() for st in engine.stats],
    }


def write_status(stream: TextIO, text: str) -> None:
    if stream.isatty():
        stream.write("\r\x1b[K" + text)
    else:
        stream.write(text + "\n")
    stream.flush()


__all__ = [
    "BYPASS_MARK", "DEFAULT_PORTS", "DEFAULT_QUEUE", "Backend", "FaultError", "IptablesBackend",
    "NftBackend", "Proxy", "choose_backend", "cleanup", "enter_netns", "final_table",
    "has_cap_net_admin", "install_signal_handlers", "local_addresses", "require_privilege",
    "live_owner", "recorded_queues", "set_realtime",
    "stats_document", "status_line", "write_status",
]
