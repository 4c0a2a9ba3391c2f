"""The ``pacemaker`` cluster kind: real Corosync 3 (knet) + Pacemaker 2.1 in the lab.

Most HA clusters run this stack, so the chaos engine must be able to throw the same faults at
it as at Heartbeat and the reference daemon. Each node is a lab node with its own PID, mount
and UTS namespaces (:meth:`hbtools.lab.Lab.add_corosync_node` with ``pacemaker=True``):
killing its init kills the whole stack at once, as a power loss would.

What makes it start quickly and behave predictably (see PROTOCOL-NOTES §7):

* a pre-seeded ``cib.xml`` with ``dc-deadtime=2s`` (the default 20 s makes start-up take
  ~23 s), ``no-quorum-policy=ignore`` (a 2-node cluster must survive losing one node),
  ``stonith-enabled=false`` or a ``fence_dummy`` device, ``resource-stickiness`` so a node
  that comes back does not pull the VIP back, and an ``ocf:heartbeat:IPaddr2`` VIP with a
  monitor operation;
* Corosync's ``token`` is the cluster's dead time (``Timing.deadtime_ms``, at least 1000 ms):
  Corosync declares a node gone after token + consensus (1.2 × token), which is what a
  Heartbeat ``deadtime`` means;
* start order corosync, then pacemakerd; clean stop in the reverse order.

Observation never asks Pacemaker: :meth:`PacemakerCluster.vip_owners` reads the addresses on
each node's interface.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from xml.sax.saxutils import quoteattr

from hbtools import knet
from hbtools.lab import (
    COROSYNC_LAB_SECTIONS,
    LAB_PREFIXLEN,
    LAB_SUBNET,
    Freezable,
    Lab,
    LabError,
    Node,
    _kill,
    log_tail,
    require_binary,
    wait_until,
)
from hbtools.lab.cluster import Timing

CLUSTER_NAME = "hbtools"
MIN_TOKEN_MS = 1000
"""Below this corosync's token is so short that a loaded 2-core machine loses rings."""

DC_DEADTIME = "2s"
VIP_RESOURCE = "vip"
FENCE_RESOURCE = "fence-dummy"
FENCE_STATUS_FILE = "/run/fence_dummy.status"

DEFAULT_TIMING = Timing()

CRYPTO_CIPHER = "aes256"
CRYPTO_HASH = "sha256"

STACK_COMMS = frozenset({
    "corosync", "pacemakerd", "pacemaker-based", "pacemaker-fenced", "pacemaker-execd",
    "pacemaker-attrd", "pacemaker-schedulerd", "pacemaker-controld",
})
"""Process names (``/proc/PID/comm``) of the stack; resource agents run as their children."""

PACEMAKER_ENV = {
    "PCMK_logfile": "/var/log/pacemaker/pacemaker.log",
    "PCMK_logfacility": "none",
}


def link_address(link: int, host: int) -> str:
    """Address of a node on knet link ``link``: link 0 is the lab's eth0 address
    (198.18.0.<host>), link L is 198.18.L.<host> (a second address on eth0)."""
    first, second, _ = LAB_SUBNET.split(".")
    return f"{first}.{second}.{link}.{host}"


def knet_port(link: int) -> int:
    """UDP port of knet link ``link`` (corosync's default, which the lab keeps)."""
    return knet.LINK_PORTS[link]


def token_ms(timing: Timing) -> int:
    """Corosync's ``token`` for a cluster configured with ``timing``."""
    return max(MIN_TOKEN_MS, int(timing.deadtime_ms))


def corosync_conf(
    nodes: Sequence[tuple[str, int]],
    *,
    token: int = 3000,
    links: int = 1,
    crypto_cipher: str = "none",
    crypto_hash: str = "none",
    writer: str = "hbtools.lab.pacemaker",
) -> str:
    """A knet ``corosync.conf`` for the lab: ``nodes`` are (name, host number) pairs, the host
    number is also the node id; link L of a node is :func:`link_address` (L, host)."""
    interfaces = "".join(
        f"    interface {{\n        linknumber: {link}\n    }}\n" for link in range(links)
    )
    nodelist = ""
    for name, host in nodes:
        rings = "".join(f"        ring{link}_addr: {link_address(link, host)}\n"
                        for link in range(links))
        nodelist += f"    node {{\n        name: {name}\n        nodeid: {host}\n{rings}    }}\n"
    return (
        f"# written by {writer} for a namespace lab\n"
        "totem {\n"
        "    version: 2\n"
        f"    cluster_name: {CLUSTER_NAME}\n"
        "    transport: knet\n"
        f"    token: {token}\n"
        f"    crypto_cipher: {crypto_cipher}\n"
        f"    crypto_hash: {crypto_hash}\n"
        f"{interfaces}"
        "}\n"
        f"{COROSYNC_LAB_SECTIONS}"
        "nodelist {\n"
        f"{nodelist}"
        "}\n"
    )


def _nvpair(owner: str, name: str, value: str) -> str:
    return f'<nvpair id={quoteattr(f"{owner}-{name}")} name={quoteattr(name)} value={quoteattr(value)}/>'


def cib_xml(node_names: Sequence[str], vip: str, *, fencing: bool = False,
            netmask: int = LAB_PREFIXLEN, nic: str = "eth0") -> str:
    """The CIB every node starts from (written before pacemakerd starts, so no .sig)."""
    opts = "cib-bootstrap-options"
    props = [
        _nvpair(opts, "cluster-name", CLUSTER_NAME),
        _nvpair(opts, "dc-deadtime", DC_DEADTIME),
        _nvpair(opts, "stonith-enabled", "true" if fencing else "false"),
        _nvpair(opts, "no-quorum-policy", "ignore"),
    ]
    vip_attrs = [_nvpair(VIP_RESOURCE, "ip", vip),
                 _nvpair(VIP_RESOURCE, "cidr_netmask", str(netmask)),
                 _nvpair(VIP_RESOURCE, "nic", nic)]
    resources = (
        f'<primitive id="{VIP_RESOURCE}" class="ocf" provider="heartbeat" type="IPaddr2">'
        f'<instance_attributes id="{VIP_RESOURCE}-instance_attributes">{"".join(vip_attrs)}'
        '</instance_attributes><operations>'
        f'<op id="{VIP_RESOURCE}-monitor-interval-2s" name="monitor" interval="2s" timeout="20s"/>'
        '</operations></primitive>'
    )
    if fencing:
        fence_attrs = [_nvpair(FENCE_RESOURCE, "type", "file"),
                       _nvpair(FENCE_RESOURCE, "status_file", FENCE_STATUS_FILE),
                       _nvpair(FENCE_RESOURCE, "pcmk_host_list", " ".join(node_names))]
        resources += (
            f'<primitive id="{FENCE_RESOURCE}" class="stonith" type="fence_dummy">'
            f'<instance_attributes id="{FENCE_RESOURCE}-instance_attributes">'
            f'{"".join(fence_attrs)}</instance_attributes><operations>'
            f'<op id="{FENCE_RESOURCE}-monitor-interval-60s" name="monitor" interval="60s"/>'
            '</operations></primitive>'
        )
    return (
        '<cib validate-with="pacemaker-3.9" epoch="1" '
        'num_updates="0" admin_epoch="0">\n'
        "  <configuration>\n"
        f'    <crm_config><cluster_property_set id="{opts}">{"".join(props)}'
        "</cluster_property_set></crm_config>\n"
        "    <nodes/>\n"
        f"    <resources>{resources}</resources>\n"
        "    <constraints/>\n"
        '    <rsc_defaults><meta_attributes id="rsc-options">'
        f'{_nvpair("rsc-options", "resource-stickiness", "100")}'
        "</meta_attributes></rsc_defaults>\n"
        "  </configuration>\n"
        "  <status/>\n"
        "</cib>\n"
    )


class PacemakerCluster(Freezable):
    """N lab nodes running Corosync (knet) + Pacemaker with one IPaddr2 VIP.

    ``links`` > 1 gives every node one more address per link on eth0 (198.18.L.<host>), so
    a single link can be cut with a drop rule on its subnet. With ``crypto`` the cluster uses
    aes256/sha256 with a random lab-only :attr:`authkey`.
    """

    kind = "pacemaker"

    def __init__(self, lab: Lab, nodes: int = 2, timing: Timing = DEFAULT_TIMING, *,
                 crypto: bool = False, links: int = 1, fencing: bool = False,
                 vip: str = "198.18.0.100") -> None:
        if not 1 <= nodes <= 16:
            raise LabError(f"a pacemaker cluster needs 1..16 nodes, not {nodes}")
        if not 1 <= links <= 8:
            raise LabError(f"knet supports 1..8 links, not {links}")
        for tool in ("corosync", "pacemakerd", "crm_mon", "cibadmin", "crm_resource",
                     "/usr/lib/ocf/resource.d/heartbeat/IPaddr2"):
            require_binary(tool)
        if fencing:
            require_binary("fence_dummy")
        self.lab = lab
        self.timing = timing
        self.crypto = crypto
        self.links = links
        self.fencing = fencing
        self.vip = vip
        self.nodes = [f"node{i}" for i in range(1, nodes + 1)]
        self.token_ms = token_ms(timing)
        self.authkey: bytes | None = os.urandom(256) if crypto else None
        self.corosync_conf = corosync_conf(
            [(name, i) for i, name in enumerate(self.nodes, start=1)], token=self.token_ms,
            links=links, crypto_cipher=CRYPTO_CIPHER if crypto else "none",
            crypto_hash=CRYPTO_HASH if crypto else "none")
        self.cib_xml = cib_xml(self.nodes, vip, fencing=fencing)
        self._node: dict[str, Node] = {}
        self._frozen: dict[str, list[int]] = {}
        self._closed = False
        try:
            for i, name in enumerate(self.nodes, start=1):
                node = lab.add_corosync_node(name, host=i, pacemaker=True)
                self._node[name] = node
                self._write_config(node)
                self._add_link_addresses(node, i)
        except BaseException:
            self.close()
            raise

    # -- set-up

    def _write_config(self, node: Node) -> None:
        etc = node.workdir / "etc-corosync"
        (etc / "corosync.conf").write_text(self.corosync_conf)
        if self.authkey is not None:
            key = etc / "authkey"
            key.write_bytes(self.authkey)
            key.chmod(0o400)
        cib = node.workdir / "var-lib-pacemaker" / "cib" / "cib.xml"
        cib.write_text(self.cib_xml)
        cib.chmod(0o600)
        shutil.chown(cib, "hacluster", "haclient")

    def _add_link_addresses(self, node: Node, host: int) -> None:
        for link in range(1, self.links):
            node.run(["ip", "addr", "add", f"{link_address(link, host)}/{LAB_PREFIXLEN}",
                      "dev", node.ifname], timeout=10)

    # -- lookup

    def node(self, name: str) -> Node:
        """The lab node called ``name`` (raises LabError for a name not in this cluster)."""
        try:
            return self._node[name]
        except KeyError:
            raise LabError(f"no node {name!r} in this pacemaker cluster") from None

    def netns(self, node: str) -> str:
        return self.node(node).netns

    def logs(self) -> dict[str, Path]:
        return {name: n.workdir / "var-log-pacemaker" / "pacemaker.log"
                for name, n in self._node.items()}

    def corosync_logs(self) -> dict[str, Path]:
        return {name: n.workdir / "var-log-corosync" / "corosync.log"
                for name, n in self._node.items()}

    def stack_pids(self, name: str, comms: frozenset[str] = STACK_COMMS) -> list[int]:
        """Host pids of the node's processes whose name is in ``comms``."""
        return self.node(name).pids_named(comms)

    def running(self, name: str) -> bool:
        return bool(self.stack_pids(name))

    def tool(self, name: str, cmd: Sequence[str], *, timeout: float = 15.0) -> str:
        """Output of a Corosync/Pacemaker CLI tool run inside the node (its netns, mounts,
        PID namespace: libqb's abstract sockets and /dev/shm are per node); '' on failure."""
        node = self.node(name)
        if not node.anchor_alive():
            return ""
        res = node.run(list(cmd), check=False, timeout=timeout)
        return res.stdout

    # -- life cycle

    def start(self, *, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        try:
            for name in self.nodes:
                self._start_corosync(name, timeout=max(1.0, deadline - time.monotonic()))
            for name in self.nodes:
                self._start_pacemaker(name)
            wait_until(self._one_owner,
                       timeout=max(1.0, deadline - time.monotonic()), interval=0.1,
                       what=f"one node of {', '.join(self.nodes)} to hold the VIP {self.vip}")
        except BaseException:
            self.close()
            raise

    def _one_owner(self) -> bool:
        """Start-up predicate: fail at once (with the log's last words) if a node's
        pacemakerd gave up, instead of waiting out the whole timeout."""
        for name in self.nodes:
            if not self.stack_pids(name, frozenset({"pacemakerd"})):
                raise LabError(f"pacemakerd on {name} exited during start-up: "
                               f"{_tail(self.logs()[name])}")
        return len(self.vip_owners()) == 1

    def _start_corosync(self, name: str, *, timeout: float = 20.0) -> None:
        node = self.node(name)
        node.popen(["corosync", "-f"])

        def ready() -> bool:
            if not self.stack_pids(name, frozenset({"corosync"})):
                raise LabError(f"corosync on {name} exited at start: "
                               f"{_tail(self.corosync_logs()[name])}")
            return node.run(["corosync-cfgtool", "-s"], check=False,
                            timeout=10).returncode == 0

        time.sleep(0.1)
        wait_until(ready, timeout=timeout, interval=0.2, what=f"corosync on {name} to answer")

    def _start_pacemaker(self, name: str) -> None:
        self.node(name).popen(["pacemakerd"], env=PACEMAKER_ENV)
        wait_until(lambda: self.stack_pids(name, frozenset({"pacemakerd"})), timeout=10,
                   interval=0.05, what=f"pacemakerd to start on {name}")

    def crash(self, node: str) -> None:
        """Kill the node's PID-namespace init: the kernel SIGKILLs corosync, every Pacemaker
        daemon and any running agent at once. The VIP stays on the interface (the kernel
        of a machine whose cluster stack died still has it)."""
        n = self.node(node)
        self._frozen.pop(node, None)
        if n.anchor is not None:
            n.anchor.kill()

    def kill_corosync(self, node: str) -> list[int]:
        """SIGKILL only corosync on ``node`` (Pacemaker's daemons then lose their cluster
        layer and exit by themselves); returns the pids killed."""
        pids = self.stack_pids(node, frozenset({"corosync"}))
        for pid in pids:
            _kill(pid)
        wait_until(lambda: not self.stack_pids(node, frozenset({"corosync"})), timeout=10,
                   what=f"corosync on {node} to die")
        return pids

    def stop(self, node: str, *, timeout: float = 90.0) -> None:
        """pacemakerd first (it stops resources, so the VIP moves cleanly), then corosync."""
        self.thaw(node)
        deadline = time.monotonic() + timeout
        pcmk = STACK_COMMS - {"corosync"}
        for pid in self.stack_pids(node, frozenset({"pacemakerd"})):
            _kill(pid, signal.SIGTERM)
        wait_until(lambda: not self.stack_pids(node, pcmk),
                   timeout=max(1.0, deadline - time.monotonic()), interval=0.2,
                   what=f"pacemaker on {node} to stop")
        for pid in self.stack_pids(node, frozenset({"corosync"})):
            _kill(pid, signal.SIGTERM)
        wait_until(lambda: not self.stack_pids(node, frozenset({"corosync"})),
                   timeout=max(1.0, deadline - time.monotonic()), interval=0.2,
                   what=f"corosync on {node} to stop")

    def restart(self, node: str, *, timeout: float = 30.0) -> None:
        """Start the stack again; after a crash the node first gets a fresh anchor (a reboot:
        empty /run and /dev/shm, the CIB and logs kept)."""
        n = self.node(node)
        self.thaw(node)
        if self.running(node):
            raise LabError(f"{node} is still running; crash or stop it first")
        if not n.anchor_alive():
            n.reboot_anchor()
        self._start_corosync(node, timeout=timeout)
        self._start_pacemaker(node)

    def close(self) -> None:
        """Kill every node's anchor (hence its whole stack) by PID; safe to call twice.

        The node namespaces belong to the lab and go with ``lab.close()``.
        """
        if self._closed:
            return
        self._closed = True
        for name in list(self._node):
            self.thaw(name)
            n = self._node[name]
            if n.anchor is not None:
                with contextlib.suppress(LabError, OSError):
                    n.anchor.kill()

    def __enter__(self) -> PacemakerCluster:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- observation

    def vip_owners(self) -> list[str]:
        return [name for name, n in self._node.items() if n.has_address(self.vip)]

    def wait_owners(self, owners: Sequence[str], *, timeout: float = 60.0,
                    interval: float = 0.05) -> float:
        """Wait until exactly ``owners`` hold the VIP; returns the time.monotonic() seen."""
        want = sorted(owners)

        def check() -> float | None:
            return time.monotonic() if sorted(self.vip_owners()) == want else None

        return wait_until(check, timeout=timeout, interval=interval,
                          what=f"VIP {self.vip} owners to be {want or 'nobody'}")

    def move_vip(self, to: str) -> str:
        """``crm_resource --move`` the VIP to ``to`` (run on ``to``); returns the tool output."""
        res = self.node(to).run(["crm_resource", "--resource", VIP_RESOURCE, "--move",
                                 "--node", to], check=False, timeout=20)
        if res.returncode != 0:
            raise LabError(f"crm_resource --move failed: {(res.stderr or res.stdout).strip()}")
        return res.stdout + res.stderr


def _tail(path: Path, lines: int = 5) -> str:
    tail = log_tail(path, lines, " | ")
    if tail is None:
        return "no log"
    return tail or "empty log"
