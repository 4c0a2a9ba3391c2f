"""A short coverage-guided fuzz run of `Node.receive` (the long run is fuzz/node.py)."""

from __future__ import annotations

from fuzz_run import assert_survives


def test_node_receive_survives_a_fuzz_run():
    assert_survives("node.py", runs=15000, seed=5, max_total_time=120)
