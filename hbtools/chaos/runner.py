"""Run scenarios against cluster kinds: lab, nemeses, sampling, capture, verdict, report files.

One run: take a settled cluster (fresh, or reused from the :class:`Pool` after a reset check),
start a bridge capture, sample VIP owners in every node namespace and the client's ARP entry at
20 Hz, play the scenario's steps (faults through :class:`hbtools.usecases.fault.FaultSession`,
processes through the cluster interface), stop, and judge with :mod:`hbtools.chaos.checkers`.
Every run leaves ``<out>/<scenario>/<impl>/`` with ``capture.pcap``, ``timeline.png`` and
``run.json``.

Reuse is sound only if the next run cannot tell: the reset restarts whatever a scenario stopped,
thaws what it froze, and requires one owner stable for a while with every stack running and no
fault rule left in any namespace; a cluster that fails the reset is thrown away and a fresh one
built.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hbtools.chaos import checkers, wire
from hbtools.chaos.expected import expected_for, matches
from hbtools.chaos.scenarios import Scenario, Step
from hbtools.lab import Lab, LabError, Node, _run
from hbtools.lab.cluster import Timing
from hbtools.lab.clusters import CHAOS_TIMING, make_cluster, settle
from hbtools.lab.observe import Netns
from hbtools.usecases.fault import FaultSession, FaultSessionError

SAMPLE_INTERVAL = 0.05
STAGGER_LIMIT_S = 0.5
"""Net fault sessions of one step must start within this of each other, or the run says so."""
SETTLE_S = 1.5
FLOOD_KINDS = (("garbage", 0.4), ("badsig", 0.3), ("replay", 0.3))


def grace_s(timing: Timing) -> float:
    """Time allowed after a fault (or its heal) to detect, take over and resolve."""
    return 2 * timing.deadtime_ms / 1000 + 2.0


def heal_budget_s(timing: Timing) -> float:
    """How long after a heal the client may be without one reachable owner: two deadtimes —
    hearing the peer again and 3.0.6's resolution (the node that took over restarts 2 s after
    "returning after partition", hbtools copies it) take about that; a stack still unresolved
    then is not going to be soon (3.0.6 and Pacemaker needed 6-8 s here)."""
    return 2 * timing.deadtime_ms / 1000


# ----------------------------------------------------------------------------- environments


@dataclass
class Env:
    """A lab with a started cluster, a client pinging the VIP, and observers."""

    impl: str
    key: tuple[Any, ...]
    lab: Lab
    cluster: Any
    client: Node
    client_obs: Netns
    runs: int = 0

    def close(self) -> list[str]:
        """Tear down by PID (cluster, then the lab); returns what was left behind."""
        left: list[str] = []
        with contextlib.suppress(Exception):
            self.client_obs.close()
        try:
            self.cluster.close()
        except Exception as exc:  # keep tearing down
            left.append(f"cluster close: {exc}")
        prefix = self.lab.prefix
        try:
            self.lab.close()
        except LabError as exc:
            left.append(str(exc))
        names = _run(["ip", "netns", "list"], check=False).stdout
        left += [f"namespace {line.split()[0]}" for line in names.splitlines()
                 if line.startswith(prefix + "-")]
        return left


def new_env(impl: str, scenario: Scenario, timing: Timing) -> Env:
    lab = Lab()
    lab.start()
    try:
        cluster = make_cluster(impl, lab, scenario.nodes, timing, **scenario.options)
        client = lab.add_client()
        client.lab._popen(["ip", "netns", "exec", client.netns, "ping", "-n", "-q", "-i", "0.2",
                           "-w", "3600", cluster.vip], env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          stdin=subprocess.DEVNULL, text=True)
        cluster.start()
        settle(cluster, SETTLE_S)
        return Env(impl, (impl, *scenario.cluster_key), lab, cluster, client, Netns(client.netns))
    except BaseException:
        with contextlib.suppress(Exception):
            lab.close()
        raise


def fault_tables(netns: str) -> list[str]:
    """Fault-proxy rules still installed in ``netns`` (nft tables, iptables chains)."""
    out = []
    res = _run(["ip", "netns", "exec", netns, "nft", "list", "tables"], check=False)
    out += [line.strip() for line in res.stdout.splitlines() if "hbtools_fault" in line]
    res = _run(["ip", "netns", "exec", netns, "iptables-save"], check=False)
    out += [line.strip() for line in res.stdout.splitlines()
            if line.startswith(":HBTFAULT")]
    return out


def reset(env: Env) -> None:
    """Make a used cluster indistinguishable from a fresh one, or raise LabError."""
    c = env.cluster
    for name in c.nodes:
        c.thaw(name)
    for name in c.nodes:
        if not c.running(name):
            c.restart(name)
    if getattr(c, "service", None):
        c.restore_services()  # what service-kill / service-hang did
    settle(c, SETTLE_S + c.timing.deadtime_ms / 2000, timeout=20)
    for name in c.nodes:
        if not c.running(name):
            raise LabError(f"{name} is not running after the reset")
        left = fault_tables(c.netns(name))
        if left:
            raise LabError(f"fault rules left in {name}: {left}")


class Pool:
    """Clusters kept between runs, one per (kind, node count, options).

    At most ``max_idle`` wait for their next run (the most recently used): runs come grouped
    by cluster shape (:func:`hbtools.usecases.chaos.plan_runs`), and every idle cluster keeps
    its daemons beating, which on a 2-core machine slows the runs that follow and made the
    end-of-session teardown of a whole matrix take ~50 s.
    """

    def __init__(self, timing: Timing = CHAOS_TIMING, *, reuse: bool = True,
                 log: Callable[[str], None] | None = None, max_idle: int = 1) -> None:
        self.timing = timing
        self.reuse = reuse
        self.max_idle = max(0, max_idle)
        self.envs: dict[tuple[Any, ...], Env] = {}
        self.leftovers: list[str] = []
        self.log = log or (lambda _m: None)

    def get(self, impl: str, scenario: Scenario) -> Env:
        key = (impl, *scenario.cluster_key)
        env = self.envs.pop(key, None)
        if env is not None:
            try:
                reset(env)
                return env
            except LabError as exc:
                self.log(f"  (reset of the {impl} cluster failed: {exc}; building a fresh one)")
                self.leftovers += env.close()
        return new_env(impl, scenario, self.timing)

    def put(self, env: Env) -> None:
        if not self.reuse:
            self.leftovers += env.close()
            return
        old = self.envs.pop(env.key, None)
        if old is not None:
            self.leftovers += old.close()
        self.envs[env.key] = env
        while len(self.envs) > self.max_idle:
            oldest = next(iter(self.envs))
            self.leftovers += self.envs.pop(oldest).close()

    def close(self) -> list[str]:
        for env in list(self.envs.values()):
            self.leftovers += env.close()
        self.envs.clear()
        return self.leftovers

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- sampling


class Sampler:
    """VIP owners in every node namespace and the client's ARP entry, at a fixed rate."""

    def __init__(self, env: Env, interval: float = SAMPLE_INTERVAL, limit_s: float = 600) -> None:
        self.env = env
        self.interval = interval
        self.limit = int(limit_s / interval)
        self.samples: list[tuple[float, tuple[str, ...], str | None]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="chaos-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[tuple[float, tuple[str, ...], str | None]]:
        self._stop.set()
        self._thread.join(5)
        return self.samples

    def _work(self) -> None:
        c, vip = self.env.cluster, self.env.cluster.vip
        nxt = time.monotonic()
        for _ in range(self.limit):
            if self._stop.is_set():
                return
            try:
                owners = tuple(c.vip_owners())
                mac = self.env.client_obs.neighbour(vip)
                self.samples.append((time.time(), owners, mac))
            except Exception:  # a namespace mid-change; the next sample will do
                self.errors += 1
            nxt += self.interval
            self._stop.wait(max(0.0, nxt - time.monotonic()))


# ----------------------------------------------------------------------------- nemeses


@dataclass
class Action:
    at: float
    label: str
    run: Callable[[], None]


@dataclass
class Played:
    """What the nemesis did, in wall-clock times (the checkers' fault windows)."""

    windows: list[tuple[str, float, float | None]] = field(default_factory=list)
    marks: list[tuple[float, str, str]] = field(default_factory=list)
    sessions: list[FaultSession] = field(default_factory=list)
    floods: list[subprocess.Popen[str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _targets(on: str, owner: str, other: str, nodes: Sequence[str]) -> list[str]:
    if on == "all":
        return list(nodes)
    return [{"owner": owner, "other": other}.get(on, on)]


_QUEUE_BASE = 20000 + (os.getpid() % 4000) * 10


def plan_actions(steps: Sequence[Step], env: Env, owner: str, other: str, played: Played,
                 t0: float) -> list[Action]:
    """The scenario's steps as timed actions on this cluster (roles resolved to nodes)."""
    c = env.cluster
    nodes = list(c.nodes)
    addresses = {n: c.node(n).address for n in nodes}
    actions: list[Action] = []
    queue = [_QUEUE_BASE]

    def window_start(label: str, start_at: float, length: float | None, *,
                     runs_own_clock: bool = False, began: Sequence[float] = ()) -> None:
        """Record a fault window from now. A heal action is scheduled at ``at + for`` of the
        run, so the window ends there even if the fault began late; a fault session or a
        flood runs ``for`` from the moment it is ready (``runs_own_clock``)."""
        now = min(began) if began else time.time()
        if length is None:
            end = None
        elif runs_own_clock:
            end = (max(began) if began else now) + length
        else:
            end = max(now, t0 + start_at + length)
        played.windows.append((label, now, end))

    for step in steps:
        targets = _targets(step.on, owner, other, nodes)
        label = f"{step.do} {step.on if step.on in ('all',) else ','.join(targets)}"
        if step.do in ("crash", "kill", "stop", "freeze", "restart"):
            for node in targets:
                verb = getattr(c, step.do)

                def hit(verb: Callable[[str], None] = verb, node: str = node,
                        step: Step = step, label: str = label) -> None:
                    played.marks.append((time.time(), node, step.do))
                    if step.do != "restart":
                        window_start(label, step.at, step.length)
                    verb(node)

                actions.append(Action(step.at, label, hit))
                if step.length is not None and step.do in ("crash", "kill", "freeze"):
                    back = c.thaw if step.do == "freeze" else c.restart
                    what = "thaw" if step.do == "freeze" else "restart"

                    def heal(back: Callable[[str], None] = back, node: str = node,
                             what: str = what) -> None:
                        played.marks.append((time.time(), node, what))
                        back(node)

                    actions.append(Action(step.at + step.length, f"{what} {node}", heal))
        elif step.do == "net":
            rules = [r.format(owner=owner, other=other) for r in step.rules]

            def net(rules: list[str] = rules, targets: list[str] = targets, step: Step = step,
                    label: str = label) -> None:
                sessions = []
                for node in targets:
                    queue[0] += 1
                    s = FaultSession.build(rules=rules, netns=c.netns(node), nodes=addresses,
                                           duration=step.length, queue=queue[0],
                                           seed=queue[0])
                    sessions.append(s)
                    played.sessions.append(s)
                for s in sessions:  # side by side: every node's rules from about one moment
                    s.start(wait=False)
                for s in sessions:
                    s.wait_ready()
                # From the first node's rules being in place to the last one's end: a session
                # can be slow to get ready on a loaded machine while the others already cut.
                window_start(f"{' '.join(rules)} @ {label.split(' ', 1)[1]}", step.at, step.length,
                             runs_own_clock=True,
                             began=[x.ready_at for x in sessions if x.ready_at is not None])
                ready = [x.ready_at for x in sessions if x.ready_at is not None]
                if ready and max(ready) - min(ready) > STAGGER_LIMIT_S:
                    played.errors.append(f"harness: the fault sessions of {label!r} became ready "
                                         f"{max(ready) - min(ready):.1f} s apart (loaded host); "
                                         "the fault was not the scenario's")

            actions.append(Action(step.at, label, net))
        elif step.do in ("service-kill", "service-hang"):
            verb = c.service_kill if step.do == "service-kill" else c.service_hang
            for node in targets:

                def hit_service(verb: Callable[[str], None] = verb, node: str = node,
                                step: Step = step, label: str = label) -> None:
                    played.marks.append((time.time(), node, step.do))
                    window_start(label, step.at, step.length)
                    verb(node)

                actions.append(Action(step.at, label, hit_service))
        elif step.do == "flood":
            from hbtools.node.labsupport import flood

            def hit_flood(targets: list[str] = targets, step: Step = step) -> None:
                window_start(f"flood {step.rate}/s → {','.join(targets)}", step.at, step.length,
                             runs_own_clock=True)
                for node in targets:
                    for kind, share in FLOOD_KINDS:
                        played.floods.append(flood(
                            env.client, addresses[node], kind, rate=int(step.rate * share),
                            seconds=step.length or 5.0, authkeys=c.authkeys, src=owner))

            actions.append(Action(step.at, label, hit_flood))
    return sorted(actions, key=lambda a: a.at)


# ----------------------------------------------------------------------------- one run


@dataclass
class RunResult:
    scenario: str
    impl: str
    verdict: str
    expected: str
    expected_reason: str
    as_expected: bool
    reasons: list[str]
    detection_ms: float | None
    takeover_ms: float | None
    split_brain_s: float
    false_failovers: int
    owner_changes: int
    new_owner: str | None
    final_owners: list[str]
    client_ok: bool
    leftovers: list[str]
    seconds: float
    samples: int
    sample_rate_hz: float
    files: dict[str, str]
    error: str | None = None
    setup_s: float = 0.0
    recovered_after_s: float | None = None
    disrupted_after_heal_s: float | None = None
    """For a run that ended without one owner the client points at: how long after the end
    that was reached (None: not within RECOVERY_WAIT_S)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_one(scenario: Scenario, impl: str, out_dir: Path, pool: Pool) -> RunResult:
    began = time.monotonic()
    run_dir = out_dir / scenario.name / impl
    run_dir.mkdir(parents=True, exist_ok=True)
    pcap = run_dir / "capture.pcap"
    with contextlib.suppress(FileNotFoundError):
        pcap.unlink()  # tcpdump -w would follow a symlink left at the name
    exp, why = expected_for(scenario.name, impl)
    try:
        env = pool.get(impl, scenario)
    except (LabError, OSError) as exc:
        return _failed(scenario, impl, exp, why, f"cluster did not start: {exc}", began)
    setup_s = round(time.monotonic() - began, 1)
    c = env.cluster
    played = Played()
    sampler = Sampler(env)
    capture = env.lab.capture(pcap)
    ok = False
    try:
        owner = c.vip_owners()[0]
        other = next(n for n in c.nodes if n != owner)
        sampler.start()
        t0 = time.time()
        actions = plan_actions(scenario.steps, env, owner, other, played, t0)
        for action in actions:
            delay = t0 + action.at - time.time()
            if delay > 0:
                time.sleep(delay)
            try:
                action.run()
            except (LabError, FaultSessionError, OSError) as exc:
                played.errors.append(f"{action.label}: {exc}")
        remaining = t0 + scenario.duration - time.time()
        if remaining > 0:
            time.sleep(remaining)
        end = time.time()
        macs = {n: c.mac(n) for n in c.nodes}
        verdict = checkers.check(sampler.samples, played.windows, kind=scenario.kind,
                                 grace=grace_s(c.timing), macs=macs, end=end,
                                 heal_budget=heal_budget_s(c.timing))
        recovered = None
        if not verdict.client_ok:
            recovered = _recovery(sampler, macs, end)
        samples = sampler.stop()
        samples = [x for x in samples if x[0] <= end]
        leftovers = _finish(played, c)
        capture.stop()
        seen = wire.read(pcap, c.vip, {n: c.node(n).address for n in c.nodes})
        if recovered is not None:
            verdict.reasons.append(f"one owner, client pointing at it, {recovered:.1f} s after "
                                   "the end")
        elif not verdict.client_ok:
            verdict.reasons.append(f"still not resolved {RECOVERY_WAIT_S:g} s after the end")
        if getattr(c, "service", None) and played.windows:
            _service_verdict(verdict, sampler.samples, played, env, owner)
        if played.errors:
            verdict.passed = False
            verdict.reasons += played.errors
        if leftovers:
            verdict.passed = False
            verdict.reasons.append("left behind: " + "; ".join(leftovers))
        detection = takeover = new_owner = None
        if scenario.kind == "failure" and played.windows:
            detection, takeover, new_owner = checkers.takeover_times(
                seen.garps, seen.heartbeats, fault_start=played.windows[0][1], victim=owner,
                macs=macs)
        files = {"capture": str(pcap), "run": str(run_dir / "run.json"),
                 **_copy_logs(c, run_dir, t0)}
        try:
            from hbtools.chaos.timeline import draw

            files["timeline"] = draw(run_dir / "timeline.png", scenario, impl, c, samples,
                                     played, seen, macs, t0, end)
        except Exception as exc:  # a picture must not hide a verdict
            files["timeline_error"] = str(exc)
        rate = len(samples) / max(0.001, end - t0)
        result = RunResult(scenario.name, impl, verdict.label, exp, why,
                           matches(scenario.name, impl, verdict.label, verdict.reasons),
                           verdict.reasons, detection, takeover, verdict.split_brain_s,
                           verdict.false_failovers, verdict.owner_changes, new_owner,
                           list(verdict.final_owners), verdict.client_ok, leftovers,
                           round(time.monotonic() - began, 1), len(samples), round(rate, 1), files,
                           setup_s=setup_s, recovered_after_s=recovered,
                           disrupted_after_heal_s=verdict.disrupted_after_heal_s)
        write_file(run_dir / "run.json", json.dumps(
            {**result.as_dict(), "owner": owner, "windows": played.windows, "marks": played.marks,
             "service": verdict.extra,
             "garps": seen.garps[:200], "timing": asdict(c.timing),
             "options": {k: list(v) if isinstance(v, tuple) else v
                         for k, v in scenario.options.items()}}, indent=1, default=str) + "\n")
        ok = True
        return result
    finally:
        if not ok:
            sampler.stop()
            _finish(played, c)
            with contextlib.suppress(Exception):
                capture.stop()
        env.runs += 1
        pool.put(env)


def _service_verdict(verdict: checkers.Verdict, samples: Sequence[checkers.Sample],
                     played: Played, env: Env, victim: str) -> None:
    """Issue 17's rules for the service scenarios (hbtools.chaos.checkers.service_moved), from
    the sampled owners, the page the client gets from the VIP now, and the new owner's events."""
    from hbtools.lab.clusters import SERVICE_FAILURES, SERVICE_INTERVAL_S

    c = env.cluster
    page = env.client.run(["curl", "-s", "-m", "2", f"http://{c.vip}/"], check=False).stdout.strip()
    final = next((o for _t, owners, _m in reversed(samples) if len(owners) == 1 for o in owners),
                 None)
    failing = False
    if final is not None and final != victim:
        state = None  # the new owner's check, event by event, up to its taking the group
        for line in Path(c.logs()[final]).read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                e = json.loads(line)
                if e.get("kind") in ("check_failed", "check_ok"):
                    state = e["kind"]
                elif e.get("kind") == "resource_taken" and e.get("mono", 0) > 0:
                    failing = failing or state == "check_failed"
    bound = SERVICE_INTERVAL_S * (SERVICE_FAILURES + 1) + SERVICE_TAKEOVER_S
    moved, reasons = checkers.service_moved(samples, fault_start=played.windows[0][1],
                                            victim=victim, bound=bound, page=page,
                                            new_owner_check_failed=failing)
    verdict.extra["service_moved_s"] = moved
    verdict.extra["page"] = page
    if reasons:
        verdict.passed = False
        verdict.reasons += reasons


SERVICE_TAKEOVER_S = 2.0
"""The hand-over (ask_resources me/other/done, ip, GARP) plus the client seeing it."""

LOG_TAIL_BYTES = 256 * 1024


def write_file(path: Path, data: bytes | str) -> None:
    """Create or replace a result file without following a symlink planted at its name
    (we run as root, often below /tmp)."""
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644)
    try:
        os.write(fd, raw)
    finally:
        os.close(fd)


def _copy_logs(cluster: Any, run_dir: Path, t0: float) -> dict[str, str]:
    """The stacks' own logs (their tails) beside the capture: the lab's directory goes with
    the lab, and a verdict about a real stack should come with its own words."""
    out = {}
    with contextlib.suppress(Exception):
        for node, path in cluster.logs().items():
            data = b""
            with contextlib.suppress(OSError), open(path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - LOG_TAIL_BYTES))
                data = fh.read()
            target = run_dir / f"{node}.log"
            write_file(target, data)
            out[f"log_{node}"] = str(target)
    return out


RECOVERY_WAIT_S = 12.0


def _recovery(sampler: Sampler, macs: dict[str, str], end: float) -> float | None:
    """Keep watching a run that ended unresolved: seconds until one owner with the client's
    ARP entry on it, held for half a second (None if not within RECOVERY_WAIT_S)."""
    since: float | None = None
    for _ in range(int(RECOVERY_WAIT_S / 0.1) + 1):
        if sampler.samples:
            t, owners, mac = sampler.samples[-1]
            if len(owners) == 1 and mac == macs.get(owners[0]):
                since = since if since is not None else t
                if t - since >= 0.5:
                    return round(since - end, 1)
            else:
                since = None
        if time.time() - end > RECOVERY_WAIT_S:
            return None
        time.sleep(0.1)
    return None


def _finish(played: Played, cluster: Any) -> list[str]:
    """End every session and flood (by PID) and report anything still in place."""
    left: list[str] = []
    for s in played.sessions:
        try:
            s.join(timeout=30)
        except FaultSessionError as exc:
            left.append(f"fault session: {exc}")
    for proc in played.floods:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
            left.append(f"flood pid {proc.pid} had to be killed")
    for name in cluster.nodes:
        with contextlib.suppress(LabError):
            left += [f"{name}: {r}" for r in fault_tables(cluster.netns(name))]
    return left


def _failed(scenario: Scenario, impl: str, exp: str, why: str, error: str, began: float
            ) -> RunResult:
    return RunResult(scenario.name, impl, "ERROR", exp, why, False, [error], None, None, 0.0, 0,
                     0, None, [], False, [], round(time.monotonic() - began, 1), 0, 0.0, {},
                     error)
