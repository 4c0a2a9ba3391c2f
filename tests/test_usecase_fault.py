"""The fault session's plan: options and a scenario merge as `hbtool fault` documents it."""

from __future__ import annotations

import pytest
from hbtools.faults.rules import RuleError

from hbtools.usecases.fault import FaultSession, FaultSessionError, plan

SCENARIO = """
name = "flap"
seed = 7
ports = [694]
[nodes]
node1 = "198.18.0.1"
node2 = "198.18.0.2"
[[step]]
at = "1s"
for = "2s"
rules = ["isolate node2"]
"""


def test_scenario_fills_what_options_leave_open() -> None:
    p = plan(rules=["drop all p=0.5"], scenario_text=SCENARIO)
    assert [r.text for r in p.rules] == ["drop all p=0.5", "isolate node2"]
    assert p.seed == 7 and p.ports == (694,)
    assert p.duration == 3.0  # end of the last step: at 1 s for 2 s
    assert p.nodes == {"node1": "198.18.0.1", "node2": "198.18.0.2"}
    assert p.scenario_name == "flap"


def test_options_win_over_the_scenario() -> None:
    p = plan(scenario_text=SCENARIO, seed=1, ports=[5405], duration="10s")
    assert (p.seed, p.ports, p.duration) == (1, (5405,), 10.0)


def test_defaults_without_a_scenario() -> None:
    p = plan(rules=["partition node1<>node2"], nodes=["node1=198.18.0.1", "node2=198.18.0.2"])
    assert p.ports == (694, 5404, 5405) and p.queue == 6940 and p.duration is None
    assert p.directions == ["in", "out"]


def test_nothing_to_do_is_refused() -> None:
    with pytest.raises(RuleError, match="at least one"):
        plan()
    with pytest.raises(FaultSessionError, match="unknown node .node9."):
        FaultSession.build(rules=["partition node1<>node9"], nodes={"node1": "198.18.0.1"})
