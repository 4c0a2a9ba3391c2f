"""The detector variants of the chaos scenarios (issue 16): what gets planned and how the table
groups it. Pure: no lab; the figures in the rows are made up here."""

from __future__ import annotations

from hbtools.chaos.runner import RunResult
from hbtools.chaos.scenarios import BUILTIN
from hbtools.usecases.chaos import DETECTOR_SCENARIOS, detector_table, detector_variants, plan_runs


def _result(name: str, impl: str, det: float | None, ff: int = 0) -> RunResult:
    return RunResult(name, impl, "PASS", "PASS", "", True, [], det, None, 0.0, ff, 0, None, [],
                     True, [], 1.0, 100, 20.0, {})


def test_variants_are_hbtools_only_with_the_detector_line():
    base = [BUILTIN[n] for n in DETECTOR_SCENARIOS]
    variants = detector_variants(base, ["detector phi pause=0.4", "detector binary tmax=0.2"])
    assert [v.name for v in variants] == ["crash+phi", "freeze+phi", "loss30+phi", "crash+binary",
                                          "freeze+binary", "loss30+binary"]
    assert all(v.impls == ("hbtools",) for v in variants)
    assert variants[0].options["ha_cf_extra"] == ("detector phi pause=0.4",)
    pairs = plan_runs([*base, *variants], ["hbtools", "heartbeat"], matrix=True)
    assert sum(1 for _, impl in pairs if impl == "heartbeat") == 3  # never a detector line there
    assert sum(1 for _, impl in pairs if impl == "hbtools") == 9


def test_table_puts_each_detector_next_to_the_fixed_run():
    rows = [_result("crash", "hbtools", 2022), _result("stop", "hbtools", 5),
            _result("crash+binary", "hbtools", 475), _result("crash+phi", "hbtools", 1170),
            _result("crash", "heartbeat", 2100), _result("loss30+binary", "hbtools", None, 1),
            _result("loss30", "hbtools", None)]
    lines = detector_table(rows).splitlines()[2:]
    assert [line.split(" | ")[:4] for line in lines] == [
        ["| crash", "fixed", "PASS", "2022"], ["| crash", "binary", "PASS", "475"],
        ["| crash", "phi", "PASS", "1170"], ["| loss30", "fixed", "PASS", "-"],
        ["| loss30", "binary", "PASS", "-"]]
    assert lines[-1].endswith("| 1 |")
