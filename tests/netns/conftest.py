"""Fixtures for the namespace tests: a fresh lab per test, torn down whatever happens.

The skip-or-fail helpers live in `tests/policy.py` (``from policy import …``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hbtools.lab import Lab


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A running Lab (bridge namespace, no nodes yet); its teardown kills and deletes all.

    A cleanup that leaves something behind raises LabError, which pytest reports as an
    error of this test: a leak must never pass silently.
    """
    with Lab() as running:
        yield running
