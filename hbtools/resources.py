"""Resource agents as Heartbeat v1 runs them: which program, which argv, what its exit means.

Pure: no process is started here. The daemon's runner asks :func:`invocation` for the argv and
environment of one step, runs it (never through a shell), and hands the exit code back to a
:class:`GroupAction`, which says what to run next and, at the end, whether the group's start or
stop worked. The rules are those of Heartbeat's ``ResourceManager`` (Debian's heartbeat 3.0.6,
/usr/share/heartbeat/ResourceManager):

* ``Name::arg1::arg2`` names a script ``Name`` looked up in ``resource.d`` and then in the init
  directory; its arguments come before the action (``resource.d/Name arg1 arg2 start``).
* A group starts in ``haresources`` order; a resource that already answers ``status`` as running
  is not started again. When one start fails the whole group is given up: every resource is
  stopped in reverse order, and the node hands the group to its peer (3.0.6 asks for a standby
  of that group 30 s later; the daemon asks at once, see ``Node.resource_failed``).
* Stops go in reverse order and are retried; a stop that keeps failing while the resource still
  runs is the one case where Heartbeat reboots the machine. The daemon reports it (an event and
  the group not held by anyone) and leaves the reboot decision to the operator's fence setup.

OCF agents (``/usr/lib/ocf/resource.d/PROVIDER/TYPE``, from Debian's resource-agents) are named
``ocf:PROVIDER:TYPE::key=value::key=value``, or a bare ``TYPE::key=value`` when no resource.d
script or init script of that name exists; parameters go to the agent as ``OCF_RESKEY_key`` in
its environment, the actions are start/stop/monitor, and the exit codes are OCF's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Literal

__all__ = [
    "OCF_RC",
    "AgentResource",
    "GroupAction",
    "Invocation",
    "Outcome",
    "interpret",
    "invocation",
    "parse_agent",
    "resolve",
]

Kind = Literal["heartbeat", "lsb", "ocf"]
Action = Literal["start", "stop", "status"]

#: OCF resource agent API, section "Return codes".
OCF_RC: dict[int, str] = {
    0: "success", 1: "generic error", 2: "invalid arguments", 3: "unimplemented feature",
    4: "insufficient privileges", 5: "not installed", 6: "not configured", 7: "not running",
    8: "running (master)", 9: "failed (master)",
}
OCF_SUCCESS, OCF_NOT_RUNNING = 0, 7
#: LSB init script actions, "status" exit codes: 0 running, 1/2 dead with pid/lock file, 3 stopped.
LSB_STATUS_STOPPED = 3

DEFAULT_RESOURCE_DIRS = (Path("/etc/ha.d/resource.d"),)
DEFAULT_INIT_DIR = Path("/etc/init.d")
DEFAULT_OCF_ROOT = Path("/usr/lib/ocf")

STOP_RETRIES = 10  # ResourceManager's HA_STOPRETRYMAX default
STOP_RETRY_DELAY = 1.0  # it sleeps 1 s between tries
STEP_TIMEOUT = 120.0  # seconds one agent call may take before it counts as failed

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class AgentResource:
    """A non-address ``haresources`` word: the agent's name, its arguments, where it is.

    ``kind`` and ``path`` are empty until :func:`resolve` has found the program.
    """

    name: str
    args: tuple[str, ...] = ()
    provider: str | None = None  # ocf:PROVIDER:TYPE given explicitly
    spec: str = ""
    kind: Kind | None = None
    path: Path | None = None

    def __str__(self) -> str:
        return self.spec or "::".join((self.name, *self.args))

    @property
    def params(self) -> dict[str, str]:
        """OCF parameters (``key=value`` arguments)."""
        return dict(a.split("=", 1) for a in self.args if "=" in a)


def parse_agent(spec: str) -> AgentResource:
    """``Name[::arg…]`` or ``ocf:PROVIDER:TYPE[::key=value…]``; ValueError says what is wrong."""
    parts = spec.split("::")
    head, args = parts[0], tuple(parts[1:])
    provider: str | None = None
    if head.lower().startswith("ocf:"):
        pieces = head.split(":")
        if len(pieces) != 3 or not all(pieces[1:]):
            raise ValueError(f"resource {spec!r}: expected ocf:PROVIDER:TYPE")
        provider, head = pieces[1], pieces[2]
        if not _NAME.match(provider):
            raise ValueError(f"resource {spec!r}: bad OCF provider name {provider!r}")
    if not _NAME.match(head):
        raise ValueError(f"resource {spec!r}: {head!r} is not a resource script name "
                         "(letters, digits, '_.+-', no '/')")
    for arg in args:
        if not arg or any(c in arg for c in "\n\r\x00"):
            raise ValueError(f"resource {spec!r}: empty argument or a control character")
    if provider is not None:
        _check_params(spec, args)
    return AgentResource(head, args, provider, spec)


def _check_params(spec: str, args: Sequence[str]) -> None:
    for arg in args:
        key, eq, _ = arg.partition("=")
        if not eq or not _PARAM.match(key):
            raise ValueError(f"resource {spec!r}: OCF parameter {arg!r} is not key=value")


def resolve(res: AgentResource, *, resource_dirs: Sequence[Path] = DEFAULT_RESOURCE_DIRS,
            init_dir: Path = DEFAULT_INIT_DIR, ocf_root: Path = DEFAULT_OCF_ROOT,
            executable: Callable[[Path], bool]) -> AgentResource:
    """Find the program, in Heartbeat's order: resource.d, the init directory, then OCF.

    ``executable`` is the only I/O (is this path an executable file?), passed in so that the
    rules can be tested on their own. ValueError: nowhere to be found ("Cannot locate").
    """
    if res.provider is None:
        for directory in resource_dirs:
            if executable(directory / res.name):
                return _with(res, "heartbeat", directory / res.name)
        if executable(init_dir / res.name):
            return _with(res, "lsb", init_dir / res.name)
    provider = res.provider or "heartbeat"
    ocf = ocf_root / "resource.d" / provider / res.name
    if executable(ocf):
        _check_params(res.spec or res.name, res.args)
        return _with(res, "ocf", ocf)
    places = ", ".join(str(p) for p in (*resource_dirs, init_dir)) if res.provider is None else ""
    where = f"{places}, {ocf.parent}" if places else str(ocf.parent)
    raise ValueError(f"cannot locate resource script {res.name!r} (looked in {where})")


def _with(res: AgentResource, kind: Kind, path: Path) -> AgentResource:
    return AgentResource(res.name, res.args, res.provider, res.spec, kind, path)


@dataclass(frozen=True)
class Invocation:
    """One program run: argv (no shell) and the environment entries to add."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    timeout: float = STEP_TIMEOUT


def invocation(res: AgentResource, action: Action, *, instance: str,
               ocf_root: Path = DEFAULT_OCF_ROOT) -> Invocation:
    """The argv/env for ``action``: resource.d and init scripts get ``args… action``
    (as ResourceManager's doscript), OCF agents ``action`` with OCF_RESKEY_ parameters;
    OCF's name for status is ``monitor``."""
    if res.kind is None or res.path is None:
        raise ValueError(f"resource {res} is not resolved")
    if res.kind == "ocf":
        env = [("OCF_ROOT", str(ocf_root)), ("OCF_RA_VERSION_MAJOR", "1"),
               ("OCF_RA_VERSION_MINOR", "0"), ("OCF_RESOURCE_INSTANCE", instance),
               ("OCF_RESOURCE_TYPE", res.name),
               ("OCF_RESOURCE_PROVIDER", res.provider or "heartbeat")]
        env += [(f"OCF_RESKEY_{k}", v) for k, v in res.params.items()]
        return Invocation((str(res.path), "monitor" if action == "status" else action), tuple(env))
    return Invocation((str(res.path), *res.args, action))


class Outcome(Enum):
    OK = "ok"  # start/stop done; status: running
    NOT_RUNNING = "not running"  # status only
    FAILED = "failed"


def interpret(res: AgentResource, action: Action, code: int | None, output: str = "") -> Outcome:
    """What an exit code means for this kind of agent and action (None: killed on timeout).

    OCF: 0 success, 7 not running (status; for stop it means "already stopped" = done).
    LSB: status 0 running, 3 stopped, 1/2 dead (not running either: must be started).
    Heartbeat resource.d scripts: status is read from the words they print, as ResourceManager's
    we_own_resource does ("running"/"OK" yes, "not running" no), start/stop by exit 0.
    """
    if code is None:
        return Outcome.FAILED
    if action == "status":
        if res.kind == "heartbeat":
            if re.search(r"not\s.*running", output, re.IGNORECASE):
                return Outcome.NOT_RUNNING
            if re.search(r"running|OK", output, re.IGNORECASE):
                return Outcome.OK
            return Outcome.NOT_RUNNING
        if code == 0:
            return Outcome.OK
        if res.kind == "lsb" and code in (1, 2, LSB_STATUS_STOPPED):
            return Outcome.NOT_RUNNING
        if res.kind == "ocf" and code == OCF_NOT_RUNNING:
            return Outcome.NOT_RUNNING
        return Outcome.FAILED
    if code == 0 or (res.kind == "ocf" and action == "stop" and code == OCF_NOT_RUNNING):
        return Outcome.OK
    return Outcome.FAILED


def describe(res: AgentResource, action: Action, code: int | None) -> str:
    """``apache start: exit 1 (generic error)`` — OCF meanings for OCF agents."""
    if code is None:
        return f"{res} {action}: timed out"
    meaning = f" ({OCF_RC[code]})" if res.kind == "ocf" and code in OCF_RC else ""
    return f"{res} {action}: exit {code}{meaning}"


# ----------------------------------------------------------------------------- group actions


@dataclass
class Step:
    """What the runner should do next: run ``action`` on ``resources[index]``."""

    index: int
    action: Action
    delay: float = 0.0  # wait this long before running it (stop retries: ResourceManager's 1 s)


@dataclass
class GroupAction:
    """Starting or stopping one group, resource by resource, as ResourceManager does.

    ``kinds[i]`` is "address" for an address resource (the runner adds/removes it itself and
    reports success or failure like any step) or the agent's kind. Drive it with
    ``step = ga.next()`` / ``ga.done(step, outcome, detail)`` until ``next()`` is None; then
    ``ok`` says whether the group reached the wanted state and ``failure`` why not.
    """

    operation: Literal["start", "stop"]
    kinds: tuple[str, ...]
    stop_retries: int = STOP_RETRIES
    ok: bool = True
    failure: str = ""
    stop_failed_running: bool = False  # a stop failed and the resource still runs (reboot case)
    _queue: list[Step] = field(default_factory=list)
    _started: list[int] = field(default_factory=list)
    _retries: dict[int, int] = field(default_factory=dict)
    _giving_up: bool = False

    def __post_init__(self) -> None:
        n = len(self.kinds)
        if self.operation == "start":
            self._queue = [self._first_start_step(i) for i in range(n)][:1]
        else:
            self._queue = [Step(i, "stop") for i in reversed(range(n))]

    def _first_start_step(self, i: int) -> Step:
        # "we_own_resource || doscript start": ask agents first; addresses are just added
        return Step(i, "start" if self.kinds[i] == "address" else "status")

    def next(self) -> Step | None:
        return self._queue[0] if self._queue else None

    def done(self, step: Step, outcome: Outcome, detail: str = "") -> None:
        if not self._queue or self._queue[0] is not step:
            raise ValueError("done() for a step that is not the current one")
        self._queue.pop(0)
        if step.action == "status" and self._stopping_check(step):
            if outcome is Outcome.OK:  # still running after its stop kept failing
                self.stop_failed_running = True
                self.failure = self.failure or detail
            return
        if self.operation == "start" and not self._giving_up:
            self._on_start_step(step, outcome, detail)
        else:
            self._on_stop_step(step, outcome, detail)

    def _stopping_check(self, step: Step) -> bool:
        return self._giving_up or self.operation == "stop"

    def _on_start_step(self, step: Step, outcome: Outcome, detail: str) -> None:
        if step.action == "status":
            if outcome is Outcome.OK:  # already running: not started again
                self._started.append(step.index)
                self._advance(step.index)
            else:
                self._queue.insert(0, Step(step.index, "start"))
            return
        if outcome is Outcome.OK:
            self._started.append(step.index)
            self._advance(step.index)
            return
        # "Giving up resources due to failure of …": stop the whole group in reverse.
        self.ok = False
        self.failure = detail or f"resource {step.index + 1} failed to start"
        self._giving_up = True
        self._queue = [Step(i, "stop") for i in reversed(range(len(self.kinds)))]

    def _advance(self, index: int) -> None:
        if index + 1 < len(self.kinds):
            self._queue.insert(0, self._first_start_step(index + 1))

    def _on_stop_step(self, step: Step, outcome: Outcome, detail: str) -> None:
        if outcome is Outcome.OK:
            return
        tries = self._retries.get(step.index, 0)
        if tries < self.stop_retries:
            self._retries[step.index] = tries + 1
            self._queue.insert(0, Step(step.index, "stop", STOP_RETRY_DELAY))
            return
        if self.operation == "stop":
            self.ok = False
            self.failure = self.failure or detail
        if self.kinds[step.index] != "address":
            # ResourceManager: a failed stop of a resource that still runs means "reboot".
            self._queue.insert(0, Step(step.index, "status"))
