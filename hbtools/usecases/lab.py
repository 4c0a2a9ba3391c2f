"""Use case behind ``hbtool lab up|status|down``: a lab a person can poke at by hand.

``up`` builds a lab (bridge, nodes, client), starts a cluster of one kind and keeps it alive
until SIGINT/SIGTERM; every lab process dies with it (the lab's parent-death signal), so a
killed ``up`` leaves nothing running. While it runs, ``lab.json`` in the lab's directory tells
``status`` and ``down`` (and the person) the namespaces to use with ``ip netns exec`` and
``hbtool fault --netns``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hbtools.lab import LAB_BASE_DIR, Lab, LabError, _alive, _proc_start_time, cleanup_stale
from hbtools.lab.cluster import Timing
from hbtools.lab.clusters import CHAOS_TIMING, make_cluster
from hbtools.lab.observe import Netns, ObserveError

STATE_NAME = "lab.json"


@dataclass
class LabInfo:
    prefix: str
    kind: str
    pid: int
    alive: bool
    vip: str
    namespaces: dict[str, str]
    owners: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def up(kind: str, *, nodes: int = 2, timing: Timing = CHAOS_TIMING,
       on_ready: Callable[[LabInfo], None] | None = None,
       stop: threading.Event | None = None, options: dict[str, Any] | None = None) -> None:
    """Bring a lab up and hold it until SIGINT/SIGTERM (or ``stop`` is set)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda *_: stop.set())
    with Lab() as lab:
        cluster = make_cluster(kind, lab, nodes, timing, **(options or {}))
        client = lab.add_client()
        try:
            cluster.start()
            spaces = {name: cluster.netns(name) for name in cluster.nodes}
            spaces["client"] = client.netns
            spaces["bridge"] = lab.bridge_ns
            info = LabInfo(lab.prefix, kind, os.getpid(), True, cluster.vip, spaces,
                           cluster.vip_owners())
            doc = {**info.as_dict(), "start": _proc_start_time(os.getpid())}
            (lab.workdir / STATE_NAME).write_text(json.dumps(doc, indent=2) + "\n")
            if on_ready:
                on_ready(info)
            for _ in range(10**9):
                if stop.wait(0.5):
                    break
        finally:
            cluster.close()


def _labs() -> list[tuple[Path, dict[str, Any]]]:
    out = []
    if LAB_BASE_DIR.is_dir():
        for d in sorted(LAB_BASE_DIR.iterdir()):
            state = d / STATE_NAME
            with contextlib.suppress(OSError, ValueError):
                out.append((d, json.loads(state.read_text())))
    return out


def _owner_alive(doc: dict[str, Any]) -> bool:
    pid = int(doc.get("pid", 0))
    return pid > 0 and _alive(pid) and _proc_start_time(pid) == doc.get("start")


def status() -> list[LabInfo]:
    """Every lab brought up by ``lab up``, with the VIP owners seen in its namespaces now."""
    infos = []
    for _d, doc in _labs():
        alive = _owner_alive(doc)
        spaces = dict(doc.get("namespaces", {}))
        owners: list[str] | None = None
        if alive:
            owners = []
            for name, ns in spaces.items():
                if name in ("client", "bridge"):
                    continue
                with contextlib.suppress(ObserveError, OSError):
                    obs = Netns(ns)
                    try:
                        if doc.get("vip") in obs.reachable_addresses():
                            owners.append(name)
                    finally:
                        obs.close()
        infos.append(LabInfo(str(doc.get("prefix")), str(doc.get("kind")), int(doc.get("pid", 0)),
                             alive, str(doc.get("vip")), spaces, owners))
    return infos


def down(prefix: str | None = None, *, timeout: float = 60.0) -> list[str]:
    """Stop the ``lab up`` process(es) (SIGTERM, by pid) and remove what a dead one left."""
    stopped = []
    for _d, doc in _labs():
        if prefix and doc.get("prefix") != prefix:
            continue
        if _owner_alive(doc):
            pid = int(doc["pid"])
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                raise LabError(f"lab {doc.get('prefix')} (pid {pid}) did not stop in {timeout:g} s")
        stopped.append(str(doc.get("prefix")))
    cleanup_stale()
    return stopped
