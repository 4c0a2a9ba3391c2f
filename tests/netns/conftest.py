"""Fixtures for the namespace tests: a fresh lab per test, torn down whatever happens.

The policy helpers are re-exported for tests that still say ``from conftest import …``;
new code should import them from `policy`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from policy import in_ci, missing_for_netns, require_tools, skip_or_fail

from hbtools.lab import Lab

__all__ = ["in_ci", "lab", "missing_for_netns", "require_tools", "skip_or_fail"]


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A running Lab (bridge namespace, no nodes yet); its teardown kills and deletes all.

    A cleanup that leaves something behind raises LabError, which pytest reports as an
    error of this test: a leak must never pass silently.
    """
    with Lab() as running:
        yield running
