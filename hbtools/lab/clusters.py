"""The three cluster kinds behind one interface (:class:`hbtools.lab.cluster.Cluster`).

* ``hbtools``: ``hbtool daemon`` nodes; ``heartbeat``: the real Heartbeat 3.0.6;
  ``pacemaker``: real Corosync 3 + Pacemaker 2.1 (:mod:`hbtools.lab.pacemaker`).

Every node is a lab node with its own PID, mount and UTS namespaces. What a nemesis may do is
defined here once, the same for every kind, so a difference in the results is a difference of
the cluster stacks, not of the harness:

``crash``
    Power loss: the node's PID-namespace init is killed (the kernel kills every process of the
    node at once) and its ``eth0`` goes down, so the machine vanishes from the segment as a
    machine without power does. The address stays configured but nothing can reach it.
``kill``
    The cluster stack's processes are SIGKILLed while the machine (its kernel, its addresses)
    lives on: what an OOM kill or a daemon crash does. An address the stack held stays on the
    interface and keeps answering ARP.
``restart``
    After ``crash``: a reboot (a fresh anchor with empty ``/run``, runtime addresses gone, link
    up), then the stack starts. After ``kill`` or ``stop``: the stack starts again on the
    machine as it is (a leftover VIP is still there — what the stack does about it is the test).
``freeze``/``thaw``
    SIGSTOP/SIGCONT every process of the node.

Observation (:meth:`vip_owners`) reads each node's namespace over rtnetlink: a node owns the VIP
when the address is on its ``eth0`` and that link is up with carrier.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hbtools.lab import (
    AnchorSpec,
    Freezable,
    Heartbeat,
    Lab,
    LabError,
    Node,
    _alive,
    _kill,
    _run,
    heartbeat_ha_cf,
    wait_until,
)
from hbtools.lab.cluster import KINDS, Timing
from hbtools.lab.observe import Netns
from hbtools.lab.pacemaker import PacemakerCluster

DEFAULT_VIP = "198.18.0.100"
DEFAULT_AUTHKEYS = "auth 1\n1 sha1 hbtools-chaos-lab\n"
CHAOS_TIMING = Timing(keepalive_ms=200, deadtime_ms=2000, warntime_ms=1000, initdead_ms=4000)
"""Short timers for the chaos matrix: a failure is detected in ~2 s, a run lasts ~10 s."""

SERVICE_INTERVAL_S, SERVICE_FAILURES = 0.5, 2
SERVICE_CHECK = (f"check {{vip}} http://127.0.0.1/ expect=^served.by.node[0-9]+$ "
                 f"interval={SERVICE_INTERVAL_S} timeout=400ms failures={SERVICE_FAILURES}")
"""The ``service = "http"`` option (hbtools only, issue 17): nginx in every node serving
"served by nodeN" on port 80, and a check that moves the VIP group when the owner's fails."""

MEDIA = {
    "bcast": lambda names, addrs: ["bcast eth0"],
    "ucast": lambda names, addrs: [f"ucast eth0 {a}" for a in addrs],
    "bcast+ucast": lambda names, addrs: ["bcast eth0", *(f"ucast eth0 {a}" for a in addrs)],
}
"""Heartbeat media lines by name; ``bcast+ucast`` gives two independent paths (media)."""


def _ms(value: int) -> str:
    return f"{value}ms"


def _stop_then_kill(pids: list[int], gone: Callable[[], bool], *, what: str) -> None:
    """The ``kill`` nemesis: SIGSTOP them all first, so that none sees another die (and
    reacts, or respawns it), then SIGKILL them all; wait (bounded) until ``gone``."""
    for p in pids:
        _kill(p, signal.SIGSTOP)
    for p in pids:
        _kill(p, signal.SIGKILL)
    wait_until(gone, timeout=10, what=what)


class _Observed:
    """VIP observation and power control shared by the kinds (rtnetlink, by namespace)."""

    vip: str
    nodes: list[str]
    _observers: dict[str, Netns]

    def node(self, name: str) -> Node:  # provided by the kind
        raise NotImplementedError

    def observer(self, name: str) -> Netns:
        obs = self._observers.get(name)
        if obs is None:
            obs = self._observers[name] = Netns(self.node(name).netns)
        return obs

    def vip_owners(self) -> list[str]:
        return [n for n in self.nodes if self.vip in self.observer(n).reachable_addresses()]

    def mac(self, name: str) -> str:
        return self.node(name).mac

    def _power_off(self, name: str) -> None:
        """Link down first (the network sees the loss at once), then every process of the
        node SIGKILLed together with its init (the reaping may take a moment; the kernel
        already stopped them all)."""
        n = self.node(name)
        _run(["ip", "-n", n.netns, "link", "set", n.ifname, "down"], timeout=10)
        if n.anchor is not None:
            for pid in n.anchor.processes():
                _kill(pid, signal.SIGSTOP)
            for pid in [*n.anchor.processes(), n.anchor.init_pid]:
                _kill(pid)
            n.anchor.kill()

    def powered(self, name: str) -> bool:
        links = self.observer(name).links().values()
        return any(link.name == self.node(name).ifname and link.up for link in links)

    def _power_on(self, name: str) -> None:
        """Boot: runtime addresses gone (the VIP was never in the machine's config), link up,
        a fresh anchor (empty /run, new PID namespace)."""
        n = self.node(name)
        _run(["ip", "-n", n.netns, "addr", "del", f"{self.vip}/24", "dev", n.ifname],
             check=False, timeout=10)
        _run(["ip", "-n", n.netns, "link", "set", n.ifname, "up"], timeout=10)
        n.reboot_anchor()

    def _close_observers(self) -> None:
        for obs in self._observers.values():
            obs.close()
        self._observers.clear()


class _HaCluster(_Observed, Freezable):
    """Common part of the two Heartbeat-protocol kinds (one ``ha.cf`` for all nodes)."""

    kind = ""

    def __init__(self, lab: Lab, nodes: int = 2, timing: Timing = CHAOS_TIMING, *,
                 vip: str = DEFAULT_VIP, media: str = "bcast", ha_cf_extra: Sequence[str] = (),
                 authkeys: str = DEFAULT_AUTHKEYS, auto_failback: str = "off",
                 daemon_args: Sequence[str] = (), service: str | None = None,
                 **_ignored: Any) -> None:
        if not 1 <= nodes <= 8:
            raise LabError(f"a {self.kind} cluster needs 1..8 nodes, not {nodes}")
        if media not in MEDIA:
            raise LabError(f"unknown media {media!r} (one of {', '.join(MEDIA)})")
        self.lab = lab
        self.timing = timing
        self.vip = vip
        self.media = media
        self.nodes = [f"node{i}" for i in range(1, nodes + 1)]
        self.daemon_args = tuple(daemon_args)
        if service not in (None, "http"):
            raise LabError(f"unknown service {service!r} (only 'http')")
        self.service = service
        if service is not None:
            ha_cf_extra = (*ha_cf_extra, SERVICE_CHECK.format(vip=vip))
        self._observers = {}
        self._frozen: dict[str, list[int]] = {}
        self._closed = False
        addresses = [f"198.18.0.{i}" for i in range(1, nodes + 1)]
        self.ha_cf = heartbeat_ha_cf(
            self.nodes, MEDIA[media](self.nodes, addresses), keepalive=_ms(timing.keepalive_ms),
            warntime=_ms(timing.warntime_ms), deadtime=_ms(timing.deadtime_ms),
            initdead=_ms(timing.initdead_ms), auto_failback=auto_failback, extra=ha_cf_extra)
        self.authkeys = authkeys
        self.haresources = f"node1 IPaddr::{vip}/24/eth0\n"
        self._setup()

    def _setup(self) -> None:
        raise NotImplementedError

    # -- the interface

    def netns(self, node: str) -> str:
        return self.node(node).netns

    def start(self, *, timeout: float = 60.0) -> None:
        try:
            for name in self.nodes:
                self._start_stack(name)
            wait_until(lambda: len(self.vip_owners()) == 1, timeout=timeout, interval=0.1,
                       what=f"one {self.kind} node to hold the VIP {self.vip}")
        except BaseException:
            self.close()
            raise

    def crash(self, node: str) -> None:
        self._frozen.pop(node, None)
        self._power_off(node)

    def kill(self, node: str) -> None:
        pids = self._stack_pids(node)
        _stop_then_kill(pids, lambda: not any(_alive(p) for p in pids),
                        what=f"the {self.kind} processes of {node} to die")

    def restart(self, node: str) -> None:
        self.thaw(node)
        if not self.powered(node) or not self.node(node).anchor_alive():
            self._power_on(node)
        elif self._stack_pids(node):
            raise LabError(f"{node} is still running; crash, kill or stop it first")
        self._start_stack(node)

    def running(self, node: str) -> bool:
        return bool(self._stack_pids(node))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for name in self.nodes:
            self.thaw(name)
            with contextlib.suppress(LabError, OSError, KeyError):
                n = self.node(name)
                if n.anchor is not None:
                    n.anchor.kill()
        self._close_observers()

    # -- per kind

    def _start_stack(self, name: str) -> None:
        raise NotImplementedError

    def _stack_pids(self, name: str) -> list[int]:
        raise NotImplementedError


class HbtoolsCluster(_HaCluster):
    """``hbtool daemon`` nodes, each in its own anchor (PID, mount, UTS namespaces)."""

    kind = "hbtools"

    def _setup(self) -> None:
        from hbtools.node.labsupport import HbtoolsDaemon

        self._daemons: dict[str, HbtoolsDaemon] = {}
        self._service_hung: dict[str, list[int]] = {}
        for name in self.nodes:
            n = self.lab.add_node(name, anchor=AnchorSpec(hostname=name))
            d = HbtoolsDaemon(n, extra_args=("--quiet", *self.daemon_args))
            d.write_config(self.ha_cf, self.authkeys, self.haresources)
            self._daemons[name] = d

    def node(self, name: str) -> Node:
        try:
            return self.lab.nodes[name]
        except KeyError:
            raise LabError(f"no node {name!r} in this hbtools cluster") from None

    def daemon(self, name: str) -> Any:
        return self._daemons[name]

    def _start_stack(self, name: str) -> None:
        if self.service is not None and not self.node(name).pids_named(["nginx"]):
            self._start_service(name)
        self._daemons[name].start()

    # -- the service option (issue 17): a real nginx per node, killed or hung by a nemesis

    def _start_service(self, name: str) -> None:
        from hbtools.lab import servers

        n = self.node(name)
        spec = servers.nginx(n.workdir / "nginx", "0.0.0.0", port=80, single_process=True,
                             pages={"index.html": f"served by {name}\n"})
        n.popen(spec.argv)
        wait_until(lambda: n.run(["curl", "-s", "-m", "1", "http://127.0.0.1/"], check=False)
                   .stdout.strip() == f"served by {name}", timeout=15, interval=0.1,
                   what=f"nginx on {name}")

    def service_kill(self, name: str) -> None:
        """The service dies, the node lives: SIGKILL nginx by its PID."""
        for pid in self.node(name).pids_named(["nginx"]):
            _kill(pid, signal.SIGKILL)

    def service_hang(self, name: str) -> None:
        """The service hangs: nginx SIGSTOPped, its socket still accepts, nothing answers."""
        pids = self._service_hung.setdefault(name, [])
        for pid in self.node(name).pids_named(["nginx"]):
            _kill(pid, signal.SIGSTOP)
            pids.append(pid)

    def restore_services(self) -> None:
        """For a reset: hung services go on, dead ones start again (on live machines)."""
        for name in self.nodes:
            for pid in self._service_hung.pop(name, []):
                _kill(pid, signal.SIGCONT)
            if (self.service is not None and self.node(name).anchor_alive()
                    and not self.node(name).pids_named(["nginx"])):
                self._start_service(name)

    def _stack_pids(self, name: str) -> list[int]:
        n = self.node(name)
        if not n.anchor_alive():
            return []
        assert n.anchor is not None
        return [p for p in n.anchor.processes() if _alive(p)]

    def stop(self, node: str, *, timeout: float = 20.0) -> None:
        """SIGTERM: the daemon hands its groups over and sends shutdone."""
        self.thaw(node)
        for p in self._stack_pids(node):
            _kill(p, signal.SIGTERM)
        wait_until(lambda: not self._stack_pids(node), timeout=timeout, interval=0.05,
                   what=f"hbtool daemon on {node} to stop")

    def logs(self) -> dict[str, Path]:
        return {name: d.events_path for name, d in self._daemons.items()}


class HeartbeatCluster(_HaCluster):
    """The real Heartbeat 3.0.6 on every node."""

    kind = "heartbeat"

    def _setup(self) -> None:
        self._hb: dict[str, Heartbeat] = {}
        for name in self.nodes:
            hb = self.lab.add_heartbeat(name)
            hb.write_config(self.ha_cf, self.authkeys, self.haresources)
            self._hb[name] = hb

    def node(self, name: str) -> Node:
        try:
            return self._hb[name].node
        except KeyError:
            raise LabError(f"no node {name!r} in this heartbeat cluster") from None

    def heartbeat(self, name: str) -> Heartbeat:
        return self._hb[name]

    def _start_stack(self, name: str) -> None:
        self._hb[name].start()

    def _stack_pids(self, name: str) -> list[int]:
        if not self.node(name).anchor_alive():
            return []
        return self._hb[name].processes()

    def stop(self, node: str, *, timeout: float = 30.0) -> None:
        self.thaw(node)
        self._hb[node].stop(timeout=timeout)

    def logs(self) -> dict[str, Path]:
        return {name: hb.log_path for name, hb in self._hb.items()}


class PacemakerKind(_Observed, PacemakerCluster):
    """:class:`PacemakerCluster` with the lab-wide meaning of crash/kill/restart."""

    def __init__(self, lab: Lab, nodes: int = 2, timing: Timing = CHAOS_TIMING, *,
                 vip: str = DEFAULT_VIP, fencing: bool = False, links: int = 1,
                 crypto: bool = False, **_ignored: Any) -> None:
        self._observers = {}
        PacemakerCluster.__init__(self, lab, nodes, timing, crypto=crypto, links=links,
                                  fencing=fencing, vip=vip)

    def node(self, name: str) -> Node:
        return PacemakerCluster.node(self, name)

    def vip_owners(self) -> list[str]:
        return _Observed.vip_owners(self)

    def crash(self, node: str) -> None:
        self._frozen.pop(node, None)
        self._power_off(node)

    def kill(self, node: str) -> None:
        """SIGKILL corosync and every Pacemaker daemon (agents die with their parents'
        loss of the cluster layer); the machine and its addresses stay."""
        _stop_then_kill(self.stack_pids(node), lambda: not self.stack_pids(node),
                        what=f"the pacemaker stack of {node} to die")

    def restart(self, node: str, *, timeout: float = 30.0) -> None:
        self.thaw(node)
        if not self.powered(node):
            self._power_on(node)
        PacemakerCluster.restart(self, node, timeout=timeout)

    def close(self) -> None:
        PacemakerCluster.close(self)
        self._close_observers()


CLUSTER_CLASSES: dict[str, type] = {
    "hbtools": HbtoolsCluster,
    "heartbeat": HeartbeatCluster,
    "pacemaker": PacemakerKind,
}
assert tuple(CLUSTER_CLASSES) == KINDS


def make_cluster(kind: str, lab: Lab, nodes: int = 2, timing: Timing = CHAOS_TIMING,
                 **options: Any) -> Any:
    """A cluster of ``kind`` on ``lab`` (not started). ``options`` are the kind's own
    (``media``, ``ha_cf_extra``, ``daemon_args`` for the Heartbeat kinds; ``fencing``,
    ``links`` for pacemaker); options another kind does not know are ignored, so one
    scenario can carry options for several kinds."""
    try:
        cls = CLUSTER_CLASSES[kind]
    except KeyError:
        raise LabError(f"unknown cluster kind {kind!r} (one of {', '.join(KINDS)})") from None
    return cls(lab, nodes, timing, **options)


def settle(cluster: Any, seconds: float, *, timeout: float = 30.0) -> None:
    """Wait until exactly one node has held the VIP for ``seconds`` without a change."""
    deadline = time.monotonic() + timeout
    since: float | None = None
    last: list[str] = []
    for _ in range(int(timeout / 0.1) + 1):
        now = time.monotonic()
        owners = cluster.vip_owners()
        if len(owners) == 1 and owners == last:
            since = since if since is not None else now
            if now - since >= seconds:
                return
        else:
            since = None
        last = owners
        if now >= deadline:
            break
        time.sleep(0.1)
    raise LabError(f"the {cluster.kind} cluster did not settle on one VIP owner "
                   f"(owners {last or 'none'})")
