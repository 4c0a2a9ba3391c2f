"""The short fuzz runs of the unit suite: one way to run a ``fuzz/`` target under libFuzzer
and judge it, so every target is held to the same verdict (the long runs are the same
scripts with more ``-runs``).

A module of its own (``from fuzz_run import …``), not conftest.py: see tests/conftest.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"


def assert_survives(target: str, *, runs: int, seed: int, max_total_time: int,
                    extra: Sequence[str] = ()) -> None:
    """Run ``fuzz/<target>`` for ``runs`` inputs (skip without atheris); fail with the
    fuzzer's last words when it crashed or stopped before doing all of them."""
    pytest.importorskip("atheris")
    result = subprocess.run(
        [sys.executable, str(FUZZ / target), f"-runs={runs}", f"-seed={seed}", *extra,
         f"-max_total_time={max_total_time}"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    tail = (result.stdout + result.stderr)[-3000:]
    assert result.returncode == 0, tail
    assert f"Done {runs} runs" in tail or "DONE" in tail, tail
