"""Short coverage-guided runs of the fault engine and the dissector (issue 12, "keep it
found"); the long runs are fuzz/engine.py and fuzz/dissect.py with more -runs."""

from __future__ import annotations

import pytest
from fuzz_run import assert_survives


@pytest.mark.parametrize(("target", "runs"), [("engine.py", 4000), ("dissect.py", 800)])
def test_fuzz_target_survives_a_short_run(target, runs):
    assert_survives(target, runs=runs, seed=11, max_total_time=60, extra=["-max_len=4096"])
