"""The one interface every cluster kind of the lab offers (hbtools daemon, Heartbeat 3.0.6,
Corosync + Pacemaker), so a nemesis, a checker or a test never asks which kind it drives.

Why a Protocol and not a base class: the three kinds share almost no code (different daemons,
configs and start orders); what they share is what the chaos engine may do to a node and what it
may observe. Observation (``vip_owners``) is read from the namespaces, never from a daemon's own
opinion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

KINDS = ("hbtools", "heartbeat", "pacemaker")
"""Cluster kinds, as named by ``hbtool chaos run --impl`` and ``hbtool lab up --kind``."""


@dataclass(frozen=True)
class Timing:
    """Failure-detection timers a cluster is configured with.

    Heartbeat kinds use keepalive/deadtime/warntime/initdead; the Pacemaker kind maps
    ``deadtime_ms`` onto Corosync's ``token`` (and derives consensus as Corosync does).
    """

    keepalive_ms: int = 200
    deadtime_ms: int = 1000
    warntime_ms: int = 500
    initdead_ms: int = 2000


@runtime_checkable
class Cluster(Protocol):
    """A running (or startable) cluster of named nodes holding one virtual IP."""

    kind: str
    nodes: list[str]
    vip: str

    def start(self, *, timeout: float = 60.0) -> None:
        """Start every node; return once exactly one node holds the VIP (bounded wait)."""

    def crash(self, node: str) -> None:
        """SIGKILL the node's whole stack (nothing gets to clean up)."""

    def stop(self, node: str) -> None:
        """Stop the node's stack cleanly (resources released, peers told)."""

    def freeze(self, node: str) -> None:
        """SIGSTOP every process of the node's stack."""

    def thaw(self, node: str) -> None:
        """SIGCONT what :meth:`freeze` stopped."""

    def restart(self, node: str) -> None:
        """Start the node's stack again after :meth:`crash` or :meth:`stop`."""

    def vip_owners(self) -> list[str]:
        """Nodes whose interface carries the VIP right now, read in each node's namespace."""

    def netns(self, node: str) -> str:
        """The network namespace name of ``node`` (for ``ip netns exec`` and fault sessions)."""

    def logs(self) -> dict[str, Path]:
        """Per node, the log file its stack writes."""

    def close(self) -> None:
        """Stop everything of this cluster, by PID; safe to call twice."""
