"""The daemon's I/O for resource agents and service checks, beside the runner's main loop.

`AgentExecutor` carries out the core's take/release of a group step by step as
:class:`hbtools.resources.GroupAction` plans it: one agent process at a time, started with an
argv list (never a shell) and its OCF environment, polled from the main loop so heartbeats go on
while an agent works, killed (its whole process group) when it overruns its timeout. Address
resources are done by the runner's own functions, passed in.

`CheckScheduler` runs each group's negotiate check every ``interval`` in a worker thread (a
check may wait ``timeout`` on a silent server; the loop must not) and hands the results back
through a queue, waking the loop with its pipe.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from hbtools.checks import Check, run_check
from hbtools.node.config import IPAddrResource, ResourceGroup
from hbtools.resources import (
    AgentResource,
    GroupAction,
    Outcome,
    Step,
    describe,
    interpret,
    invocation,
)

MAX_OUTPUT = 64 * 1024  # of an agent's stdout/stderr kept for status words and the log
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: (group index, "start"/"stop", what failed, a stop failed while the resource still runs)
Failure = tuple[int, str, str, bool]


@dataclass
class _Job:
    index: int
    group: ResourceGroup
    action: GroupAction
    proc: subprocess.Popen[bytes] | None = None
    output: IO[bytes] | None = None
    step: Step | None = None
    deadline: float = 0.0
    not_before: float = 0.0
    runs: list[str] = field(default_factory=list)


class AgentExecutor:
    """Group starts and stops, in the order the core asked for them, one process at a time."""

    def __init__(self, address_up: Callable[[IPAddrResource], bool],
                 address_down: Callable[[IPAddrResource], bool],
                 log: Callable[[str, str, dict[str, object]], None],
                 clock: Callable[[], float]) -> None:
        self.address_up, self.address_down = address_up, address_down
        self.log = log
        self.clock = clock
        self.jobs: list[_Job] = []

    def submit(self, index: int, group: ResourceGroup, operation: str) -> None:
        kinds = tuple("address" if isinstance(r, IPAddrResource) else (r.kind or "?")
                      for r in group.resources)
        self.jobs.append(_Job(index, group, GroupAction(operation, kinds)))  # type: ignore[arg-type]

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    def next_due(self) -> float | None:
        """When poll() has something to do (a running process: soon; a delayed retry: then)."""
        if not self.jobs:
            return None
        job = self.jobs[0]
        if job.proc is not None:
            return self.clock() + 0.02
        return max(job.not_before, self.clock())

    def poll(self) -> list[Failure]:
        """Advance the first job as far as it goes without waiting; failures of finished jobs."""
        failures: list[Failure] = []
        for _ in range(64):  # address steps finish at once; bound the work per call
            if not self.jobs:
                break
            job = self.jobs[0]
            if job.proc is not None and not self._collect(job):
                break
            step = job.action.next()
            if step is None:
                self.jobs.pop(0)
                if not job.action.ok or job.action.stop_failed_running:
                    failures.append((job.index, job.action.operation, job.action.failure,
                                     job.action.stop_failed_running))
                continue
            now = self.clock()
            if step is not job.step and step.delay:
                job.step, job.not_before = step, now + step.delay
            if now < job.not_before:
                break
            job.step = step
            res = job.group.resources[step.index]
            if isinstance(res, IPAddrResource):
                ok = (self.address_up if step.action == "start" else self.address_down)(res)
                job.action.done(step, Outcome.OK if ok else Outcome.FAILED,
                                f"{res} {step.action}: ip failed")
                continue
            self._spawn(job, res, step)
        return failures

    def _spawn(self, job: _Job, res: AgentResource, step: Step) -> None:
        inv = invocation(res, step.action, instance=f"{res.name}_{job.index}")
        env = {"PATH": CLEAN_PATH, "LANG": "C", **dict(inv.env)}
        out = tempfile.TemporaryFile()  # noqa: SIM115 - kept open until the process is collected
        try:
            proc = subprocess.Popen(list(inv.argv), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, cwd="/",
                                    start_new_session=True)
        except OSError as exc:
            out.close()
            job.action.done(step, Outcome.FAILED, f"{res} {step.action}: cannot run "
                            f"{inv.argv[0]}: {exc.strerror}")
            return
        job.proc, job.output, job.deadline = proc, out, self.clock() + inv.timeout
        self.log("resource_run", f"running {' '.join(inv.argv)}",
                 {"group": job.group.name, "argv": list(inv.argv), "pid": proc.pid})

    def _collect(self, job: _Job) -> bool:
        """True once the job's process is done (exited, or killed at its deadline)."""
        assert job.proc is not None and job.step is not None
        code = job.proc.poll()
        if code is None and self.clock() < job.deadline:
            return False
        if code is None:
            _kill_group(job.proc)
        text = ""
        if job.output is not None:
            job.output.seek(0)
            text = job.output.read(MAX_OUTPUT).decode("utf-8", "replace")
            job.output.close()
        step, res = job.step, job.group.resources[job.step.index]
        assert isinstance(res, AgentResource)
        outcome = interpret(res, step.action, code, text)
        last = text.strip().splitlines()[-1] if text.strip() else ""
        detail = describe(res, step.action, code) + (f": {last[:200]}" if last else "")
        job.proc, job.output = None, None
        job.action.done(step, outcome, detail)
        return True

    def drain(self, timeout: float) -> list[Failure]:
        """Finish every queued job (used at shutdown), waiting at most ``timeout`` seconds."""
        import time

        failures: list[Failure] = []
        deadline = self.clock() + timeout
        while self.jobs and self.clock() < deadline:
            failures.extend(self.poll())
            if self.jobs:
                time.sleep(0.02)
        for job in self.jobs:
            if job.proc is not None:
                _kill_group(job.proc)
        return failures


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


class CheckScheduler:
    """Each group's check every interval, one at a time per group, in worker threads."""

    def __init__(self, checks: dict[int, tuple[Check, float]], clock: Callable[[], float],
                 wake: Callable[[], None]) -> None:
        self.checks = checks
        self.clock = clock
        self.wake = wake
        start = clock()
        self.due = {i: start for i in checks}
        self.running: set[int] = set()
        self.results: queue.SimpleQueue[tuple[int, bool, str]] = queue.SimpleQueue()

    def next_due(self) -> float | None:
        waiting = [t for i, t in self.due.items() if i not in self.running]
        return min(waiting) if waiting else None

    def poll(self) -> list[tuple[int, bool, str]]:
        """Start the checks that are due; the results that came in since the last call."""
        now = self.clock()
        for i, (check, interval) in self.checks.items():
            if i in self.running or now < self.due[i]:
                continue
            self.running.add(i)
            self.due[i] = max(self.due[i] + interval, now)
            threading.Thread(target=self._run, args=(i, check), daemon=True,
                             name=f"check-{i}").start()
        done: list[tuple[int, bool, str]] = []
        while True:
            try:
                item = self.results.get_nowait()
            except queue.Empty:
                break
            self.running.discard(item[0])
            done.append(item)
        return done

    def _run(self, index: int, check: Check) -> None:
        try:
            result = run_check(check)
            item = (index, result.ok, result.reason)
        except Exception as exc:  # noqa: BLE001 - a bug in a check must not end the daemon
            item = (index, False, f"internal error in the check: {type(exc).__name__}")
        self.results.put(item)
        self.wake()
