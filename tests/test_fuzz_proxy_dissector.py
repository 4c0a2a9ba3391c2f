"""Short coverage-guided runs of the fault engine and the dissector (issue 12, "keep it
found"); the long runs are fuzz/engine.py and fuzz/dissect.py with more -runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"


@pytest.mark.parametrize(("target", "runs"), [("engine.py", 4000), ("dissect.py", 800)])
def test_fuzz_target_survives_a_short_run(target, runs):
    pytest.importorskip("atheris")
    result = subprocess.run(
        [sys.executable, str(FUZZ / target), f"-runs={runs}", "-seed=11", "-max_len=4096",
         "-max_total_time=60"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    tail = (result.stdout + result.stderr)[-3000:]
    assert result.returncode == 0, tail
    assert f"Done {runs} runs" in tail or "DONE" in tail, tail
