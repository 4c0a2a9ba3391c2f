"""Chaos scenarios: a cluster shape plus a timeline of nemesis steps, in Python or TOML.

A scenario says what to break and when, never what the answer is: the checkers judge from
observation, and the expected verdict per implementation lives in :mod:`hbtools.chaos.expected`.

Steps name nodes by *role* so one scenario fits every cluster: ``owner`` is the node holding the
VIP when the run starts, ``other`` the first node that does not, ``all`` every node; rule texts
may say ``{owner}``/``{other}`` and get node names. TOML form::

    name = "partition-twoway"
    nodes = 2
    duration = "12s"          # observation time after the cluster settled
    kind = "failure"          # failure: a takeover is allowed; benign: no owner may change
    [options]                 # cluster options, e.g. ha_cf_extra = ["detector phi"]
    [[step]]
    do = "net"                # crash | kill | stop | freeze | restart | net | flood |
                              # service-kill | service-hang (with options.service = "http")
    at = "1s"
    for = "5s"                # net/freeze/flood: length of the window; crash/kill: restart after
    on = "all"                # where a net rule runs (role or node name)
    rules = ["partition {owner}<>{other} in"]

Options parameterise the stack (``ha_cf_extra`` lines for ``ha.cf``, ``daemon_args`` for
``hbtool daemon``, ``media``, ``fencing``…): :func:`with_options` makes "the same scenario with
``detector phi``" without copying it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hbtools.errors import SourceError
from hbtools.faults.rules import RuleError, parse_duration

STEP_KINDS = ("crash", "kill", "stop", "freeze", "restart", "net", "flood", "service-kill",
              "service-hang")
SCENARIO_KINDS = ("failure", "benign")


class ScenarioError(SourceError):
    """A scenario that cannot run (file, line, problem)."""


@dataclass(frozen=True)
class Step:
    do: str
    at: float
    length: float | None = None
    on: str = "owner"
    rules: tuple[str, ...] = ()
    rate: int = 10000

    @property
    def end(self) -> float | None:
        return None if self.length is None else self.at + self.length


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    duration: float
    nodes: int = 2
    kind: str = "failure"
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    impls: tuple[str, ...] = ("hbtools", "heartbeat", "pacemaker")
    """The kinds this scenario makes sense for (e.g. Heartbeat media only for Heartbeat)."""

    @property
    def cluster_key(self) -> tuple[int, str]:
        """Scenarios with equal keys can share one running cluster."""
        return self.nodes, repr(sorted(self.options.items()))


def with_options(scenario: Scenario, suffix: str, **options: Any) -> Scenario:
    """The same scenario with more cluster options (lists are extended), named ``name+suffix``."""
    merged = dict(scenario.options)
    for key, value in options.items():
        if isinstance(value, (list, tuple)) and isinstance(merged.get(key), (list, tuple)):
            merged[key] = tuple(merged[key]) + tuple(value)
        else:
            merged[key] = tuple(value) if isinstance(value, list) else value
    return replace(scenario, name=f"{scenario.name}+{suffix}", options=merged)


def _s(*steps: Step) -> tuple[Step, ...]:
    return steps


HA = ("hbtools", "heartbeat")
PCMK = ("pacemaker",)
"""3-node scenarios: Heartbeat v1's haresources (3.0.6 with ``crm off``, and hbtools like it)
places resources between two nodes only, so they apply to Pacemaker alone."""
ALL = ("hbtools", "heartbeat", "pacemaker")

BUILTIN: dict[str, Scenario] = {s.name: s for s in (
    Scenario("crash", _s(Step("crash", 1.0)), 8.0,
             description="power loss of the owner (SIGKILL of its whole PID namespace, link down)"),
    Scenario("crash-restart", _s(Step("crash", 1.0, 3.0)), 11.0,
             description="power loss of the owner, rebooted 3 s later"),
    Scenario("stop", _s(Step("stop", 1.0)), 7.0, description="clean stop of the owner"),
    Scenario("freeze", _s(Step("freeze", 1.0, 4.0)), 12.0,
             description="SIGSTOP of every process of the owner for 4 s (twice deadtime), then SIGCONT"),
    Scenario("partition-oneway", _s(Step("net", 1.0, 4.0, "all",
                                         ("partition {owner}>{other} in",))), 12.0,
             description="the other node hears nothing from the owner for 4 s"),
    Scenario("partition-twoway", _s(Step("net", 1.0, 4.0, "all",
                                         ("partition {owner}<>{other} in",))), 12.0,
             description="owner and other hear nothing from each other for 4 s"),
    Scenario("halves", _s(Step("net", 1.0, 4.0, "all", ("halves in",))), 12.0, nodes=3,
             impls=PCMK,
             description="3 nodes cut into node1 | node2+node3 for 4 s"),
    Scenario("bridge", _s(Step("net", 1.0, 4.0, "all", ("bridge node2 in",))), 12.0, nodes=3,
             impls=PCMK,
             description="node1 and node3 cannot hear each other, node2 hears both, for 4 s"),
    Scenario("loss30", _s(Step("net", 1.0, 8.0, "all", ("drop all in p=0.3",))), 10.0,
             kind="benign", description="30% of cluster datagrams lost at every receiver for 8 s"),
    Scenario("burst-loss", _s(Step("net", 1.0, 3.5, "all", ("drop all in",))), 11.0,
             description="every cluster datagram lost for 3.5 s (longer than deadtime)"),
    Scenario("delay-jitter", _s(Step("net", 1.0, 6.0, "all",
                                     ("delay 1200ms jitter=200ms in",))), 8.0, kind="benign",
             description="every datagram 1.2 s ± 0.2 s late (deadtime 2 s) for 6 s"),
    Scenario("media-cut", _s(Step("net", 1.0, 6.0, "all", ("drop to=198.18.0.255",))), 8.0,
             kind="benign", options={"media": "bcast+ucast"}, impls=HA,
             description="bcast medium cut for 6 s while ucast still works"),
    Scenario("flood", _s(Step("flood", 1.0, 5.0, "owner", rate=10000)), 8.0, kind="benign",
             impls=HA, description="10k forged datagrams/s at the owner for 5 s (garbage, bad "
                                   "signatures, replays with an old generation)"),
    # Issue 17: the node lives, its service does not (hbtools' per-group `check`, real nginx).
    Scenario("service-dies", _s(Step("service-kill", 1.0)), 7.0, options={"service": "http"},
             impls=("hbtools",), description="nginx on the owner SIGKILLed; the node and its "
                                             "daemon live: the check moves the VIP group"),
    Scenario("service-hangs", _s(Step("service-hang", 1.0)), 7.0, options={"service": "http"},
             impls=("hbtools",), description="nginx on the owner SIGSTOPped: it accepts and "
                                             "never answers; the check times out and moves it"),
    # Last: a stack that keeps a stale VIP leaves the cluster for a rebuild, not a reset.
    Scenario("kill-restart", _s(Step("kill", 1.0, 6.0)), 14.0,
             description="SIGKILL of the owner's cluster stack (machine and addresses stay), "
                         "started again 6 s later (after every stack noticed)"),
)}

CORE = ("crash", "stop", "partition-twoway", "loss30")
"""The core set run against Pacemaker too (with the 3-node ones only it can run)."""


def for_impl(scenario: Scenario, impl: str) -> bool:
    return impl in scenario.impls


# ----------------------------------------------------------------------------- TOML

_TOP = {"name", "nodes", "duration", "kind", "options", "step", "description", "impls"}
_STEP = {"do", "at", "for", "on", "rules", "rate"}


def load(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(str(path), None, f"cannot read: {exc.strerror}") from None
    return parse(text, str(path))


def _line(text: str, needle: str) -> int | None:
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    return None


def parse(text: str, source: str = "<scenario>") -> Scenario:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, getattr(exc, "lineno", None), str(exc).split(" (at")[0]) from None

    def fail(problem: str, needle: str | None = None) -> ScenarioError:
        return ScenarioError(source, _line(text, needle) if needle else None, problem)

    unknown = set(doc) - _TOP
    if unknown:
        key = sorted(unknown)[0]
        raise fail(f"unknown key {key!r} (known: {', '.join(sorted(_TOP))})", key)
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise fail("a scenario needs a name = \"...\"")

    def dur(value: Any, key: str) -> float:
        try:
            return parse_duration(str(value), key) if isinstance(value, str) else float(value)
        except (RuleError, ValueError):
            raise fail(f"{key}: not a time: {value!r}", key) from None

    steps = []
    for raw in doc.get("step", []):
        if not isinstance(raw, dict):
            raise fail("[[step]] must be a table", "[[step]]")
        bad = set(raw) - _STEP
        if bad:
            key = sorted(bad)[0]
            raise fail(f"unknown step key {key!r} (known: {', '.join(sorted(_STEP))})", key)
        do = raw.get("do")
        if do not in STEP_KINDS:
            raise fail(f"step do = {do!r}: one of {', '.join(STEP_KINDS)}", "do")
        rules = raw.get("rules", [])
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise fail("rules must be a list of rule texts", "rules")
        if do == "net" and not rules:
            raise fail("a net step needs rules", "do")
        length = dur(raw["for"], "for") if "for" in raw else None
        steps.append(Step(do, dur(raw.get("at", 0), "at"), length, str(raw.get("on", "owner")),
                          tuple(rules), int(raw.get("rate", 10000))))
    if not steps:
        raise fail("a scenario needs at least one [[step]]")
    kind = doc.get("kind", "failure")
    if kind not in SCENARIO_KINDS:
        raise fail(f"kind = {kind!r}: one of {', '.join(SCENARIO_KINDS)}", "kind")
    nodes = doc.get("nodes", 2)
    if not isinstance(nodes, int) or not 2 <= nodes <= 5:
        raise fail("nodes must be 2..5", "nodes")
    options = doc.get("options", {})
    if not isinstance(options, dict):
        raise fail("[options] must be a table", "options")
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    impls = tuple(doc.get("impls", ALL))
    return Scenario(name, tuple(steps), dur(doc.get("duration", "10s"), "duration"), nodes, kind,
                    options, str(doc.get("description", "")), impls)


def resolve(names: list[str]) -> list[Scenario]:
    """Built-in names, ``all``, ``core``, or paths of TOML files."""
    out: list[Scenario] = []
    for name in names:
        if name == "all":
            out += BUILTIN.values()
        elif name == "core":
            out += [BUILTIN[n] for n in CORE]
        elif name in BUILTIN:
            out.append(BUILTIN[name])
        elif name.endswith(".toml") or Path(name).exists():
            out.append(load(name))
        else:
            raise ScenarioError(name, None, "no such scenario (built-in: "
                                f"{', '.join(BUILTIN)}; or a .toml file)")
    return out
