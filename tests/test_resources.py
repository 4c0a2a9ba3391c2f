"""Resource agents as Heartbeat v1's ResourceManager runs them (hbtools.resources, pure).

Expected sequences are read off Debian's heartbeat 3.0.6 /usr/share/heartbeat/ResourceManager
(acquireresourcegroup: "we_own_resource || doscript start", on failure "Giving up resources"
= giveupresourcegroup, stops in reverse order, retried HA_STOPRETRYMAX times 1 s apart) and the
exit codes from the OCF resource agent API and LSB init script specification.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hbtools.resources import (
    AgentResource,
    GroupAction,
    Outcome,
    interpret,
    invocation,
    parse_agent,
    resolve,
)


def drive(ga: GroupAction, answers: dict[tuple[int, str], list[Outcome]]) -> list[tuple[int, str]]:
    """Run a GroupAction, answering each step from ``answers`` (last answer repeats)."""
    seen = []
    for _ in range(200):
        step = ga.next()
        if step is None:
            return seen
        seen.append((step.index, step.action))
        queue = answers.get((step.index, step.action), [Outcome.OK])
        ga.done(step, queue.pop(0) if len(queue) > 1 else queue[0], f"r{step.index} {step.action}")
    raise AssertionError("did not finish")


def test_start_in_order_asking_status_first():
    ga = GroupAction("start", ("address", "ocf", "lsb"))
    steps = drive(ga, {(1, "status"): [Outcome.NOT_RUNNING], (2, "status"): [Outcome.OK]})
    # the address is added; agent 1 is not running, so started; agent 2 already runs: left alone
    assert steps == [(0, "start"), (1, "status"), (1, "start"), (2, "status")]
    assert ga.ok


def test_failed_start_gives_up_the_whole_group_in_reverse():
    ga = GroupAction("start", ("address", "ocf", "lsb"))
    steps = drive(ga, {(1, "status"): [Outcome.NOT_RUNNING], (1, "start"): [Outcome.FAILED]})
    assert steps == [(0, "start"), (1, "status"), (1, "start"), (2, "stop"), (1, "stop"), (0, "stop")]
    assert not ga.ok and ga.failure == "r1 start"


def test_stop_reverse_and_retries_then_status():
    ga = GroupAction("stop", ("address", "heartbeat"))
    steps = drive(ga, {(1, "stop"): [Outcome.FAILED], (1, "status"): [Outcome.OK]})
    assert steps[0] == (1, "stop") and steps.count((1, "stop")) == 11  # 1 + 10 retries
    assert steps[-2:] == [(1, "status"), (0, "stop")]
    assert not ga.ok and ga.stop_failed_running  # ResourceManager would reboot here


def test_stop_failure_of_a_stopped_resource_is_only_a_warning():
    ga = GroupAction("stop", ("lsb",), stop_retries=2)
    drive(ga, {(0, "stop"): [Outcome.FAILED], (0, "status"): [Outcome.NOT_RUNNING]})
    assert not ga.stop_failed_running and not ga.ok


def test_retries_wait_a_second():
    ga = GroupAction("stop", ("lsb",))
    first = ga.next()
    ga.done(first, Outcome.FAILED)
    assert ga.next().delay == 1.0


OCF = AgentResource("Dummy", ("state=/x",), None, "Dummy::state=/x", "ocf", Path("/o/Dummy"))
LSB = AgentResource("nginx", (), None, "nginx", "lsb", Path("/etc/init.d/nginx"))
HB = AgentResource("apache", ("/etc/apache.conf",), None, "", "heartbeat", Path("/r/apache"))


@pytest.mark.parametrize(("res", "action", "code", "output", "want"), [
    (OCF, "status", 0, "", Outcome.OK), (OCF, "status", 7, "", Outcome.NOT_RUNNING),
    (OCF, "status", 1, "", Outcome.FAILED), (OCF, "stop", 7, "", Outcome.OK),
    (OCF, "start", 1, "", Outcome.FAILED), (OCF, "start", None, "", Outcome.FAILED),
    (LSB, "status", 0, "", Outcome.OK), (LSB, "status", 3, "", Outcome.NOT_RUNNING),
    (LSB, "status", 1, "", Outcome.NOT_RUNNING), (LSB, "status", 4, "", Outcome.FAILED),
    (LSB, "stop", 7, "", Outcome.FAILED),
    (HB, "status", 0, "apache is running", Outcome.OK),
    (HB, "status", 0, "apache is not running", Outcome.NOT_RUNNING),
    (HB, "status", 0, "OK", Outcome.OK), (HB, "status", 3, "stopped", Outcome.NOT_RUNNING),
])
def test_interpret(res, action, code, output, want):
    assert interpret(res, action, code, output) is want


def test_invocations():
    # resource.d / init scripts: arguments, then the action (ResourceManager's doscript)
    assert invocation(HB, "start", instance="i").argv == ("/r/apache", "/etc/apache.conf", "start")
    assert invocation(LSB, "status", instance="i").argv == ("/etc/init.d/nginx", "status")
    inv = invocation(OCF, "status", instance="Dummy_0")
    assert inv.argv == ("/o/Dummy", "monitor")
    env = dict(inv.env)
    assert env["OCF_RESKEY_state"] == "/x" and env["OCF_ROOT"] == "/usr/lib/ocf"
    assert env["OCF_RESOURCE_INSTANCE"] == "Dummy_0" and env["OCF_RESOURCE_TYPE"] == "Dummy"


def test_resolve_order():
    rd, initd, ocf = Path("/c/resource.d"), Path("/i"), Path("/ocf")
    present = {rd / "both", initd / "both", initd / "lsbonly", ocf / "resource.d/heartbeat/both",
               ocf / "resource.d/heartbeat/Dummy", ocf / "resource.d/pacemaker/Stateful"}

    def find(spec):
        return resolve(parse_agent(spec), resource_dirs=(rd,), init_dir=initd, ocf_root=ocf,
                       executable=present.__contains__)

    assert (find("both").kind, find("both").path) == ("heartbeat", rd / "both")
    assert find("lsbonly").kind == "lsb"
    assert find("Dummy::state=/s").kind == "ocf"
    assert find("ocf:heartbeat:both").path == ocf / "resource.d/heartbeat/both"
    assert find("ocf:pacemaker:Stateful").path == ocf / "resource.d/pacemaker/Stateful"
    with pytest.raises(ValueError, match="cannot locate resource script 'nothere'"):
        find("nothere")
    with pytest.raises(ValueError, match="not key=value"):
        find("Dummy::positional")


@pytest.mark.parametrize(("spec", "words"), [
    ("../x", "not a resource script name"), ("a/b", "not a resource script name"),
    ("ocf:heartbeat", "ocf:PROVIDER:TYPE"), ("ocf:hb:X::=v", "not key=value"),
    ("x::", "empty argument"), ("$(reboot)", "not a resource script name"),
])
def test_bad_agent_specs(spec, words):
    with pytest.raises(ValueError, match=words):
        parse_agent(spec)
