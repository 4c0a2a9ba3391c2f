"""The daemon's agent executor running real agents: the OCF Dummy agent from Debian's
resource-agents, an LSB init script and a Heartbeat resource.d script (both written here).

What is checked comes from the agents themselves: Dummy creates its state file on start and
removes it on stop, its monitor answers 7 (not running) before a start; the scripts record
the argv they were called with, which must be Heartbeat's ``script args… action``.
"""

from __future__ import annotations

import time
from pathlib import Path

from policy import require_tools

from hbtools.node.agents import AgentExecutor
from hbtools.node.config import IPAddrResource, ResourceGroup
from hbtools.resources import parse_agent, resolve

DUMMY = "/usr/lib/ocf/resource.d/heartbeat/Dummy"

SCRIPT = """#!/bin/sh
# records its arguments; 'status' says running once started
echo "$*" >> {log}
case "$1$2" in
  *status) if [ -e {state} ]; then echo "running"; else echo "not running"; exit 3; fi ;;
  *start) touch {state} ;;
  *stop) rm -f {state} ;;
esac
exit 0
"""


def _script(path: Path, tmp: Path, name: str) -> None:
    path.write_text(SCRIPT.format(log=tmp / f"{name}.log", state=tmp / f"{name}.state"))
    path.chmod(0o755)


def run(executor: AgentExecutor, timeout: float = 60.0) -> list:
    failures = []
    deadline = time.monotonic() + timeout
    while executor.busy and time.monotonic() < deadline:
        failures += executor.poll()
        time.sleep(0.01)
    assert not executor.busy
    return failures


def make_group(tmp: Path, words: list[str]) -> ResourceGroup:
    rdir, initd = tmp / "resource.d", tmp / "init.d"
    rdir.mkdir(exist_ok=True)
    initd.mkdir(exist_ok=True)
    _script(rdir / "hbscript", tmp, "hbscript")
    _script(initd / "lsbscript", tmp, "lsbscript")

    def executable(p: Path) -> bool:
        return p.is_file() and p.stat().st_mode & 0o111 != 0

    resources = [resolve(parse_agent(w), resource_dirs=(rdir,), init_dir=initd,
                         executable=executable) for w in words]
    return ResourceGroup("node1", tuple(resources), 1)


def executor(addresses: list) -> AgentExecutor:
    return AgentExecutor(lambda r: addresses.append(("up", r)) is None,
                         lambda r: addresses.append(("down", r)) is None,
                         lambda kind, text, data: None, time.monotonic)


def test_group_start_and_stop_with_real_agents(tmp_path):
    require_tools(DUMMY)
    state = tmp_path / "dummy.state"
    group = make_group(tmp_path, ["hbscript::one::two", f"Dummy::state={state}", "lsbscript"])
    group = ResourceGroup("node1", (IPAddrResource("198.18.0.100"), *group.resources), 1)
    assert [getattr(r, "kind", "address") for r in group.resources] == ["address", "heartbeat",
                                                                        "ocf", "lsb"]
    seen: list = []
    ex = executor(seen)
    ex.submit(0, group, "start")
    assert run(ex) == []
    assert state.exists()  # the real Dummy agent started
    assert (tmp_path / "hbscript.log").read_text().splitlines() == ["one two status",
                                                                     "one two start"]
    assert (tmp_path / "lsbscript.log").read_text().splitlines() == ["status", "start"]
    ex.submit(0, group, "stop")
    assert run(ex) == []
    assert not state.exists()
    assert (tmp_path / "lsbscript.log").read_text().splitlines()[-1] == "stop"
    assert [s for s, _ in seen] == ["up", "down"]


def test_failed_ocf_start_stops_the_group_again(tmp_path):
    require_tools(DUMMY)
    # Dummy cannot create its state file in a directory that does not exist: start exits 1
    group = make_group(tmp_path, ["lsbscript", f"Dummy::state={tmp_path}/missing/dir/state"])
    ex = executor([])
    ex.submit(0, group, "start")
    failures = run(ex)
    assert len(failures) == 1
    index, operation, detail, still_running = failures[0]
    assert (index, operation, still_running) == (0, "start", False)
    assert "start: exit 1 (generic error)" in detail
    # the group was given up: the LSB script that had started was stopped again
    assert (tmp_path / "lsbscript.log").read_text().splitlines() == ["status", "start", "stop"]
    assert not (tmp_path / "lsbscript.state").exists()
