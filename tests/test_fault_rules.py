"""The fault rule language and scenario files: what parses, and the one-line errors."""

from __future__ import annotations

import pytest
from hbtools.faults.rules import (
    Corrupt,
    Delay,
    Drop,
    Duplicate,
    Partition,
    RateLimit,
    Reorder,
    Rewrite,
    RuleError,
    parse_duration,
    parse_rule,
)
from hbtools.faults.scenario import ScenarioError
from hbtools.faults.scenario import parse as parse_scenario

NODES = ["n1", "n2", "n3", "n4", "n5"]


def test_the_issue_example():
    rule = parse_rule("drop type=NS_ackmsg p=0.5")
    assert rule.action == Drop()
    assert rule.probability == 0.5
    assert [str(c) for c in rule.match.conditions] == ["type=NS_ackmsg"]
    assert rule.directions == ("in", "out")


@pytest.mark.parametrize("text, seconds", [
    ("200ms", 0.2), ("1.5s", 1.5), ("500us", 0.0005), ("2m", 120.0), ("0", 0.0), (".5s", 0.5),
])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_actions_and_options():
    assert parse_rule("delay 200ms jitter=50ms dist=normal out").action == Delay(0.2, 0.05, "normal")
    assert parse_rule("duplicate 3").action == Duplicate(3)
    assert parse_rule("dup").action == Duplicate(1)
    assert parse_rule("reorder window=5 timeout=1s").action == Reorder(5, 1.0)
    assert parse_rule("corrupt").action == Corrupt(1, 0)
    assert parse_rule("corrupt bytes=4").action == Corrupt(0, 4)
    assert parse_rule("ratelimit 5/s burst=2").action == RateLimit(5.0, 2)
    assert parse_rule("ratelimit 600/m").action == RateLimit(10.0, 1)
    rw = parse_rule("rewrite st:=dead seq:=+5 ttl:=1 sign=stale src=node2").action
    assert isinstance(rw, Rewrite) and rw.sign == "stale"
    assert [(a.name, a.value, a.relative) for a in rw.assignments] == [
        ("st", "dead", None), ("seq", "+5", 5), ("ttl", "1", None)]


def test_match_terms():
    rule = parse_rule("drop in src=node1,node2 st!=up from=198.18.0.0/24 dport=694 proto=heartbeat")
    assert rule.directions == ("in",)
    terms = {c.key: (c.values, c.negate) for c in rule.match.conditions}
    assert terms["src"] == (("node1", "node2"), False)
    assert terms["st"] == (("up",), True)
    assert terms["ip.src"] == (("198.18.0.0/24",), False)


def test_duplicate_is_outgoing_only():
    assert parse_rule("duplicate 2").directions == ("out",)
    with pytest.raises(RuleError, match="outgoing"):
        parse_rule("duplicate 2 in")


@pytest.mark.parametrize("text, problem", [
    ("explode", "unknown action 'explode'"),
    ("drop foo=1", "unknown field 'foo'"),
    ("drop p=1.5", "between 0 and 1"),
    ("delay", "needs an amount"),
    ("delay 10parsecs", "bad delay"),
    ("delay 1s dist=cauchy", "bad dist"),
    ("drop dir=sideways", "bad direction"),
    ("drop proto=ftp", "bad protocol"),
    ("rewrite", "at least one NAME:=VALUE"),
    ("rewrite auth:=1", "auth cannot be rewritten"),
    ("rewrite st:=+1", "relative value needs a numeric field"),
    ("drop st:=dead", "belongs to a rewrite rule"),
    ("reorder window=1", "at least 2"),
    ("partition n1-n2", "A>B"),
    ("partition n1>n9", "unknown node 'n9'"),
    ("drop in dir=out", "can never match"),
    ("drop 'unbalanced", "cannot split"),
])
def test_bad_rules_say_why(text, problem):
    with pytest.raises(RuleError, match=problem):
        parse_rule(text, nodes=NODES)


def test_field_escape_reaches_unknown_fields():
    rule = parse_rule("drop field.xyz=1")
    assert rule.match.conditions[0].key == "field.xyz"


def _cut(text):
    action = parse_rule(text, nodes=NODES).action
    assert isinstance(action, Partition)
    return set(action.cut)


def test_one_way_and_two_way_partitions():
    assert _cut("partition n1>n2") == {("n1", "n2")}
    assert _cut("partition n1<n2") == {("n2", "n1")}
    assert _cut("partition n1<>n2,n3") == {("n1", "n2"), ("n2", "n1"), ("n1", "n3"), ("n3", "n1")}


def test_jepsen_presets():
    # Jepsen's nemesis: isolate one node; halves = first half | second half; bridge = two
    # halves that both still reach the bridge node.
    others = [n for n in NODES if n != "n3"]
    assert _cut("isolate n3") == {(a, b) for a in ["n3"] for b in others} | {
        (b, a) for a in ["n3"] for b in others}
    halves = _cut("halves")
    assert halves == {(a, b) for a in ["n1", "n2"] for b in ["n3", "n4", "n5"]} | {
        (b, a) for a in ["n1", "n2"] for b in ["n3", "n4", "n5"]}
    bridge = _cut("bridge n3")
    assert not any("n3" in pair for pair in bridge)
    assert bridge == {("n1", "n4"), ("n1", "n5"), ("n2", "n4"), ("n2", "n5"),
                      ("n4", "n1"), ("n5", "n1"), ("n4", "n2"), ("n5", "n2")}


SCENARIO = """\
name = "flap"
seed = 7
ports = [694]

[nodes]
n1 = "198.18.0.1"
n2 = "198.18.0.2"

[[step]]
at = "1s"
for = "2s"
rules = ["drop t=status"]

[[step]]
at = "4s"
for = "500ms"
repeat = 3
every = "1s"
rules = ["isolate n2", "delay 10ms"]
"""


def test_scenario_timeline():
    sc = parse_scenario(SCENARIO, "flap.toml")
    assert (sc.name, sc.seed, sc.ports) == ("flap", 7, (694,))
    assert sc.nodes == {"n1": "198.18.0.1", "n2": "198.18.0.2"}
    assert sc.duration == pytest.approx(6.5)  # last flap: 4 + 2*1 + 0.5
    first, isolate, _ = sc.rules
    assert [first.active(t) for t in (0.5, 1.0, 2.9, 3.0)] == [False, True, True, False]
    assert [isolate.active(t) for t in (4.2, 4.6, 5.2, 5.7, 6.2, 6.6)] == [
        True, False, True, False, True, False]


@pytest.mark.parametrize("edit, line, problem", [
    (("rules = [\"drop t=status\"]", "rules = [\"drop colour=red\"]"), 12, "unknown field 'colour'"),
    (("for = \"2s\"", "for = \"2 fortnights\""), 11, "bad for"),
    (("every = \"1s\"", "every = \"100ms\""), 18, "must be longer than for"),
    (("n2 = \"198.18.0.2\"", "n2 = \"node-two\""), 7, "not an IPv4 address"),
    (("at = \"4s\"", "start = \"4s\""), 15, "unknown key 'start'"),
    (("seed = 7", "seed = [7"), 3, "TOML"),
    (("isolate n2", "isolate n9"), 19, "unknown node 'n9'"),
])
def test_bad_scenarios_name_file_and_line(edit, line, problem):
    text = SCENARIO.replace(*edit)
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, "flap.toml")
    assert err.value.line == line
    assert str(err.value).startswith(f"flap.toml:{line}: ")
    assert problem in str(err.value)


def test_scenario_without_end():
    with pytest.raises(ScenarioError, match="never ends"):
        parse_scenario('[[step]]\nrules = ["drop all"]\n', "x.toml")


def test_example_scenarios_parse():
    from pathlib import Path

    from hbtools.faults.scenario import load

    examples = sorted((Path(__file__).resolve().parent.parent / "faults" / "examples").glob("*.toml"))
    assert len(examples) >= 2
    flap = load(examples[0])
    assert flap.name == "node2 flaps" and flap.duration == 40.0
    isolate = flap.rules[-1]
    assert [isolate.active(t) for t in (4.9, 5.0, 7.9, 8.0, 13.0, 29.0, 31.9, 32.0)] == [
        False, True, True, False, True, True, True, False]
    split = load(examples[1])
    assert split.duration == 45.0 and len(split.rules) == 3


def test_binary_scenario_file_is_one_line_error(tmp_path):
    from hbtools.faults.scenario import load

    path = tmp_path / "capture.pcap"
    path.write_bytes(b'name = "x"\n\xd4\xc3\xb2\xa1\x02\x00')  # a pcap header on line 2
    with pytest.raises(ScenarioError) as err:
        load(path)
    assert str(err.value) == f"{path}:2: not UTF-8 text (is this a TOML scenario?)"


@pytest.mark.parametrize("text, problem", [
    ("delay 300", "needs a unit"),
    ("delay 200ms jitter=50", "needs a unit"),
    ("reorder timeout=2", "needs a unit"),
    ("drop", "drops every cluster packet both ways"),
    ("drop p=0.5", "drops every cluster packet"),
    ("drop in", "drops every cluster packet"),
    ("drop everything", "unexpected word"),
])
def test_safe_defaults_refuse_what_would_break_a_cluster(text, problem):
    """Issue 14: a bare number of seconds and an unqualified drop are refused."""
    with pytest.raises(RuleError, match=problem):
        parse_rule(text)


def test_explicit_drop_all_and_units_are_taken():
    assert parse_rule("drop all").action == Drop()
    assert parse_rule("drop all in").directions == ("in",)
    assert parse_rule("delay 300ms").action == Delay(0.3)
    assert parse_rule("delay 0").action == Delay(0.0)
