"""A short coverage-guided fuzz run of `Node.receive` (the long run is fuzz/node.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FUZZER = Path(__file__).resolve().parent.parent / "fuzz" / "node.py"


def test_node_receive_survives_a_fuzz_run():
    pytest.importorskip("atheris")
    result = subprocess.run(
        [sys.executable, str(FUZZER), "-runs=15000", "-seed=5", "-max_total_time=120"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    tail = (result.stdout + result.stderr)[-3000:]
    assert result.returncode == 0, tail
    assert "Done 15000 runs" in tail or "DONE" in tail, tail
