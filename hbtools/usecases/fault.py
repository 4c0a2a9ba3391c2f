"""Use case behind ``hbtool fault``: one fault session (rules + scenario → proxy → cleanup).

The command, the chaos engine and tests all need the same sequence: merge ``--rule`` texts with a
TOML scenario, enter a network namespace, build the engine, install the queue rules, serve the
queue until the end (or :meth:`FaultSession.stop`), and always remove the rules. Here it is once.

Library use (what a chaos nemesis does)::

    session = FaultSession.build(rules=["partition node1<>node2"], netns="lab-node2",
                                 nodes={"node1": "198.18.0.1", "node2": "198.18.0.2"},
                                 duration=5.0)
    session.start()        # a thread enters the namespace (setns is per thread) and serves
    ...
    result = session.join()

Why a thread and not a subprocess: ``setns(CLONE_NEWNET)`` moves only the calling thread, and the
rule installer's ``nft``/``iptables`` children inherit that thread's namespace, so several sessions
(one per node) run side by side in one process without touching the caller's namespace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hbtools.faults import nfq
from hbtools.faults.engine import Engine
from hbtools.faults.rules import Rule, RuleError, parse_duration, parse_node, parse_rule
from hbtools.faults.scenario import ScenarioError
from hbtools.faults.scenario import load as load_scenario


class FaultSessionError(RuntimeError):
    """A session that cannot be built or run; one line naming the cause."""


@dataclass
class SessionPlan:
    """Everything a session needs, merged from options and a scenario (options win)."""

    rules: list[Rule]
    nodes: dict[str, str]
    ports: tuple[int, ...]
    duration: float | None
    seed: int | None
    queue: int
    netns: str | None = None
    scenario_name: str | None = None
    backend: str = "auto"
    realtime: int | None = None
    keys: Any = None
    #: `hbtools.knetcrypto.KeyRing` (``--corosync-authkey``): decrypted knet matching/rewrite.
    corosync_keys: Any = None

    @property
    def directions(self) -> list[str]:
        return sorted({d for r in self.rules for d in r.directions})


def plan(*, rules: Sequence[str | Rule] = (), scenario: str | Path | None = None,
         scenario_text: str | None = None, ports: Sequence[int] = (), netns: str | None = None,
         queue: int | None = None, seed: int | None = None, keys: Any = None,
         corosync_keys: Any = None, nodes: Mapping[str, str] | Sequence[str] = (),
         duration: float | str | None = None,
         backend: str = "auto", realtime: int | None = None) -> SessionPlan:
    """Merge the pieces of a session; raises RuleError/ScenarioError with the user's own words.

    ``nodes`` is either ``{"node1": "198.18.0.1"}`` or ``["node1=198.18.0.1"]`` (as typed).
    """
    node_map: dict[str, str] = {}
    if isinstance(nodes, Mapping):
        node_map.update(nodes)
    else:
        for text in nodes:
            name, address = parse_node(text)
            node_map[name] = address
    run_for = parse_duration(duration, "--duration") if isinstance(duration, str) else duration
    rule_list = [r if isinstance(r, Rule) else parse_rule(r, nodes=list(node_map), label=r)
                 for r in rules]
    scenario_name = None
    if scenario is not None or scenario_text is not None:
        if scenario_text is not None:
            from hbtools.faults.scenario import parse as parse_scenario
            sc = parse_scenario(scenario_text, str(scenario or "<scenario>"),
                                extra_nodes=node_map)
        else:
            assert scenario is not None
            sc = load_scenario(scenario, extra_nodes=node_map)
        scenario_name = sc.name
        rule_list += list(sc.rules)
        node_map.update(sc.nodes)
        seed = seed if seed is not None else sc.seed
        ports = tuple(ports) or sc.ports
        run_for = run_for if run_for is not None else sc.duration
    if not rule_list:
        raise RuleError("give at least one --rule or a --scenario (see --help)")
    return SessionPlan(rules=rule_list, nodes=node_map, ports=tuple(ports) or nfq.DEFAULT_PORTS,
                       duration=run_for, seed=seed,
                       queue=nfq.DEFAULT_QUEUE if queue is None else queue, netns=netns,
                       scenario_name=scenario_name, backend=backend, realtime=realtime,
                       keys=keys, corosync_keys=corosync_keys)


@dataclass
class SessionResult:
    reason: str
    elapsed: float
    total: int
    table: str
    copy_errors: int
    stats: dict[str, Any] = field(default_factory=dict)


class FaultSession:
    """One proxy run: :meth:`open` (namespace, engine, rules), :meth:`run`, cleanup in ``run``.

    Call :meth:`open` and :meth:`run` from the same thread (the namespace is per thread), or use
    :meth:`start`/:meth:`join`, which do both in a worker thread of their own.
    """

    def __init__(self, session_plan: SessionPlan) -> None:
        self.plan = session_plan
        self.engine: Engine | None = None
        self.proxy: nfq.Proxy | None = None
        self.where = ""
        self._installer: nfq.Backend | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._result: SessionResult | None = None
        self._stop_requested: str | None = None
        self.ready_at: float | None = None
        """Wall-clock time the rules were installed and the queue served (the fault began)."""

    @classmethod
    def build(cls, **kwargs: Any) -> FaultSession:
        """:func:`plan` then a session (RuleError/ScenarioError become FaultSessionError)."""
        try:
            return cls(plan(**kwargs))
        except (RuleError, ScenarioError) as exc:
            raise FaultSessionError(str(exc)) from None

    # -- the steps

    def open(self) -> None:
        """Privilege check, enter the namespace (this thread), build the engine, install rules."""
        p = self.plan
        nfq.require_privilege()
        if p.netns:
            nfq.enter_netns(p.netns)
        try:
            self.engine = Engine(p.rules, seed=p.seed, keys=p.keys, nodes=p.nodes,
                                 local_addresses=nfq.local_addresses(), ports=p.ports,
                                 corosync_keys=p.corosync_keys)
        except RuleError as exc:
            raise nfq.FaultError(str(exc)) from None
        self._installer = nfq.choose_backend(p.backend)
        if p.realtime is not None:
            nfq.set_realtime(p.realtime)
        self.proxy = nfq.Proxy(self.engine, p.queue)
        if self._stop_requested:
            self.proxy.stop(self._stop_requested)
        self.where = self._installer.install(p.queue, p.ports, p.directions)

    def run(self, *, on_ready: Callable[[], None] | None = None,
            status: Callable[[float], None] | None = None, status_interval: float = 1.0,
            on_warning: Callable[[str], None] | None = None) -> SessionResult:
        """Serve until the end; the rules are removed whatever happens (by the proxy's run)."""
        assert self.proxy is not None and self.engine is not None and self._installer is not None
        installer, queue = self._installer, self.plan.queue
        warn = on_warning or (lambda _msg: None)

        def stop_queueing() -> None:
            try:
                installer.stop_queueing(queue)
            except nfq.FaultError as exc:
                warn(f"could not stop queueing ({exc})")

        def remove_rules() -> None:
            try:
                installer.remove(queue)
            except nfq.FaultError as exc:
                warn(f"could not remove my rules ({exc}); run `hbtool fault cleanup`")

        result = self.proxy.run(duration=self.plan.duration, stop_queueing=stop_queueing,
                                remove_rules=remove_rules, status=status,
                                status_interval=status_interval, on_ready=on_ready)
        extra = {"seed": self.plan.seed, "queue": queue, "scenario": self.plan.scenario_name,
                 "verdict_time": nfq.verdict_percentiles(self.proxy.verdict_ns)}
        self._result = SessionResult(result.reason, result.elapsed, self.engine.total,
                                     nfq.final_table(self.engine), self.proxy.copy_errors,
                                     nfq.stats_document(self.engine, result, extra))
        return self._result

    def stop(self, reason: str = "stopped") -> None:
        """Ask a running session to end (thread-safe: the proxy polls at least every 0.25 s)."""
        self._stop_requested = reason
        if self.proxy is not None:
            self.proxy.stop(reason)

    # -- as a background worker

    def start(self, *, timeout: float = 10.0, wait: bool = True) -> None:
        """Run the session in a thread; return once its rules are installed and it serves
        (``wait=False``: at once; call :meth:`wait_ready`, e.g. after starting several)."""
        self._thread = threading.Thread(target=self._work, name="fault-session", daemon=True)
        self._thread.start()
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 10.0) -> None:
        if not self._ready.wait(timeout) and self._error is None:
            self.stop("start timed out")
            raise FaultSessionError(f"fault session in {self.plan.netns} did not start "
                                    f"within {timeout:g} s")
        if self._error is not None:
            raise FaultSessionError(str(self._error))

    def _on_ready(self) -> None:
        self.ready_at = time.time()
        self._ready.set()

    def _work(self) -> None:
        try:
            self.open()
            self.run(on_ready=self._on_ready)
        except BaseException as exc:  # reported by start()/join()
            self._error = exc
        finally:
            self._ready.set()

    def join(self, timeout: float = 30.0) -> SessionResult:
        """Wait for the worker (it removes its rules before ending); the session's result."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self.stop("join timed out")
                self._thread.join(5.0)
                raise FaultSessionError(f"fault session in {self.plan.netns} did not end")
        if self._error is not None:
            raise FaultSessionError(str(self._error))
        if self._result is None:
            raise FaultSessionError("the fault session never ran")
        return self._result
