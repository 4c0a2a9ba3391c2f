"""A short coverage-guided fuzz run of all three codecs (the long run is fuzz/codecs.py)."""

from __future__ import annotations

from fuzz_run import assert_survives


def test_codecs_survive_a_fuzz_run():
    assert_survives("codecs.py", runs=40000, seed=7, max_total_time=120)
